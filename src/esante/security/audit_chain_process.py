"""The audit trail's chainer in a process of its own, beside ``esante serve``'s workers (PostgreSQL).

Why: chaining an event (storing it as an indexed AuditEvent and linking it into the hash chain, see
``audit_trail.py``) costs a fraction of a millisecond of Python, and a worker's background chainer spends it on the
event loop that serves requests: every request waits behind whatever chain batch is running (the ITI-67 search's
p99 carried it). In a process of its own the chainer takes a CPU the operating system schedules beside the workers,
and its batches grow with the load (one transaction for everything journaled since the last one).

The workers keep the durability guarantee unchanged: a request answers only once its events are in the journal.
The chain process drains the journal in batches: while batches come out full it goes on at once; after a partial
one it waits ``POLL`` seconds, so that under a light load the events of many requests share a batch (per event, a
batch of 64 costs about half of a batch of 8) instead of a transaction every few requests. Readers of the trail
(an AuditEvent search, ``$dsp-access-log``, ``esante audit verify``) still chain what is pending before they read,
under the chain's advisory lock, so they never miss an event and never fork the chain. If the process dies, the
supervisor (:class:`ChainProcess`) starts a new one; meanwhile the events wait, durable, in the journal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import threading
from multiprocessing.process import BaseProcess

import structlog

from esante.config import Settings

log = structlog.get_logger("esante.audit")

POLL = 0.25  # seconds to wait after a partial batch (how stale the chain may get; readers chain before reading)
RETRY = 1.0  # seconds before trying again after a failure (the database restarting, ...)
NICENESS = 10  # the chain process's scheduling priority below the workers'


async def chain_forever(settings: Settings, stop: asyncio.Event | None = None, parent: int | None = None) -> None:
    """Drain the journal into the chain until ``stop`` is set, or process ``parent`` is gone (or forever).

    ``parent``: the server may end without stopping us (uvicorn re-raises the SIGTERM it shut down on, so no
    ``finally`` of the server's runs): an orphan would go on chaining a database nobody serves.
    """
    from esante.app import build_platform

    platform = build_platform(settings)
    auditor = platform.auditor
    if auditor is None:
        return
    await platform.database.connect()
    try:
        while (stop is None or not stop.is_set()) and (parent is None or os.getppid() == parent):
            try:
                chained = await auditor.flush()
            except Exception as exc:  # the events stay in the journal; try again
                log.error("audit.chain_failed", error_type=type(exc).__name__)
                await asyncio.sleep(RETRY)
                continue
            if chained < auditor.chain_batch:
                await asyncio.sleep(POLL)
    finally:
        await platform.database.close()


def _run(settings: Settings, parent: int) -> None:
    """The chain process's entry point (a spawned interpreter: the settings arrive pickled over its pipe)."""
    import signal

    import uvloop

    # Ctrl-C in a terminal reaches the whole process group: the server shuts down on it, and this process follows
    # when it sees its parent gone (no traceback of an interrupted batch; the batch's transaction just ends)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # background work: when the cores are busy, the workers answering requests go first (the events wait,
    # durable, in the journal; a reader of the trail chains them itself)
    os.nice(NICENESS)
    uvloop.run(chain_forever(settings, parent=parent))


class ChainProcess:
    """Starts the chain process and keeps one running until :meth:`stop` (a watchdog thread restarts it)."""

    def __init__(self, settings: Settings) -> None:
        # a small pool: one connection chains, one is spare for the readiness of the next batch
        self._settings = dataclasses.replace(settings, db_pool_size=2, warm_up=False)
        self._context = multiprocessing.get_context("spawn")  # no inherited sockets, loops or pools
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watchdog = threading.Thread(target=self._watch, name="audit-chain-watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self) -> None:
        process = self._context.Process(target=_run, args=(self._settings, os.getpid()), name="esante-audit-chain")
        process.daemon = True  # never outlives the server
        process.start()
        self._process = process

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            process.join(timeout=0.5)
            if process.exitcode is not None and not self._stopping.is_set():
                log.error("audit.chain_process_exited", exitcode=process.exitcode)
                self._stopping.wait(RETRY)
                if not self._stopping.is_set():
                    self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        process, self._process = self._process, None
        if process is not None and process.is_alive():
            process.terminate()  # mid-batch is harmless: the transaction rolls back, the events stay journaled
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
