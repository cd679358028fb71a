"""The ``forewarn`` command: thin commands over the library.

Each command calls one library function and turns library errors into a clear message and a
non-zero exit, never a stack trace. Every command takes ``--data-dir`` (default ``./forewarn-data``
or ``FOREWARN_DATA_DIR``). Capability commands are grouped in sections below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

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

# --- simulator and demo (forewarn/sim) ----------------------------------------------------------

# --- behaviour: numbers (forewarn/behaviour) ----------------------------------------------------

# --- firewall (forewarn/firewall, forewarn/reputation) ------------------------------------------

# --- screening (forewarn/screening) -------------------------------------------------------------

# --- forewarning and centres (forewarn/forewarning, forewarn/centres) ---------------------------

# --- federation (forewarn/federation) -----------------------------------------------------------

# --- publishing and web (forewarn/publishing, forewarn/web) -------------------------------------


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
