"""The ``forewarn`` command: thin commands over the library.

Each command calls one library function and turns library errors into a clear message and a
non-zero exit, never a stack trace. Every command takes ``--data-dir`` (default ``./forewarn-data``
or ``FOREWARN_DATA_DIR``). Capability commands are grouped in sections below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from forewarn.config import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Forewarn: early warning and cross-border cooperation against telecom and online fraud.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
audit_app = typer.Typer(no_args_is_help=True, help="Inspect the append-only audit log.")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")

console = Console(stderr=True)
out = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", envvar="FOREWARN_DATA_DIR",
                                               help="node data directory (default ./forewarn-data)")]


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_for(data_dir: Path | None) -> Settings:
    try:
        return load_settings(data_dir)
    except OSError as exc:
        fail(f"cannot use data directory {data_dir}: {exc.strerror or exc}")


def open_node_store(data_dir: Path | None):  # type: ignore[no-untyped-def]
    from forewarn.store import StoreError, open_store

    try:
        return open_store(settings_for(data_dir))
    except StoreError as exc:
        fail(str(exc))


# --- node: serve, keys, audit -----------------------------------------------------------------

@app.command()
def serve(data_dir: DataDir = None,
          host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000,
          workers: Annotated[int, typer.Option(help="worker processes")] = 1) -> None:
    """Run a node's API (and pages) until Ctrl-C.

    Example: forewarn serve --port 8000 --data-dir ./forewarn-data
    """
    import os

    import uvicorn

    settings = settings_for(data_dir)
    open_node_store(data_dir).close()  # migrate once, before workers start
    os.environ["FOREWARN_DATA_DIR"] = str(settings.data_dir)
    console.print(f"Forewarn node on http://{host}:{port}  (API docs at /docs, data in {settings.data_dir})")
    uvicorn.run("forewarn.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@keys_app.command("create")
def keys_create(role: Annotated[str, typer.Option(help="admin, analyst, officer, telco, bank, partner or public")],
                name: Annotated[str | None, typer.Option(help="who or what uses the key")] = None,
                data_dir: DataDir = None) -> None:
    """Create an API key and print it once (only its hash is stored).

    Example: forewarn keys create --role telco --name "operator-a sip proxy"
    """
    from forewarn.api.auth import Role, create_key

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"unknown role {role!r}; choose one of: {', '.join(r.value for r in Role)}")
    store = open_node_store(data_dir)
    with store.begin() as conn:
        key_id, secret = create_key(conn, role_value, name)
    console.print(f"key {key_id} ({role_value.value}) created; it is shown once — keep it safe:")
    out.print(secret, highlight=False)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key by its id.

    Example: forewarn keys revoke 3fa2c1d09e8b
    """
    from forewarn.api.auth import revoke_key

    store = open_node_store(data_dir)
    with store.begin() as conn:
        if not revoke_key(conn, key_id):
            fail(f"no active key {key_id!r}")
    console.print(f"key {key_id} revoked")


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """Check the audit log's hash chain; exits 1 and names the first bad entry if it was tampered with.

    Example: forewarn audit verify
    """
    from forewarn.store.audit import verify_chain

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        report = verify_chain(conn)
    if not report.ok:
        fail(f"audit log tampered with at entry {report.first_bad_seq}: {report.problem}", code=1)
    out.print(f"audit log intact: {report.entries} entries")


# --- ingestion (forewarn/ingest) ----------------------------------------------------------------

@app.command()
def ingest(files: Annotated[list[Path] | None, typer.Argument(help="CSV, JSONL or Parquet files of events")] = None,
           kind: Annotated[str | None, typer.Option(help="call, message, payment, report, signal or subscriber "
                                                         "(default: each row's kind, else the file name)")] = None,
           from_: Annotated[str | None, typer.Option("--from", help="nats://HOST:4222/STREAM to consume from")] = None,
           subject: Annotated[str | None, typer.Option(help="NATS subject filter (default: the whole stream)")] = None,
           durable: Annotated[str, typer.Option(help="NATS durable consumer name")] = "forewarn-ingest",
           max_messages: Annotated[int | None, typer.Option(help="stop after this many NATS messages")] = None,
           idle_timeout: Annotated[float, typer.Option(help="stop after this many seconds without NATS messages "
                                                            "(0 = run until Ctrl-C)")] = 5.0,
           chunk_rows: Annotated[int, typer.Option(help="rows per transaction")] = 100_000,
           as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
           data_dir: DataDir = None) -> None:
    """Load events from files or a NATS JetStream stream: validated, bad rows quarantined, idempotent by event id.

    Example: forewarn ingest calls.csv messages.jsonl --data-dir ./forewarn-data
    Example: forewarn ingest --from nats://127.0.0.1:4222/EVENTS --max-messages 1000
    """
    from forewarn.ingest import IngestError, ingest_files
    from forewarn.ingest.report import progress_bar, summary_table

    if bool(files) == bool(from_):
        fail("give event files, or --from nats://HOST:4222/STREAM (not both)")
    store = open_node_store(data_dir)
    try:
        if from_:
            from forewarn.ingest.nats import NatsError, consume

            try:
                summary = consume(store, from_, subject=subject, durable=durable, max_messages=max_messages,
                                  idle_timeout=idle_timeout or None)
            except NatsError as exc:
                fail(str(exc))
        else:
            with progress_bar(console) as progress:
                summary = ingest_files(store, files or [], kind, chunk_rows=chunk_rows, progress=progress)
    except IngestError as exc:
        fail(str(exc))
    finally:
        store.close()
    if as_json:
        print_json(summary.as_dict())
    else:
        out.print(summary_table(summary))
    for f in summary.files:
        if f.error:
            console.print(f"[bold red]error:[/] {f.error}", highlight=False)
    if not summary.ok:
        raise typer.Exit(1)


# --- simulator and demo (forewarn/sim) ----------------------------------------------------------

@app.command()
def simulate(out_dir: Annotated[Path, typer.Option("--out", help="folder to write the scenario to")],
             seed: Annotated[int, typer.Option(help="same seed, same scenario")] = 7,
             subscribers: Annotated[int, typer.Option(help="home subscribers across CN, TH, MY, VN")] = 20_000,
             days: Annotated[int, typer.Option(help="length of the scenario in days")] = 3,
             start: Annotated[str, typer.Option(help="first day, ISO date (UTC)")] = "2025-03-03",
             fraud_rate: Annotated[float, typer.Option(help="fraud numbers as a share of subscribers")] = 0.005,
             countries: Annotated[str, typer.Option(help="home countries, comma-separated")] = "CN,TH,MY,VN") -> None:
    """Write a realistic multi-country fraud scenario (events as Parquet, plus ground truth).

    Example: forewarn simulate --out ./scenario --seed 7 --subscribers 20000 --days 3
    """
    from datetime import date

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from forewarn.sim import ScenarioConfig, ScenarioConfigError, SimulationError
    from forewarn.sim import simulate as run_simulation

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        fail(f"--start must be an ISO date such as 2025-03-03, not {start!r}")
    try:
        config = ScenarioConfig.build(seed=seed, subscribers=subscribers, days=days, start=first_day,
                                      fraud_rate=fraud_rate, countries=countries)
    except ScenarioConfigError as exc:
        fail(str(exc))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} h"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("simulating", total=days * 24)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"simulating ({stage})", completed=done, total=total)

        try:
            files = run_simulation(config, out_dir, progress=on_progress)
        except SimulationError as exc:
            fail(str(exc))
    counts = ", ".join(f"{n:,} {kind}s" for kind, n in files.counts.items())
    console.print(f"scenario written to {files.out_dir} in {files.seconds:.1f} s "
                  f"({files.calls_per_second:,.0f} calls/s): {counts}")
    truth = files.truth_counts
    out.print(f"ground truth: {truth.get('operations', 0)} operations, {truth.get('fraud_numbers', 0)} fraud numbers, "
              f"{truth.get('victims', 0)} victims, {truth.get('mule_accounts', 0)} mule accounts -> {files.truth_dir}",
              highlight=False)


