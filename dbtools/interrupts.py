"""An interrupted command stops cleanly and says in one line what state it left.

Run from the shell, every dbtools command turns SIGTERM, like SIGINT, into
`Interrupted`, a KeyboardInterrupt: it unwinds through every `with` and
`finally` on its way out, so a transaction rolls back, an unfinished file and
a spool are removed, helper threads stop and a scratch database is dropped,
just as they are on any error. A second signal while that runs is ignored,
so the clean-up is not itself cut short; a third ends the process at once
(once Python runs again: a clean-up blocked in a MySQL/MariaDB statement ends
that statement first, see the strict xfail in tests/test_interrupts.py).

A database client library that waits inside C for the server (mysqlclient,
for a lock) runs no Python until the server answers, which can be the whole
lock timeout. So a watcher thread wakes on the signal through
`signal.set_wakeup_fd`, and if the main thread has not taken the signal
within a moment, asks the server, on a connection of its own, to cancel the
statement each of the command's connections is running. The statement fails,
the main thread takes the signal and unwinds as above.

The core knows what stands when the interrupt passes through it (a file
committed, a transaction rolled back, migrations applied), so it says so on
the exception with `tell()`; the command prints what was told as one line
and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from .backends import backend_for

HANDLED = (signal.SIGINT, signal.SIGTERM)
STATE = "dbtools_state"  # the attribute of the exception that holds what was told


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread where it arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def tell(exc: BaseException, sentence: str) -> None:
    """Say, on an interrupt passing through, what state the work it cut short is in.

    The innermost code that knows speaks first; callers further out add what
    they alone know. Other exceptions are left alone."""
    if isinstance(exc, KeyboardInterrupt):
        told: list[str] = exc.__dict__.setdefault(STATE, [])
        told.append(sentence)


def retell(exc: BaseException, sentence: str) -> None:
    """Say instead what the inner code told, which is no longer true of the
    whole (a restore "left the database unchanged" inside a rollback that had
    already migrated it)."""
    if isinstance(exc, KeyboardInterrupt):
        exc.__dict__[STATE] = [sentence]


def told(exc: BaseException) -> list[str]:
    return list(exc.__dict__.get(STATE, []))


def exit_status(exc: BaseException) -> int:
    """What a shell expects of a process ended by this signal: 128 + its number."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def one_line(exc: BaseException, otherwise: str) -> str:
    """The line an interrupted command prints: the signal, then what stands."""
    name = signal.Signals(int(getattr(exc, "signum", signal.SIGINT))).name
    return f"Interrupted by {name}. {' '.join(told(exc)) or otherwise}"


@contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise Interrupted (in the main thread
    only, where Python runs signal handlers; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0
    taken = threading.Event()
    # Held by the watcher while it decides to cancel and does: a main thread that
    # takes the signal meanwhile waits here, so the cancel reaches the statement
    # it was blocked in, never one its clean-up sends. Reentrant: a second signal
    # can arrive while the handler holds it.
    deciding = threading.RLock()

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        with deciding:
            taken.set()
        if received == 1:
            raise Interrupted(signum)
        if received >= 3:  # the clean-up itself hangs: end the process as the signal would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    previous = {number: signal.signal(number, handler) for number in HANDLED}
    try:
        with statements_cancelled_on_signal(taken, deciding):
            yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


# How long the main thread has to take a signal itself before its statements are
# cancelled: a main thread running Python takes it at once, and then its clean-up's
# own statements must not be cancelled.
GRACE_SECONDS = 0.5


@contextmanager
def statements_cancelled_on_signal(
    taken: threading.Event, deciding: threading.RLock
) -> Iterator[None]:
    """A watcher thread that cancels the main thread's statements when a
    signal arrives and the main thread, blocked in C, does not take it."""
    watched: weakref.WeakKeyDictionary[BaseDatabaseWrapper, Callable[[], None]] = (
        weakref.WeakKeyDictionary()
    )
    main = threading.get_ident()

    def watch(connection: BaseDatabaseWrapper) -> None:
        if connection.connection is not None:
            cancel = backend_for(connection).statement_canceller()
            if cancel is not None:
                watched[connection] = cancel

    def watch_new(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        if threading.get_ident() == main:
            watch(connection)

    for wrapper in connections.all(initialized_only=True):
        watch(wrapper)

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        reader.close()
        writer.close()
        yield
        return

    def watcher() -> None:
        while True:
            try:
                arrived = reader.recv(16)
            except OSError:
                return
            if not arrived:
                return
            if not any(number in HANDLED for number in arrived):
                continue
            if taken.wait(GRACE_SECONDS):
                return
            with deciding:
                if taken.is_set():  # taken just now: its clean-up may be running
                    return
                for cancel in list(watched.values()):
                    with suppress(Exception):  # the statement then ends at its own timeout
                        cancel()
            return

    connection_created.connect(watch_new, weak=False, dispatch_uid=f"dbtools-watch-{id(taken)}")
    thread = threading.Thread(target=watcher, name="dbtools-signal-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        connection_created.disconnect(dispatch_uid=f"dbtools-watch-{id(taken)}")
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watcher reads the end of the stream and returns
        thread.join(timeout=GRACE_SECONDS + 5)
        reader.close()
