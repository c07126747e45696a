"""The session, without Qt: what would run, whether the result is current, what can be exported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest
import torch

from unsampler_gui import core
from unsampler_gui.core import detect, inputs  # noqa: F401 (subpackages used as core.detect, core.inputs)
from unsampler_gui.core import params
from unsampler_gui.core.session import Session, duration, fit_key, latent_fit, memory_warning


@dataclass
class Latent:  # what the session needs of an opened latent
    tensor: torch.Tensor
    name: str = "in.latent"
    sha256: Optional[str] = "0" * 64
    unsampler: Optional[dict] = None

    @property
    def shape(self):
        return tuple(self.tensor.shape)


def _session(steps=6, channels=4, **changes) -> Session:
    s = Session(params.default().replace(steps=steps, **changes))
    s.set_latent(Latent(torch.randn(1, channels, 8, 8)))
    return s


def _run(s: Session):
    spec = s.begin_run()
    s.run_started(0.0)
    return s.finish_run(core.run_unsample(spec))


def test_spec_needs_a_latent():
    s = Session()
    with pytest.raises(core.BadParameterError, match="no latent"):
        s.spec()
    assert s.plan_job() is None and "no latent" in s.plan_error() and s.estimate() is None


def test_the_spec_is_the_inputs():
    s = _session(seed=9, noise="shared")
    spec = s.spec()
    assert (spec.steps, spec.seed, spec.noise, spec.family.name, spec.source_name) == (6, 9, "shared", "SD15",
                                                                                      "in.latent")
    assert spec.run_params is s.params and spec.model_source == "SD15"


def test_planned_once_for_the_current_inputs():
    s = _session()
    job = s.plan_job()
    answer = job()
    s.set_params(s.params.replace(steps=7))
    assert not s.take_plan(*answer)  # planned for inputs that are gone: dropped
    assert s.plan() is None and s.estimate() is None
    s.set_params(s.params.replace(steps=6))  # equal parameters again: the answer fits once more
    assert s.take_plan(*answer) and s.plan() is answer[1]
    assert s.estimate().n_frames == 6 and s.ensure_plan() is answer[1]
    s.set_params(s.params.replace(steps=20, start_at_step=30, end_at_step=40))
    with pytest.raises(core.BadParameterError, match="nothing to do"):
        s.ensure_plan()
    assert "nothing to do" in s.plan_error()


def test_currency_compares_params_and_input_identity():
    s = _session()
    assert not s.is_current() and s.current_result() is None
    text = _run(s)
    assert "6 latents [6, 4, 8, 8]" in text and s.is_current() and not s.is_stale()
    s.set_params(s.params.replace(seed=1))
    assert not s.is_current() and s.is_stale()
    s.set_params(s.params.replace(seed=0))  # the same values again: current again
    assert s.is_current()
    same = Latent(s.latent.tensor.clone())
    s.set_latent(same)  # another file, even with the same values, is another input
    assert not s.is_current()


def test_a_detection_in_use_is_an_input():
    s = _session()
    det = core.detect.resolve_model("SD15")

    @dataclass
    class Model:
        source: str
        detection: object

        @property
        def family(self):
            return self.detection.family

    _run(s)
    s.set_model(Model("my_sd15.safetensors", det))
    assert not s.is_current() and s.model_source() == "my_sd15.safetensors"
    s.set_params(s.params.replace(family="SDXL"))  # another family sets the checkpoint aside
    assert s.model_in_use() is None and s.model_source() == "SDXL"


def test_begin_run_checks_the_memory_cap():
    s = _session(steps=50)
    s.take_plan(*s.plan_job()())
    s.memory_cap = 1000
    with pytest.raises(core.ResourceError, match="over the memory cap"):
        s.begin_run()
    assert "over the memory cap" in s.memory_warning()
    s.set_params(s.params.replace(steps=20, start_at_step=30, end_at_step=40))
    s.take_plan(*s.plan_job()())
    with pytest.raises(core.BadParameterError, match="nothing to do"):
        s.begin_run()


def test_opening_an_export_restores_it_and_a_latent_finds_its_family():
    s = Session()
    u = {"family": "SDXL", "sampler": "dpm_2", "scheduler": "karras", "steps": 30, "seed": 77}
    text = s.open_latent(Latent(torch.zeros(1, 4, 8, 8), name="x.latent", unsampler=u))
    assert "Unsampler export of SDXL" in text
    assert (s.params.family, s.params.sampler, s.params.steps, s.params.seed) == ("SDXL", "dpm_2", 30, 77)
    text = s.open_latent(Latent(torch.zeros(1, 16, 8, 8), name="f.latent"))
    assert "does not fit SDXL" in text and s.params.family == "SDXL"  # never switched without a word
    # a file's family that does not fit its own latent is not taken
    s2 = Session()
    s2.open_latent(Latent(torch.zeros(1, 4, 8, 8), unsampler={"family": "Flux", "steps": 3}))
    assert s2.params.family == "SD15" and s2.params.steps == 10000


def test_progress_and_eta():
    s = _session()
    s.run_started(100.0)
    assert s.progress(0, 10, 100.0) == ("0/10 frames", "")
    assert s.progress(5, 10, 110.0) == ("5/10 frames", "ETA 10 s")
    assert s.progress(10, 10, 120.0) == ("10/10 frames", "")
    assert duration(75) == "1 min 15 s" and duration(3700) == "1 h 01 min"
    # a slow start (3 s before the first report) does not inflate the rate of the frames that follow
    s.run_started(200.0)
    assert s.progress(100, 10000, 203.0)[1] == ""
    assert s.progress(1100, 10000, 204.0) == ("1100/10000 frames", "ETA 9 s")  # 1000 frames/s; not 32 s


def test_memory_warning():
    assert memory_warning(100, 1000, 0) == ""
    assert "too big for memory" in memory_warning(950, 1000, 0)
    assert "memory cap" in memory_warning(100, None, 50)


def test_export_source_offers_the_current_result_only():
    s = _session()
    src = s.export_source()
    assert src.result is None and src.spec is not None and src.stem == "in_SD15_simple_6"
    _run(s)
    src = s.export_source()
    assert src.has_frames and src.plan is s.result.plan and src.n_frames == 6 and src.batch == 1
    s.set_params(s.params.replace(steps=8))
    src = s.export_source()
    assert src.result is None and src.plan is None and src.spec.steps == 8
    s.latent = None
    assert "no latent" in s.export_source().spec_error


def test_a_latent_that_does_not_fit_keeps_the_family_and_offers_those_that_fit():
    s = Session()
    text = s.open_latent(Latent(torch.zeros(1, 16, 8, 8), name="flux.latent"))
    fit = s.latent_fit()
    assert s.params.family == "SD15" and not fit.fits and fit.remembered is None
    assert "does not fit SD 1.5" in text or "does not fit " + core.get_family("SD15").display_name in text
    assert "Flux" in fit.choices and "SD3" in fit.choices and "SD15" not in fit.choices
    assert all(core.get_family(n).latent.channels == 16 for n in fit.choices)
    # the user picks Flux: it is used and remembered for 16-channel latents
    assert "Flux" in s.choose_family_for_latent("Flux")
    assert s.params.family == "Flux" and s.latent_fit().fits
    assert s.family_choices == {"16ch-4d": "Flux"}
    # back on SD1.5, the next 16-channel latent goes to the remembered choice, and says so
    s.set_params(s.params.replace(family="SD15"))
    text = s.open_latent(Latent(torch.zeros(1, 16, 4, 4), name="other.latent"))
    assert s.params.family == "Flux" and "your last choice" in text
    assert s.latent_fit().choices[0] == "Flux"  # the remembered one first
    # a 4-channel latent on Flux has no remembered choice: the family stays
    s.open_latent(Latent(torch.zeros(1, 4, 4, 4), name="sd.latent"))
    assert s.params.family == "Flux" and not s.latent_fit().fits and "SD15" in s.latent_fit().choices


def test_a_checkpoint_is_never_switched_by_a_latent():
    s = Session()
    s.family_choices[fit_key((1, 16, 8, 8))] = "Flux"
    s.set_model(core.inputs.DetectedModel("SDXL", core.detect.resolve_model("SDXL")))
    text = s.open_latent(Latent(torch.zeros(1, 16, 8, 8), name="flux.latent"))
    fit = s.latent_fit()
    assert s.params.family == "SDXL" and s.model_in_use() is not None
    assert not fit.fits and "checkpoint" in fit.message and "checkpoint" in text
    assert "set aside" in s.choose_family_for_latent("Flux") and s.model_in_use() is None


def test_latent_fit_rule():
    sd15, wan = core.get_family("SD15"), core.get_family("WAN21_T2V")
    assert latent_fit((1, 4, 8, 8), sd15).fits
    f = latent_fit((1, 16, 3, 8, 8), sd15)
    assert not f.fits and "WAN21_T2V" in f.choices and all(core.get_family(n).latent.ndim == 5 for n in f.choices)
    assert not latent_fit((1, 4, 8, 8), wan).fits
    none = latent_fit((1, 7, 8, 8), sd15)
    assert none.choices == () and "no known family" in none.message
    assert latent_fit((1, 4, 8, 8), sd15, remembered="Flux").remembered is None  # a choice that does not fit


def test_messages_name_families_as_the_app_shows_them():
    from unsampler_gui.core.job import check_latent_for_family
    with pytest.raises(core.BadParameterError) as e:
        check_latent_for_family(torch.zeros(1, 4, 8, 8), core.get_family("SD35_large"))
    text = str(e.value)
    assert "but SD3.5 Large expects" in text and "Stable Diffusion 1.5 (SD15)" in text  # the --model name too
    s = Session(params.default().replace(family="WAN21_T2V"))
    text = s.open_latent(Latent(torch.zeros(1, 4, 8, 8)))
    assert "WAN21_T2V" not in text and core.get_family("WAN21_T2V").display_name in text
