"""Today's engine against the bits of the engine before it was split into layers (commit e20d8b3).

The digests in ``tests/data/engine_digests.json`` were computed by that engine (see ``tests/engine_matrix.py``
for the matrix and how to regenerate them). torch's CPU ``normal_`` dispatches on the CPU's vector unit, so
they hold for the torch build and CPU capability they were made with, which the file records.
"""
import json
from pathlib import Path

import pytest

import engine_matrix

DATA = Path(__file__).parent / "data" / "engine_digests.json"


@pytest.fixture(scope="module")
def reference():
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    if doc["environment"] != engine_matrix.environment():
        pytest.skip(f"the digests were made with {doc['environment']}, this is {engine_matrix.environment()}; "
                    "regenerate them at e20d8b3 as tests/engine_matrix.py says")
    return doc["digests"]


def test_the_matrix_is_the_one_the_digests_were_made_for(reference):
    assert sorted(reference) == sorted(engine_matrix.key(c) for c in engine_matrix.cases())


@pytest.mark.parametrize("group", ["arithmetic", "layout", "schedules"])
def test_outputs_are_bit_identical_to_the_engine_before_the_split(reference, group, tmp_path):
    part = engine_matrix.groups()[group]
    key, digest = engine_matrix.key, engine_matrix.digest
    wrong = [key(c) for c in part if digest(c, str(tmp_path)) != reference[key(c)]]
    assert not wrong, f"{len(wrong)} of {len(part)} differ, first: {wrong[0] if wrong else ''}"
