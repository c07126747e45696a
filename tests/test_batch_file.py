"""A batch file browsed as a sequence: frames read lazily from the file equal the exported frames, bit for bit,
within the cache budget; the stored parameters are shown; foreign, mismatched and truncated files."""
import json
import os

import pytest
import torch

from unsampler_gui.core import plan_unsample, run_unsample
from unsampler_gui.core.batch_file import (BatchSequence, choose_family, file_reader, is_batch_file, open_batch)
from unsampler_gui.core.errors import BadFileError, BadParameterError
from unsampler_gui.core.inputs import LoadedLatent, load_dropped, load_latent
from unsampler_gui.core.latent_io import latent_header_bytes, read_latent, write_latent
from unsampler_gui.core.sequence import Sequence
from unsampler_gui.core.stats import StepStats


def _bits(t):
    return t.contiguous().view(torch.int32)


@pytest.fixture
def export30(make_spec, tmp_path):
    """An Unsampler export of a 30-step run with 2 items, and its plan."""
    spec = make_spec("SDXL", shape=(2, 4, 8, 8), steps=30, noise="independent", seed=11, device="cpu",
                     start_at_step=2, end_at_step=29)
    path = tmp_path / "run30.latent"
    run_unsample(spec, output=str(path), max_memory=1 << 30)
    return path, plan_unsample(spec)


class Counting:
    """A reader that counts the bytes it reads."""

    def __init__(self, path):
        self._read = file_reader(str(path))
        self.calls, self.total, self.largest = 0, 0, 0

    def __call__(self, offset, n):
        self.calls += 1
        self.total += n
        self.largest = max(self.largest, n)
        return self._read(offset, n)


def test_an_export_browsed_frame_by_frame_equals_the_exported_frames(export30):
    path, plan = export30
    bf = open_batch(path)
    assert is_batch_file(bf.shape) and bf.batch == 2 and bf.n_frames == plan.n_steps == 27
    stored = read_latent(path).tensor
    live = Sequence(plan)
    reader = Counting(path)
    seq = BatchSequence(bf, choose_family(bf), cache_bytes=3 * plan.step_bytes, reader=reader)
    assert reader.calls == 0  # opening reads only the header
    for i in [26, 0, 13, 5, 5, 20]:
        assert torch.equal(_bits(seq.frame(i)), _bits(stored[i * 2:(i + 1) * 2])), f"frame {i}"
        assert torch.equal(_bits(seq.frame(i, 1)), _bits(live.frame(i, 1)))  # the app's own frame i
        assert seq.cache.bytes <= 3 * plan.step_bytes
    assert reader.calls == 5 and reader.largest == plan.step_bytes  # one frame a read; the repeat was cached
    # the stored parameters and the sigma of every frame
    assert choose_family(bf).name == "SDXL"
    shown = dict(bf.stored_params())
    assert shown["model"] == "SDXL" and shown["steps"] == 30 and shown["start"] == 2 and shown["end"] == 29
    assert shown["seed"] == 11 and shown["noise"] == "independent" and shown["scheduler"] == plan.spec.scheduler
    assert "sigma per frame stored" in bf.describe_params()
    assert seq.sigma(4) == pytest.approx(float(plan.model_sigmas[4])) and seq.has_sigmas
    assert [seq.schedule_step(i) for i in (0, 26)] == [int(plan.schedule_index[0]), int(plan.schedule_index[26])]
    assert seq.frame_at_sigma(float(plan.model_sigmas[17])) == 17


def test_reads_stay_within_the_budget_over_the_whole_file(export30):
    """Every frame and the statistics of every frame: no read over the read size, the cache within its budget,
    the file read about once for the statistics and once for the frames."""
    path, plan = export30
    bf = open_batch(path)
    reader = Counting(path)
    budget = 4 * plan.step_bytes
    seq = BatchSequence(bf, choose_family(bf), cache_bytes=budget, reader=reader, read_bytes=2 * plan.step_bytes)
    assert len(seq.frames(list(range(27)))) == 27
    assert reader.largest <= 2 * plan.step_bytes and seq.cache.bytes <= budget and seq.max_read <= budget
    stats = StepStats(27, 2)
    for rows, fs in seq.stats_chunks():
        stats.add_rows(rows, fs)
    assert stats.count == 27
    stored = read_latent(path).tensor
    assert stats.series("mean", 1)[9] == pytest.approx(float(stored[19].double().mean()))
    assert reader.total <= 2 * bf.n_frames * plan.step_bytes


def test_a_foreign_batch_has_no_stored_parameters(tmp_path):
    path = tmp_path / "four.latent"
    x = torch.randn(4, 4, 8, 8)
    write_latent(path, x)
    bf = open_batch(path)
    assert bf.batch == 1 and bf.n_frames == 4 and bf.unsampler is None
    assert bf.stored_params() == [] and bf.describe_params() == "no stored parameters"
    seq = BatchSequence(bf, choose_family(bf, preferred="SDXL"))
    assert choose_family(bf, preferred="SDXL").name == "SDXL"
    assert torch.equal(seq.frame(3, 0), x[3]) and not seq.has_sigmas
    with pytest.raises(BadParameterError, match="stores no sigmas"):
        seq.frame_at_sigma(1.0)


