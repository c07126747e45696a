"""Sampler settings from a ComfyUI graph: a picture's ``prompt`` / ``workflow`` PNG chunks, or a ``.json`` file.

ComfyUI's SaveImage stores ``prompt`` (the API graph: ``{id: {"class_type", "inputs"}}``, where an input is a
value or a link ``[node_id, output]``) and ``workflow`` (the editor's graph: ``nodes`` with positional
``widgets_values``, and ``links``). The prompt is preferred; the workflow is read when it is all there is.

Read: KSampler (``sampler_name, scheduler, steps, denoise, seed``), KSamplerAdvanced (``noise_seed``,
``start_at_step, end_at_step``), and SamplerCustom / SamplerCustomAdvanced with KSamplerSelect
(``sampler_name``), BasicScheduler (``scheduler, steps, denoise``) and RandomNoise (``noise_seed``). The model is
the ``ckpt_name`` / ``unet_name`` of the loader found by following the sampler's ``model`` input upstream.

Everything from the file is checked: size, nesting, node count, and each value's type and range. A value that
fails is left out with a note; a graph that cannot be read at all is one ``BadFileError`` line.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

from ..errors import BadFileError

#: The keys of the settings, as ``unsampler info --json`` shows them under "comfyui".
SETTING_KEYS = ("sampler", "scheduler", "steps", "denoise", "start_at_step", "end_at_step", "seed", "model")
MAX_JSON_BYTES = 32 << 20
MAX_NODES = 20000
MAX_HOPS = 64  # links followed from a sampler to its model loader
SEED_CONTROLS = ("fixed", "increment", "decrement", "randomize")

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
LOADERS = {"ckpt_name": "checkpoints", "unet_name": "diffusion_models"}

#: The editor's widgets_values order per node (ComfyUI's INPUT_TYPES order; "seed" widgets are followed by the
#: frontend's control_after_generate value).
WIDGETS = {
    "KSampler": ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                         "end_at_step", "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", "cfg"),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "KSamplerSelect": ("sampler_name",),
    "RandomNoise": ("noise_seed",),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "UNETLoader": ("unet_name", "weight_dtype"),
}
SEED_WIDGETS = ("seed", "noise_seed")


@dataclass
class ComfySettings:
    values: dict = field(default_factory=dict)  # SETTING_KEYS that were found
    sources: dict = field(default_factory=dict)  # key -> where it came from ("KSampler #3")
    graph: str = ""  # "prompt" or "workflow"
    model_kind: Optional[str] = None  # "checkpoints" or "diffusion_models": where the model file lives
    notes: list = field(default_factory=list)

    def describe(self) -> list:
        """One line per setting: ``steps 20 (KSampler #3, prompt)``."""
        return [f"{k} {self.values[k]} ({self.sources.get(k, '?')}, {self.graph})" for k in SETTING_KEYS
                if k in self.values]


# ---- parsing --------------------------------------------------------------------------------------------------

def parse_json(text, what: str):
    if not isinstance(text, (str, bytes)):
        raise BadFileError(f"{what} is not text")
    if len(text) > MAX_JSON_BYTES:
        raise BadFileError(f"{what} is {len(text)} bytes, more than the {MAX_JSON_BYTES >> 20} MB allowed")
    try:
        return json.loads(text)
    except RecursionError:
        raise BadFileError(f"{what} is nested too deeply to be a ComfyUI graph") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadFileError(f"{what} is not valid JSON ({str(e).splitlines()[0][:80]})") from None


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], (str, int)) and not isinstance(v[0], bool) \
        and isinstance(v[1], int) and not isinstance(v[1], bool)


def prompt_graph(obj) -> dict:
    """The API prompt as ``{id: (class_type, inputs)}``; malformed nodes are skipped."""
    if not isinstance(obj, dict):
        raise BadFileError("the prompt is not a JSON object of nodes")
    if len(obj) > MAX_NODES:
        raise BadFileError(f"the graph has {len(obj)} nodes, more than {MAX_NODES}")
    graph = {}
    for nid, node in obj.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict):
            graph[str(nid)] = (node["class_type"], node["inputs"])
    return graph


