"""The sampling variants ComfyUI picks from a checkpoint's contents, after its class is known.

ComfyUI's ``model_type(state_dict)`` hooks: SD2.x is v-prediction when one norm bias is spread out
(std > 0.09); SDXL checkpoints announce EDM (Playground 2.5), V_PREDICTION_EDM or v-prediction
with top-level marker keys. SD3 and SD3.5 Large are one class; the depth tells them apart. Each
rule returns a ``Variant``: the registry family, ComfyUI's ModelType, and any sampling facts the
file adds that no registry family has (kept as ``sampling`` changes, explained in the evidence).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .refusal import refuse
from .state_dict import KeyIndex, KeyView
from ..errors import BadFileError
from ..families import get_family

#: ComfyUI's SD2 v-prediction test: population std of this bias above the threshold.
SD2_VPRED_KEY = "output_blocks.11.1.transformer_blocks.0.norm1.bias"
SD2_VPRED_STD = 0.09


@dataclass(frozen=True)
class Variant:
    family: str
    model_type: str
    evidence: tuple = ()
    sampling: dict = field(default_factory=dict)  # changes to the family's Sampling
    display_name: Optional[str] = None


def _default(family: str, *evidence: str) -> Variant:
    return Variant(family, get_family(family).model_type, tuple(evidence))


def sd2_variant(index: KeyIndex, view: KeyView, config: dict, whole: bool = False) -> Variant:
    """SD20 class: V_PREDICTION if std(norm1.bias) > 0.09 (4-channel models only), else EPS."""
    if config.get("in_channels") != 4:
        return _default("SD20", f"in_channels {config.get('in_channels')} (inpainting): never v-prediction, EPS")
    if not view.has(SD2_VPRED_KEY):
        return _default("SD20", f"no `{SD2_VPRED_KEY}`: EPS")
    values = view.values(SD2_VPRED_KEY)
    if values is None or values.size == 0:
        return _default("SD20", f"could not read `{SD2_VPRED_KEY}` ({index.container}): assuming EPS; "
                                "set the prediction override if this is a 768-v model")
    std = float(values.std())
    if std > SD2_VPRED_STD:
        return _default("SD21_768_v", f"std of `{SD2_VPRED_KEY}` is {std:.3f} > {SD2_VPRED_STD}: V_PREDICTION")
    return _default("SD20", f"std of `{SD2_VPRED_KEY}` is {std:.3f} <= {SD2_VPRED_STD}: EPS")


def _scalar(index: KeyIndex, key: str) -> Optional[float]:
    values = index.values(key)
    if values is None or values.size != 1:
        return None
    return float(values.reshape(-1)[0])


def _edm_vpred(index: KeyIndex) -> Variant:
    """SDXL + `edm_vpred.sigma_max`: ModelSamplingContinuousEDM with V_PREDICTION, sigma_data 1."""
    sigma_max = _scalar(index, "edm_vpred.sigma_max")
    if sigma_max is None or not sigma_max > 0:
        raise BadFileError("the file has `edm_vpred.sigma_max` (V_PREDICTION_EDM) but its value cannot be read")
    sigma_min = _scalar(index, "edm_vpred.sigma_min") if "edm_vpred.sigma_min" in index.shapes else None
    sigma_min = sigma_min if sigma_min and sigma_min > 0 else 0.002
    ev = (f"top-level `edm_vpred.sigma_max` = {sigma_max:g}: V_PREDICTION_EDM (continuous EDM, "
          f"sigma {sigma_min:g}..{sigma_max:g}, sigma_data 1.0); no registry family has this sampling, "
          "so SDXL is reported with it")
    return Variant("SDXL", "V_PREDICTION_EDM", (ev,),
                   {"kind": "edm", "prediction": "V_PREDICTION", "sigma_data": 1.0,
                    "edm_sigma_min": sigma_min, "edm_sigma_max": sigma_max, "table_sha256": None},
                   display_name=f"SDXL (EDM v-prediction, sigma_max {sigma_max:g})")


def sdxl_variant(index: KeyIndex, view: KeyView, config: dict, whole: bool = False) -> Variant:
    """SDXL class: Playground 2.5 (edm_mean+edm_std), V_PREDICTION_EDM, v-prediction (+ztsnr), else EPS."""
    keys = index.shapes
    if "edm_mean" in keys and "edm_std" in keys:
        return _default("PlaygroundV2_5", "top-level `edm_mean` and `edm_std`: EDM (Playground v2.5)")
    if "edm_vpred.sigma_max" in keys:
        return _edm_vpred(index)
    if "v_pred" in keys:
        if "ztsnr" in keys:
            return Variant("SDXL_v_pred", "V_PREDICTION",
                           ("top-level `v_pred`: V_PREDICTION", "top-level `ztsnr`: zero terminal SNR (zsnr) schedule"),
                           {"zsnr": True, "table_sha256": None},
                           display_name="SDXL v-prediction (zero terminal SNR)")
        return _default("SDXL_v_pred", "top-level `v_pred`: V_PREDICTION")
    extra = " (`ztsnr` without `v_pred` is ignored, as in ComfyUI)" if "ztsnr" in keys else ""
    return _default("SDXL", "no top-level `v_pred`, `edm_mean`/`edm_std` or `edm_vpred.sigma_max`: EPS" + extra)


def sd3_variant(index: KeyIndex, view: KeyView, config: dict, whole: bool = False) -> Variant:
    """SD3 class: SD3.5 Large when the depth is the SD35_large family's, else SD3 (the same sampling)."""
    depth = config.get("depth")
    large = get_family("SD35_large").detection["unet_config"]["depth"]
    if depth == large:
        return _default("SD35_large", f"depth {depth} (x_embedder width / 64): SD3.5 Large; same sampling as SD3")
    what = "SD3.5 Medium-like (qk_norm)" if config.get("qk_norm") else "SD3 Medium-like"
    return _default("SD3", f"depth {depth}: {what}; reported as SD3 (SD3 and SD3.5 share one ComfyUI class "
                           "and one sampling)")