@app.command()
def demo(data_dir: DataDir = None,
         seed: Annotated[int, typer.Option(help="scenario seed")] = 7,
         subscribers: Annotated[int, typer.Option(help="home subscribers across CN, TH, MY, VN")] = 10_000,
         days: Annotated[int, typer.Option(help="scenario length in days")] = 2,
         report: Annotated[Path | None, typer.Option(help="also write the summary as JSON here")] = None,
         serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="serve the node afterwards")] = True,
         nodes: Annotated[str | None, typer.Option(help="also run partner nodes, e.g. cn,th,my")] = None,
         host: Annotated[str, typer.Option(help="interface to serve on")] = "127.0.0.1",
         port: Annotated[int, typer.Option(help="port to serve on")] = 8000) -> None:
    """Simulate a scenario, ingest it, detect, warn, print the summary, then serve the node.

    Example: forewarn demo --no-serve --report demo-report.json
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from forewarn.demo import DemoOptions, run_demo, write_report

    settings = settings_for(data_dir)
    if (settings.data_dir / "forewarn.sqlite3").exists() and settings.database_url.startswith("sqlite"):
        # A demo starts from a clean node so that its figures describe this scenario alone.
        for suffix in ("", "-wal", "-shm"):
            (settings.data_dir / f"forewarn.sqlite3{suffix}").unlink(missing_ok=True)
    import shutil

    shutil.rmtree(settings.data_dir / "federation", ignore_errors=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            if total:
                bar.update(tasks[stage], completed=done, total=total)
            else:
                bar.advance(tasks[stage], done if stage == "screening" else 1)

        try:
            summary = run_demo(settings, DemoOptions(seed=seed, subscribers=subscribers, days=days),
                               progress=on_progress, log=lambda m: console.print(f"[dim]{m}[/]"))
        except Exception as exc:  # every stage raises its own clear error type; show it, not a trace
            fail(f"demo failed: {exc}")
    if nodes:
        from forewarn.demo import top_suspect_number
        from forewarn.federation.demo import run_nodes

        countries = [c.strip().lower() for c in nodes.split(",") if c.strip()]
        number = top_suspect_number(settings)
        console.print(f"[dim]running nodes {', '.join(countries)} on loopback; sharing the top suspect {number}[/]")
        if number:
            summary["federation"] = run_nodes(countries, base_dir=settings.data_dir / "federation", interval=0.5,
                                              number=number)
        else:
            summary["federation"] = run_nodes(countries, base_dir=settings.data_dir / "federation", interval=0.5)
    table = Table(title="Forewarn demo", show_header=False)
    for label, value in (
        ("events stored", f"{summary['events']['total']:,}"),
        ("rows quarantined", f"{summary['quarantined_rows']:,}"),
        ("alerts", f"{summary['alerts']:,}"),
        ("warnings", f"{summary['warnings']:,}"),
        ("suspect precision", str(summary["precision"])),
        ("suspect recall", str(summary["recall"])),
        ("victims warned before first payment", str(summary.get("victims_warned_before_first_payment"))),
        ("non-victims warned", str(summary.get("non_victims_warned"))),
        ("median seconds to warning", str(summary.get("median_seconds_to_warning"))),
        ("batch seconds", str(summary["seconds"]["total_batch"])),
    ):
        table.add_row(label, value)
    if "federation" in summary:
        fed = summary["federation"]
        table.add_row("federation propagation s", str(fed.get("propagation_seconds")))
        table.add_row("federation policy violations", str(fed.get("policy_violations")))
    out.print(table)
    if report is not None:
        write_report(summary, report)
        console.print(f"summary written to {report}")
    if serve_after:
        from forewarn.api.auth import Role, create_key

        # A newcomer needs a key to open the console; the demo node makes one analyst key for them.
        store = open_node_store(settings.data_dir)
        with store.begin() as conn:
            _, secret = create_key(conn, Role.ANALYST, "demo-analyst")
        store.close()
        console.print(f"console: http://{host}:{port}/console/ — log in with this analyst key (shown once):")
        out.print(secret, highlight=False)
        serve(data_dir=settings.data_dir, host=host, port=port, workers=1)


# --- behaviour: numbers (forewarn/behaviour) ----------------------------------------------------

numbers_app = typer.Typer(no_args_is_help=True, help="Behaviour of phone numbers: features, risk scores, detectors.")
app.add_typer(numbers_app, name="numbers")
SHARED_NUMBERS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "numbers"


def _behaviour_errors() -> tuple[type[Exception], ...]:
    from forewarn.behaviour.features import FeatureInputError
    from forewarn.behaviour.risk_model import RiskModelError

    return (FeatureInputError, RiskModelError)


@numbers_app.command("features")
def numbers_features(records: Annotated[list[Path], typer.Argument(help="call/SMS/subscriber files or directories")],
                     output: Annotated[Path, typer.Option("--output", "-o", help="FEATURES.parquet or .csv")],
                     engine: Annotated[str, typer.Option(help="duckdb or spark")] = "duckdb") -> None:
    """Per-number features (Sichuan set + window behaviour) from raw records.

    Example: forewarn numbers features sim-out/calls.parquet sim-out/messages.parquet --output features.parquet
    """
    from forewarn.behaviour.detect import resolve_records
    from forewarn.behaviour.features import write_features

    if engine not in ("duckdb", "spark"):
        fail(f"unknown engine {engine!r}; choose duckdb or spark")
    try:
        files = resolve_records(records)
        with console.status(f"computing features on {engine}..."):
            rows = write_features(files["calls"], output, files["messages"] or None, files["subscribers"] or None,
                                  engine=engine)  # type: ignore[arg-type]
    except _behaviour_errors() as exc:
        fail(str(exc))
    console.print(f"{rows} numbers -> {output}")


@numbers_app.command("score")
def numbers_score(features: Annotated[Path, typer.Argument(help="FEATURES .csv or .parquet (Sichuan schema)")],
                  output: Annotated[Path, typer.Option("--output", "-o", help="SCORES.csv")],
                  adjacency: Annotated[Path | None, typer.Option(help="call-graph adjacency .npz in the file's row order")] = None) -> None:
    """Score numbers with the shipped number-risk model: id column, score (0-1), label (1 = fraud).

    Example: forewarn numbers score ../shared/data/numbers/sichuan_user_features.csv --output scores.csv
    """
    from forewarn.behaviour.risk_model import score_file

    try:
        rows = score_file(features, output, adjacency_path=adjacency)
    except _behaviour_errors() as exc:
        fail(str(exc))
    console.print(f"{rows} scores -> {output}")


@numbers_app.command("train")
def numbers_train(features: Annotated[Path, typer.Option(help="labelled Sichuan feature CSV")] = SHARED_NUMBERS / "sichuan_user_features.csv",
                  adjacency: Annotated[Path | None, typer.Option(help="call-graph adjacency .npz")] = SHARED_NUMBERS / "sichuan_call_graph_adjacency.npz",
                  output_dir: Annotated[Path | None, typer.Option(help="artifact directory (default: the shipped one)")] = None,
                  evaluate: Annotated[bool, typer.Option(help="repeated 5-fold cross-validation with nested search")] = True,
                  seeds: Annotated[int, typer.Option(min=1, help="cross-validation repetitions (seeds 0..N-1)")] = 3) -> None:
    """Train the number-risk model (LightGBM + quantile logistic blend) and write its artifact and evaluation.

    Example: forewarn numbers train --features ../shared/data/numbers/sichuan_user_features.csv
    """
    from collections.abc import Callable

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from forewarn.behaviour.risk_model import ARTIFACT_DIR, train

    if adjacency is not None and not adjacency.is_file():
        fail(f"adjacency file not found: {adjacency}")
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} folds"),
                      TimeElapsedColumn(), console=console) as bar:
            def on_variant(variant: str, steps: int) -> Callable[[], None]:
                task = bar.add_task(f"cross-validating {variant}", total=steps)
                return lambda: bar.advance(task)

            model = train(features, adjacency, output_dir or ARTIFACT_DIR, evaluate=evaluate,
                          seeds=tuple(range(seeds)), progress=on_variant)
    except _behaviour_errors() as exc:
        fail(str(exc))
    summary = {v: {"cv_roc_auc_mean": e["roc_auc_mean"], "cv_roc_auc_std": e["roc_auc_std"],
                   "cv_plain_lightgbm_roc_auc_mean": e["components"]["plain_gbm"]["mean"],
                   "holdout_roc_auc": e.get("holdout", {}).get("roc_auc_blend"),
                   "holdout_plain_lightgbm_roc_auc": e.get("holdout", {}).get("roc_auc_plain_gbm")}
               for v, e in model.meta["evaluation"].items()}
    print_json({"artifact": str(output_dir or ARTIFACT_DIR), "evaluation": summary})


@numbers_app.command("detect")
def numbers_detect(records: Annotated[list[Path], typer.Argument(help="call/SMS/subscriber files or a directory")],
                   window_hours: Annotated[float | None, typer.Option(help="only the last N hours (default: all)")] = None,
                   engine: Annotated[str, typer.Option(help="duckdb or spark")] = "duckdb",
                   alert_threshold: Annotated[float, typer.Option(help="raise suspect alerts at this score")] = 0.8,
                   data_dir: DataDir = None) -> None:
    """Run the behaviour detectors over records and store signals and suspect alerts in the node.

    Example: forewarn numbers detect sim-out/ --window-hours 1 --data-dir ./forewarn-data
    """
    from datetime import timedelta

    from forewarn.behaviour.detect import detect_into_store

    if engine not in ("duckdb", "spark"):
        fail(f"unknown engine {engine!r}; choose duckdb or spark")
    store = open_node_store(data_dir)
    try:
        with console.status("detecting..."):
            total, new, alerts = detect_into_store(
                records, store, engine=engine,  # type: ignore[arg-type]
                window=timedelta(hours=window_hours) if window_hours else None, alert_threshold=alert_threshold)
    except _behaviour_errors() as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"{total} signals ({new} new), {alerts} suspect alerts raised")


# --- firewall (forewarn/firewall, forewarn/reputation) ------------------------------------------

firewall_app = typer.Typer(no_args_is_help=True, help="Call and SMS firewall: decisions, allow-lists, appeals.")
fw_allow_app = typer.Typer(no_args_is_help=True, help="Allow-lists (they always win over block rules).")
fw_appeal_app = typer.Typer(no_args_is_help=True, help="Appeals against marks and blocks.")
firewall_app.add_typer(fw_allow_app, name="allow")
firewall_app.add_typer(fw_appeal_app, name="appeal")
app.add_typer(firewall_app, name="firewall")
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="a policy YAML overriding the country's")]


def _firewall(data_dir: Path | None, policy: Path | None = None):  # type: ignore[no-untyped-def]
    from forewarn.firewall.policy import PolicyError, load_policy
    from forewarn.firewall.service import FirewallService

    settings = settings_for(data_dir)
    store = open_node_store(data_dir)
    try:
        pol = load_policy(settings.country, policy)
    except PolicyError as exc:
        fail(str(exc))
    # what-if checks from the command line are not decisions on live traffic: they are not logged
    return FirewallService(store, pol, redis_url=settings.redis_url, start_refresher=False, decision_log=None)


@firewall_app.command("check")
def firewall_check(caller: Annotated[str, typer.Option(help="presented caller ID")],
                   callee: Annotated[str, typer.Option(help="called number")],
                   ingress: Annotated[str, typer.Option(help="domestic, international or roaming")] = "domestic",
                   claimed_country: Annotated[str | None, typer.Option(help="country the caller claims")] = None,
                   time: Annotated[str | None, typer.Option(help="ISO 8601 time (default now)")] = None,
                   policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Decide one call as the firewall would and print the decision as JSON.

    Example: forewarn firewall check --caller +8613800138000 --callee +8613900139000 --ingress international
    """
    from forewarn.firewall.engine import DecisionInputError

    svc = _firewall(data_dir, policy)
    try:
        decision = svc.firewall.decide_call(caller, callee, ingress, claimed_country, time, observe=False)
    except DecisionInputError as exc:
        fail(str(exc))
    print_json(decision.as_dict())