def _widgets(ctype: str, values) -> dict:
    names = WIDGETS.get(ctype)
    if not names or not isinstance(values, list):
        return {}
    out, i = {}, 0
    for name in names:
        if i >= len(values):
            break
        out[name] = values[i]
        i += 1
        if name in SEED_WIDGETS and i < len(values) and values[i] in SEED_CONTROLS:
            i += 1
    return out


def workflow_graph(obj) -> dict:
    """The editor's workflow as ``{id: (type, inputs)}``: widgets by position, links as ``[from_id, slot]``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("nodes"), list):
        raise BadFileError("the workflow has no list of nodes")
    nodes, links = obj["nodes"], obj.get("links") if isinstance(obj.get("links"), list) else []
    if len(nodes) > MAX_NODES or len(links) > 10 * MAX_NODES:
        raise BadFileError(f"the workflow has {len(nodes)} nodes, more than {MAX_NODES}")
    sources = {}
    for ln in links:  # [link_id, origin_id, origin_slot, target_id, target_slot, type], or the same as an object
        if isinstance(ln, dict):
            ln = [ln.get("id"), ln.get("origin_id"), ln.get("origin_slot")]
        if isinstance(ln, list) and len(ln) >= 3 and isinstance(ln[0], int) and isinstance(ln[1], (int, str)):
            sources[ln[0]] = [str(ln[1]), ln[2] if isinstance(ln[2], int) else 0]
    graph = {}
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or "id" not in node:
            continue
        inputs = _widgets(node["type"], node.get("widgets_values"))
        for inp in node.get("inputs") or []:
            if isinstance(inp, dict) and isinstance(inp.get("name"), str) and inp.get("link") in sources:
                inputs[inp["name"]] = sources[inp["link"]]
        graph[str(node["id"])] = (node["type"], inputs)
    return graph


# ---- values ---------------------------------------------------------------------------------------------------

def _resolve(graph: dict, value, hops: int = 0):
    """A literal value, following a link to a primitive-style node (one literal input) if need be."""
    seen = set()
    while _is_link(value) and hops < MAX_HOPS:
        nid = str(value[0])
        if nid in seen or nid not in graph:
            return None
        seen.add(nid)
        literals = [v for v in graph[nid][1].values() if not _is_link(v)]
        if len(literals) != 1:
            return None
        value, hops = literals[0], hops + 1
    return None if _is_link(value) else value


def _int(v, lo: int, hi: int) -> Optional[int]:
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return v if isinstance(v, int) and lo <= v <= hi else None


def _float(v, lo: float, hi: float) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) and lo <= v <= hi else None


def _name(v) -> Optional[str]:
    return v if isinstance(v, str) and 0 < len(v) <= 200 and v.isprintable() else None


CHECKS = {
    "sampler": _name, "scheduler": _name,
    "model": lambda v: v if isinstance(v, str) and 0 < len(v) <= 1000 and v.isprintable() else None,
    "steps": lambda v: _int(v, 1, 10000), "start_at_step": lambda v: _int(v, 0, 10000),
    "end_at_step": lambda v: _int(v, 0, 10000), "seed": lambda v: _int(v, 0, 2 ** 64 - 1),
    "denoise": lambda v: _float(v, 0.0, 1.0),
}


class _Collector:
    def __init__(self, graph: dict, kind: str):
        self.graph, self.out = graph, ComfySettings(graph=kind)

    def take(self, key: str, raw, where: str) -> None:
        value = _resolve(self.graph, raw)
        if value is None:
            if raw is not None:
                self.out.notes.append(f"{key} of {where} is not a plain value; left out")
            return
        checked = CHECKS[key](value)
        if checked is None:
            self.out.notes.append(f"{key} of {where} ({str(value)[:40]!r}) is not a valid {key}; left out")
            return
        self.out.values[key], self.out.sources[key] = checked, where

    def linked(self, inputs: dict, name: str, ctype: str):
        link = inputs.get(name)
        if _is_link(link) and str(link[0]) in self.graph and self.graph[str(link[0])][0] == ctype:
            nid = str(link[0])
            return nid, self.graph[nid][1]
        return None, None


def _label(ctype: str, nid: str) -> str:
    return f"{ctype} #{nid}"


def _sampler_values(c: _Collector, nid: str, ctype: str, inputs: dict) -> None:
    where = _label(ctype, nid)
    if ctype in ("KSampler", "KSamplerAdvanced"):
        c.take("sampler", inputs.get("sampler_name"), where)
        c.take("scheduler", inputs.get("scheduler"), where)
        c.take("steps", inputs.get("steps"), where)
        c.take("seed", inputs.get("seed" if ctype == "KSampler" else "noise_seed"), where)
        if ctype == "KSampler":
            c.take("denoise", inputs.get("denoise"), where)
        else:
            c.take("start_at_step", inputs.get("start_at_step"), where)
            c.take("end_at_step", inputs.get("end_at_step"), where)
        return
    sid, select = c.linked(inputs, "sampler", "KSamplerSelect")
    if select is not None:
        c.take("sampler", select.get("sampler_name"), _label("KSamplerSelect", sid))
    bid, sched = c.linked(inputs, "sigmas", "BasicScheduler")
    if sched is not None:
        for key in ("scheduler", "steps", "denoise"):
            c.take(key, sched.get(key), _label("BasicScheduler", bid))
    elif "sigmas" in inputs:
        c.out.notes.append(f"the sigmas of {where} do not come from a BasicScheduler; scheduler and steps left out")
    if ctype == "SamplerCustom":
        c.take("seed", inputs.get("noise_seed"), where)
    else:
        rid, noise = c.linked(inputs, "noise", "RandomNoise")
        if noise is not None:
            c.take("seed", noise.get("noise_seed"), _label("RandomNoise", rid))


def _model(c: _Collector, inputs: dict) -> None:
    """Follow the ``model`` input upstream (LoRA loaders, ModelSampling nodes, ...) to a loader's file name."""
    link, seen = inputs.get("model"), set()
    if not _is_link(link):  # SamplerCustomAdvanced: the model is the guider's
        gid = inputs.get("guider")
        if _is_link(gid) and str(gid[0]) in c.graph:
            link = c.graph[str(gid[0])][1].get("model")
    for _ in range(MAX_HOPS):
        if not _is_link(link) or str(link[0]) in seen or str(link[0]) not in c.graph:
            break
        nid = str(link[0])
        seen.add(nid)
        ctype, node_inputs = c.graph[nid]
        for key, kind in LOADERS.items():
            if key in node_inputs:
                c.take("model", node_inputs[key], _label(ctype, nid))
                if "model" in c.out.values:
                    c.out.model_kind = kind
                return
        link = node_inputs.get("model")
    loaders = {(k, v) for _, inp in c.graph.values() for k, v in inp.items() if k in LOADERS and isinstance(v, str)}
    if len(loaders) == 1:  # not linked, but the graph has one model loader
        key, name = next(iter(loaders))
        c.take("model", name, "the graph's only model loader")
        if "model" in c.out.values:
            c.out.model_kind = LOADERS[key]


