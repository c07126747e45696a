"""Make comfy_networks.json: each family's whole network, as ComfyUI's own model class builds it.

A one-off tool, not a test (it needs a ComfyUI checkout, which the project does not ship):

    cd <ComfyUI master 783545f6 checkout> && PYTHONPATH=.:<einops, psutil, pyyaml, tqdm> \
        <unsampler>/.venv/bin/python <unsampler>/tests/data/make_comfy_networks.py

For each family of the registry it builds ComfyUI's model class from the family's detected
unet_config on the meta device (no memory, no weights), takes the state dict's names and shapes,
puts them back into the checkpoint layout where ComfyUI renames keys on load (Flux ``.scale``
norms, HunyuanVideo's original names, PixelDiT's ``core.`` prefix), checks that ComfyUI's own
detection gives the family's class for them, and writes them with ``{i}`` for repeated blocks.
Heavy optional imports of ComfyUI are stubbed: only the network modules run. Facts out, no code in.
"""
import sys, types, importlib.abc, importlib.machinery
from unittest import mock
STUB = ("comfy_aimdo", "transformers", "sentencepiece", "tokenizers", "torchaudio", "av", "comfy_kitchen", "spandrel", "kornia", "scipy.signal", "torchsde", "aiohttp", "cv2", "sageattention", "flash_attn", "xformers", "triton", "comfyui_manager", "alembic", "sqlalchemy", "blake3", "simpleeval", "pydantic", "av", "requests", "torchvision", "comfy_execution", "spandrel_extra_arches", "diffusers", "accelerate", "open_clip", "timm", "scipy.ndimage", "skimage", "trimesh", "numba", "librosa", "soundfile", "pywt", "lark", "jsonschema", "huggingface_hub")
class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STUB and name != "scipy":
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = mock.MagicMock(name=spec.name); m.__path__ = []; m.__spec__ = spec; m.__name__ = spec.name
        return m
    def exec_module(self, m): pass
sys.meta_path.insert(0, Finder())
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()

import torch, json, os, re
import comfy.model_detection as md
import comfy.supported_models as sm
P = "model.diffusion_model."
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ref = json.load(open(os.path.join(REPO, "..", "shared", "reference", "families_newest.json")))
old = json.load(open(os.path.join(REPO, "unsampler_gui", "core", "data", "families.json")))["families"]
todo = {}
for n, f in old.items():
    todo[n] = (f["detection"]["unet_config"], f["comfy_class"], None)
for n, f in ref["detected_families"].items():
    todo[n] = (f["detected_unet_config_from_full_fake_checkpoint"], f["supported_models_class"], f.get("safetensors_metadata"))
FIX = {"Flux": {"txt_ids_dims": [], "yak_mlp": False, "txt_norm": False}, "FluxSchnell": {"txt_ids_dims": [], "yak_mlp": False, "txt_norm": False},
       "Chroma": {"txt_ids_dims": [], "vec_in_dim": None},
       "HunyuanVideo": {"use_cond_type_embedding": False, "vision_in_dim": None, "meanflow_sum": False, "meanflow": False, "byt5": False, "axes_dim": [16, 56, 56], "theta": 256, "qkv_bias": True, "mlp_ratio": 4.0, "num_heads": 24, "out_channels": 16}}
HY_REV = [("txt_in.t_embedder.in_layer.", "txt_in.t_embedder.mlp.0."), ("txt_in.t_embedder.out_layer.", "txt_in.t_embedder.mlp.2."),
          ("txt_in.c_embedder.in_layer.", "txt_in.c_embedder.linear_1."), ("txt_in.c_embedder.out_layer.", "txt_in.c_embedder.linear_2."),
          ("_mod.lin.", "_mod.linear."), ("_attn.qkv.", "_attn_qkv."), ("_attn.norm.query_norm.weight", "_attn_q_norm.weight"),
          ("_attn.norm.key_norm.weight", "_attn_k_norm.weight"), (".norm.query_norm.weight", ".q_norm.weight"), (".norm.key_norm.weight", ".k_norm.weight"),
          ("_attn.proj.", "_attn_proj."), (".modulation.lin.", ".modulation.linear."), ("_in.in_layer.", "_in.mlp.0."), ("_in.out_layer.", "_in.mlp.2.")]
