"""The package's own data files for the frozen build (``packaging/unsampler.spec``).

Every ``data/`` folder inside ``unsampler_gui`` (``core/data``, ``core/vae/data``, ...) goes into the bundle at
its package path, so ``importlib.resources`` finds it there as in a source checkout; a new data folder needs no
edit here. ``tests/test_packaging.py`` checks that this covers pyproject.toml's package data.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = "unsampler_gui"


def package_data(root) -> list:
    """``[(source file, destination folder)]`` for the files of every ``data/`` folder of the package."""
    root = Path(root)
    out = []
    for folder in sorted((root / PACKAGE).rglob("data")):
        if not folder.is_dir() or "__pycache__" in folder.parts:
            continue
        dest = folder.relative_to(root).as_posix()
        out.extend((str(p), dest) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix != ".pyc")
    return out
