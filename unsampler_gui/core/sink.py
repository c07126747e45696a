"""Where a run's rows go: ``MemorySink`` (one preallocated tensor) or ``LatentSink`` (streamed into a
``.latent`` with bounded memory, renamed into place only when complete), and ``Emitter``, the one way
finished rows leave a run: normalised, handed to the sink, then reported.

A sink is a description; ``sink.open(plan, alloc)`` gives the output of one attempt (a context manager that
removes what it wrote if the attempt fails), so a run that falls back from CUDA to the CPU opens it again.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .devices import alloc as device_alloc
from .devices import available_memory, human_bytes
from .errors import ResourceError
from .frames import shift_
from .job import Plan, Reporter, export_metadata
from .latent_io import LatentWriter

#: An in-memory output may take at most this share of the memory available when it starts.
MEMORY_SHARE = 0.9


def host_alloc(shape) -> torch.Tensor:
    return device_alloc(shape, torch.device("cpu"))


class MemorySink:
    """The whole output in one preallocated host tensor: ``UnsampleResult.latent``."""

    streamed = False
    max_memory = None

    def open(self, plan: Plan, alloc: Callable = host_alloc, chunk_rows: int = 0, slots: int = 1) -> "_MemoryOutput":
        return _MemoryOutput(plan, alloc)


class LatentSink:
    """The output streamed into the ``.latent`` at ``path`` (``UnsampleResult.path``); the staging buffers
    take at most a share of ``max_memory`` (bytes; None: the default chunk sizes)."""

    streamed = True

    def __init__(self, path, overwrite: bool = False, max_memory: Optional[int] = None):
        self.path, self.overwrite, self.max_memory = path, overwrite, max_memory

    def open(self, plan: Plan, alloc: Callable = host_alloc, chunk_rows: int = 0, slots: int = 1) -> "_LatentOutput":
        """``chunk_rows``: the driver makes chunks of that many output positions (starting at multiples of
        it) in ``rows``, at most ``slots`` chunks at once, and emits each before it asks for the chunk
        ``slots`` later (0: it never asks, and writes from its own buffers)."""
        return _LatentOutput(plan, self, chunk_rows, slots)


class _MemoryOutput:
    streamed = False
    in_place = True  # rows(a, b) are where the driver makes them

    def __init__(self, plan: Plan, alloc: Callable):
        avail = available_memory()
        if avail is not None and plan.out_bytes > avail * MEMORY_SHARE:
            raise ResourceError(
                f"the output needs {human_bytes(plan.out_bytes)} but only {human_bytes(avail)} of memory is free: "
                "export straight to a file (streaming, bounded memory) or use fewer steps")
        self.batch = plan.batch
        self.out = alloc(plan.out_shape)

    def rows(self, a: int, b: int) -> Optional[torch.Tensor]:
        """Where output positions [a, b) live, for a driver to make them in place."""
        return self.out[a * self.batch:b * self.batch]

    def put(self, a: int, b: int, block: torch.Tensor) -> torch.Tensor:
        dst = self.out[a * self.batch:b * self.batch]
        if block.data_ptr() != dst.data_ptr():
            dst.copy_(block)
        return dst

    def commit(self):
        return self.out, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _LatentOutput:
    """A streamed ``.latent``. Where the disk takes direct writes (``direct_io``), the driver makes each
    chunk straight into a buffer lent by the writer (``rows``), which goes to the disk without a copy;
    elsewhere rows are made in the driver's staging buffers and written."""

    streamed = True

    def __init__(self, plan: Plan, sink: LatentSink, chunk_rows: int = 0, slots: int = 1):
        self.chunk_rows, self.slots = max(1, chunk_rows), max(1, slots)
        self.batch, self.frame_shape = plan.batch, tuple(plan.out_shape[1:])
        self.row_bytes = 4 * plan.batch * math.prod(self.frame_shape)  # one output position, every item
        self.writer = LatentWriter(sink.path, plan.out_shape, export_metadata(plan), overwrite=sink.overwrite,
                                   direct_buffers=min(chunk_rows, len(plan.positions)) * self.row_bytes)
        self.in_place = self.writer.direct  # rows(a, b) are where the driver makes them
        self._lent: set = set()

    def rows(self, a: int, b: int) -> Optional[torch.Tensor]:
        """Output positions [a, b) in a buffer that goes to the disk as it is (direct), or None."""
        if not self.in_place:
            return None
        slot = (a // self.chunk_rows) % self.slots  # the driver's own staging slot for this chunk
        t = self.writer.lend(a * self.row_bytes, (b - a) * self.row_bytes, slot)
        self._lent.add(t.data_ptr())
        return t.view((b - a) * self.batch, *self.frame_shape)

    def put(self, a: int, b: int, block: torch.Tensor) -> torch.Tensor:
        if self.in_place and block.data_ptr() in self._lent:
            self._lent.discard(block.data_ptr())
            self.writer.put(block)
        else:
            self.writer.write(block)
        return block

    def commit(self):
        return None, self.writer.commit()

    def __enter__(self):
        self.writer.__enter__()
        return self

    def __exit__(self, *exc):
        return self.writer.__exit__(*exc)  # removes the temporary file if anything failed


class Emitter:
    """Finished rows leave a run here, in output order: ``shift_`` (normalize) then ``deliver`` (to the sink,
    then ``partial`` and ``progress``); ``emit`` does both."""

    def __init__(self, plan: Plan, reporter: Reporter, output, shift: Optional[torch.Tensor]):
        self.batch, self.total = plan.batch, len(plan.positions)
        self.reporter, self.output, self.shift = reporter, output, shift

    def shift_(self, rows: torch.Tensor) -> torch.Tensor:
        """Normalise rows in place (the shift lives on the rows' device: CUDA normalises before its copy)."""
        return shift_(rows, self.shift if self.shift is None else self.shift.to(rows.device), self.batch)

    def deliver(self, a: int, b: int, rows: torch.Tensor) -> None:
        final = self.output.put(a, b, rows)
        self.reporter.partial(a, b, final)
        self.reporter.progress(b, self.total)

    def emit(self, a: int, b: int, rows: torch.Tensor) -> None:
        self.deliver(a, b, self.shift_(rows))
