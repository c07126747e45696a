"""The one shape of every "these keys fit no rule exactly" refusal: what did not fit, and how to go on.

Detection never guesses: when ComfyUI's rules, our fit checks or the variant tables leave any
doubt, the file is refused with a one-line message that names the nearest families and says what
the user can do: choose a family by name (``--model NAME`` on the command line, the family list in
the app) or define one in a family file (``--families FILE``).
"""
from __future__ import annotations

from typing import Optional

from ..errors import BadFileError

#: What every refusal of an unknown or ambiguous model ends with.
HOW_TO_GO_ON = "to go on, choose a family with --model NAME{example} or define one with --families FILE"


def how_to_go_on(example: Optional[str] = None) -> str:
    return HOW_TO_GO_ON.format(example=f" (e.g. --model {example})" if example else "")


def refuse(what: str, nearest: str = "", example: Optional[str] = None, hint: Optional[str] = None,
           kind: str = "no exact match") -> BadFileError:
    """``<kind>: <what>[; nearest: <nearest>][; <hint>]; to go on, ...``."""
    parts = [f"{kind}: {what}"]
    if nearest:
        parts.append(f"nearest: {nearest}")
    if hint:
        parts.append(hint)
    parts.append(how_to_go_on(example))
    return BadFileError("; ".join(parts))
