"""What an export draws on.

``ExportSource`` is what the session can offer an export now: the last result when it is current, and
the spec of the current inputs with its plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .unsample import Plan, UnsampleResult, UnsampleSpec


@dataclass(frozen=True, eq=False)
class ExportSource:
    """The current result (None when there is none made from the current inputs), the current spec (None,
    with ``spec_error``, when the inputs cannot run) and its plan (None while it is not known)."""

    result: Optional[UnsampleResult]
    spec: Optional[UnsampleSpec]
    spec_error: str = ""
    plan: Optional[Plan] = None
    stem: str = "unsampler"
    max_memory: Optional[int] = None  # a streamed export holds at most this many bytes

    @property
    def has_frames(self) -> bool:
        """The frames are in memory already (a current in-memory result)."""
        return self.result is not None and self.result.latent is not None

    @property
    def n_frames(self) -> int:
        """Frames (steps) the source has, or makes: 0 while that is not known."""
        return len(self.plan.positions) if self.plan is not None else 0

    @property
    def batch(self) -> int:
        if self.plan is not None:
            return self.plan.batch
        return int(self.spec.latent.shape[0]) if self.spec is not None else 1

    @property
    def frame_bytes(self) -> int:
        if self.plan is not None:
            return self.plan.frame_bytes
        return self.spec.latent[0].numel() * 4 if self.spec is not None else 0
