"""A one-line progress bar on stderr, shown only on a terminal."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """Call it with (label, done, expected); it redraws at most ten times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.last_draw = 0.0
        self.label: str | None = None

    @classmethod
    def for_stream(cls, stream: TextIO, verbosity: int) -> ProgressBar | None:
        isatty = getattr(stream, "isatty", None)
        if verbosity < 1 or not (isatty and isatty()):
            return None
        return cls(stream)

    def __call__(self, label: str, done: int, expected: int) -> None:
        now = time.monotonic()
        finished = expected and done >= expected
        if label == self.label and not finished and now - self.last_draw < 0.1:
            return
        self.label, self.last_draw = label, now
        share = min(done / expected, 1.0) if expected else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r  {label:<40.40} [{bar}] {done:>12,} / {expected:,}")
        self.stream.flush()

    def clear(self) -> None:
        if self.label is not None:
            self.stream.write("\r" + " " * (self.width + 80) + "\r")
            self.stream.flush()
            self.label = None