def _order(nid: str):
    return (0, int(nid)) if nid.isdigit() else (1, nid)


def settings_from_graph(graph: dict, kind: str) -> ComfySettings:
    """The settings of the graph's first sampler (lowest node id); the others are named in the notes."""
    c = _Collector(graph, kind)
    samplers = sorted((nid for nid, (ctype, _) in graph.items() if ctype in SAMPLERS), key=_order)
    if not samplers:
        c.out.notes.append(f"no sampler node (KSampler, KSamplerAdvanced, SamplerCustom) in the {kind}")
        return c.out
    nid = samplers[0]
    ctype, inputs = graph[nid]
    _sampler_values(c, nid, ctype, inputs)
    _model(c, inputs)
    if len(samplers) > 1:
        c.out.notes.append(f"{len(samplers)} samplers in the graph; took {_label(ctype, nid)}, the first")
    return c.out


def settings_from_chunks(chunks: dict) -> Optional[ComfySettings]:
    """Settings from a PNG's text chunks, or None when it has no ComfyUI graph."""
    errors = []
    for key, to_graph in (("prompt", prompt_graph), ("workflow", workflow_graph)):
        if key in chunks:
            try:
                return settings_from_graph(to_graph(parse_json(chunks[key], f"the {key} chunk")), key)
            except BadFileError as e:
                errors.append(str(e))
    if errors:
        raise BadFileError(errors[0])
    return None


