"""diffusers networks built offline from a shipped config and loaded strictly.

diffusers is imported here only, the first time a VAE is used (``import unsampler_gui.core`` never
imports it). Before that import the Hugging Face offline switches are set, and nothing here calls a
hub function: a network is built from its config with its weights on the ``meta`` device (no random
initialisation of 80 M parameters), then takes the file's tensors with ``load_state_dict(strict=True,
assign=True)``. A key the network needs and the file lacks, or one the file has and the network does
not use, is an error naming the keys.
"""
from __future__ import annotations

import os
import threading

import torch

from ..errors import BadFileError, ResourceError

#: Environment switches that keep huggingface_hub and diffusers off the network.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DIFFUSERS_OFFLINE": "1",
               "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "DISABLE_TELEMETRY": "1"}
_lock = threading.Lock()


def import_diffusers():
    """The diffusers module, imported offline; a clear message when it is not installed."""
    with _lock:
        os.environ.update(OFFLINE_ENV)
        try:
            import diffusers
        except ImportError as e:
            raise ResourceError("VAE support needs the diffusers package, which is not installed: "
                                "pip install 'unsampler[vae]'") from e
        except Exception as e:  # noqa: BLE001 - a broken install is one line too
            raise ResourceError(f"diffusers is installed but cannot be imported ({type(e).__name__}: "
                                f"{str(e)[:100]})") from e
        diffusers.utils.logging.set_verbosity_error()
        return diffusers


def _names(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_keys(expected, given, what: str) -> None:
    """Strict loading: the same key set on both sides, or a message naming the difference."""
    missing, unexpected = set(expected) - set(given), set(given) - set(expected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) the {what} needs are missing ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} key(s) are not used by the {what} ({_names(unexpected)})")
    if parts:
        raise BadFileError("; ".join(parts))


def build(class_name: str, config: dict, state: dict, what: str, parts=None) -> torch.nn.Module:
    """A diffusers network of ``class_name`` from ``config``, holding exactly ``state``.

    ``parts``: the submodule names the state fills (a TAESD decoder alone fills ``("decoder",)``); the
    other parts are dropped from the network, so that it can only do what its weights allow.
    """
    diffusers = import_diffusers()
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise ResourceError(f"this diffusers ({diffusers.__version__}) has no {class_name}; "
                            "install the version in packaging/constraints.txt")
    try:
        with torch.device("meta"):
            net = cls(**config)
    except (TypeError, ValueError) as e:
        raise BadFileError(f"the weights describe a {what} that diffusers cannot build ({str(e)[:120]})") from None
    expected = net.state_dict().keys()
    if parts is not None:
        expected = [k for k in expected if k.split(".", 1)[0] in parts]
    check_keys(expected, state.keys(), what)
    try:
        net.load_state_dict(state, strict=parts is None, assign=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise BadFileError(f"the weights do not fit the {what}: {first[:200]}") from None
    if parts is not None:
        for name, child in list(net.named_children()):
            if name not in parts and any(True for _ in child.parameters()):
                setattr(net, name, torch.nn.Module())
    leftover = [n for n, t in list(net.named_parameters()) + list(net.named_buffers()) if t.is_meta]
    if leftover:
        raise BadFileError(f"the {what} has tensors the file does not fill ({_names(leftover)})")
    return net.eval().requires_grad_(False)
