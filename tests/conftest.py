"""Fixtures for every test: the ComfyUI reference folder, and ``tests/`` on ``sys.path`` so that test
modules import the helpers beside this file (``support``, ``ckpt_factory``) by name."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest


os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never read or write the user's own config folder (user families in <config>/families): an empty one per run.
os.environ["UNSAMPLER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="unsampler-test-config-")
atexit.register(shutil.rmtree, os.environ["UNSAMPLER_CONFIG_DIR"], True)
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from spec_builder import build_spec  # noqa: E402
from support import REFERENCE_ENV, REFERENCE_MARKER, reference_folder  # noqa: E402


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The ComfyUI reference folder. Skips where the repository has no ``../shared/reference`` beside it;
    fails where ``UNSAMPLER_REFERENCE`` is set but does not name a reference folder."""
    folder = reference_folder()
    if (folder / REFERENCE_MARKER).is_file():
        return folder
    if os.environ.get(REFERENCE_ENV):
        pytest.fail(f"{REFERENCE_ENV}={folder} is not the reference folder (it has no {REFERENCE_MARKER})",
                    pytrace=False)
    pytest.skip(f"ComfyUI reference data not found at {folder} (set {REFERENCE_ENV} to the reference folder)")


@pytest.fixture
def make_spec():
    """``build_spec``: ``make_spec("Flux", (1, 16, 8, 8), noise="trajectory")``."""
    return build_spec
