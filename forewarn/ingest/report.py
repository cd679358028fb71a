"""Rendering an :class:`~forewarn.ingest.loader.IngestSummary` for people (a rich table) and a
rich progress bar that follows bytes read per file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from forewarn.ingest.loader import IngestSummary, ProgressFn


def summary_table(summary: IngestSummary) -> Table:
    table = Table(title="ingestion", show_lines=False)
    for name, justify in (("file", "left"), ("kind", "left"), ("read", "right"), ("loaded", "right"),
                          ("duplicate", "right"), ("quarantined", "right"), ("rows/s", "right"),
                          ("status", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for f in summary.files:
        status = "[green]done[/]" if f.status == "done" else f"[red]{f.status}[/]"
        shown = f.origin if "://" in f.origin or ":" in f.origin[:6] else Path(f.origin).name
        table.add_row(shown, f.kind or "from rows", f"{f.rows_read:,}", f"{f.loaded:,}", f"{f.duplicate:,}",
                      f"{f.quarantined:,}", f"{f.rows_per_second:,.0f}", status)
    if len(summary.files) > 1:
        table.add_row("[b]total[/]", "", f"{summary.total('rows_read'):,}", f"{summary.total('loaded'):,}",
                      f"{summary.total('duplicate'):,}", f"{summary.total('quarantined'):,}", "", "")
    return table


@contextmanager
def progress_bar(console: Console) -> Iterator[ProgressFn]:
    """A progress callback for ``ingest_files`` drawing one bar per file (bytes read)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def update(origin: str, done: int, total: int) -> None:
            if origin not in tasks:
                tasks[origin] = progress.add_task(origin[-40:], total=max(total, 1))
            progress.update(tasks[origin], completed=done)

        yield update
