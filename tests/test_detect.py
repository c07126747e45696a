"""Model detection: a checkpoint names its family from its header, without loading its weights."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from unsampler_gui.core.detect import Detection, detect_model, resolve_model
from unsampler_gui.core.detect.model_config import MODEL_CLASSES
from unsampler_gui.core.errors import BadFileError, BadParameterError
from unsampler_gui.core.families import family_names, get_family

try:
    import ckpt_factory as cf
except ImportError:  # tests/ imported as a package
    from tests import ckpt_factory as cf

FAMILIES = family_names()
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference",
                         "families.json")


def _write(tmp_path, name, entries, metadata=None):
    path = tmp_path / name
    cf.write_safetensors(path, entries, metadata)
    return path


# ----------------------------------------------------------------------------- every family

def test_registry_is_the_reference_list():
    """The registry holds the 24 families of families.json and the 39 of families_newest.json."""
    with open(REFERENCE) as f:
        ref = json.load(f)
    with open(REFERENCE.replace("families.json", "families_newest.json")) as f:
        newest = json.load(f)
    assert set(FAMILIES) == set(ref["detected_families"]) | set(newest["detected_families"])


def _names(family: str) -> set:
    """What a file of ``family`` may be reported as: the family, or its ComfyUI class when the keys
    (ComfyUI's minimal set) do not hold what tells the class's variants apart."""
    return {family, get_family(family).comfy_class}


@pytest.mark.parametrize("family", FAMILIES)
def test_minimal_keys_detect_the_family(tmp_path, family):
    fam = get_family(family)
    det = detect_model(_write(tmp_path, "m.safetensors", cf.minimal_entries(family),
                              fam.detection.get("safetensors_metadata")))
    assert det.kind == "checkpoint"
    assert det.family in _names(family)
    fam = get_family(det.family)
    if det.family != family:  # reported as its class: the class's families share one sampling
        assert (get_family(family).sampling, get_family(family).latent) == (fam.sampling, fam.latent)
    assert det.prediction == fam.sampling.prediction
    assert det.model_type == fam.model_type
    assert det.comfy_class == fam.comfy_class
    assert (det.family_obj.sampling, det.family_obj.latent) == (fam.sampling, fam.latent)
    assert det.shift == (fam.sampling.shift if fam.sampling.has_shift else None)  # ModelSamplingAV too


@pytest.mark.parametrize("family", FAMILIES)
def test_fullish_checkpoint_with_text_encoder_and_vae(tmp_path, family):
    det = detect_model(_write(tmp_path, "full.safetensors", cf.fullish_entries(family),
                              get_family(family).detection.get("safetensors_metadata")))
    assert det.family in _names(family)
    where = det.evidence[1]
    assert "`model.diffusion_model.`" in where and "VAE (`first_stage_model.*`)" in where


@pytest.mark.parametrize("family", FAMILIES)
def test_diffusion_model_only_file_without_prefix(tmp_path, family):
    det = detect_model(_write(tmp_path, "unet.sft", cf.minimal_entries(family, prefix=""),
                              get_family(family).detection.get("safetensors_metadata")))
    assert det.family in _names(family)
    assert "without a prefix" in det.evidence[1]


@pytest.mark.parametrize("prefix", ["model.model.", "net."])
def test_comfyui_other_prefixes(tmp_path, prefix):
    entries = cf.ldm_unet_entries(get_family("SDXL").detection["unet_config"], prefix=prefix)
    assert detect_model(_write(tmp_path, "x.safetensors", entries)).family == "SDXL"


@pytest.mark.parametrize("family", ["SD15", "SD20", "SDXL", "SDXLRefiner", "SSD1B", "SVD_img2vid"])
def test_full_unet_config_matches_comfyui(tmp_path, family):
    """The UNet walk recovers ComfyUI's unet_config from a complete generated UNet."""
    from unsampler_gui.core.detect.state_dict import KeyIndex, KeyView
    from unsampler_gui.core.detect.unet_config_ldm import unet_config
    want = get_family(family).detection["unet_config"]
    entries = cf.ldm_unet_entries(want)
    index = KeyIndex({k: v[1] for k, v in entries.items()}, {}, "test")
    got = unet_config(KeyView(index, cf.PREFIX))
    for key in ("in_channels", "out_channels", "model_channels", "adm_in_channels", "num_res_blocks", "channel_mult",
                "transformer_depth", "transformer_depth_middle", "use_linear_in_transformer", "context_dim",
                "use_temporal_attention", "use_temporal_resblock"):
        assert got[key] == want[key], key


def test_class_match_values_equal_comfyui_tables():
    """The match dicts derived from the registry (and the literal ones) are ComfyUI's own."""
    if not os.path.exists(REFERENCE):
        pytest.skip("reference data not available")
    with open(REFERENCE) as f:
        ref = json.load(f)["supported_models"]
    checked = 0
    for mc in MODEL_CLASSES:
        if mc.comfy_class in ref:
            assert mc.match_dict() == ref[mc.comfy_class]["unet_config_match"], mc.comfy_class
            assert list(mc.required_keys) == ref[mc.comfy_class]["required_keys"], mc.comfy_class
            checked += 1
    assert checked >= 50
    order = [mc.comfy_class for mc in MODEL_CLASSES if mc.comfy_class in ref]
    ref_order = [c for c in json.load(open(REFERENCE))["supported_models_order"] if c in order]
    assert order == ref_order


# ----------------------------------------------------------------------------- values and variants

def _sd2(tmp_path, std: float, in_channels: int = 4, dtype=np.float16):
    entries = cf.minimal_entries("SD20")
    key = cf.PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    entries[key] = (np.random.default_rng(1).standard_normal(320) * std).astype(dtype)
    if in_channels != 4:
        entries[cf.PREFIX + "input_blocks.0.0.weight"] = ("F16", (320, in_channels, 3, 3))
    return detect_model(_write(tmp_path, f"sd2_{std}_{in_channels}.safetensors", entries))


def test_sd2_v_prediction_is_read_from_the_norm_bias_values(tmp_path):
    assert _sd2(tmp_path, 0.5).family == "SD21_768_v"
    assert _sd2(tmp_path, 0.5).prediction == "V_PREDICTION"
    assert _sd2(tmp_path, 0.01).family == "SD20"
    assert _sd2(tmp_path, 0.5, dtype=np.float32).family == "SD21_768_v"
    inpaint = _sd2(tmp_path, 0.5, in_channels=9)
    assert inpaint.family == "SD20" and "inpainting" in " ".join(inpaint.evidence)


def test_sd2_without_the_bias_is_eps(tmp_path):
    entries = {k: v for k, v in cf.minimal_entries("SD20").items() if "output_blocks" not in k}
    det = detect_model(_write(tmp_path, "sd2.safetensors", entries))
    assert det.family == "SD20" and det.prediction == "EPS"


def test_sdxl_ztsnr_sets_zero_terminal_snr(tmp_path):
    entries = {**cf.minimal_entries("SDXL_v_pred"), "ztsnr": np.zeros((0,), np.float32)}
    det = detect_model(_write(tmp_path, "z.safetensors", entries))
    assert det.family == "SDXL_v_pred" and det.family_obj.sampling.zsnr is True
    assert det.family_obj.sampling.table_sha256 is None
    assert "zero terminal SNR" in det.display_name


def test_sdxl_edm_vpred_reads_sigma_max(tmp_path):
    entries = {**cf.minimal_entries("SDXL"), "edm_vpred.sigma_max": np.array([120.0], np.float32),
               "edm_vpred.sigma_min": np.array([0.001], np.float32)}
    det = detect_model(_write(tmp_path, "cosxl.safetensors", entries))
    s = det.family_obj.sampling
    assert det.family == "SDXL" and det.model_type == "V_PREDICTION_EDM"
    assert (s.kind, s.prediction, s.edm_sigma_max, s.sigma_data) == ("edm", "V_PREDICTION", 120.0, 1.0)
    assert s.edm_sigma_min == pytest.approx(0.001)
    assert "edm_vpred.sigma_max" in " ".join(det.evidence)


def test_sd3_medium_like_vs_sd35_large(tmp_path):
    entries = cf.minimal_entries("SD3")
    entries[cf.PREFIX + "joint_blocks.0.context_block.attn.ln_q.weight"] = ("F16", (64,))
    det = detect_model(_write(tmp_path, "sd35m.safetensors", entries))
    assert det.family == "SD3" and "share one ComfyUI class" in " ".join(det.evidence)
    assert detect_model(_write(tmp_path, "l.safetensors", cf.minimal_entries("SD35_large"))).family == "SD35_large"


def test_inpainting_unet_is_its_base_class(tmp_path):
    entries = cf.minimal_entries("SD15")
    entries[cf.PREFIX + "input_blocks.0.0.weight"] = ("F16", (320, 9, 3, 3))
    assert detect_model(_write(tmp_path, "inp.safetensors", entries)).family == "SD15"


def test_metadata_is_a_hint_that_never_overrides_keys(tmp_path):
    meta = {"modelspec.architecture": "stable-diffusion-xl-v1-base", "modelspec.prediction_type": "v"}
    det = detect_model(_write(tmp_path, "m.safetensors", cf.minimal_entries("SDXL"), meta))
    assert det.family == "SDXL" and det.prediction == "EPS"
    text = " ".join(det.evidence)
    assert "stable-diffusion-xl-v1-base" in text and "disagrees with the keys" in text


def test_evidence_names_the_deciding_keys(tmp_path):
    det = detect_model(_write(tmp_path, "f.safetensors", cf.minimal_entries("Flux")))
    text = " ".join(det.evidence)
    assert "`double_blocks.0.img_attn.norm.key_norm.scale`" in text and "guidance_embed True" in text


# ----------------------------------------------------------------------------- unsupported and incomplete

def test_hunyuan_video_without_vector_in_is_refused_not_named_hunyuan_image(tmp_path):
    """ComfyUI's rules give HunyuanImage21 (no `vector_in`), but the network's 16-channel output is not
    HunyuanImage 2.1's 64-channel latent: refused, naming what did not fit (was: "unsupported")."""
    entries = cf.minimal_entries("HunyuanVideo")
    entries.pop(cf.PREFIX + "vector_in.in_layer.weight")
    with pytest.raises(BadFileError, match=r"no exact match: .*HunyuanImage21.*16 latent channels.*has 64.*--model"):
        detect_model(_write(tmp_path, "h.safetensors", entries))


def test_wan_i2v_is_detected(tmp_path):
    """Was refused as unsupported; WAN21_I2V is a family now."""
    entries = cf.minimal_entries("WAN21_T2V")
    entries[cf.PREFIX + "img_emb.proj.0.bias"] = ("F16", (1280,))
    entries[cf.PREFIX + "patch_embedding.weight"] = ("F16", (5120, 36, 1, 2, 2))
    det = detect_model(_write(tmp_path, "i2v.safetensors", entries))
    assert (det.family, det.comfy_class) == ("WAN21_I2V", "WAN21_I2V")


def test_flux_fill_is_detected_and_cascade_b_is_unsupported(tmp_path):
    entries = cf.minimal_entries("Flux")
    entries[cf.PREFIX + "img_in.weight"] = ("F16", (3072, 384))
    assert detect_model(_write(tmp_path, "fill.safetensors", entries)).family == "FluxInpaint"
    cascade_b = {cf.PREFIX + "clf.1.weight": ("F16", (4, 320, 1, 1)),
                 cf.PREFIX + "clip_mapper.weight": ("F16", (1280, 1280)),
                 cf.PREFIX + "down_blocks.1.0.channelwise.0.weight": ("F16", (2560, 640))}
    with pytest.raises(BadFileError, match=r"unsupported model: this is Stable Cascade stage B"):
        detect_model(_write(tmp_path, "b.safetensors", cascade_b))


def test_incomplete_model_says_what_is_missing(tmp_path):
    entries = cf.minimal_entries("WAN21_T2V")
    del entries[cf.PREFIX + "head.head.weight"]
    with pytest.raises(BadFileError, match=r"incomplete model: .*`head.head.weight` is missing"):
        detect_model(_write(tmp_path, "w.safetensors", entries))


def test_unet_that_matches_no_class_is_unknown(tmp_path):
    entries = cf.minimal_entries("SD15")
    entries[cf.PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = ("F16", (320, 512))
    with pytest.raises(BadFileError, match="unknown architecture: LDM UNet .*context_dim 512"):
        detect_model(_write(tmp_path, "u.safetensors", entries))


# ----------------------------------------------------------------------------- not diffusion models

@pytest.mark.parametrize("entries, words", [
    (cf.lora_entries(), r"looks like a LoRA \(`lora_unet_\*` keys\)"),
    (cf.vae_entries(prefix=""), r"looks like a VAE \(`encoder.\*`/`decoder.\*` keys\)"),
    (cf.clip_l_entries("", layers=2), r"looks like a text encoder \(`text_model.\*` keys\)"),
    (cf.t5_entries("", blocks=2), r"looks like a text encoder \(`encoder.block.\*` keys\)"),
    (cf.upscaler_entries(), r"looks like an upscaler \(ESRGAN-style keys like `conv_first.\*`\)"),
    (cf.old_esrgan_entries(), r"looks like an upscaler \(ESRGAN-style keys like `model.1.sub.\*`\)"),
    (cf.controlnet_entries(), r"looks like a ControlNet"),
    (cf.controlnet_entries(prefix=""), r"looks like a ControlNet"),
], ids=["lora", "vae", "clip", "t5", "realesrgan", "esrgan", "controlnet", "controlnet_bare"])
def test_other_kinds_of_files_are_named(tmp_path, entries, words):
    with pytest.raises(BadFileError, match="not a diffusion model checkpoint: " + words):
        detect_model(_write(tmp_path, "x.safetensors", entries))


def test_unknown_architecture_lists_prefixes(tmp_path):
    entries = {f"foo.layer{i}.weight": ("F16", (4, 4)) for i in range(3)} | {"bar.w": ("F16", (2,))}
    with pytest.raises(BadFileError, match=r"unknown architecture: .*foo\.\* \(3\), bar\.\* \(1\)"):
        detect_model(_write(tmp_path, "u.safetensors", entries))


def test_diffusers_layout_weights_file_points_to_the_folder(tmp_path):
    entries = {"conv_in.weight": ("F16", (320, 4, 3, 3)),
               "down_blocks.0.attentions.0.proj_in.weight": ("F16", (320, 320))}
    with pytest.raises(BadFileError, match="diffusers-layout weights .*open the diffusers folder"):
        detect_model(_write(tmp_path, "diffusion_pytorch_model.safetensors", entries))


def test_errors_name_the_file(tmp_path):
    with pytest.raises(BadFileError, match=r"^my_lora\.safetensors: not a diffusion model checkpoint"):
        detect_model(_write(tmp_path, "my_lora.safetensors", cf.lora_entries()))


def test_required_top_level_keys_pick_zero123(tmp_path):
    """Stable_Zero123 needs top-level `cc_projection.*` keys (as ComfyUI checks the whole state dict)."""
    entries = cf.minimal_entries("SD15")
    entries[cf.PREFIX + "input_blocks.0.0.weight"] = ("F16", (320, 8, 3, 3))
    with pytest.raises(BadFileError, match="SD1.5 InstructPix2Pix"):
        detect_model(_write(tmp_path, "ip2p.safetensors", entries))
    entries["cc_projection.weight"], entries["cc_projection.bias"] = ("F16", (768, 772)), ("F16", (768,))
    with pytest.raises(BadFileError, match="Stable Zero123"):
        detect_model(_write(tmp_path, "z123.safetensors", entries))


def test_no_tensors(tmp_path):
    with pytest.raises(BadFileError, match="holds no tensors"):
        detect_model(_write(tmp_path, "e.safetensors", {}, {"a": "b"}))


@pytest.mark.parametrize("make, words", [
    (lambda p: cf.write_raw_header(p, b'{"a": {"dtype": "F16", "sha', declared_len=4000), "runs past the end"),
    (lambda p: cf.write_raw_header(p, b'{"a": {"dtype": "F16"', ), "not valid JSON"),
    (lambda p: cf.write_raw_header(p, b'{"\xff\xfe": 1}'), "not UTF-8"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"\x01\x02"), "too short"),
    (lambda p: cf.write_raw_header(p, json.dumps({"a": {"dtype": "F16", "shape": [4096, 4096],
                                                        "data_offsets": [0, 33554432]}}).encode()), "truncated"),
], ids=["header_past_eof", "bad_json", "not_utf8", "empty", "tiny", "data_truncated"])
def test_corrupt_safetensors(tmp_path, make, words):
    p = tmp_path / "bad.safetensors"
    make(p)
    with pytest.raises(BadFileError, match=words):
        detect_model(p)


def test_missing_path_and_folder_without_configs(tmp_path):
    with pytest.raises(BadFileError, match="no such file"):
        detect_model(tmp_path / "nope.safetensors")
    with pytest.raises(BadFileError, match="not a diffusers folder"):
        detect_model(tmp_path)


def test_gguf_is_refused_clearly(tmp_path):
    p = tmp_path / "m.gguf"
    p.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 32)
    with pytest.raises(BadFileError, match="GGUF files are not supported"):
        detect_model(p)


