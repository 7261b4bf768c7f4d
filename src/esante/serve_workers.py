"""``esante serve --workers N``: N uvicorn worker processes, each accepting on its own ``SO_REUSEPORT`` socket.

uvicorn's own multi-worker mode hands every worker ONE shared listening socket, and whichever worker wakes first
accepts every connection waiting: 16 keep-alive clients connecting at once all landed on one worker while the
other sat idle (seen in the WSE benchmark: one process served everything, on one core). With a socket per worker
bound with ``SO_REUSEPORT`` the kernel spreads new connections over the workers (by a hash of the client's address
and port), as nginx, gunicorn and others do with their ``reuseport`` option.

The supervisor (this process) binds the port first, without listening, so that a port taken by another program
fails at start instead of in every worker; it restarts a worker that dies, and on SIGINT/SIGTERM stops them all
(each finishes its requests and its shutdown: the audit chainer's last flush, the usage counters).
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import time
from typing import Any

_BACKLOG = 2048


def reuseport_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT (and listening, if ``listen``)."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    if listen:
        sock.listen(_BACKLOG)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker: its own listening socket, one uvicorn server on it."""
    import uvicorn

    sock = reuseport_socket(host, port, listen=True)
    config = uvicorn.Config("esante.app:create_app", factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Run ``workers`` worker processes until SIGINT/SIGTERM; a worker that exits on its own is started again."""
    guard = reuseport_socket(host, port, listen=False)  # fails now if another program holds the port
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> Any:
        process = context.Process(target=_worker, args=(host, port, options), daemon=False)
        process.start()
        return process

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    time.sleep(0.5)  # a worker failing at start-up must not spin
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        guard.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
