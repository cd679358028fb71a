"""Centre hierarchy from YAML and routing by home region or number prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from forewarn.centres.config import EXAMPLE_PATH, CentreConfigError, list_officers, load_centres
from forewarn.centres.routing import Router
from forewarn.store import Store
from forewarn.store import repository as repo


@pytest.fixture
def router(store: Store) -> Router:
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
        return Router.from_store(conn, "TH")


def test_example_loads_four_countries_three_levels(store: Store) -> None:
    with store.begin() as conn:
        counts = load_centres(conn, EXAMPLE_PATH)
        centres = repo.list_centres(conn)
        officers = list_officers(conn, "TH-10-BKK")
    assert counts["national"] == 4 and counts["provincial"] >= 8 and counts["city"] >= 8 and counts["officers"] > 10
    assert {c.country for c in centres} == {"CN", "TH", "MY", "VN"}
    by_id = {c.centre_id: c for c in centres}
    assert by_id["TH-10-BKK"].parent_id == "TH-10" and by_id["TH-10"].parent_id == "TH"
    assert {o["officer_id"] for o in officers} == {"th-bkk-01", "th-bkk-02"}


def test_reloading_replaces_the_countrys_hierarchy(store: Store, tmp_path: Path) -> None:
    small = tmp_path / "th.yaml"
    small.write_text(yaml.safe_dump({"countries": [{"id": "TH", "country": "TH", "name": "TH national",
                                                    "children": [{"id": "TH-10", "name": "Bangkok",
                                                                  "regions": ["TH-10"]}]}]}))
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
        load_centres(conn, small)
        ids = {c.centre_id for c in repo.list_centres(conn)}
    assert "TH-10-BKK" not in ids and "TH-10" in ids and "CN-GD-SZ" in ids  # other countries untouched


def test_routing_by_region_then_prefix_then_country(router: Router) -> None:
    assert router.route("+66812345678", "TH-10-BKK").centre_id == "TH-10-BKK"  # type: ignore[union-attr]
    assert router.route("+66812345678", "TH-10-XYZ").centre_id == "TH-10"  # type: ignore[union-attr]  # unknown city
    assert router.route("+66812345678", "th-50").centre_id == "TH-50"  # type: ignore[union-attr]
    assert router.route("+8675512345678").centre_id == "CN-GD-SZ"  # type: ignore[union-attr]  # Shenzhen fixed line
    assert router.route("+66812345678").centre_id == "TH"  # type: ignore[union-attr]  # no region: national
    assert router.route("+60123456789", "MY-99").centre_id == "MY"  # type: ignore[union-attr]
    assert router.route("+447700900123").centre_id == "TH"  # type: ignore[union-attr]  # foreign: this node's desk
    assert [c.centre_id for c in router.chain("TH-10-BKK")] == ["TH-10-BKK", "TH-10", "TH"]


@given(st.text(max_size=30))
def test_routing_never_crashes_on_odd_regions(region: str) -> None:
    from forewarn.model.records import Centre, CentreLevel

    r = Router([Centre(centre_id="TH", name="n", level=CentreLevel.NATIONAL, country="TH", regions=["TH"])], "TH")
    assert r.route("+66812345678", region) is not None


@pytest.mark.parametrize(("change", "message"), [
    ({"countries": []}, "countries"),
    ({"countries": [{"id": "TH", "country": "th", "name": "x"}]}, "country"),
    ({"countries": [{"id": "TH", "country": "TH", "name": "x", "prefixes": ["66"]}]}, "prefix"),
    ({"countries": [{"id": "TH", "country": "TH", "name": "x", "children": [{"id": "TH", "name": "dup"}]}]}, "twice"),
    ({"countries": [{"id": "A", "country": "TH", "name": "x", "children": [{"id": "B", "name": "b", "children": [
        {"id": "C", "name": "c", "children": [{"id": "D", "name": "d"}]}]}]}]}, "three levels"),
    ({"countries": [{"id": "TH", "country": "TH", "name": "x", "hotline": "call.me"}]}, "hotline"),
    ({"countries": [{"id": "TH", "country": "TH", "name": "x", "surprise": 1}]}, "surprise"),
])
def test_bad_files_get_clear_errors_and_change_nothing(store: Store, tmp_path: Path, change: dict, message: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(change))
    with pytest.raises(CentreConfigError, match=message), store.begin() as conn:
        load_centres(conn, path)
    with store.engine.connect() as conn:
        assert repo.list_centres(conn) == []


def test_unreadable_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(CentreConfigError, match="cannot read"), store.begin() as conn:
        load_centres(conn, tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("countries: [")
    with pytest.raises(CentreConfigError, match="not valid YAML"), store.begin() as conn:
        load_centres(conn, tmp_path / "broken.yaml")
