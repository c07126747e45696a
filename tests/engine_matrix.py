"""A matrix of unsampling specs and the sha256 of what each one outputs, to pin the engine's bits.

``tests/data/engine_digests.json`` holds the digests computed by the engine as it was at commit e20d8b3 (before
the engine was split into job / frames / sink / drivers); ``tests/test_engine_digests.py`` checks today's engine
against them. The matrix covers a family of each sampling kind (EPS, V, EDM with per-channel std, flow with a
shift factor, flow without one, 5-D flow with per-channel mean and std, 5-D flow without), every noise mode,
both formulas, normalize, B=1 and B>1, subsets (sorted, reversed, strided, shuffled with repeats), chunk sizes
and thread counts, in memory and streamed to a ``.latent`` (with and without a memory cap).

Regenerate (only ever against the old engine, whose bits are the reference)::

    git archive e20d8b3 | tar -x -C /tmp/base
    .venv/bin/python -S -c "import sys; sys.path[:0] = ['/tmp/base', '.venv/lib/python3.11/site-packages', \
        'tests']; import engine_matrix; engine_matrix.main(['--write', 'tests/data/engine_digests.json'])"

(``-S`` and the explicit path: with ``PYTHONPATH`` alone the editable install's finder wins and the digests
would be today's engine's; check that ``unsampler_gui.core.__file__`` is under /tmp/base.) The capped stream
cases use 24,000 bytes, the least cap every case's run keeps (``check_memory_cap``), which still makes
one-step chunks.

Only the public API of that commit is used here: ``UnsampleSpec``, ``run_unsample(spec, output=, overwrite=,
max_memory=)`` and ``read_latent``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

import torch

FAMILIES_4D = {"SD15": 4, "SD21_768_v": 4, "PlaygroundV2_5": 4, "Flux": 16, "AuraFlow": 4}
FAMILIES_5D = {"WAN21_T2V": 16, "HunyuanVideo": 16}
NOISES = ("independent", "shared", "trajectory")


def _shape(family: str, batch: int) -> tuple:
    if family in FAMILIES_5D:
        return (batch, FAMILIES_5D[family], 2, 4, 4)
    # 5 x 7: torch's vectorised normal_ works 16 values at a time, so every frame also has a tail
    return (batch, FAMILIES_4D[family], 5, 7)


def groups() -> dict:
    """The cases, as plain dicts (a case's key in the digest file is its canonical JSON), in three groups."""
    return {"arithmetic": _arithmetic(), "layout": _layout(), "schedules": _schedules()}


def cases() -> list:
    return [c for group in groups().values() for c in group]


def _arithmetic() -> list:
    out = []
    # 1. the arithmetic: every kind of family x noise x formula x normalize x batch, in memory
    for fam in list(FAMILIES_4D) + list(FAMILIES_5D):
        for noise in NOISES:
            for formula in ("model", "legacy"):
                for normalize in (False, True):
                    for batch in (1, 2):
                        out.append(dict(family=fam, shape=_shape(fam, batch), steps=24, noise=noise, formula=formula,
                                        normalize=normalize, seed=5))
    return out


def _layout() -> list:
    out = []
    # 2. layout and scheduling: subsets and orders x chunk sizes and threads x memory / stream
    subsets = [None, (0,), (1, 3, 4, 10, 17), tuple(range(29, -1, -1)), tuple(range(28, 0, -3)),
               (5, 2, 2, 9, 0, 23, 29, 6)]
    for fam in ("SD15", "Flux", "WAN21_T2V"):
        for noise in NOISES:
            for k, frames in enumerate(subsets):
                for chunk, threads in ((0, 1), (1, 1), (5, 3), (7, 2)):
                    for stream, cap in ((False, None), (True, None), (True, 24_000)):  # 1-step chunks, over the floor
                        normalize = (k + chunk) % 2 == 1
                        out.append(dict(family=fam, shape=_shape(fam, 2), steps=30, noise=noise, frames=frames,
                                        chunk_frames=chunk, threads=threads, normalize=normalize, seed=9,
                                        stream=stream, max_memory=cap))
    return out


def _schedules() -> list:
    out = []
    # 3. schedules: zero-sigma frames (beta), slices, a sampler that drops a sigma, other seeds, a big frame
    for noise in NOISES:
        for fam in ("SD15", "PlaygroundV2_5", "Flux"):
            out.append(dict(family=fam, shape=_shape(fam, 2), steps=1000, scheduler="beta",
                            frames=tuple(range(0, 800, 33)), chunk_frames=10, noise=noise, seed=11))
        out.append(dict(family="SD15", shape=(1, 4, 5, 7), steps=40, start_at_step=10, end_at_step=25, noise=noise,
                        scheduler="karras", seed=-3))
        out.append(dict(family="SDXL", shape=(2, 4, 3, 3), steps=12, sampler="dpm_2", noise=noise, seed=2**40 + 7,
                        normalize=True))
        out.append(dict(family="SD15", shape=(1, 4, 64, 64), steps=50, noise=noise, seed=1, threads=2))
        out.append(dict(family="SD15", shape=(1, 4, 1, 3), steps=9, noise=noise, seed=4))  # under 16 values
    return out


def key(case: dict) -> str:
    return json.dumps(case, sort_keys=True, separators=(",", ":"))


def _latent(case: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return (torch.randn(*case["shape"], generator=g) * 0.5 + 0.2).contiguous()


def _spec(case: dict):
    from unsampler_gui.core import UnsampleSpec, get_family

    kw = {k: v for k, v in case.items() if k not in ("family", "shape", "stream", "max_memory")}
    return UnsampleSpec(family=get_family(case["family"]), latent=_latent(case), device="cpu",
                        source_name="matrix.latent", source_sha256="0" * 64, **kw)


def _sha(t: torch.Tensor) -> str:
    t = t.detach().contiguous()
    return hashlib.sha256(json.dumps(list(t.shape)).encode() + t.numpy().tobytes()).hexdigest()


def _meta_sha(meta: dict) -> str:
    meta = {k: v for k, v in meta.items() if k != "version"}  # a release bump must not change the digest
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def digest(case: dict, folder: str) -> str:
    """sha256 of the output tensor (shape and bytes) and of the export metadata (less the version)."""
    from unsampler_gui.core import read_latent, run_unsample

    spec = _spec(case)
    if case.get("stream"):
        path = os.path.join(folder, "out.latent")
        r = run_unsample(spec, output=path, overwrite=True, max_memory=case.get("max_memory"))
        lf = read_latent(r.path)
        return f"{_sha(lf.tensor)}:{_meta_sha(lf.unsampler)}"
    r = run_unsample(spec)
    return f"{_sha(r.latent)}:{_meta_sha(json.loads(r.metadata()['unsampler']))}"


def environment() -> dict:
    """What the bits depend on besides the code: torch's build and the CPU kernels it dispatches to."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def compute() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return {key(c): digest(c, d) for c in cases()}


def main(argv) -> int:
    if len(argv) != 2 or argv[0] != "--write":
        print(__doc__)
        return 2
    doc = {"commit": "e20d8b3", "environment": environment(), "digests": compute()}
    with open(argv[1], "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(doc['digests'])} digests to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
