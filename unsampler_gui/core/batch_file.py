"""A batch ``.latent`` browsed as a sequence: its frames read lazily from the file, in bounded memory.

A file that already holds a batch (``B > 1`` in dim 0: an Unsampler export, or any ComfyUI batch) can be
looked at frame by frame instead of being used as the input to noise. ``open_batch`` reads and checks
the header only (``latent_io.open_latent``: the tensor's shape and byte range, the ``unsampler``
metadata parsed as untrusted input); ``BatchSequence`` then reads each frame's byte range when it is
asked for, into an LRU cache with a byte budget (``core.sequence.FrameCache``). It has the interface
of ``core.sequence.Sequence`` that the frame store and the views use (``frame``, ``frames``, ``cached``,
``stats_chunks``, ``n_frames``, ``positions``, ``sigmas``, ``plan``...), so they show it unchanged.

What a frame is: an Unsampler export is step-major (row ``i*B + b`` is step ``i`` of item ``b``), so
frame ``i`` is rows ``[i*B, (i+1)*B)`` when the export's ``batch`` and ``frame_shape`` agree with the
tensor; any other batch is ``B`` frames of one item. Values are as ComfyUI's LoadLatent gives them
(float32, the legacy multiplier applied), so frame ``i`` of an export is bit-identical to frame ``i``
of the run that wrote it. Non-finite values are shown as 0 (and counted in ``nonfinite``).

``export_frames`` writes chosen frames of a browsed file to a new ``.latent``, a frame at a time.

Qt-free. Safe to use from several threads (the cache is locked; each read opens the file itself).
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence as Seq

import numpy as np
import torch

from .errors import BadFileError, BadParameterError, reading
from .families import Family, families_for_channels, get_family
from .job import OutputSizes
from .latent_io import LatentHead, open_latent
from .safetensors_io import DTYPES, open_checked
from .sequence import CACHE_BYTES, STATS_CHUNK_BYTES, FrameSource, FrameCache, coarse_first
from .sigmas import slice_bounds
from .stats import frame_stats

#: A read from the file is at most this many bytes (one frame at least).
READ_BYTES = 8 << 20
#: The stored parameters shown for an Unsampler export, in this order, with their labels.
SHOWN_PARAMS = (("family", "model"), ("model", "checkpoint"), ("sampler", "sampler"), ("scheduler", "scheduler"),
                ("steps", "steps"), ("start_at_step", "start"), ("end_at_step", "end"), ("seed", "seed"),
                ("noise", "noise"), ("formula", "formula"))


@dataclass
class BatchFile:
    """A batch latent file's header, checked; no values read."""

    path: str
    name: str
    shape: tuple  # the stored tensor [R, C, H, W] or [R, C, T, H, W]
    dtype: str  # the stored dtype (F32, F16, BF16, F64)
    start: int  # file offset of the tensor data
    multiplier: float  # LoadLatent's (1/0.18215 for a legacy file without the marker)
    kind: str
    unsampler: Optional[dict]  # the export's parameters when they agree with the tensor (else None)
    batch: int  # latents per frame (the export's items; 1 for a foreign batch)
    notes: list = field(default_factory=list)
    is_sample: bool = False

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def n_frames(self) -> int:
        return self.rows // self.batch

    @property
    def frame_shape(self) -> tuple:
        return tuple(int(v) for v in self.shape[1:])

    @property
    def float32_bytes(self) -> int:
        """The whole tensor's bytes in float32 (what using it as the input would hold)."""
        return 4 * self.rows * math.prod(self.frame_shape)

    @property
    def row_bytes(self) -> int:
        """Stored bytes of one row (one latent)."""
        return DTYPES[self.dtype][1] * math.prod(self.frame_shape)

    def stored_params(self) -> list:
        """``[(label, value)]`` of the export's parameters; [] for a foreign batch (no stored parameters)."""
        u = self.unsampler or {}
        return [(label, u[key]) for key, label in SHOWN_PARAMS if key in u and u[key] is not None]

    def describe_params(self) -> str:
        """One line: the stored parameters, or "no stored parameters"."""
        rows = self.stored_params()
        if not rows:
            return "no stored parameters"
        sig = "sigma per frame stored" if self.unsampler.get("model_sigmas") is not None else "no stored sigmas"
        return ", ".join(f"{k} {v}" for k, v in rows) + f"; {sig}"


