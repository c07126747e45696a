"""Writing a large file front to back without the page cache (Linux ``O_DIRECT``).

A buffered ``write`` copies every byte into the page cache, and the kernel then writes those pages out:
on a 2-core machine that copy and its page bookkeeping take as much CPU as a third of the frame maker.
With ``O_DIRECT`` the disk reads the bytes straight from the caller's memory: the data costs no CPU, is on
the device when ``pwrite`` returns, and the final fsync has only the metadata and the disk's cache left.

``O_DIRECT`` wants the memory, the file offset and the length aligned to the device's block (4 KiB is
enough everywhere). A ``.latent``'s frames start after a header of any length, so ``DirectStream`` lends
its caller buffers placed so that the bytes of file offset ``at`` sit at an address with the same
remainder modulo 4 KiB, with room in front: when a buffer is written, the stream's unwritten tail (under
4 KiB, the end of the previous buffer) is copied in front of it and the whole is one aligned write; the
new tail is kept for the next one. The last tail is written padded to a block, and the file cut to its
size. Where the filesystem refuses ``O_DIRECT`` (tmpfs on older kernels, some network filesystems), or
any aligned write is refused, the stream falls back to plain writes from the same buffers.
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading

import numpy as np
import torch

#: The alignment of every direct write: the largest logical block in common use.
ALIGN = 4096
#: Outputs smaller than this are written through the page cache (nothing to gain, one more code path).
DIRECT_MIN_BYTES = 64 << 20


def enable_direct(fd: int) -> bool:
    """Switch ``fd`` to ``O_DIRECT``; False where the system or the filesystem does not allow it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
    except OSError:
        return False
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & flag)


def disable_direct(fd: int) -> None:
    flag = getattr(os, "O_DIRECT", 0)
    if flag:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~flag)


def _aligned(nbytes: int) -> tuple:
    """(owner, offset): ``owner[offset:offset + nbytes]`` starts at an ``ALIGN``-aligned address."""
    raw = torch.empty(nbytes + ALIGN, dtype=torch.uint8)
    return raw, (-raw.data_ptr()) % ALIGN


