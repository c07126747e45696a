"""What every test shares: the one wait limit and where the ComfyUI reference data lives.

Test modules import it (and ``ckpt_factory``) by name: ``tests/`` is on ``sys.path`` (``conftest.py``).
"""
from __future__ import annotations

import os
from pathlib import Path

#: Milliseconds a test may wait for a real event (a run, a file, a thread): generous, never a pause.
WAIT_MS = 30000

ROOT = Path(__file__).resolve().parents[1]
#: ``UNSAMPLER_REFERENCE`` names the reference *folder* (``sigmas_public.json``, ``families.json``, ...);
#: by default the ``shared/reference`` folder beside the repository.
REFERENCE_ENV = "UNSAMPLER_REFERENCE"
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"
#: A file every reference folder has.
REFERENCE_MARKER = "sigmas_public.json"


def reference_folder() -> Path:
    """The reference folder: ``$UNSAMPLER_REFERENCE`` if set, else ``../shared/reference``."""
    return Path(os.environ.get(REFERENCE_ENV) or DEFAULT_REFERENCE)