def to_file(cls, conf, model, sd):
    flux_like = cls in ("Flux", "FluxSchnell", "FluxInpaint", "Flux2", "LongCatImage")
    chroma = cls in ("Chroma", "ChromaRadiance")
    hy = issubclass(type(conf), sm.HunyuanVideo)
    rms = set()
    if chroma:
        for name, mod in model.named_modules():
            if type(mod).__name__ == "RMSNorm":
                rms.add(name + ".weight")
    out = {}
    for k, v in sd.items():
        f = k
        if flux_like and f.endswith("_norm.weight"):
            f = f[:-len(".weight")] + ".scale"
        if chroma and f in rms:
            f = f[:-len(".weight")] + ".scale"
        if hy:
            for a, b in HY_REV:
                f = f.replace(a, b)
            f = f.replace("vector_in.mlp.0.", "vector_in.in_layer.").replace("vector_in.mlp.2.", "vector_in.out_layer.")
            # hunyuan mlp.0/2 of blocks came from fc1/fc2
            f = re.sub(r"(blocks\.\d+\.(?:img_|txt_)?mlp)\.0\.", r"\1.fc1.", f)
            f = re.sub(r"(blocks\.\d+\.(?:img_|txt_)?mlp)\.2\.", r"\1.fc2.", f)
            back = conf.process_unet_state_dict({f: 0})
            if list(back) != [k]:
                print("HY inverse mismatch", k, f, list(back))
        if cls == "PixelDiTT2I":
            f = "core." + f
        out[f] = list(v.shape)
    if cls == "PixelDiTT2I":
        merged = {}
        for f, s in out.items():
            if ".adaLN_modulation_msa." in f:
                merged[f.replace(".adaLN_modulation_msa.", ".adaLN_modulation.0.")] = [s[0] * 2] + s[1:]
            elif ".adaLN_modulation_mlp." in f:
                continue
            else:
                merged[f] = s
        out = merged
    return out
def compress(keys):
    counts, flat = {}, {}
    groups = {}
    for k, s in keys.items():
        m = re.match(r"^(.*?)\.(\d+)\.(.*)$", k)
        if m:
            groups.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = s
        else:
            flat[k] = s
    for c, by in groups.items():
        idx = sorted(by)
        same = idx == list(range(len(idx))) and all(by[i] == by[0] for i in idx) and len(idx) > 1
        if same:
            counts[c] = len(idx)
            for suf, s in by[0].items():
                flat[f"{c}.{{i}}.{suf}"] = s
        else:
            for i in idx:
                for suf, s in by[i].items():
                    flat[f"{c}.{i}.{suf}"] = s
    return {"counts": counts, "keys": flat}
result = {}
only = os.environ.get("ONLY", "").split()
for name, (cfg, cls, meta) in todo.items():
    if only and name not in only: continue
    if (cls.startswith("SD") and cls != "SD3") or cls in ("Stable_Cascade_C", "SVD_img2vid", "SSD1B") or name in ("PlaygroundV2_5",): continue
    cfg = dict(cfg); cfg.update(FIX.get(name, {}))
    if "nerf_embedder_dtype" in cfg: cfg["nerf_embedder_dtype"] = torch.float32
    try:
        mc = [m for m in sm.models if m.__name__ == cls][0]
        conf = mc(cfg)
        with torch.device("meta"):
            model = conf.get_model({}, P, device="meta")
        dm = model.diffusion_model
        keys = to_file(cls, conf, dm, dm.state_dict())
        if cls == "QwenImage" and cfg.get("default_ref_method") == "index_timestep_zero":
            keys["__index_timestep_zero__"] = [0]
        fake = {P + k: torch.empty(v, device="meta") for k, v in keys.items()}
        got = md.detect_unet_config(fake, P, metadata=meta)
        gc = md.model_config_from_unet_config(got, fake, P) if got else None
        print(name, cls, "->", type(gc).__name__ if gc else None, len(keys), "" if gc and type(gc).__name__ == cls else "MISMATCH")
        c = compress(keys)
        c["class"] = cls
        if meta: c["metadata"] = meta
        result[name] = c
    except Exception as e:
        import traceback; traceback.print_exc()
        print(name, cls, "FAILED", type(e).__name__, str(e)[:300])
json.dump(result, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfy_networks.json"), "w"), indent=0, sort_keys=True)
