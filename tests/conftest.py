import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from spec_builder import build_spec

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never read or write the user's own config folder (user families in <config>/families): an empty one per run.
os.environ["UNSAMPLER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="unsampler-test-config-")
atexit.register(shutil.rmtree, os.environ["UNSAMPLER_CONFIG_DIR"], True)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("UNSAMPLER_REFERENCE", ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "sigmas_public.json").is_file():
        pytest.skip(f"ComfyUI reference data not found at {REFERENCE} (set UNSAMPLER_REFERENCE)")
    return REFERENCE


@pytest.fixture
def make_spec():
    """``build_spec``: ``make_spec("Flux", (1, 16, 8, 8), noise="trajectory")``."""
    return build_spec
