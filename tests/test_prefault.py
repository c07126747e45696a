"""prefault: fresh output memory is mapped in one call, and nothing already written changes."""
import sys

import pytest
import torch

from unsampler_gui.core import prefault as pf


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _populate_or_skip(t: torch.Tensor) -> None:
    """Prefault ``t``; skip where this machine cannot (not Linux, or a kernel without MADV_POPULATE_WRITE)."""
    if not pf.prefault(t):
        assert not sys.platform.startswith("linux") or not pf._enabled, "prefault refused a mappable tensor"
        pytest.skip("no MADV_POPULATE_WRITE here")


def test_data_already_written_is_kept():
    t = torch.arange(300_000, dtype=torch.float32)  # 1.2 MB, written: every page already holds data
    before = t.clone()
    _populate_or_skip(t)  # it really ran over these pages...
    assert torch.equal(t, before)  # ...and changed none of them
    part = t[1000:]  # starts inside a page: only the whole pages under it are mapped, the rest is untouched
    _populate_or_skip(part)
    assert torch.equal(t, before)


def test_refuses_what_it_cannot_map():
    assert pf.prefault(torch.empty(0)) is False
    assert pf.prefault(torch.empty(100, 100).t()) is False  # not contiguous
    assert pf.prefault(torch.empty(10)) is False  # no whole page under it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_maps_fresh_memory_ahead_of_the_write():
    t = torch.empty(64 << 20, dtype=torch.uint8)  # 64 MiB, never touched
    before = _rss()
    _populate_or_skip(t)
    assert _rss() - before > 60 << 20