def is_batch_file(shape) -> bool:
    """Does a latent of this shape hold a batch (more than one latent in dim 0)?"""
    return len(shape) >= 1 and int(shape[0]) > 1


def open_batch(path, is_sample: bool = False) -> BatchFile:
    """Read and check a latent file's header as a batch to browse (``BadFileError`` says what is wrong)."""
    path = os.fspath(path)
    with reading(path, "the latent"):
        return batch_from_head(open_latent(path), is_sample)


def batch_from_head(head: LatentHead, is_sample: bool = False) -> BatchFile:
    """The ``BatchFile`` of a checked latent header: the export's metadata is kept only where it agrees
    with the tensor (what disagrees is said in ``notes``)."""
    info = head.info
    path = head.header.path
    shape = tuple(int(v) for v in info.shape)
    notes = list(head.notes)
    u = dict(head.unsampler) if isinstance(head.unsampler, dict) else None
    batch = 1
    if u is not None:
        b, fs = u.get("batch", 1), u.get("frame_shape")
        if not isinstance(b, int) or b < 1 or shape[0] % b or (fs is not None and tuple(fs) != shape[1:]):
            notes.append(f"unsampler metadata: batch {b!r} and frame shape {fs!r} do not fit the tensor "
                         f"{list(shape)}; ignored")
            u = None
        else:
            batch = b
    if u is not None:
        n = shape[0] // batch
        for key in ("model_sigmas", "sigmas"):
            if key in u and len(u[key]) != n:
                notes.append(f"unsampler metadata: {len(u[key])} {key} for {n} frames; ignored")
                u.pop(key)
        if isinstance(u.get("frames"), list) and len(u["frames"]) != n:
            notes.append(f"unsampler metadata: {len(u['frames'])} frame steps for {n} frames; ignored")
            u.pop("frames")
    return BatchFile(path=path, name=os.path.basename(path), shape=shape, dtype=info.dtype, start=info.start,
                     multiplier=head.multiplier, kind=head.kind, unsampler=u, batch=batch, notes=notes,
                     is_sample=is_sample)


def choose_family(bf: BatchFile, preferred: Optional[str] = None) -> Family:
    """The family whose preview shows the file: the export's, else ``preferred``, else the first that takes
    the latents (``BadFileError`` when none does)."""
    c, nd = bf.frame_shape[0], len(bf.shape)
    fits = families_for_channels(c, nd)
    names = [f.name for f in fits]
    for want in ((bf.unsampler or {}).get("family"), preferred):
        if isinstance(want, str) and want in names:
            return get_family(want)
    if not fits:
        raise BadFileError(f"{bf.name}: no known family takes {c}-channel {nd}-D latents, so its frames cannot "
                           "be shown")
    return fits[0]


def file_reader(path: str) -> Callable[[int, int], bytearray]:
    """``read(offset, nbytes)``: those bytes of the file (``BadFileError`` when it ends early)."""
    def read(offset: int, nbytes: int) -> bytearray:
        with reading(path, "the latent's frames"):
            buf = bytearray(nbytes)
            view = memoryview(buf)
            with open_checked(path) as f:
                f.seek(offset)
                got = 0
                while got < nbytes:
                    k = f.readinto(view[got:])
                    if not k:
                        raise BadFileError(f"{os.path.basename(path)}: truncated file (the tensor data ends "
                                           "early; it was cut short or is still being written)")
                    got += k
            return buf
    return read


