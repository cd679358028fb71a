"""A diagnostic for served firewall workers: what holds up the event loop.

Enabled by ``FOREWARN_STALL_LOG=<directory>`` (off by default: it costs a thread waking every
millisecond, and sampling stacks during a stall lengthens it a little). A callback on the loop
beats every millisecond; a watchdog thread notices when the beat is late by more than
``FOREWARN_STALL_MS`` (default 3) and samples, while the loop stays late,
the stack of every thread (who holds the interpreter, and where the loop thread is). Garbage
collections are timed through ``gc.callbacks``. At exit each worker writes
``<directory>/stalls-<pid>.txt``: the stalls (start, length), the collections over 1 ms and the
most frequent stacks seen during stalls, so that stalls can be matched to their cause.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

STALL_LOG_ENV = "FOREWARN_STALL_LOG"
STALL_MS_ENV = "FOREWARN_STALL_MS"
_IDLE = frozenset({"wait", "get", "select", "sleep"})


class StallMonitor:
    def __init__(self, loop: asyncio.AbstractEventLoop, out: Path, threshold_ms: float = 3.0) -> None:
        self.loop = loop
        self.out = out
        self.threshold_s = threshold_ms / 1000.0
        self.loop_thread = threading.get_ident()
        self.beat = time.perf_counter()
        self.t0 = self.beat
        self.cpu = (time.thread_time(), time.process_time())
        # (start since t0, length, CPU of the loop thread, CPU of the process during it) in seconds:
        # a stall the loop thread spent computing, waiting for the interpreter, or not running at all
        self.stalls: list[tuple[float, float, float, float]] = []
        self.collections: list[tuple[float, int, float, int]] = []  # (start, generation, length, collected)
        self.jobs: list[tuple[float, str, float]] = []  # (start, name, length) of the timed periodic jobs
        self.samples: Counter[str] = Counter()
        self.stall_samples = 0
        self._gc_start = 0.0
        self._stop = threading.Event()

    # on the loop
    def _tick(self) -> None:
        now = time.perf_counter()
        cpu = (time.thread_time(), time.process_time())
        lag = now - self.beat - 0.001
        if lag > self.threshold_s:
            self.stalls.append((self.beat + 0.001 - self.t0, lag, cpu[0] - self.cpu[0], cpu[1] - self.cpu[1]))
        self.beat, self.cpu = now, cpu
        if not self._stop.is_set():
            self.loop.call_later(0.001, self._tick)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        length = time.perf_counter() - self._gc_start
        if length > 0.001:
            self.collections.append((self._gc_start - self.t0, info.get("generation", -1), length,
                                     info.get("collected", 0)))

    def time_job(self, name: str, job: Any) -> Any:
        """``job`` wrapped so that each run's start and length are kept (to match stalls to jobs)."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return job(*args, **kwargs)
            finally:
                self.jobs.append((start - self.t0, name, time.perf_counter() - start))
        return timed

    # in the watchdog thread
    def _watch(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(0.001):
            if time.perf_counter() - self.beat < self.threshold_s:
                continue
            self.stall_samples += 1
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me or (ident != self.loop_thread and frame.f_code.co_name in _IDLE):
                    continue  # a thread asleep in a wait holds nothing up (and formatting it costs)
                stack = traceback.extract_stack(frame, limit=8)
                where = " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(stack))
                self.samples[f"[{'loop' if ident == self.loop_thread else names.get(ident, ident)}] {where}"] += 1

    def start(self) -> None:
        gc.callbacks.append(self._gc)
        self.loop.call_soon(self._tick)
        threading.Thread(target=self._watch, name="stall-watchdog", daemon=True).start()
        atexit.register(self.write)

    def write(self) -> None:
        self._stop.set()
        lines = [f"pid {os.getpid()}, {time.perf_counter() - self.t0:.1f} s watched, threshold "
                 f"{self.threshold_s * 1000:.1f} ms: {len(self.stalls)} stalls, "
                 f"{sum(s[1] for s in self.stalls) * 1000:.0f} ms in all",
                 "stalls (start s, length ms, CPU ms of the loop thread, of the process):"]
        lines += [f"  {start:9.3f} {length * 1000:7.1f} {loop * 1000:7.1f} {proc * 1000:7.1f}"
                  for start, length, loop, proc in self.stalls]
        lines.append("collections over 1 ms (start s, generation, length ms, collected):")
        lines += [f"  {start:9.3f} gen{gen} {length * 1000:7.1f} {n}" for start, gen, length, n in self.collections]
        lines.append("periodic jobs (start s, name, length ms):")
        lines += [f"  {start:9.3f} {name} {length * 1000:7.1f}" for start, name, length in self.jobs]
        lines.append(f"stacks seen during stalls ({self.stall_samples} samples):")
        lines += [f"  {n:5d} {stack}" for stack, n in self.samples.most_common(40)]
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"stalls-{os.getpid()}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def start_if_requested() -> StallMonitor | None:
    """Start the monitor on the running loop when ``FOREWARN_STALL_LOG`` is set."""
    out = os.environ.get(STALL_LOG_ENV)
    if not out:
        return None
    monitor = StallMonitor(asyncio.get_running_loop(), Path(out), float(os.environ.get(STALL_MS_ENV, "3")))
    monitor.start()
    return monitor