# ----------------------------------------------------------------------------- pickles

class _Payload:
    """A pickle that runs a shell command when unpickled by torch.load(weights_only=False) or pickle.load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _small_sd(family: str) -> dict:
    """Real (tiny-storage) tensors with the family's minimal shapes: expanded views save 1 element each."""
    out = {}
    for name, spec in cf.minimal_entries(family).items():
        if isinstance(spec, np.ndarray):
            out[name] = torch.from_numpy(spec.astype(np.float32)).to(torch.float16)
        else:
            out[name] = torch.zeros(1, dtype=torch.float16).expand(*spec[1]) if spec[1] else torch.zeros(())
    return out


def test_payload_is_real(tmp_path):
    """The malicious fixture does run code under a plain unpickler (so the refusal tests mean something)."""
    marker = tmp_path / "ran"
    data = pickle.dumps(_Payload(marker))
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=data, check=True)
    assert marker.exists()


@pytest.mark.parametrize("container", ["zip", "bare"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    if container == "zip":
        torch.save({"state_dict": _small_sd("SD15"), "x": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"state_dict": {}, "x": _Payload(marker)}))
    with pytest.raises(BadFileError, match=r"refusing to load: the pickle wants to call (posix|nt)\.system"):
        detect_model(path)
    assert not marker.exists()


def test_pickle_eval_and_getattr_tricks_are_refused(tmp_path):
    class Eval:
        def __reduce__(self):
            return (eval, ("__import__('os').getcwd()",))

    class GetAttr:
        def __reduce__(self):
            return (getattr, (int, "real"))

    for i, payload in enumerate((Eval(), GetAttr())):
        p = tmp_path / f"e{i}.pt"
        torch.save({"a": payload}, p)
        with pytest.raises(BadFileError, match=r"wants to call builtins\.(eval|getattr)"):
            detect_model(p)


@pytest.mark.parametrize("family", ["SD15", "SDXL", "Flux", "WAN22_T2V", "SD21_768_v", "SDXL_v_pred"])
def test_zip_ckpt_state_dict_is_detected_from_keys(tmp_path, family):
    p = tmp_path / "m.ckpt"
    torch.save({"state_dict": _small_sd(family), "global_step": 10, "epoch": 1}, p)
    det = detect_model(p)
    assert det.family == family and det.container == "torch zip pickle"


def test_legacy_torch_format_and_bare_state_dict(tmp_path):
    p = tmp_path / "legacy.pth"
    torch.save(_small_sd("SD21_768_v"), p, _use_new_zipfile_serialization=False)
    det = detect_model(p)
    assert det.family == "SD21_768_v" and det.container == "legacy torch pickle"


def test_lightning_objects_are_inert(tmp_path, monkeypatch):
    """Training state beside the weights (Lightning callbacks, numpy scalars) is recorded, never run."""
    mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self):
            self.best = np.float64(0.5)

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = mod.__name__, "ModelCheckpoint"
    mod.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name, types.ModuleType(name)))
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    p = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": _small_sd("SD15"), "callbacks": {"cb": ModelCheckpoint()}}, p)
    assert detect_model(p).family == "SD15"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_non_dict_pickle_and_torchscript_are_refused(tmp_path):
    p = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], p)
    with pytest.raises(BadFileError, match="not a state dict"):
        detect_model(p)
    ts = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), ts)
    with pytest.raises(BadFileError, match="TorchScript"):
        detect_model(ts)


