"""The command line's text progress bar (shared by ``cli`` and ``cli_pictures``)."""
from __future__ import annotations

import sys
import time


class Progress:
    """A text progress bar on stderr, at most ~10 updates a second (a core Reporter, duck-typed)."""

    def __init__(self, stream=sys.stderr, label: str = "unsampling"):
        self.stream, self.label = stream, label
        self.t0 = time.monotonic()
        self.last = 0.0
        self.tty = stream.isatty()
        self.cancelled = False

    def is_cancelled(self) -> bool:
        return self.cancelled

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < (0.1 if self.tty else 2.0):
            return
        self.last = now
        frac = done / max(1, total)
        el = now - self.t0
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {done}/{total} {el:5.1f}s eta {eta:5.1f}s"
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty and done < total else "\n"))
        self.stream.flush()

    def partial(self, start, stop, frames) -> None:
        pass

    def message(self, text: str) -> None:
        self.stream.write(f"\n{text}\n")
