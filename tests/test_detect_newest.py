"""Detection of ComfyUI master's families (783545f6) on real-sized checkpoints, and never a wrong guess."""
from __future__ import annotations

import json
import os

import pytest

from unsampler_gui.core.detect import detect_model
from unsampler_gui.core.detect.model_config import MODEL_CLASSES
from unsampler_gui.core.detect.model_type import VARIANTS
from unsampler_gui.core.detect.rules import detect_architecture
from unsampler_gui.core.detect.state_dict import KeyIndex
from unsampler_gui.core.errors import BadFileError
from unsampler_gui.core.families import family_names, get_family

try:
    import ckpt_factory as cf
except ImportError:  # tests/ imported as a package
    from tests import ckpt_factory as cf

REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference")
with open(os.path.join(REF_DIR, "families_newest.json")) as _f:
    NEWEST = json.load(_f)
NEW_FAMILIES = list(NEWEST["detected_families"])
NETWORKS = cf.network_families()


def _index(entries: dict, metadata=None) -> KeyIndex:
    shapes = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v[1]) for k, v in entries.items()}
    return KeyIndex(shapes, {}, "test", dict(metadata or {}))


def _detect(entries: dict, metadata=None):
    """The family detected from a key set, or None for a refusal."""
    try:
        return detect_architecture(_index(entries, metadata)).family
    except BadFileError:
        return None


def _names(family: str) -> set:
    return {family, get_family(family).comfy_class}


# ----------------------------------------------------------------------------- ComfyUI's tables

def test_model_classes_are_comfyuis_in_order():
    sm = NEWEST["supported_models"]
    assert [mc.comfy_class for mc in MODEL_CLASSES] == NEWEST["supported_models_order"]
    for mc in MODEL_CLASSES:
        assert mc.match == sm[mc.comfy_class]["unet_config_match"], mc.comfy_class
        assert list(mc.required_keys) == sm[mc.comfy_class]["required_keys"], mc.comfy_class


def test_every_registry_family_belongs_to_its_class():
    by_class = {}
    for mc in MODEL_CLASSES:
        for fam in mc.families:
            by_class[fam] = mc.comfy_class
    assert set(by_class) == set(family_names())
    for name in family_names():
        assert get_family(name).comfy_class == by_class[name], name
    for name, f in NEWEST["detected_families"].items():
        assert by_class[name] == f["supported_models_class"], name


def test_variant_values_are_comfyuis_detected_configs():
    for cls, entries in VARIANTS.items():
        for fam, want in entries:
            cfg = get_family(fam).detection["unet_config"]
            for k, v in want.items():
                assert cfg.get(k) == v, (cls, fam, k)


# ----------------------------------------------------------------------------- real checkpoints

@pytest.mark.parametrize("prefix", [cf.PREFIX, ""], ids=["checkpoint", "unet_only"])
@pytest.mark.parametrize("family", NETWORKS)
def test_whole_network_is_detected(tmp_path, family, prefix):
    entries = cf.checkpoint_entries(family, prefix=prefix)
    assert len(entries) >= 140
    path = tmp_path / "real.safetensors"
    cf.write_safetensors(path, entries, cf.network_metadata(family))
    det = detect_model(path)
    want = "Lumina2" if family == "Lumina2_new_keys" else family  # the same network as Lumina2
    assert det.family == want
    assert det.comfy_class == cf.network_class(family)  # what ComfyUI's own detection said for these keys
    assert det.family_obj.sampling == get_family(family).sampling


@pytest.mark.parametrize("family", [f for f in NEW_FAMILIES if f in NETWORKS])
def test_whole_network_beside_text_encoders_and_vae(tmp_path, family):
    entries = {**cf.companions(family), **cf.checkpoint_entries(family)}
    path = tmp_path / "aio.safetensors"
    cf.write_safetensors(path, entries, cf.network_metadata(family))
    det = detect_model(path)
    assert det.family in _names(family)
    text = " ".join(det.evidence)
    assert "VAE (`first_stage_model.*`)" in text
    assert "whole network" in text or family in ("LongCatImage", "FluxInpaint", "Lens", "Krea2", "Ideogram4",
                                                  "ErnieImage", "Boogu", "MageFlow", "JoyImage", "HiDreamO1",
                                                  "PixelDiTT2I", "MiniMaxH3")