def test_corrupt_zip_and_pickle(tmp_path):
    p = tmp_path / "bad.ckpt"
    p.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(BadFileError, match="corrupt zip"):
        detect_model(p)
    q = tmp_path / "bad.pt"
    q.write_bytes(b"\x80\x02garbage")
    with pytest.raises(BadFileError, match="pickle"):
        detect_model(q)


# ----------------------------------------------------------------------------- diffusers folders

def _diffusers(tmp_path, pipeline, component=None, config=None, scheduler=None, name="pipe"):
    root = tmp_path / name
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    if component:
        (root / component).mkdir()
        (root / component / "config.json").write_text(json.dumps(config or {}))
    if scheduler:
        (root / "scheduler").mkdir()
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return root


@pytest.mark.parametrize("pipeline, component, config, scheduler, family, prediction, shift", [
    ("StableDiffusionPipeline", "unet", {"cross_attention_dim": 768}, {"prediction_type": "epsilon"},
     "SD15", "EPS", None),
    ("StableDiffusionPipeline", "unet", {"cross_attention_dim": 768}, {"prediction_type": "v_prediction"},
     "SD15", "V_PREDICTION", None),
    ("StableDiffusionPipeline", "unet", {"cross_attention_dim": 1024}, {"prediction_type": "v_prediction"},
     "SD21_768_v", "V_PREDICTION", None),
    ("StableDiffusionXLPipeline", "unet", {"cross_attention_dim": 2048}, {"prediction_type": "epsilon"},
     "SDXL", "EPS", None),
    ("StableDiffusionXLPipeline", "unet", {"cross_attention_dim": 2048}, {"prediction_type": "v_prediction"},
     "SDXL_v_pred", "V_PREDICTION", None),
    ("StableDiffusionXLImg2ImgPipeline", "unet", {"cross_attention_dim": 1280}, {}, "SDXLRefiner", "EPS", None),
    ("StableDiffusionXLPipeline", "unet", {"cross_attention_dim": 2048},
     {"_class_name": "EDMDPMSolverMultistepScheduler", "sigma_data": 0.5}, "PlaygroundV2_5", "EDM", None),
    ("StableDiffusion3Pipeline", "transformer", {"num_layers": 24}, {"shift": 3.0}, "SD3", "CONST", 3.0),
    ("StableDiffusion3Pipeline", "transformer", {"num_layers": 38}, {"shift": 3.0}, "SD35_large", "CONST", 3.0),
    ("FluxPipeline", "transformer", {"guidance_embeds": True, "in_channels": 64},
     {"shift": 3.0, "use_dynamic_shifting": True}, "Flux", "CONST", 1.15),
    ("FluxPipeline", "transformer", {"guidance_embeds": False}, {"shift": 1.0}, "FluxSchnell", "CONST", 1.0),
    ("WanPipeline", "transformer", {"out_channels": 16}, {"flow_shift": 5.0}, "WAN21_T2V", "CONST", 5.0),
    ("WanPipeline", "transformer", {"out_channels": 48}, {}, "WAN22_T2V", "CONST", 8.0),
    ("HunyuanVideoPipeline", "transformer", {}, {"shift": 7.0}, "HunyuanVideo", "CONST", 7.0),
    ("LTXPipeline", "transformer", {}, {}, "LTXV", "CONST", 2.37),
    ("MochiPipeline", "transformer", {}, {}, "GenmoMochi", "CONST", 6.0),
    ("StableCascadePriorPipeline", "prior", {}, {}, "Stable_Cascade_C", "EPS", 2.0),
    ("QwenImagePipeline", "transformer", {}, {"use_dynamic_shifting": True}, "QwenImage", "CONST", 1.15),
])
def test_diffusers_folders(tmp_path, pipeline, component, config, scheduler, family, prediction, shift):
    det = detect_model(_diffusers(tmp_path, pipeline, component, {"_class_name": "X", **config}, scheduler))
    assert (det.kind, det.family, det.prediction, det.shift) == ("diffusers", family, prediction, shift)
    assert pipeline in det.evidence[1]


