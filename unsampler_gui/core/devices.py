"""Device choice and memory facts (CPU, CUDA). torch is imported by the functions that use it, so that the
light ones (``human_bytes``, ``return_large_blocks``) can be used before torch loads (the window's first paint)."""
from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

from .errors import BadParameterError, ResourceError

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    import torch

    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install counts as no CUDA
        return False


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when there is one, else the CPU. 'cuda' without CUDA is a clear error."""
    import torch

    if name not in DEVICES:
        raise BadParameterError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not cuda_available():
        raise ResourceError("CUDA was asked for, but this torch has no usable CUDA device; use --device cpu")
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    return torch.device(name)


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux MemAvailable, or sysconf), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


#: Past this many threads the per-frame Python work contends for the GIL and the job gets slower
#: (measured on a 16-core host, SD1.5 x 10000: 0.43 s with 4 threads, 0.45 s with 6, 0.57 s with 8 and
#: 0.65 s with 16; see benchmarks/cpu_threads.py and benchmarks/RESULTS.md).
MAX_DEFAULT_THREADS = 6


def default_threads() -> int:
    """The job's thread count: every core this process may use, at most ``MAX_DEFAULT_THREADS``."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_DEFAULT_THREADS))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000.0
    return f"{n} B"


def alloc(shape, device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor; running out of memory is a clear ``ResourceError``."""
    import torch

    try:
        return torch.empty(shape, dtype=torch.float32, device=device)
    except (RuntimeError, MemoryError) as e:
        n = 4
        for s in shape:
            n *= s
        raise ResourceError(f"out of memory: could not allocate {human_bytes(n)} on {torch.device(device).type}; "
                            "try fewer steps, or export straight to a file") from e


_one_thread = threading.Lock()
_one_thread_users = 0
_threads_before = 1


@contextlib.contextmanager
def one_intraop_thread():
    """torch's own intra-op threads set to one while the block runs: the job parallelises over frames itself
    (torch's threads would oversubscribe the cores), and a frame made alone is faster on one thread.

    torch's setting is process-wide, so overlapping users (a run, and frames made for the app meanwhile)
    share it: the first one in sets it, the last one out restores it.
    """
    import torch

    global _one_thread_users, _threads_before
    with _one_thread:
        if _one_thread_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _one_thread:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_threads_before)


#: Allocations of at least this many bytes are given back to the system when freed (``return_large_blocks``).
LARGE_BLOCK = 4 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Make glibc map every allocation of ``threshold`` bytes or more on its own, and unmap it when freed.

    By default glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB), after
    which frame-sized tensors come from per-thread arenas that keep them when freed: with a dozen pool
    threads each making frames on demand, the app's resident memory grows by frames nobody holds. A fixed
    threshold stops that (mallopt(M_MMAP_THRESHOLD), which also turns the dynamic raise off). True when set;
    False on other C libraries, where nothing changes.
    """
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def lower_thread_priority(niceness: int = 10) -> None:
    """Lower the calling thread's CPU priority (Linux: per-thread niceness); elsewhere nothing. For
    background work (a background run, a sequence's statistics) that should yield to the window."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except (AttributeError, OSError):
        pass