class _Buffer:
    """One lent buffer: ``ALIGN`` bytes of room, then up to ``capacity`` bytes of data, then a block of slack."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.raw, self.base = _aligned(capacity + 2 * ALIGN + ALIGN)

    def region(self, at: int, nbytes: int) -> torch.Tensor:
        """The bytes that will go to file offset ``at``: ``nbytes`` from an address that is ``at`` modulo ALIGN."""
        start = self.base + ALIGN + at % ALIGN
        return self.raw[start:start + nbytes]


class DirectStream:
    """Write ``head`` and then, in order, the buffers lent by ``lend`` to the file ``fd``, at offset 0.

    ``lend(at, nbytes, slot)`` gives a writable uint8 tensor for file bytes ``[at, at + nbytes)`` in the
    buffer of ``slot`` (any thread; a slot is the caller's to reuse once its region is written, as with
    staging slots); ``put(region)`` writes it, in file order; ``write(data)`` writes bytes that are not in a
    lent buffer (copied into one of its own); ``close()`` writes the last tail and sets the file's size.
    Raises ``OSError`` as the system reports it (the caller words it).
    """

    def __init__(self, fd: int, head: bytes, capacity: int):
        self.fd, self.capacity = fd, max(int(capacity), ALIGN)
        self.direct = enable_direct(fd)
        self.pos = 0  # bytes on the file (a multiple of ALIGN while direct)
        self.tail = b""  # the stream's bytes after pos, not yet written
        self._slots: dict = {}  # slot -> its _Buffer
        self._lent: dict = {}  # data pointer of a lent region -> (its buffer, its file offset)
        self._lock = threading.Lock()
        self._append(memoryview(head))

    @property
    def end(self) -> int:
        """The stream's length so far."""
        return self.pos + len(self.tail)

    def lend(self, at: int, nbytes: int, slot: int = 0) -> torch.Tensor:
        if nbytes > self.capacity:
            raise ValueError(f"a region of {nbytes} bytes is larger than the buffers ({self.capacity})")
        if nbytes <= 0:
            return torch.empty(0, dtype=torch.uint8)  # nothing to write: ``put`` takes it as it is
        with self._lock:
            buf = self._slots.get(slot)
        if buf is None:
            buf = _Buffer(self.capacity)
            with self._lock:
                self._slots[slot] = buf
        region = buf.region(at, nbytes)
        with self._lock:
            self._lent[region.data_ptr()] = (buf, at)
        return region

    def put(self, region: torch.Tensor) -> None:
        """Write a lent region; its bytes follow the stream's end."""
        if region.numel() == 0:
            return
        with self._lock:
            buf, at = self._lent.get(region.data_ptr(), (None, None))
            if buf is None:
                raise ValueError("not a region lent by this stream")
            if at != self.end:
                raise ValueError(f"regions are put in file order: this one is for offset {at}, the stream "
                                 f"is at {self.end}")
            del self._lent[region.data_ptr()]
        self._write_region(buf, region)

    def write(self, data) -> None:
        """Append bytes that were made elsewhere (a CUDA copy, a trajectory's gathered rows)."""
        mv = memoryview(data).cast("B")
        for i in range(0, len(mv), self.capacity):
            piece = mv[i:i + self.capacity]
            region = self.lend(self.end, len(piece), slot=-1)  # a slot of its own
            region.numpy()[:] = np.frombuffer(piece, dtype=np.uint8)
            self.put(region)

    def close(self) -> None:
        """Write the tail (padded to a block while direct) and cut the file to the stream's length."""
        end = self.end
        if self.tail:
            if self.direct:
                raw, off = _aligned(ALIGN)
                page = raw[off:off + ALIGN]
                page.zero_()
                page.numpy()[:len(self.tail)] = np.frombuffer(self.tail, dtype=np.uint8)
                self._pwrite(page.numpy(), ALIGN)
            else:
                self._pwrite(memoryview(self.tail), len(self.tail))
            self.tail = b""
        os.ftruncate(self.fd, end)
        self.pos = end
        if self.direct:
            disable_direct(self.fd)

    # ---- the writes ------------------------------------------------------------------------------

    def _write_region(self, buf: _Buffer, region: torch.Tensor) -> None:
        n, c = region.numel() * region.element_size(), len(self.tail)
        start = region.data_ptr() - buf.raw.data_ptr() - c  # the tail goes just in front of the region
        flat = buf.raw.numpy()
        if c:
            flat[start:start + c] = np.frombuffer(self.tail, dtype=np.uint8)
        if not self.direct:
            self._pwrite(flat[start:start + c + n], c + n)
            self.tail = b""
            return
        k = (c + n) // ALIGN * ALIGN
        if k:
            self._pwrite(flat[start:start + k], k)
        self.tail = bytes(flat[start + k:start + c + n])

    def _append(self, mv: memoryview) -> None:
        """Bytes from ordinary memory (the header): the whole blocks through an aligned copy, the rest kept."""
        data = bytes(self.tail) + bytes(mv)
        k = len(data) // ALIGN * ALIGN if self.direct else len(data)
        if k:
            raw, off = _aligned(k)
            page = raw[off:off + k].numpy()
            page[:] = np.frombuffer(data, dtype=np.uint8, count=k)
            self._pwrite(page, k)
        self.tail = data[k:]

    def _pwrite(self, mv, nbytes: int) -> None:
        mv = memoryview(mv).cast("B")[:nbytes]
        while mv:
            try:
                n = os.pwrite(self.fd, mv, self.pos)
            except OSError as e:
                if e.errno != errno.EINVAL or not self.direct:
                    raise
                disable_direct(self.fd)  # this filesystem takes no direct writes after all: plain ones
                self.direct = False
                continue
            mv = mv[n:]
            self.pos += n