def settings_from_json_file(path) -> ComfySettings:
    """A ``.json`` file: an API prompt, an editor workflow, or ``{"prompt": ..., "workflow": ...}``."""
    p = os.fspath(path)
    name = os.path.basename(p)
    try:
        size = os.path.getsize(p)
        if size > MAX_JSON_BYTES:
            raise BadFileError(f"{name}: {size} bytes, more than the {MAX_JSON_BYTES >> 20} MB a workflow may be")
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadFileError(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        obj = parse_json(raw, name)
        if isinstance(obj, dict) and isinstance(obj.get("nodes"), list):
            return settings_from_graph(workflow_graph(obj), "workflow")
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), dict):
            return settings_from_graph(prompt_graph(obj["prompt"]), "prompt")
        return settings_from_graph(prompt_graph(obj), "prompt")
    except BadFileError as e:
        msg = str(e)
        raise BadFileError(msg if msg.startswith(name) else f"{name}: {msg}") from None


# ---- the form -------------------------------------------------------------------------------------------------

def run_values(settings: ComfySettings) -> tuple:
    """What a ComfyUI sampler's settings are in the BatchUnsampler's terms: ``(values, sources, notes)``.

    ``values`` are ``RunParams`` fields (sampler, scheduler, steps, start_at_step, end_at_step, seed), each
    checked; ``sources`` says which node each came from. KSampler and BasicScheduler run the whole schedule,
    so the node's slice is reset to all of it. A ``denoise`` d below 1 is ComfyUI's ``KSampler.set_steps``
    (and BasicScheduler's): it computes ``int(steps / d)`` steps and keeps the last ``steps + 1`` sigmas, which
    are the node's ``steps = int(steps / d)``, ``start_at_step = steps' - steps``, ``end_at_step = steps'``.
    """
    from ..errors import UnsamplerError
    from .. import params as run_params

    v, src = settings.values, settings.sources
    values, sources, notes = {}, {}, []
    for key in ("sampler", "scheduler", "seed"):
        if key in v:
            values[key], sources[key] = v[key], src.get(key, "?")
    if "steps" in v:
        steps, where = v["steps"], src.get("steps", "?")
        d = v.get("denoise")
        if "start_at_step" in v or "end_at_step" in v:  # KSamplerAdvanced: its own slice
            slice_ = (steps, v.get("start_at_step", 0), v.get("end_at_step", run_params.default().end_at_step))
        elif d is not None and 0 < d <= 0.9999:
            total = int(steps / d)
            slice_ = (total, total - steps, total)
            notes.append(f"denoise {d:g} ({src.get('denoise', where)}): ComfyUI runs the last {steps} of {total} "
                         f"steps, so steps {total}, start at step {total - steps}")
        else:
            if d is not None and d <= 0:
                notes.append(f"denoise {d:g} samples nothing in ComfyUI; the whole schedule is taken")
            slice_ = (steps, 0, run_params.default().end_at_step)
        for key, value in zip(("steps", "start_at_step", "end_at_step"), slice_):
            values[key], sources[key] = value, src.get(key, where)
    for key in list(values):
        if key not in values:  # dropped with its steps
            continue
        try:
            values[key] = run_params.get(key).check(values[key])
        except UnsamplerError as e:
            notes.append(f"{key} {values[key]!r} left out: {str(e).split(';')[0]}")
            del values[key], sources[key]
            if key == "steps":  # the slice means nothing without its steps
                for k in ("start_at_step", "end_at_step"):
                    values.pop(k, None), sources.pop(k, None)
    return values, sources, notes