@pytest.mark.parametrize("what", ["full_fake_checkpoint_keys", "minimal_detection_keys"])
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_reference_key_sets_are_detected(family, what):
    """The key sets ComfyUI was run on for families_newest.json give the family (or its class)."""
    f = NEWEST["detected_families"][family]
    keys = f[what]
    shapes = {m["key"]: tuple(m["shape"]) for m in keys} if isinstance(keys, list) else keys
    entries = {k: ("F16", tuple(s)) for k, s in shapes.items()}
    assert _detect(entries, f.get("safetensors_metadata")) in _names(family)


@pytest.mark.parametrize("family, said_before", [
    ("Flux2", "Flux"), ("Flux2_Klein_4B", "FluxSchnell"), ("Flux2_Klein_9B", "FluxSchnell"), ("ZImage", "Lumina2"),
    ("ZImagePixelSpace", "Lumina2"), ("LTXAV", "LTXV"), ("LongCatImage", "FluxSchnell"), ("Lens", "QwenImage"),
    ("MageFlow", "QwenImage"), ("WAN_Animate2", "WAN21_T2V"), ("WAN21_CausalAR_T2V", "WAN21_T2V"),
])
def test_issue_12_misreadings_are_fixed(family, said_before):
    det = _detect(cf.checkpoint_entries(family), cf.network_metadata(family))
    assert det == family != said_before


def test_metadata_config_picks_the_wan_class_and_its_shift():
    entries = cf.checkpoint_entries("WAN21_CausalAR_T2V")
    arch = detect_architecture(_index(entries, cf.network_metadata("WAN21_CausalAR_T2V")))
    assert arch.family == "WAN21_CausalAR_T2V" and get_family(arch.family).sampling.shift == 5.0
    assert any("metadata: `config`" in e for e in arch.evidence)
    assert _detect(entries) == "WAN21_T2V"  # without the metadata ComfyUI reads the same keys as Wan 2.1 T2V
    assert _detect(cf.checkpoint_entries("WAN_Animate2")) == "WAN21_I2V"


@pytest.mark.parametrize("metadata, words", [
    ({"config": "{not json"}, "not valid JSON"),
    ({"config": json.dumps({"transformer": {"image_model": "flux"}})}, "contradictory file: .*says image_model 'flux'"),
    ({"config": json.dumps({"transformer": [1, 2]})}, "not an object"),
])
def test_bad_metadata_config_is_refused(metadata, words):
    with pytest.raises(BadFileError, match=words):
        detect_architecture(_index(cf.checkpoint_entries("WAN21_T2V"), metadata))


# ----------------------------------------------------------------------------- refusals name the right model

@pytest.mark.parametrize("change, words", [
    (lambda e: e.pop(cf.PREFIX + "llm_adapter.blocks.0.cross_attn.q_proj.weight"),
     r"LLM adapter \(`llm_adapter\..*`\) but not `llm_adapter.blocks.0.cross_attn.q_proj.weight`"),
    (lambda e: [e.pop(k) for k in [k for k in e if "llm_adapter" in k]],
     r"unsupported model: this is Cosmos Predict2 text-to-image \(ComfyUI class CosmosT2IPredict2\)"),
], ids=["anima_without_marker", "cosmos_predict2"])
def test_anima_and_cosmos_predict2_are_told_apart(change, words):
    entries = cf.checkpoint_entries("Anima")
    change(entries)
    with pytest.raises(BadFileError, match=words):
        detect_architecture(_index(entries))