def test_legacy_and_half_precision_batches_read_as_loadlatent_does(tmp_path):
    path = tmp_path / "half.safetensors"
    x = torch.randn(3, 4, 4, 4)
    from safetensors.torch import save_file
    save_file({"latent_tensor": x.half()}, str(path))  # no marker: the legacy multiplier
    bf = open_batch(path)
    seq = BatchSequence(bf, choose_family(bf))
    assert torch.equal(seq.frame(2, 0), read_latent(path).tensor[2])


def test_metadata_that_does_not_fit_the_tensor_is_ignored(tmp_path):
    path = tmp_path / "liar.latent"
    meta = {"unsampler": json.dumps({"family": "SD15", "batch": 3, "frame_shape": [4, 8, 8], "steps": 5})}
    write_latent(path, torch.randn(4, 4, 8, 8), metadata=meta)
    bf = open_batch(path)
    assert bf.unsampler is None and bf.batch == 1 and any("do not fit" in n for n in bf.notes)
    meta = {"unsampler": json.dumps({"family": "SD15", "batch": 1, "model_sigmas": [1.0, 2.0], "steps": 5})}
    write_latent(path, torch.randn(4, 4, 8, 8), metadata=meta, overwrite=True)
    bf = open_batch(path)
    assert "model_sigmas" not in bf.unsampler and any("2 model_sigmas for 4 frames" in n for n in bf.notes)


def test_a_truncated_batch_file_gives_a_clear_message(export30, tmp_path):
    path, plan = export30
    data = path.read_bytes()
    cut = tmp_path / "cut.latent"
    cut.write_bytes(data[:len(data) - 100])
    with pytest.raises(BadFileError, match="truncated"):
        open_batch(cut)
    # cut after it was opened (a file being written, or shrunk): the frame read says so
    bf = open_batch(path)
    seq = BatchSequence(bf, choose_family(bf))
    with open(path, "r+b") as f:
        f.truncate(len(data) - 3 * plan.step_bytes)
    assert seq.frame(0).shape == (2, 4, 8, 8)
    with pytest.raises(BadFileError, match="truncated"):
        seq.frame(26)


def test_hostile_shapes_are_refused(tmp_path):
    path = tmp_path / "flat.latent"
    head = latent_header_bytes((4, 4, 8))  # 3-D: not a latent
    path.write_bytes(head + bytes(4 * 4 * 4 * 8))
    with pytest.raises(BadFileError, match="4 dimensions"):
        open_batch(path)
    three = tmp_path / "three.latent"
    write_latent(three, torch.randn(2, 7, 8, 8))
    with pytest.raises(BadFileError, match="no known family takes 7-channel"):
        choose_family(open_batch(three))


def test_the_app_loader_offers_a_batch_and_reads_one_latent_as_before(export30, tmp_path):
    path, _ = export30
    assert load_latent(path, as_input=False).n_frames == 27  # a BatchFile: nothing read yet
    assert isinstance(load_latent(path), LoadedLatent)  # as the input: the whole batch
    assert load_dropped(path).batch == 2
    one = tmp_path / "one.latent"
    write_latent(one, torch.randn(1, 4, 8, 8))
    assert isinstance(load_dropped(one), LoadedLatent)
    assert os.path.exists(one)


def test_the_cuda_checks_app_frames_equal_an_export_on_the_cpu():
    """benchmarks/cuda_check.py's check that the app's frames equal an export's (run there on CUDA), here on the CPU."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.cuda_check import app_frames_match_export

    results = app_frames_match_export("cpu")
    assert len(results) == 12
    failed = [(name, detail) for name, ok, detail in results if not ok]
    assert not failed


def test_chosen_frames_of_a_browsed_export_are_written_with_their_metadata(export30, tmp_path):
    from unsampler_gui.core.errors import Cancelled
    from unsampler_gui.core.batch_file import export_frames
    path, plan = export30
    bf = open_batch(path)
    seq = BatchSequence(bf, choose_family(bf))
    out = tmp_path / "part.latent"
    assert export_frames(seq, out, [0, 9, 18]) == str(out)
    stored, part = read_latent(path).tensor, read_latent(out)
    assert torch.equal(_bits(part.tensor), _bits(torch.cat([stored[0:2], stored[18:20], stored[36:38]])))
    again = open_batch(out)  # browsed again: the same frames, their steps and sigmas
    assert again.batch == 2 and again.n_frames == 3 and again.unsampler["frames"] == [0, 9, 18]
    back = BatchSequence(again, choose_family(again))
    assert back.sigma(1) == seq.sigma(9) and back.schedule_step(2) == seq.schedule_step(18)
    assert torch.equal(back.frame(2), seq.frame(18))

    class Stop:
        def __init__(self):
            self.asked = 0

        def is_cancelled(self):
            self.asked += 1
            return self.asked > 2

        def progress(self, done, total):
            pass

    with pytest.raises(Cancelled):
        export_frames(seq, tmp_path / "stop.latent", range(27), reporter=Stop())
    assert not os.path.exists(tmp_path / "stop.latent")
    with pytest.raises(BadParameterError, match="outside"):
        export_frames(seq, tmp_path / "x.latent", [27])
    foreign = tmp_path / "four.latent"
    write_latent(foreign, torch.randn(4, 4, 8, 8))
    fb = open_batch(foreign)
    export_frames(BatchSequence(fb, choose_family(fb)), tmp_path / "f.latent", [3, 1])
    assert open_batch(tmp_path / "f.latent").unsampler is None
    assert torch.equal(read_latent(tmp_path / "f.latent").tensor, read_latent(foreign).tensor[[3, 1]])
