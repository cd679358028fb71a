"""Serving an ASGI application in several worker processes on one port.

Each worker opens its own listening socket with ``SO_REUSEPORT``, so the kernel spreads new
connections evenly over the workers. With one shared socket (uvicorn's own ``--workers``), whichever
worker happens to be in ``accept`` first takes a burst of connections, and with keep-alive
connections (a SIP proxy keeps a few open for hours) that imbalance lasts: one worker saturates
while another idles. A worker that dies is restarted; SIGINT or SIGTERM stops the workers
gracefully, so each runs its application's shutdown (the firewall writes its buffered decisions).
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import signal
import socket
import time
from typing import Any

log = logging.getLogger("forewarn.firewall")


class ServeError(RuntimeError):
    """The application cannot be served (e.g. the port is taken); the message says why."""


def listen_socket(host: str, port: int, backlog: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(backlog)
    return sock


def _check_port_free(host: str, port: int) -> None:
    """Fail clearly when another server holds the port (the workers' SO_REUSEPORT would otherwise
    join a socket group of another server of the same user)."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        reason = "it is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ServeError(f"cannot listen on {host}:{port}: {reason}") from None
    finally:
        probe.close()


def _worker(app: str, host: str, port: int, backlog: int, log_level: str) -> None:
    import uvicorn

    sock = listen_socket(host, port, backlog, reuse_port=True)
    config = uvicorn.Config(app, factory=True, log_level=log_level, access_log=False, backlog=backlog)
    uvicorn.Server(config).run(sockets=[sock])


def serve(app: str, host: str, port: int, workers: int, *, backlog: int = 2048, log_level: str = "warning",
          max_restarts: int = 20) -> None:
    """Serve the application factory ``app`` ("module:function") until SIGINT or SIGTERM."""
    import uvicorn

    if workers < 1:
        raise ServeError("workers must be at least 1")
    if workers == 1:
        uvicorn.run(app, factory=True, host=host, port=port, log_level=log_level, access_log=False, backlog=backlog)
        return
    _check_port_free(host, port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    def start(i: int) -> Any:
        proc = context.Process(target=_worker, name=f"forewarn-worker-{i}", args=(app, host, port, backlog, log_level))
        proc.start()
        return proc

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [start(i) for i in range(workers)]
    restarts = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                restarts += 1
                if restarts > max_restarts:
                    raise ServeError(f"workers died {restarts} times (last exit code {proc.exitcode}); giving up")
                log.warning("worker %d exited with code %s; starting another", i, proc.exitcode)
                procs[i] = start(i)
    finally:
        for proc in procs:  # SIGTERM: uvicorn shuts down gracefully and runs the application's shutdown
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