@dataclass(frozen=True)
class BatchPlan(OutputSizes):
    """What the frame store and the views read of a sequence's plan, for a browsed file."""

    batch: int
    frame_shape: tuple
    positions: tuple
    schedule_index: torch.Tensor  # per node step (indexed by ``positions``)
    model_sigmas: torch.Tensor
    raw_sigmas: torch.Tensor
    family: Family

    @property
    def n_steps(self) -> int:
        return len(self.positions)



class BatchSequence(FrameSource):
    """The frames of a batch file, read on demand (see the module docstring); ``core.sequence.Sequence``'s
    interface. Building one reads nothing."""

    trajectory = False

    def __init__(self, bf: BatchFile, family: Family, cache_bytes: int = CACHE_BYTES,
                 reader: Optional[Callable[[int, int], bytes]] = None, read_bytes: int = READ_BYTES):
        self.file = bf
        self.family = family
        self.batch = bf.batch
        self.frame_shape = bf.frame_shape
        self.cache = FrameCache(cache_bytes)
        self.read_bytes = max(1, int(read_bytes))
        self._read = reader or file_reader(bf.path)
        self._lock = threading.Lock()
        self.bytes_read = 0  # bytes read from the file so far
        self.max_read = 0  # the largest single read
        self.nonfinite = 0  # non-finite values read (shown as 0)
        n = bf.n_frames
        u = bf.unsampler or {}
        frames = u.get("frames")
        self.positions = tuple(int(p) for p in frames) if isinstance(frames, list) else tuple(range(n))
        nan = np.full(n, np.nan)
        self.sigmas = np.asarray(u["model_sigmas"], dtype=np.float64) if "model_sigmas" in u else nan
        self.raw_sigmas = np.asarray(u["sigmas"], dtype=np.float64) if "sigmas" in u else nan.copy()
        self.has_sigmas = "model_sigmas" in u
        top = max(self.positions, default=-1) + 1
        index = torch.arange(top, dtype=torch.int64)
        try:
            s, e = slice_bounds(u["steps"], u.get("start_at_step", 0), u.get("end_at_step", u["steps"]))
            if e - s >= top:
                index = torch.arange(e - 1, e - 1 - top, -1, dtype=torch.int64)  # the node flips the slice
        except (KeyError, TypeError, BadParameterError):
            pass  # no schedule stored: the step is the frame's own index
        model = torch.zeros(top, dtype=torch.float64)
        raw = torch.zeros(top, dtype=torch.float64)
        pos = list(self.positions)
        model[pos] = torch.from_numpy(self.sigmas)
        raw[pos] = torch.from_numpy(self.raw_sigmas)
        self.plan = BatchPlan(batch=self.batch, frame_shape=self.frame_shape, positions=self.positions,
                              schedule_index=index, model_sigmas=model, raw_sigmas=raw, family=family)

    # -- what a frame is ---------------------------------------------------------------------------
    def frame_at_sigma(self, sigma: float) -> int:
        if not self.has_sigmas:
            raise BadParameterError(f"{self.file.name} stores no sigmas: go to a frame by its number")
        return int(np.argmin(np.abs(self.sigmas - float(sigma))))

    # -- frames (``FrameSource``: what is not cached is read from the file) ----------------------------
    def _produce(self, missing: List[int]) -> dict:
        return self._load(missing)

    def _load(self, indices: List[int]) -> dict:
        """Frames ``indices`` (sorted) read from the file: runs of neighbours in one read of at most
        ``read_bytes`` (one frame at least); each frame its own storage."""
        frame_bytes = self.batch * self.file.row_bytes
        per = max(1, self.read_bytes // max(1, frame_bytes))
        out, run = {}, []
        for i in indices + [None]:
            if run and (i is None or i != run[-1] + 1 or len(run) >= per):
                rows = self._read_rows(run[0] * self.batch, len(run) * self.batch)
                for j, k in enumerate(run):
                    out[k] = rows[j * self.batch:(j + 1) * self.batch].clone() if len(run) > 1 else rows
                run = []
            if i is not None:
                run.append(i)
        return out

    def _read_rows(self, first: int, count: int) -> torch.Tensor:
        bf = self.file
        nbytes = count * bf.row_bytes
        buf = self._read(bf.start + first * bf.row_bytes, nbytes)
        if len(buf) != nbytes:
            raise BadFileError(f"{bf.name}: truncated file (the tensor data ends early)")
        with self._lock:
            self.bytes_read += nbytes
            self.max_read = max(self.max_read, nbytes)
        np_dtype = DTYPES[bf.dtype][0]
        arr = np.frombuffer(buf, dtype=np_dtype)
        if bf.dtype == "BF16":
            t = torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16).float()
        else:
            t = torch.from_numpy(arr).to(torch.float32)
        if bf.multiplier != 1.0:
            t = t * bf.multiplier  # float32 multiply by float32(1/0.18215), as LoadLatent
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            with self._lock:
                self.nonfinite += bad
            t = torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)
        return t.reshape(count, *bf.frame_shape)

    # -- statistics --------------------------------------------------------------------------------
    def stats_chunks(self, is_cancelled: Callable[[], bool] = lambda: False) -> Iterator[tuple]:
        """``(indices, FrameStats of their rows, frame-major)``, coarse first, a chunk of at most
        ``STATS_CHUNK_BYTES`` at a time; the frames read are not cached."""
        n = self.n_frames
        per = max(1, STATS_CHUNK_BYTES // max(1, self.plan.step_bytes))
        order = coarse_first(n)
        for c in range(0, n, per):
            if is_cancelled():
                return
            part = order[c:c + per]
            have = {i: self.cache.get(i) for i in part}
            need = sorted(i for i, t in have.items() if t is None)
            have.update(self._load(need) if need else {})
            yield part, frame_stats(torch.cat([have[i] for i in part]))

    def expected_stats(self) -> None:
        """A file has no formula to predict its curves from."""
        return None


def export_frames(seq: BatchSequence, path, frames: Seq[int], overwrite: bool = False, reporter=None) -> str:
    """Write frames ``frames`` (indices of ``seq``, in this order) of a browsed file as a new ``.latent``,
    a frame at a time (memory: a frame), atomically (``latent_io.LatentWriter``). An export's metadata goes
    with them, its frame steps and sigmas cut to the frames written. ``reporter.is_cancelled()`` is asked
    before every frame (``Cancelled``: nothing is left); ``reporter.progress(done, total)`` after it."""
    import json

    from .errors import Cancelled
    from .latent_io import METADATA_KEY, LatentWriter

    idx = [int(i) for i in frames]
    n = seq.n_frames
    if not idx:
        raise BadParameterError("no frames chosen to export")
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise BadParameterError(f"frame {bad[0]} is outside 0..{n - 1}")
    meta = None
    u = seq.file.unsampler
    if u is not None:
        u = dict(u)
        u["frames"] = [seq.positions[i] for i in idx]
        for key, values in (("model_sigmas", seq.sigmas), ("sigmas", seq.raw_sigmas)):
            if key in u:
                u[key] = [float(values[i]) for i in idx]
        meta = {METADATA_KEY: json.dumps(u, separators=(",", ":"))}
    shape = (len(idx) * seq.batch, *seq.frame_shape)
    with LatentWriter(path, shape, meta, overwrite=overwrite) as w:
        for k, i in enumerate(idx):
            if reporter is not None and reporter.is_cancelled():
                raise Cancelled("export cancelled")
            w.write(seq.frame(i))
            if reporter is not None:
                reporter.progress(k + 1, len(idx))
        return w.commit()


__all__ = ["BatchFile", "BatchSequence", "BatchPlan", "open_batch", "batch_from_head", "is_batch_file",
           "choose_family", "file_reader", "export_frames", "READ_BYTES"]