def test_diffusers_lone_component_and_unsupported(tmp_path):
    comp = tmp_path / "transformer"
    comp.mkdir()
    (comp / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel", "guidance_embeds": False}))
    assert detect_model(comp).family == "FluxSchnell"
    with pytest.raises(BadFileError, match="Wan image-to-video"):
        detect_model(_diffusers(tmp_path, "WanImageToVideoPipeline", "transformer", {}, name="i2v"))
    with pytest.raises(BadFileError, match="not a supported model family"):
        detect_model(_diffusers(tmp_path, "KandinskyPipeline", name="k"))
    bad = _diffusers(tmp_path, "FluxPipeline", name="bad")
    (bad / "model_index.json").write_bytes(b"{not json")
    with pytest.raises(BadFileError, match="corrupt JSON"):
        detect_model(bad)


# ----------------------------------------------------------------------------- overrides and resolve

def test_overrides_apply_and_show_in_json(tmp_path):
    path = _write(tmp_path, "sd3.safetensors", cf.minimal_entries("SD3"))
    det = detect_model(path, shift=5.0)
    assert det.shift == 5.0 and det.family_obj.sampling.shift == 5.0 and det.overrides == {"shift": 5.0}
    js = det.to_json()
    assert {"kind", "family", "prediction", "shift", "evidence", "display_name", "path"} <= set(js)
    assert js["shift"] == 5.0 and js["overrides"] == {"shift": 5.0} and js["family"] == "SD3"
    json.dumps(js)
    xl = detect_model(_write(tmp_path, "xl.safetensors", cf.minimal_entries("SDXL")), prediction="v_prediction")
    assert xl.prediction == "V_PREDICTION" and xl.family == "SDXL" and xl.to_json()["prediction"] == "V_PREDICTION"
    assert "override: prediction V_PREDICTION" in " ".join(xl.evidence)


@pytest.mark.parametrize("kwargs, words", [
    ({"shift": 2.0}, "no shift to override"),
    ({"prediction": "CONST"}, "does not fit"),
    ({"shift": "abc"}, "must be a number"),
    ({"prediction": ""}, "prediction must be"),
])
def test_bad_overrides(tmp_path, kwargs, words):
    path = _write(tmp_path, "xl.safetensors", cf.minimal_entries("SDXL"))
    with pytest.raises(BadParameterError, match=words):
        detect_model(path, **kwargs)


def test_resolve_model(tmp_path):
    det = resolve_model("sdxl")
    assert (det.kind, det.family, det.path, det.prediction) == ("family", "SDXL", None, "EPS")
    assert resolve_model("Flux", shift=2.0).shift == 2.0
    assert resolve_model(get_family("WAN21_T2V")).family == "WAN21_T2V"
    path = _write(tmp_path, "m.safetensors", cf.minimal_entries("LTXV"))
    assert resolve_model(str(path)).family == "LTXV"
    assert resolve_model(path).kind == "checkpoint"
    with pytest.raises(BadFileError, match="no such file"):
        resolve_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(BadParameterError, match="unknown model family"):
        resolve_model("nonsense")
    with pytest.raises(BadParameterError):
        resolve_model(42)
    assert isinstance(det, Detection)


# ----------------------------------------------------------------------------- speed and hygiene

def test_big_sparse_sdxl_is_detected_from_its_header(tmp_path):
    """A 7 GB checkpoint is detected from its header (the time it takes is in benchmarks/bench_detect.py)."""
    path = tmp_path / "sdxl_base.safetensors"
    size = cf.write_safetensors(path, cf.sdxl_checkpoint_entries())
    assert size > 6_000_000_000
    assert os.stat(path).st_blocks * 512 < 50_000_000, "the test file should be sparse"
    assert detect_model(path).family == "SDXL"


def test_core_detection_does_not_import_qt():
    code = ("import sys, unsampler_gui.core.detect as d; "
            "print(any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
