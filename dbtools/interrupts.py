"""An interrupted command stops cleanly and says in one line what state it left.

Run from the shell, every dbtools command turns SIGTERM, like SIGINT, into
`Interrupted`, a KeyboardInterrupt: it unwinds through every `with` and
`finally` on its way out, so a transaction rolls back, an unfinished file and
a spool are removed, helper threads stop and a scratch database is dropped,
just as they are on any error. A second signal while that runs is ignored,
so the clean-up is not itself cut short; a third ends the process at once.

The core knows what stands when the interrupt passes through it (a file
committed, a transaction rolled back, migrations applied), so it says so on
the exception with `tell()`; the command prints what was told as one line
and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

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

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received == 1:
            raise Interrupted(signum)
        if received >= 3:  # the clean-up itself hangs: end the process as the signal would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    previous = {number: signal.signal(number, handler) for number in HANDLED}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)
