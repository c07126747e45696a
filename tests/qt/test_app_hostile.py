"""Hostile files in the window (issue 13): strings from files are never markup, and bad files are messages."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import ckpt_factory as cf  # noqa: E402
import pickle_factory as pf  # noqa: E402

WAIT_MS = 30000
IMG = "<img src='/dev/zero'>"


def _latent(path, meta: dict):
    cf.write_safetensors(path, {"latent_format_version_0": ("F32", [0]),
                                "latent_tensor": np.zeros((1, 4, 8, 8), np.float32)},
                         {"unsampler": json.dumps(meta)})
    return path


def test_markup_in_a_latents_metadata_and_name_is_shown_as_text(window, qtbot, tmp_path):
    """A 1 KB .latent with an <img> tag in its metadata made Qt read /dev/zero as an image, and abort."""
    p = _latent(tmp_path / "<img src=x>.latent", {"family": IMG, "sampler": "<b>x</b>", "scheduler": "<i>",
                                             "steps": "<img src=x>"})
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(p))
    html = window.panel.latent_info.text()
    assert "<img" not in html and "&lt;img src=&#x27;/dev/zero&#x27;&gt;" in html
    assert window.status_label.textFormat() == Qt.TextFormat.PlainText
    window.repaint()  # the label is painted with the text (never loads an image)


@pytest.mark.parametrize("meta", ["[1, 2]", '{"family": "SD15", "source": "x"}', "[" * 100_000 + "]" * 100_000,
                                  '{"steps": 1e400, "seed": "x", "family": ["SD15"], "normalize": 3}'])
def test_odd_metadata_opens_without_an_unexpected_error(window, qtbot, tmp_path, meta, monkeypatch):
    from unsampler_gui.qt import errors

    shown = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: shown.append(text))
    p = tmp_path / "odd.latent"
    cf.write_safetensors(p, {"latent_format_version_0": ("F32", [0]),
                             "latent_tensor": np.zeros((1, 4, 8, 8), np.float32)}, {"unsampler": meta})
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(p))
    assert not shown
    assert window.panel.params()["steps"] >= 1


@pytest.mark.parametrize("case", ["deep tuple", "bytearray bomb", "memo bomb", "negative shape"])
def test_hostile_checkpoints_are_clear_messages_in_the_app(window, qtbot, tmp_path, monkeypatch, case):
    from unsampler_gui.qt import errors

    shown = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: shown.append(text))
    p = tmp_path / "hostile.ckpt"
    if case == "deep tuple":
        p.write_bytes(pf.Ops().proto(2).empty_dict().empty_tuple().raw(b"\x85" * 200_000).none().setitem()
                      .stop().bytes())
    elif case == "bytearray bomb":
        p.write_bytes(pf.Ops().proto(2).global_("builtins", "bytearray").int(2**31 - 1).tuple1().reduce()
                      .stop().bytes())
    elif case == "memo bomb":
        p.write_bytes(pf.Ops().proto(2).none().long_binput(2**27).stop().bytes())
    else:
        pf.torch_zip(p, pf.tensor_pickle({"model.diffusion_model.x": ("0", 4, (-1,))}), {"0": b"\0" * 8})
    window.panel.open_checkpoint(str(p))
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    assert "hostile.ckpt" in shown[0]
    assert "unexpected error" not in shown[0] and "Traceback" not in shown[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_latent_is_a_message_not_a_hang(window, qtbot, tmp_path, monkeypatch):
    from unsampler_gui.qt import errors

    shown = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: shown.append(text))
    fifo = tmp_path / "pipe.latent"
    os.mkfifo(fifo)
    window.panel.open_latent(str(fifo))
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    assert "not a regular file" in shown[0]


def test_questions_and_error_boxes_are_plain_text(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from unsampler_gui.qt.errors import ask, show_error

    box = show_error(None, "Unsampler", f"{IMG}: not a safetensors file")
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText
    box.close()
    seen = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: seen.append(self.textFormat()) or QMessageBox.StandardButton.No)
    assert ask(None, "Export", f"{IMG}.latent already exists. Replace it?") is False
    assert seen == [Qt.TextFormat.PlainText]


def test_tooltips_quote_paths_and_evidence_as_text(window, qtbot, tmp_path):
    """A tooltip is read as HTML when it looks like it: /tmp/<img src='/dev/zero'>.latent is a valid path."""
    folder = tmp_path / "<img src='" / "dev"
    folder.mkdir(parents=True)
    p = _latent(folder / "zero'>.latent", {"family": "SD15"})
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(p))
    tip = window.panel.latent_info.toolTip()
    assert tip.startswith("<qt>") and "<img" not in tip and "&lt;img src=&#x27;/dev/zero&#x27;&gt;" in tip
    window.show_status(f"opened {p}")
    assert "<img" not in window.status_label.toolTip()
    ckpt = tmp_path / "m.safetensors"
    cf.write_safetensors(ckpt, cf.minimal_entries("SDXL"), {"modelspec.architecture": IMG})
    window.panel.open_checkpoint(str(ckpt))
    qtbot.waitUntil(lambda: "modelspec" in window.panel.model_info.toolTip(), timeout=WAIT_MS)
    assert "<img" not in window.panel.model_info.toolTip()