def cogvideox_variant(index: KeyIndex, view: KeyView, config: dict, whole: bool = False) -> Variant:
    """CogVideoX_T2V: ComfyUI picks the CogVideoX 1.5 latent (5B class) for 48 or more attention heads."""
    heads = config.get("num_attention_heads", 0)
    if heads >= COGVIDEOX_5B_HEADS:
        return _default("CogVideoX_5B", f"num_attention_heads {heads} >= {COGVIDEOX_5B_HEADS}: the 5B class "
                                        "(CogVideoX 1.5 latent format)")
    return _default("CogVideoX_2B", f"num_attention_heads {heads} < {COGVIDEOX_5B_HEADS}: the 2B class "
                                    "(CogVideoX latent format)")


#: ComfyUI's threshold (``CogVideoX_T2V.__init__``) for the 5B-class latent format.
COGVIDEOX_5B_HEADS = 48

#: Classes whose families we tell apart by config values ComfyUI reads (the values are those of
#: ComfyUI's detected config for each family). A file must fit one entry exactly; the first wins.
VARIANTS = {
    "Flux2": (("Flux2", {"hidden_size": 6144}), ("Flux2_Klein_4B", {"hidden_size": 3072}),
              ("Flux2_Klein_9B", {"hidden_size": 4096})),
    "Lumina2": (("Lumina2", {"dim": 2304, "cap_feat_dim": 2304, "clip_text_dim": None}),
                ("NewBie", {"dim": 2304, "cap_feat_dim": 2560, "clip_text_dim": 1024})),
    "Kandinsky5": (("Kandinsky5", {"model_dim": 1792}), ("Kandinsky5_Pro", {"model_dim": 4096})),
    "QwenImage": (("QwenImage", {"default_ref_method": None, "use_additional_t_cond": None}),
                  ("QwenImage_Edit_2511", {"default_ref_method": "index_timestep_zero",
                                           "use_additional_t_cond": None}),
                  ("QwenImage_Layered", {"default_ref_method": "negative_index", "use_additional_t_cond": True})),
    "WAN21_T2V": (("WAN21_T2V", {"in_dim": 16}), ("WAN22_I2V_A14B", {"in_dim": 36})),
    "SeedVR2": (("SeedVR2_3B", {"vid_dim": 2560}),),
    "HunyuanVideo15": (("HunyuanVideo15", {"in_channels": 65}),),
}


def _said(config: dict, want: dict) -> str:
    return ", ".join(f"{k} {config.get(k)!r}" for k in want)


def table_variant(comfy_class: str):
    """The rule for a class of ``VARIANTS``: the one entry the config fits exactly.

    When none fits, a file that holds only the keys ComfyUI reads (not a whole network) is reported
    as the class itself (by its ComfyUI class name, which the registry resolves) if all the class's
    families share one sampling and latent format: the schedule is ComfyUI's whatever the variant.
    A whole network that fits no variant, or a class whose variants differ, is refused.
    """
    entries = VARIANTS[comfy_class]

    def rule(index: KeyIndex, view: KeyView, config: dict, whole: bool = False) -> Variant:
        for family, want in entries:
            if all(config.get(k) == v for k, v in want.items()):
                return _default(family, f"{_said(config, want)}: {family}")
        known = "; ".join(f"{fam} has {', '.join(f'{k} {v!r}' for k, v in want.items())}" for fam, want in entries)
        fams = [get_family(f) for f, _ in entries]
        if not whole and len({(f.sampling, f.latent, f.model_type) for f in fams}) == 1:
            return Variant(comfy_class, fams[0].model_type,
                           (f"{_said(config, entries[0][1])} is none of the named variants ({known}); they all "
                            f"share one sampling and latent format, so the class {comfy_class} is reported",),
                           display_name=f"{comfy_class} (ComfyUI class; variant not named)")
        raise refuse(f"ComfyUI class {comfy_class}, but {_said(config, entries[0][1])} fits none of its known "
                     f"variants ({known}), and they differ in sampling", example=entries[0][0])

    rule.__doc__ = f"{comfy_class}: the variant by {', '.join(entries[0][1])}."
    return rule


#: ComfyUI class -> the rule that picks the variant. Other classes map to their one family.
VARIANT_RULES = {"SD20": sd2_variant, "SDXL": sdxl_variant, "SD3": sd3_variant, "CogVideoX_T2V": cogvideox_variant,
                 **{cls: table_variant(cls) for cls in VARIANTS}}