def test_hunyuan_video_15_is_named_and_the_refiner_is_refused_as_itself():
    assert _detect(cf.checkpoint_entries("HunyuanVideo15")) == "HunyuanVideo15"
    refiner = {cf.PREFIX + "txt_in.individual_token_refiner.blocks.0.norm1.weight": ("F16", (3584,)),
               cf.PREFIX + "img_in.proj.weight": ("F16", (3584, 64, 1, 1, 1)),
               cf.PREFIX + "final_layer.linear.weight": ("F16", (64, 3584)),
               cf.PREFIX + "txt_in.input_embedder.weight": ("F16", (3584, 3584))}
    with pytest.raises(BadFileError, match=r"this is HunyuanImage 2.1 refiner \(ComfyUI class HunyuanImage21Refiner\)"):
        detect_architecture(_index(refiner))


def test_refusals_say_how_to_go_on():
    entries = cf.checkpoint_entries("Flux2_Klein_4B")
    entries[cf.PREFIX + "img_in.weight"] = ("BF16", (2048, 128))  # a hidden size no Flux2 variant has
    entries[cf.PREFIX + "txt_in.weight"] = ("BF16", (2048, 7680))
    with pytest.raises(BadFileError) as e:
        detect_architecture(_index(entries))
    msg = str(e.value)
    assert "Flux2_Klein_4B has hidden_size 3072" in msg
    assert "--model" in msg and "--families FILE" in msg


def test_unknown_unet_names_the_nearest_class():
    entries = cf.minimal_entries("SD15")
    entries[cf.PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = ("F16", (320, 512))
    with pytest.raises(BadFileError, match=r"unknown architecture: .*nearest: SD15 \(context_dim: wants 768, "
                                           r"the keys give 512\).*--model SD15"):
        detect_architecture(_index(entries))


def test_older_lumina2_rule_only_for_a_few_keys():
    assert _detect(cf.minimal_entries("Lumina2")) == "Lumina2"
    zimage = {cf.PREFIX + "cap_embedder.1.weight": ("F16", (3840, 2560))}
    with pytest.raises(BadFileError, match="incomplete model: found `cap_embedder.1.weight`.*k_norm"):
        detect_architecture(_index(zimage))


# ----------------------------------------------------------------------------- never a wrong guess

def _one_per_branch() -> list:
    """One family of each detection branch (the first marker of ComfyUI's arm that reads it)."""
    seen, out = set(), []
    for fam in family_names():
        arm = _branch_of(fam)
        if arm not in seen:
            seen.add(arm)
            out.append(fam)
    return out


def _branch_of(family: str) -> str:
    from unsampler_gui.core.detect.state_dict import KeyView
    from unsampler_gui.core.detect.unet_config import find_branch
    view = KeyView(_index(cf.minimal_entries(family)), cf.PREFIX)
    return find_branch(view).name


def _perturbations(family: str):
    """(what, entries) for: each marker key dropped, each decisive shape changed, other families' markers added."""
    base = cf.checkpoint_entries(family)
    minimal = get_family(family).detection["minimal_keys"]
    for m in minimal:
        e = dict(base)
        e.pop(m["key"], None)
        yield f"drop {m['key']}", e
        if m.get("shape_matters_for_family"):
            for axis in range(len(m["shape"])):
                for factor in (2, 0.5):
                    shape = list(m["shape"])
                    shape[axis] = max(1, int(shape[axis] * factor))
                    yield f"{m['key']} shape {shape}", {**base, m["key"]: ("BF16", tuple(shape))}
    for other in OTHERS:
        if other == family:
            continue
        e = dict(base)
        for m in get_family(other).detection["minimal_keys"]:
            e.setdefault(m["key"], ("BF16", tuple(m["shape"])))
        yield f"add {other}'s markers", e


OTHERS = _one_per_branch()


@pytest.mark.parametrize("family", NETWORKS)
def test_perturbed_checkpoints_give_the_family_or_a_refusal(family):
    meta = cf.network_metadata(family)
    want = _names(family) | ({"Lumina2"} if family == "Lumina2_new_keys" else set())
    assert _detect(cf.checkpoint_entries(family), meta) in want
    wrong = []
    count = 0
    for what, entries in _perturbations(family):
        got = _detect(entries, meta)
        count += 1
        if got is not None and got not in want:
            wrong.append(f"{what} -> {got}")
    assert count > 10
    assert not wrong, wrong
