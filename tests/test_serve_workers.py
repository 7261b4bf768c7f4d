"""``esante serve --workers N``: a listening socket per worker, all on the same port (SO_REUSEPORT)."""

from __future__ import annotations

import socket

import pytest

from esante.serve_workers import reuseport_socket


def test_workers_listen_on_the_same_port_and_each_accepts() -> None:
    guard = reuseport_socket("127.0.0.1", 0, listen=False)
    port = guard.getsockname()[1]
    workers = [reuseport_socket("127.0.0.1", port, listen=True) for _ in range(2)]
    try:
        accepted = 0
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        for sock in workers:
            sock.setblocking(False)
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
        assert accepted == 16  # every connection reached one of the workers' sockets (none left on the guard)
        for client in clients:
            client.close()
    finally:
        for sock in (*workers, guard):
            sock.close()


def test_a_port_held_without_reuseport_fails_at_start() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(OSError):
            reuseport_socket("127.0.0.1", holder.getsockname()[1], listen=False)
    finally:
        holder.close()
