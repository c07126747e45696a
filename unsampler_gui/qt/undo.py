"""Undo and redo of the form: a history of ``RunParams`` snapshots (``core/params.py``).

Every change of the form's values is one snapshot; undo shows the one before, redo the one after. A change made
while at an older snapshot drops the snapshots after it, as editors do. Nothing but the form's values is undone
(the latent and the checkpoint stay).
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal

from ..core import params as run_params

MAX_SNAPSHOTS = 200


class FormHistory(QObject):
    """``read()`` gives the form's values now; ``show(params)`` puts values back in the form."""

    changed = Signal()  # can_undo / can_redo may have changed

    def __init__(self, read: Callable[[], run_params.RunParams], show: Callable[[run_params.RunParams], None],
                 parent=None):
        super().__init__(parent)
        self._read, self._show = read, show
        self._snaps = [read()]
        self._at = 0
        self._replaying = False

    def can_undo(self) -> bool:
        return self._at > 0

    def can_redo(self) -> bool:
        return self._at < len(self._snaps) - 1

    def current(self) -> run_params.RunParams:
        return self._snaps[self._at]

    def record(self) -> None:
        """The form changed: keep its values as the newest snapshot (unless they are the current one)."""
        if self._replaying:
            return
        now = self._read()
        if now == self._snaps[self._at]:
            return
        del self._snaps[self._at + 1:]
        self._snaps.append(now)
        if len(self._snaps) > MAX_SNAPSHOTS:
            del self._snaps[0]
        self._at = len(self._snaps) - 1
        self.changed.emit()

    def undo(self) -> None:
        if self.can_undo():
            self._go(self._at - 1)

    def redo(self) -> None:
        if self.can_redo():
            self._go(self._at + 1)

    def _go(self, at: int) -> None:
        self._at = at
        self._replaying = True
        try:
            self._show(self._snaps[at])
        finally:
            self._replaying = False
        shown = self._read()
        if shown != self._snaps[at]:  # the form fitted the values (a family that no longer exists...)
            self._snaps[at] = shown
        self.changed.emit()