@firewall_app.command("sms")
def firewall_sms(sender: Annotated[str, typer.Option(help="sender number or sender ID")],
                 recipient: Annotated[str, typer.Option(help="recipient number")],
                 text: Annotated[str, typer.Option(help="message text")] = "",
                 policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Decide one SMS and print the decision as JSON.

    Example: forewarn firewall sms --sender BANKX --recipient +66812345678 --text "Your account is locked"
    """
    from forewarn.firewall.engine import DecisionInputError

    svc = _firewall(data_dir, policy)
    try:
        decision = svc.firewall.decide_sms(sender, recipient, text, observe=False)
    except DecisionInputError as exc:
        fail(str(exc))
    print_json(decision.as_dict())


@firewall_app.command("status")
def firewall_status(policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Show the reputation index (size, memory), allow-lists, counters, screening and policy in use.

    Example: forewarn firewall status
    """
    print_json(_firewall(data_dir, policy).stats())


@firewall_app.command("serve")
def firewall_serve(host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
                   port: Annotated[int, typer.Option(help="TCP port")] = 8000,
                   workers: Annotated[int, typer.Option(min=1, help="worker processes (one per core)")] = 2,
                   index_dir: Annotated[Path | None, typer.Option(
                       help="where the index is published (default <data-dir>/firewall-index)")] = None,
                   policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Serve the node's API with the firewall ready in every worker, until Ctrl-C.

    One publisher process builds the reputation index from the store and publishes it to files;
    each worker maps the newest one before taking traffic and swaps in new ones without stopping.
    Each worker listens on the port itself (SO_REUSEPORT), so keep-alive connections spread evenly.
    With several workers, set FOREWARN_REDIS_URL so that they share the live counters.

    Example: forewarn firewall serve --workers 2 --port 8000
    """
    import multiprocessing
    import os
    import time

    from forewarn.firewall.policy import PolicyError, load_policy
    from forewarn.firewall.service import INDEX_ENV, PRELOAD_ENV, publisher_main
    from forewarn.firewall.serving import ServeError, serve
    from forewarn.reputation.published import current_generation

    settings = settings_for(data_dir)
    open_node_store(data_dir).close()  # migrate once, before the publisher and the workers start
    try:
        load_policy(settings.country, policy)
    except PolicyError as exc:
        fail(str(exc))
    directory = (index_dir or settings.data_dir / "firewall-index").resolve()
    if workers > 1 and not settings.redis_url:
        console.print("[yellow]warning:[/] several workers without FOREWARN_REDIS_URL keep separate live counters")
    os.environ.update({"FOREWARN_DATA_DIR": str(settings.data_dir), INDEX_ENV: str(directory), PRELOAD_ENV: "1"})
    if policy is not None:
        os.environ["FOREWARN_FIREWALL_POLICY"] = str(policy.resolve())
    before = current_generation(directory)
    publisher = multiprocessing.get_context("spawn").Process(
        target=publisher_main, name="forewarn-index-publisher", daemon=True,
        args=(str(settings.data_dir), str(policy.resolve()) if policy else None, str(directory)))
    publisher.start()
    try:
        while current_generation(directory) in (None, before):  # the workers start on a complete index
            if not publisher.is_alive():
                fail(f"the index publisher stopped (exit code {publisher.exitcode}); see the messages above")
            time.sleep(0.1)
        console.print(f"Forewarn firewall on http://{host}:{port} with {workers} worker(s); index in {directory}")
        serve("forewarn.api.app:create_app", host, port, workers)
    except ServeError as exc:
        fail(str(exc))
    finally:
        publisher.terminate()  # SIGTERM: it finishes the generation it may be writing
        publisher.join(timeout=60)
        if publisher.is_alive():
            publisher.kill()


@firewall_app.command("kamailio-config")
def firewall_kamailio_config(api_url: Annotated[str, typer.Option(help="decision API base URL")] = "http://127.0.0.1:8000",
                             api_key: Annotated[str, typer.Option(envvar="FOREWARN_TELCO_KEY", help="telco API key")] = "",
                             listen: Annotated[str, typer.Option(help="SIP listen address ip:port")] = "127.0.0.1:5060",
                             upstream: Annotated[str, typer.Option(help="where allowed calls go, ip:port")] = "127.0.0.1:5080",
                             international_trunk: Annotated[list[str] | None, typer.Option(
                                 help="source IP of an international trunk (repeatable)")] = None,
                             out_file: Annotated[Path | None, typer.Option("--out", help="write here (default: print)")] = None) -> None:
    """Render the shipped Kamailio configuration that asks the decision API for each INVITE.

    Example: forewarn firewall kamailio-config --api-key fw_... --international-trunk 10.0.0.7 --out /etc/kamailio/kamailio.cfg
    """
    from forewarn.firewall.sip import KamailioSettings, SipConfigError, render_kamailio_config

    try:
        text = render_kamailio_config(KamailioSettings(api_url=api_url, api_key=api_key, listen=listen,
                                                       upstream=upstream,
                                                       international_trunks=tuple(international_trunk or ())))
    except SipConfigError as exc:
        fail(str(exc))
    if out_file is None:
        out.print(text, highlight=False, markup=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        console.print(f"wrote {out_file}")


@fw_allow_app.command("add")
def firewall_allow_add(kind: Annotated[str, typer.Argument(help="emergency, government, sender_id, number or personal")],
                       value: Annotated[str, typer.Argument(help="number, short code or sender ID")],
                       owner: Annotated[str | None, typer.Option(help="subscriber (personal entries)")] = None,
                       note: Annotated[str | None, typer.Option(help="why")] = None, data_dir: DataDir = None) -> None:
    """Add an allow-list entry (audited).

    Example: forewarn firewall allow add government 96110 --note "anti-fraud warning line"
    """
    from forewarn.reputation.allowlist import AllowListError, add_entry

    settings = settings_for(data_dir)
    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            row = add_entry(conn, kind, value, actor="cli", owner=owner, note=note, default_region=settings.country)
    except AllowListError as exc:
        fail(str(exc))
    console.print(f"allowed {row['kind']} {row['value']}" + (f" for {row['owner']}" if row["owner"] else ""))


@fw_allow_app.command("list")
def firewall_allow_list(kind: Annotated[str | None, typer.Option(help="only this kind")] = None,
                        data_dir: DataDir = None) -> None:
    """List allow-list entries as JSON.

    Example: forewarn firewall allow list --kind sender_id
    """
    from forewarn.reputation.allowlist import list_entries

    with open_node_store(data_dir).engine.connect() as conn:
        print_json(list_entries(conn, kind))


@fw_appeal_app.command("submit")
def firewall_appeal_submit(value: Annotated[str, typer.Option(help="the marked number, sender ID, URL or domain")],
                           contact: Annotated[str, typer.Option(help="how to reach the owner")],
                           statement: Annotated[str, typer.Option(help="why the mark is wrong")],
                           indicator_type: Annotated[str, typer.Option("--type", help="phone, sender_id, url, domain")] = "phone",
                           policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Open an appeal on behalf of a number's owner (audited); prints the appeal as JSON.

    Example: forewarn firewall appeal submit --value +66812345678 --contact owner@example.org --statement "my shop's line"
    """
    from forewarn.firewall.policy import PolicyError, load_policy
    from forewarn.reputation.appeals import AppealError, submit_appeal

    settings = settings_for(data_dir)
    try:
        pol = load_policy(settings.country, policy)
        with open_node_store(data_dir).begin() as conn:
            row = submit_appeal(conn, indicator_type, value, contact, statement,
                                deadline_hours=pol.appeal_deadline_hours, actor="cli")
    except (AppealError, PolicyError) as exc:
        fail(str(exc))
    print_json(row)


@fw_appeal_app.command("list")
def firewall_appeal_list(status: Annotated[str | None, typer.Option(help="pending, upheld or rejected")] = "pending",
                         data_dir: DataDir = None) -> None:
    """List appeals, nearest deadline first.

    Example: forewarn firewall appeal list --status pending
    """
    from forewarn.reputation.appeals import list_appeals

    with open_node_store(data_dir).engine.connect() as conn:
        print_json(list_appeals(conn, status, limit=1000))


@fw_appeal_app.command("decide")
def firewall_appeal_decide(appeal_id: str,
                           decision: Annotated[str, typer.Option(help="upheld (lift the mark) or rejected (keep it)")],
                           reason: Annotated[str, typer.Option(help="the analyst's reason")],
                           analyst: Annotated[str, typer.Option(help="who decides")] = "cli",
                           data_dir: DataDir = None) -> None:
    """Decide an appeal with a reason (audited); the firewall lifts or keeps the mark at its next refresh.

    Example: forewarn firewall appeal decide apl-3f2a... --decision upheld --reason "verified clinic line"
    """
    from forewarn.reputation.appeals import AppealError, decide_appeal

    try:
        with open_node_store(data_dir).begin() as conn:
            row = decide_appeal(conn, appeal_id, decision, reason, actor=f"analyst:{analyst}")
    except AppealError as exc:
        fail(str(exc))
    print_json(row)


@firewall_app.command("ingest-reports")
def firewall_ingest_reports(data_dir: DataDir = None) -> None:
    """Take citizen reports stored by ingestion (``report`` events) into the reputation tables (idempotent).

    Example: forewarn firewall ingest-reports
    """
    from forewarn.reputation.reports import ingest_stored_report_events

    with open_node_store(data_dir).begin() as conn:
        n = ingest_stored_report_events(conn)
    console.print(f"{n} new citizen reports taken in")


@firewall_app.command("prune")
def firewall_prune(before: Annotated[str | None, typer.Option(
                       help="delete decisions logged before this UTC date or ISO time "
                            "(default: the policy's retention, e.g. 90 days)")] = None,
                   dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would go")] = False,
                   policy: PolicyOpt = None, data_dir: DataDir = None) -> None:
    """Delete old rows of the firewall's decision log, in batches (the served firewall does this hourly).

    Individual decisions go after the policy's retention.decisions_days, each batch added to the
    daily counts per region, channel and action in the same transaction (kept forever), so
    interception statistics survive; the per-minute counts stay too (forever unless
    retention.decision_counts_days is set).

    Example: forewarn firewall prune --before 2025-01-01
    """
    from datetime import UTC, datetime

    from forewarn.firewall.policy import PolicyError, load_policy
    from forewarn.firewall.retention import count_prunable, cutoffs, prune

    settings = settings_for(data_dir)
    try:
        pol = load_policy(settings.country, policy)
    except PolicyError as exc:
        fail(str(exc))
    now = datetime.now(UTC)
    decisions_before, counts_before = cutoffs(pol, now)
    if before is not None:
        try:
            decisions_before = datetime.fromisoformat(before.strip())
        except ValueError:
            fail(f"--before {before!r} is not a date (YYYY-MM-DD) or ISO 8601 time")
        if decisions_before.tzinfo is None:
            decisions_before = decisions_before.replace(tzinfo=UTC)
        if decisions_before > now:
            fail(f"--before {before} is in the future: that would delete decisions not yet made")
        counts_before = None  # an explicit date prunes decisions only; counts follow the policy's own retention
    store = open_node_store(data_dir)
    try:
        if dry_run:
            n, m = count_prunable(store, decisions_before, counts_before)
            print_json({"decisions_before": decisions_before.isoformat(), "decisions": n,
                        "counts_before": counts_before.isoformat() if counts_before else None, "count_rows": m,
                        "dry_run": True})
            return
        result = prune(store, decisions_before, counts_before, batch_size=pol.prune_batch_size)
    finally:
        store.close()
    print_json(result.as_dict())


# --- screening (forewarn/screening) -------------------------------------------------------------

train_app = typer.Typer(no_args_is_help=True, help="Train the node's models from ../shared/data.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate the node's models on data they did not train on.")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
SharedData = Annotated[Path, typer.Option("--shared-data", help="folder with messages/ (the shared data sets)")]


@app.command("screen")
def screen_cmd(input: Annotated[Path, typer.Argument(help="CSV (column text; optional id, lang, channel) or JSONL")],
               output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write")]) -> None:
    """Screen messages for scams; one JSON object per input row, in input order.

    Example: forewarn screen messages.csv --output screened.jsonl
    """
    from rich.progress import Progress

    from forewarn.screening.artifact import ArtifactError
    from forewarn.screening.batch import ScreenFileError, screen_file

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("screening", total=None)
        try:
            n = screen_file(input, output, progress=lambda done: bar.update(task, completed=done))
        except (ScreenFileError, ArtifactError) as exc:
            fail(str(exc))
    console.print(f"{n} messages screened into {output}")


@train_app.command("screener")
def train_screener_cmd(shared_data: SharedData = Path("../shared/data"),
                       out: Annotated[Path | None, typer.Option(help="artifact to write (default: the committed one)")] = None,
                       loso: Annotated[bool, typer.Option(help="also run leave-one-set-out for the model card")] = True) -> None:
    """Train the screening model (fixed seeds) on the shippable sets plus the written knowledge base.

    Example: forewarn train screener --shared-data ../shared/data
    """
    from forewarn.screening.training import TrainingDataError, train_screener

    with console.status("training the screener") as status:
        try:
            path, result = train_screener(shared_data, out, loso=loso, log=lambda m: status.update(m))
        except TrainingDataError as exc:
            fail(str(exc))
    _print_screening_eval(result)
    console.print(f"model written to {path} (card beside it)")


@eval_app.command("screener")
def eval_screener_cmd(shared_data: SharedData = Path("../shared/data"),
                      model: Annotated[Path | None, typer.Option(help="artifact (default: the committed one)")] = None,
                      plot: Annotated[Path, typer.Option(help="reliability plot PNG to write")] = Path("screening-reliability.png"),
                      loso: Annotated[bool, typer.Option(help="also run leave-one-set-out (trains 5 models)")] = False) -> None:
    """Per-set and per-language ROC-AUC, F1 and recall at 1% FPR on what the model did not train on.

    Example: forewarn eval screener --shared-data ../shared/data --plot reliability.png
    """
    from forewarn.screening.artifact import ArtifactError
    from forewarn.screening.training import TrainingDataError, evaluate_screener

    with console.status("evaluating the screener") as status:
        try:
            result, png = evaluate_screener(shared_data, model, plot, loso=loso, log=lambda m: status.update(m))
        except (TrainingDataError, ArtifactError) as exc:
            fail(str(exc))
    _print_screening_eval(result)
    console.print(f"reliability plot saved to {png}")


def _print_screening_eval(result) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    for title, rows in (("per set", result.per_set), ("per language", result.per_language),
                        ("leave-one-set-out", result.loso)):
        if not rows:
            continue
        table = Table(title=f"screening, {title}")
        for col in ("", "n", "positives", "ROC-AUC", "F1", "recall@1%FPR"):
            table.add_column(col)
        for name, m in rows.items():
            table.add_row(name, str(int(m["n"])), str(int(m["positives"])), f"{m['roc_auc']:.4f}", f"{m['f1']:.4f}",
                          f"{m['recall_at_1pct_fpr']:.4f}")
        out.print(table)
    if result.calls:
        out.print("calls: " + ", ".join(f"{k}={v:.3f}" for k, v in result.calls.items()))


# --- forewarning and centres (forewarn/forewarning, forewarn/centres) ---------------------------

forewarning_app = typer.Typer(no_args_is_help=True, help="Forewarning: risk timelines, warnings, delivery.")
centres_app = typer.Typer(no_args_is_help=True, help="Centres: hierarchy, task queues, escalation, outcomes, cases.")
app.add_typer(forewarning_app, name="forewarning")
app.add_typer(centres_app, name="centres")
ForewarningPolicyOpt = Annotated[Path | None, typer.Option("--policy", help="forewarning policy YAML merged over the defaults")]


def _forewarning_policy(path: Path | None):  # type: ignore[no-untyped-def]
    from forewarn.forewarning.policy import Policy, PolicyError

    try:
        return Policy.load(path)
    except PolicyError as exc:
        fail(str(exc))


@forewarning_app.command("run")
def forewarning_run(data_dir: DataDir = None, policy: ForewarningPolicyOpt = None,
                    hindsight: Annotated[bool, typer.Option(help="treat every flag as known from the start "
                                                                 "(studies only)")] = False) -> None:
    """Replay stored events and flags: timelines → interventions → warnings, tasks, outbox.

    Example: forewarn forewarning run --data-dir ./forewarn-data
    """
    from rich.progress import Progress

    from forewarn.forewarning.engine import count_stored_events, run
    from forewarn.forewarning.signing import SigningError
    from forewarn.forewarning.templates import TemplateError

    pol = _forewarning_policy(policy)
    store = open_node_store(data_dir)
    total = count_stored_events(store)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("forewarning", total=total or None)
            report = run(store, policy=pol, respect_flag_time=not hindsight,
                         progress=lambda n: bar.advance(task, n))
    except (SigningError, TemplateError) as exc:
        fail(str(exc))
    print_json(report.as_dict())


@forewarning_app.command("deliver")
def forewarning_deliver(data_dir: DataDir = None, policy: ForewarningPolicyOpt = None,
                        follow: Annotated[bool, typer.Option(help="keep delivering until Ctrl-C")] = False,
                        max_messages: Annotated[int | None, typer.Option("--max", help="stop after N")] = None,
                        batch: Annotated[int, typer.Option(help="messages claimed at a time")] = 50,
                        echo: Annotated[bool, typer.Option(help="print messages the file sinks write")] = False,
                        delay: Annotated[float, typer.Option(help="seconds per message in the file sinks "
                                                                  "(a slow receiver, for demonstrations)")] = 0.0) -> None:
    """Deliver the outbox: SMS (Kannel if FOREWARN_KANNEL_URL is set, else a file), e-mail (SMTP if
    FOREWARN_SMTP_HOST is set, else a file), signed webhooks; retries, then dead letters.

    Example: forewarn forewarning deliver --follow
    """
    from forewarn.forewarning.channels import FileSink, channels_from_env
    from forewarn.forewarning.delivery import deliver
    from forewarn.forewarning.interventions import ensure_signing_key

    pol = _forewarning_policy(policy)
    store = open_node_store(data_dir)
    signer = ensure_signing_key(store)
    chans = channels_from_env(store.settings.data_dir, signer, pol.delivery.sender_id, echo=echo)
    for chan in chans.values():
        if isinstance(chan, FileSink):
            chan.delay_s = delay
    report = deliver(store, chans, policy=pol, follow=follow, max_messages=max_messages, batch=batch)
    print_json(report.as_dict())


@forewarning_app.command("verify")
def forewarning_verify(code: str, data_dir: DataDir = None,
                       text: Annotated[str | None, typer.Option(help="the message as received")] = None,
                       recipient: Annotated[str | None, typer.Option(help="the number it reached")] = None) -> None:
    """Check that a warning with this verification code is genuine (exit 1 if not).

    Example: forewarn forewarning verify K7M2-9QXD --recipient +66812345678
    """
    from forewarn.forewarning.signing import verify_code
    from forewarn.model.phone import InvalidPhoneNumber, normalise_phone

    try:
        number = normalise_phone(recipient) if recipient else None
    except InvalidPhoneNumber as exc:
        fail(str(exc))
    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        result = verify_code(conn, code, text=text, recipient=number)
    print_json(result.as_dict())
    if not result.genuine:
        fail("no genuine warning with this code", code=1)


@forewarning_app.command("dead-letters")
def forewarning_dead_letters(data_dir: DataDir = None,
                             limit: Annotated[int, typer.Option(help="most recent N")] = 100) -> None:
    """List messages that could not be delivered.

    Example: forewarn forewarning dead-letters --limit 20
    """
    from forewarn.forewarning.outbox import dead_letters

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        print_json(dead_letters(conn, limit=limit))


@forewarning_app.command("requeue")
def forewarning_requeue(message_id: str, data_dir: DataDir = None) -> None:
    """Give a dead letter a fresh set of delivery attempts.

    Example: forewarn forewarning requeue msg-3fa2c1d09e8b4a11
    """
    from forewarn.forewarning.outbox import requeue_dead
    from forewarn.store.audit import append

    store = open_node_store(data_dir)
    with store.begin() as conn:
        if not requeue_dead(conn, message_id):
            fail(f"no dead letter {message_id!r}")
        append(conn, "cli", "outbox.requeue", message_id, {})
    console.print(f"{message_id} requeued")


@forewarning_app.command("evaluate")
def forewarning_evaluate(truth: Annotated[Path, typer.Argument(help="the simulator's output or truth directory")],
                         data_dir: DataDir = None) -> None:
    """Measure warnings against the simulator's ground truth (JSON: the three target figures).

    Example: forewarn forewarning evaluate ./scenario/truth
    """
    from forewarn.forewarning.evaluation import TruthError, evaluate

    store = open_node_store(data_dir)
    try:
        print_json(evaluate(store, truth))
    except TruthError as exc:
        fail(str(exc))


@centres_app.command("load")
def centres_load(path: Annotated[Path | None, typer.Argument(help="centre hierarchy YAML")] = None,
                 data_dir: DataDir = None,
                 example: Annotated[bool, typer.Option(help="load the bundled example (CN, TH, MY, VN)")] = False) -> None:
    """Load (replace) the centre hierarchy of the countries in a YAML file.

    Example: forewarn centres load centres.yaml
    """
    from forewarn.centres.config import EXAMPLE_PATH, CentreConfigError, load_centres
    from forewarn.store.audit import append

    if path is None and not example:
        fail("give a centre file, or --example for the bundled one")
    source = EXAMPLE_PATH if path is None else path
    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            counts = load_centres(conn, source)
            append(conn, "cli", "centres.load", str(source), counts)
    except CentreConfigError as exc:
        fail(str(exc))
    print_json(counts)


@centres_app.command("list")
def centres_list(data_dir: DataDir = None) -> None:
    """Show the centre hierarchy.

    Example: forewarn centres list
    """
    from rich.tree import Tree

    from forewarn.store.repository import list_centres

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        items = list_centres(conn)
    if not items:
        fail("no centres loaded; run `forewarn centres load FILE`")
    nodes: dict[str | None, Tree] = {None: Tree("centres")}
    for level in ("national", "provincial", "city"):
        for c in sorted((c for c in items if c.level.value == level), key=lambda c: c.centre_id):
            parent = nodes.get(c.parent_id, nodes[None])
            nodes[c.centre_id] = parent.add(f"{c.centre_id}  {c.name}  [dim]{' '.join(c.regions + c.prefixes)}[/]")
    out.print(nodes[None])


@centres_app.command("tasks")
def centres_tasks(data_dir: DataDir = None, centre: Annotated[str | None, typer.Option(help="centre id")] = None,
                  status: Annotated[str | None, typer.Option(help="open, acknowledged, done, overdue")] = None,
                  kind: Annotated[str | None, typer.Option(help="callback, payment_hold, visit")] = None,
                  limit: Annotated[int, typer.Option(help="at most N")] = 50) -> None:
    """List tasks, most urgent first.

    Example: forewarn centres tasks --centre TH-10-BKK --status open
    """
    from forewarn.centres.tasks import list_tasks

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        rows = list_tasks(conn, centre_id=centre, status=status, kind=kind, limit=limit)
    print_json([{k: r[k] for k in ("task_id", "kind", "subscriber", "centre_id", "level", "status", "score",
                                   "due_at", "escalations")} for r in rows])


@centres_app.command("ack")
def centres_ack(task_id: str, officer: Annotated[str, typer.Option(help="who takes the task")],
                data_dir: DataDir = None) -> None:
    """Acknowledge a task (stops its escalation).

    Example: forewarn centres ack task-3fa2c1d09e8b4a11 --officer th-bkk-01
    """
    from forewarn.centres.tasks import TaskError, acknowledge
    from forewarn.store.audit import append

    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            acknowledge(conn, task_id, f"officer:{officer}")
            append(conn, f"officer:{officer}", "task.acknowledge", task_id, {})
    except TaskError as exc:
        fail(str(exc))
    console.print(f"{task_id} acknowledged by {officer}")


@centres_app.command("outcome")
def centres_outcome(task_id: str, officer: Annotated[str, typer.Option(help="who records it")],
                    reached: Annotated[bool, typer.Option("--reached/--not-reached", help="victim reached?")],
                    loss_prevented: Annotated[float, typer.Option(help="amount kept from the scammers")] = 0.0,
                    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, e.g. THB")] = None,
                    case_opened: Annotated[bool, typer.Option(help="open (or join) a case")] = False,
                    note: Annotated[str | None, typer.Option(help="free text")] = None,
                    data_dir: DataDir = None) -> None:
    """Record an officer's outcome for a task: victim reached, loss prevented, case opened.

    Example: forewarn centres outcome task-3fa2c1d09e8b4a11 --officer th-bkk-01 --reached --loss-prevented 45000 --currency THB
    """
    from forewarn.centres.tasks import Outcome, TaskError, record_outcome
    from forewarn.store.audit import append

    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            result = record_outcome(conn, task_id, f"officer:{officer}", Outcome(
                victim_reached=reached, loss_prevented=loss_prevented, currency=currency.upper() if currency else None,
                case_opened=case_opened, note=note))
            append(conn, f"officer:{officer}", "task.outcome", task_id, result)
    except TaskError as exc:
        fail(str(exc))
    print_json(result)


@centres_app.command("case-outcome")
def centres_case_outcome(case_id: str, status: Annotated[str, typer.Option(help="investigating, solved, closed")],
                         arrested: Annotated[int, typer.Option(help="suspects arrested (added)")] = 0,
                         loss: Annotated[float, typer.Option(help="loss amount (added)")] = 0.0,
                         recovered: Annotated[float, typer.Option(help="amount recovered (added)")] = 0.0,
                         actor: Annotated[str, typer.Option(help="who records it")] = "cli",
                         data_dir: DataDir = None) -> None:
    """Record a case outcome: status, arrests, losses, recoveries.

    Example: forewarn centres case-outcome case-3fa2c1d09e8b4a11 --status solved --arrested 3 --recovered 12000
    """
    from forewarn.centres.cases import CaseError, CaseOutcome, record_case_outcome
    from forewarn.store.audit import append

    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            case = record_case_outcome(conn, case_id, actor, CaseOutcome(status, arrested, loss, recovered))
            append(conn, actor, "case.outcome", case_id, {"status": status, "arrested": arrested, "loss": loss,
                                                          "recovered": recovered})
    except CaseError as exc:
        fail(str(exc))
    print_json(case.model_dump(mode="json"))


@centres_app.command("stats")
def centres_stats(data_dir: DataDir = None) -> None:
    """Case and outcome totals (what the statistics publish).

    Example: forewarn centres stats
    """
    from forewarn.centres.cases import case_statistics

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        print_json(case_statistics(conn))


@centres_app.command("escalate")
def centres_escalate(data_dir: DataDir = None, policy: ForewarningPolicyOpt = None) -> None:
    """One escalation tick: overdue tasks move up (city → province → national); undelivered warnings
    become call-backs. (`forewarn serve` runs this every 30 s.)

    Example: forewarn centres escalate
    """
    from forewarn.centres.escalation import tick

    pol = _forewarning_policy(policy)
    store = open_node_store(data_dir)
    print_json(tick(store, pol).as_dict())


# --- federation (forewarn/federation) -----------------------------------------------------------

federation_app = typer.Typer(no_args_is_help=True, help="Share indicators with partner countries (STIX 2.1 / TAXII 2.1).")
fed_policy_app = typer.Typer(no_args_is_help=True, help="This node's sovereignty policy.")
fed_queue_app = typer.Typer(no_args_is_help=True, help="Partner indicators waiting for an analyst.")
federation_app.add_typer(fed_policy_app, name="policy")
federation_app.add_typer(fed_queue_app, name="queue")
app.add_typer(federation_app, name="federation")


def _fed_node(data_dir: Path | None):  # type: ignore[no-untyped-def]
    from forewarn.federation.node import FederationError, load_node

    store = open_node_store(data_dir)
    try:
        return load_node(settings_for(data_dir), store)
    except FederationError as exc:
        fail(str(exc))


def _fed_call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a federation library call; its errors become a clear message and exit 1."""
    from forewarn.federation.node import FederationError
    from forewarn.federation.policy import PolicyError
    from forewarn.federation.psi import PsiError
    from forewarn.federation.signing import SignatureError

    try:
        return fn(*args, **kwargs)
    except (FederationError, PolicyError, SignatureError, PsiError) as exc:
        fail(str(exc))


@federation_app.command("keygen")
def federation_keygen(data_dir: DataDir = None,
                      overwrite: Annotated[bool, typer.Option(help="replace an existing key (partners must re-pin)")] = False,
                      ) -> None:
    """Create this node's Ed25519 signing key and print its public key for partners to pin.

    Example: forewarn federation keygen --data-dir ./th-node
    """
    from forewarn.federation.node import keygen

    settings = settings_for(data_dir)
    key = _fed_call(keygen, settings, settings.country, overwrite=overwrite)
    console.print(f"node {key.node}: key written; give partners this public key to pin in their policy:")
    out.print(key.public_key, highlight=False)


@fed_policy_app.command("init")
def federation_policy_init(country: Annotated[str, typer.Option(help="start from the example policy of cn, th or my")],
                           data_dir: DataDir = None,
                           overwrite: Annotated[bool, typer.Option(help="replace an existing policy")] = False) -> None:
    """Copy an example sovereignty policy into the node, to edit.

    Example: forewarn federation policy init --country th
    """
    from forewarn.federation.node import init_policy

    path = _fed_call(init_policy, settings_for(data_dir), country, overwrite=overwrite)
    console.print(f"policy written to {path}; edit it, then `forewarn federation policy check`")


@fed_policy_app.command("check")
def federation_policy_check(file: Annotated[Path | None, typer.Argument(help="a policy file (default: the node's)")] = None,
                            data_dir: DataDir = None) -> None:
    """Validate a policy file and summarise what it lets each partner see.

    Example: forewarn federation policy check forewarn/federation/policies/cn.yaml
    """
    from forewarn.federation.node import policy_path
    from forewarn.federation.policy import load_policy

    policy = _fed_call(load_policy, file or policy_path(settings_for(data_dir)))
    for name, rules in policy.partners.items():
        ob = rules.outbound
        kinds = ", ".join(f"{k.value}({ob.how(k).value})" for k in ob.indicator_types) if ob.share else "nothing"
        out.print(f"{policy.node} → {name}: {kinds}; up to TLP:{ob.max_tlp.value.upper()}, confidence ≥ "
                  f"{ob.min_confidence}, kept {ob.retention_days} days, push {'yes' if ob.push else 'no'}; "
                  f"inbound trust {rules.inbound.trust_weight} "
                  f"({'auto-approved' if policy.auto_approves(name) else 'approval queue'}); "
                  f"key {'pinned' if rules.public_key else 'NOT pinned'}", highlight=False)


@fed_policy_app.command("show")
def federation_policy_show(data_dir: DataDir = None) -> None:
    """Print the node's policy as it is loaded (defaults filled in).

    Example: forewarn federation policy show
    """
    from forewarn.federation.policy import dump_policy

    out.print(dump_policy(_fed_node(data_dir).policy), highlight=False)


@federation_app.command("credentials")
def federation_credentials(partner: Annotated[str, typer.Argument(help="partner node name, e.g. TH")],
                           api_key: Annotated[str | None, typer.Option(help="the key PARTNER issued to us")] = None,
                           hash_key: Annotated[str | None, typer.Option(help="pairwise keyed-hash secret (base64)")] = None,
                           generate_hash_key: Annotated[bool, typer.Option(help="make a new pairwise secret")] = False,
                           data_dir: DataDir = None) -> None:
    """Store what this node presents to a partner (API key) and shares with it (hash key).

    Example: forewarn federation credentials TH --api-key fw_0a1b..._... --generate-hash-key
    """
    import base64
    import secrets

    from forewarn.federation.node import load_credentials, save_credentials

    settings = settings_for(data_dir)
    creds = _fed_call(load_credentials, settings)
    if generate_hash_key:
        hash_key = base64.b64encode(secrets.token_bytes(32)).decode()
    creds.set(partner, api_key=api_key or "", hash_key=hash_key or "")
    save_credentials(settings, creds)
    console.print(f"credentials for {partner.upper()} saved")
    if generate_hash_key:
        console.print("give the partner this hash key over a trusted channel:")
        out.print(hash_key, highlight=False)


@federation_app.command("export")
def federation_export(output: Annotated[Path, typer.Option("--output", "-o", help="bundle file to write")],
                      partner: Annotated[str | None, typer.Option(help="partner whose policy applies "
                                                                    "(default: TLP:CLEAR only)")] = None,
                      data_dir: DataDir = None) -> None:
    """Write a signed STIX 2.1 bundle of what the policy lets PARTNER see (signature in OUTPUT.sig).

    Example: forewarn federation export --output to-th.json --partner TH
    """
    from forewarn.federation.exchange import export_file

    result = _fed_call(export_file, _fed_node(data_dir), output, partner)
    console.print(f"wrote {result['objects']} objects to {output} (signature {result['signature']})")
    print_json(result)


@federation_app.command("import")
def federation_import(bundle: Annotated[Path, typer.Argument(help="a STIX 2.1 bundle file")],
                      partner: Annotated[str | None, typer.Option(help="who sent it, if it is not signed")] = None,
                      data_dir: DataDir = None) -> None:
    """Import a partner's bundle: signed by a pinned partner → its trust weight applies, else the queue.

    Example: forewarn federation import from-cn.json
    """
    from forewarn.federation.exchange import import_file

    report = _fed_call(import_file, _fed_node(data_dir), bundle, partner=partner)
    console.print(f"{report.partner}: {report.auto_approved} to the firewall table, {report.queued} queued, "
                  f"{report.hashed} keyed hashes, {report.revoked} revoked, {report.rejected_count} rejected")
    print_json(report.as_dict())


@federation_app.command("pull")
def federation_pull(partner: Annotated[str | None, typer.Argument(help="one partner (default: all)")] = None,
                    data_dir: DataDir = None,
                    page_size: Annotated[int, typer.Option(help="objects per TAXII page")] = 5000) -> None:
    """Fetch what partners published since the last pull and import it under the inbound policy.

    Example: forewarn federation pull TH
    """
    from rich.progress import Progress

    from forewarn.federation.client import pull

    node = _fed_node(data_dir)
    names = [partner.upper()] if partner else [p for p, r in node.policy.partners.items() if r.url]
    for name in names:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"pull {name}", total=None)
            report = _fed_call(pull, node, name, page_size=page_size,
                               progress=lambda n, task=task, bar=bar: bar.advance(task, n))
        out.print(f"{name}: {report.objects} objects in {report.pages} pages, {report.seconds:.1f}s: "
                  f"{report.imported}", highlight=False)


@federation_app.command("push")
def federation_push(partner: Annotated[str, typer.Argument(help="partner to push to")], data_dir: DataDir = None) -> None:
    """Push what our policy lets PARTNER see, if our policy pushes to it and it accepts pushes.

    Example: forewarn federation push TH
    """
    from forewarn.federation.client import push

    report = _fed_call(push, _fed_node(data_dir), partner)
    out.print(f"{report.partner}: pushed {report.objects} objects in {report.pages} pages", highlight=False)


@federation_app.command("sync")
def federation_sync(data_dir: DataDir = None,
                    watch: Annotated[float | None, typer.Option(help="keep syncing every N seconds")] = None) -> None:
    """Pull from and push to every configured partner, once or on a schedule.

    Example: forewarn federation sync --watch 60
    """
    import time

    from forewarn.federation.client import sync_once

    node = _fed_node(data_dir)
    while True:
        for rep in _fed_call(sync_once, node):
            out.print(f"{rep.direction} {rep.partner}: " + (f"error: {rep.error}" if rep.error else
                      f"{rep.objects} objects, {rep.seconds:.1f}s"), highlight=False)
        if watch is None:
            return
        time.sleep(watch)


@federation_app.command("psi")
def federation_psi(values_file: Annotated[Path, typer.Argument(help="one value per line")],
                   partner: Annotated[list[str] | None, typer.Option(help="partner(s) to ask (default: all)")] = None,
                   type_: Annotated[str, typer.Option("--type", help="indicator type")] = "phone",
                   k: Annotated[int | None, typer.Option(help="reveal only values at least k countries flag")] = None,
                   data_dir: DataDir = None) -> None:
    """Ask partners which of our values are on their lists, revealing nothing else (PSI).

    Example: forewarn federation psi suspects.txt --partner CN --type phone
    """
    from forewarn.federation.client import psi_many

    try:
        values = [v.strip() for v in values_file.read_text().splitlines() if v.strip()]
    except OSError as exc:
        fail(f"cannot read {values_file}: {exc.strerror or exc}")
    result = _fed_call(psi_many, _fed_node(data_dir), type_, values,
                       partners=[p.upper() for p in partner] if partner else None, k=k)
    print_json(result)


@fed_queue_app.command("list")
def federation_queue_list(partner: Annotated[str | None, typer.Option(help="only this partner")] = None,
                          limit: Annotated[int, typer.Option(help="at most this many")] = 50,
                          data_dir: DataDir = None) -> None:
    """List partner indicators waiting for approval.

    Example: forewarn federation queue list --partner MY
    """
    from forewarn.federation.inbox import list_queue

    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        rows = list_queue(conn, partner, "pending", limit)
    for r in rows:
        out.print(f"{r['id']:>8}  {r['partner']:<6} {r['type']:<13} {r['value'] or r['keyed_hash']}  "
                  f"confidence {r['confidence']}  TLP:{r['tlp'].upper()}  {'signed' if r['signed'] else 'UNSIGNED'}",
                  highlight=False)
    console.print(f"{len(rows)} pending")


def _queue_decide(ids: list[int], approve: bool, note: str | None, data_dir: Path | None) -> None:
    from forewarn.federation.inbox import decide
    from forewarn.store import audit

    node = _fed_node(data_dir)
    with node.store.begin() as conn:
        done = decide(conn, node.policy, ids, approve=approve, actor="cli", note=note)
        audit.append(conn, "cli", "federation.approve" if approve else "federation.reject",
                     ",".join(map(str, ids[:50])), {"decided": done, "note": note})
    console.print(f"{done} {'approved' if approve else 'rejected'}")


@fed_queue_app.command("approve")
def federation_queue_approve(ids: Annotated[list[int], typer.Argument(help="queue ids")],
                             note: Annotated[str | None, typer.Option(help="why")] = None,
                             data_dir: DataDir = None) -> None:
    """Approve queued partner indicators: they enter the firewall's indicator table.

    Example: forewarn federation queue approve 12 13 14 --note "confirmed by case 2291"
    """
    _queue_decide(ids, True, note, data_dir)


@fed_queue_app.command("reject")
def federation_queue_reject(ids: Annotated[list[int], typer.Argument(help="queue ids")],
                            note: Annotated[str | None, typer.Option(help="why")] = None,
                            data_dir: DataDir = None) -> None:
    """Reject queued partner indicators (kept as provenance, never used).

    Example: forewarn federation queue reject 15 --note "number reassigned"
    """
    _queue_decide(ids, False, note, data_dir)


@federation_app.command("demo")
def federation_demo(nodes: Annotated[str, typer.Option(help="comma-separated countries")] = "cn,th,my",
                    interval: Annotated[float, typer.Option(help="seconds between syncs")] = 0.5) -> None:
    """Run nodes on loopback ports and measure how fast a fraud number propagates under the policies.

    Example: forewarn federation demo --nodes cn,th,my
    """
    from forewarn.federation.demo import run_nodes

    with console.status("running nodes on loopback…"):
        try:
            result = run_nodes([c.strip() for c in nodes.split(",") if c.strip()], interval=interval)
        except (ValueError, RuntimeError) as exc:
            fail(str(exc))
    console.print(f"propagation {result['propagation_seconds']} s, policy violations {result['policy_violations']}")
    print_json(result)


# --- publishing and web (forewarn/publishing, forewarn/web) -------------------------------------

bulletins_app = typer.Typer(no_args_is_help=True, help="Scam bulletins: draft from trends, approve, publish.")
stats_app = typer.Typer(no_args_is_help=True, help="Statistics: warnings, cases, losses, time-to-warning.")
app.add_typer(bulletins_app, name="bulletins")
app.add_typer(stats_app, name="stats")


@bulletins_app.command("draft")
def bulletins_draft(days: Annotated[int, typer.Option(help="days the bulletin covers (1-90)")] = 7,
                    actor: Annotated[str, typer.Option(help="who drafts it, for the audit log")] = "cli",
                    data_dir: DataDir = None) -> None:
    """Draft a bulletin in ten languages from the scam types trending in the last DAYS days.

    Example: forewarn bulletins draft --days 7 --actor analyst:somchai
    """
    from forewarn.publishing.bulletins import BulletinError, draft_bulletin

    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            made = draft_bulletin(conn, actor, days=days)
    except BulletinError as exc:
        fail(str(exc))
    out.print(f"{made.bulletin_id} drafted: " + ", ".join(f"{t['scam_type']} {t['count']}" for t in made.trends))


@bulletins_app.command("list")
def bulletins_list(status: Annotated[str | None, typer.Option(help="draft, published, rejected, withdrawn")] = None,
                   lang: Annotated[str, typer.Option(help="language of the titles")] = "en",
                   data_dir: DataDir = None) -> None:
    """List bulletins, newest first.

    Example: forewarn bulletins list --status draft
    """
    from forewarn.publishing.bulletins import BULLETIN_LANGUAGES, list_bulletins

    if lang not in BULLETIN_LANGUAGES:
        fail(f"unknown language {lang!r}; use one of {', '.join(BULLETIN_LANGUAGES)}")
    store = open_node_store(data_dir)
    with store.engine.connect() as conn:
        items = list_bulletins(conn, status=status)
    for b in items:
        out.print(f"{b.bulletin_id}  {b.status:<9}  {b.text(lang)['title']}", highlight=False)


@bulletins_app.command("decide")
def bulletins_decide(bulletin_id: str,
                     decision: Annotated[str, typer.Option(help="approve (publishes), reject or withdraw")],
                     actor: Annotated[str, typer.Option(help="the analyst deciding, for the audit log")],
                     data_dir: DataDir = None) -> None:
    """Approve (and so publish), reject or withdraw a bulletin.

    Example: forewarn bulletins decide bul-3f2a9c1d0e4b --decision approve --actor analyst:somchai
    """
    from forewarn.publishing.bulletins import BulletinError, decide_bulletin, withdraw_bulletin

    if decision not in ("approve", "reject", "withdraw"):
        fail("--decision is approve, reject or withdraw")
    store = open_node_store(data_dir)
    try:
        with store.begin() as conn:
            done = (withdraw_bulletin(conn, bulletin_id, actor) if decision == "withdraw"
                    else decide_bulletin(conn, bulletin_id, actor, approve=decision == "approve"))
    except BulletinError as exc:
        fail(str(exc))
    out.print(f"{done.bulletin_id} {done.status}")


@stats_app.command("export")
def stats_export(output: Annotated[Path | None, typer.Option("--output", "-o", help="CSV file (default: stdout)")] = None,
                 bucket: Annotated[str, typer.Option(help="day, week or month")] = "week",
                 days: Annotated[int, typer.Option(help="window in days, ending now")] = 180,
                 public: Annotated[bool, typer.Option("--public/--internal", help="suppress small counts")] = True,
                 data_dir: DataDir = None) -> None:
    """Export the statistics as CSV (public figures suppress counts under 5 by default).

    Example: forewarn stats export --bucket month --days 365 -o figures.csv
    """
    from datetime import timedelta

    from forewarn.model.indicators import utcnow
    from forewarn.publishing.statistics import StatisticsError, compute_statistics, to_csv

    if not 1 <= days <= 3650:
        fail("--days must be between 1 and 3650")
    store = open_node_store(data_dir)
    try:
        with store.engine.connect() as conn:
            report = compute_statistics(conn, start=utcnow() - timedelta(days=days), bucket=bucket,  # type: ignore[arg-type]
                                        public=public)
    except StatisticsError as exc:
        fail(str(exc))
    text = to_csv(report)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    console.print(f"statistics written to {output}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


def print_json(data: object) -> None:
    out.print_json(json.dumps(data, default=str))


if __name__ == "__main__":
    main()
