"""The window's decoded previews: the ComfyUI folder's TAESD in the viewer and the grid, the full VAE's progress and
Cancel in the status bar. Random networks in ComfyUI's file layouts (no downloaded weights)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import vae_factory as vf
from support import WAIT_MS
from unsampler_gui.core.vae import decode_to_uint8, load_taesd
from unsampler_gui.core.vae import previews as vp

pytest.importorskip("diffusers")


@pytest.fixture
def comfy(tmp_path):
    root = vf.comfy_folder(tmp_path / "ComfyUI")
    _enc, dec = vf.taesd_layout(vf.taesd_network(seed=6))
    taesd = vf.save_safetensors(root / "models" / "vae_approx" / "taesd_decoder.safetensors", dec)
    vae = vf.save_safetensors(root / "models" / "vae" / "vae-ft-mse-test.safetensors",
                              vf.ldm_layout(vf.kl_network(seed=7)))
    return {"root": str(root), "taesd": taesd, "vae": vae}


def test_comfy_folder_taesd_reaches_viewer_and_grid(qtbot, window, comfy):
    win, dec = window, window.viewer.decoders
    option = win.taesd_thumbnails_action
    qtbot.waitUntil(lambda: "taesd_decoder.pth" in option.toolTip(), timeout=WAIT_MS)
    assert dec.mode == vp.LATENT2RGB and not option.isEnabled()
    assert win.viewer.mode_combo.currentText() == "RGB (latent2rgb)"
    dec.set_context(comfy_root=comfy["root"])  # what Settings > ComfyUI folder does
    qtbot.waitUntil(lambda: dec.mode == vp.TAESD and option.isEnabled(), timeout=WAIT_MS)
    assert win.viewer.mode_combo.currentText() == "RGB (TAESD)"
    assert win.viewer.decode.vae_button.isEnabled()  # models/vae holds an SD1.5 VAE
    v = win.viewer
    qtbot.waitUntil(lambda: v.decode.shown_mode == vp.TAESD and v.decode.frame_key() is not None, timeout=WAIT_MS)
    step, item = v.decode.frame_key()[1:3]
    frame = win.store.frame(step, item)
    ref = decode_to_uint8(load_taesd(decoder=comfy["taesd"], family="SD15", device=dec.shelf.device), frame[None])[0]
    assert np.array_equal(v.image_item.image, ref)
    option.trigger()  # View > TAESD thumbnails
    assert option.isChecked() and dec.thumbnails_on
    model = win.grid.thumbnail_model()
    win.grid.viewport().update()
    qtbot.waitUntil(lambda: len(win.grid.visible_rows()) > 0
                    and all(model.is_decoded(r) for r in win.grid.visible_rows()), timeout=WAIT_MS)


def test_full_vae_progress_and_cancel_in_the_status_bar(qtbot, window, comfy, monkeypatch):
    win, dec = window, window.viewer.decoders
    gate, started, base = threading.Event(), threading.Event(), vp.decode_frame

    def held(*args, **kwargs):
        started.set()
        gate.wait(WAIT_MS / 1000)
        return base(*args, **kwargs)

    monkeypatch.setattr(vp, "decode_frame", held)
    dec.set_context(user_file=comfy["vae"])
    qtbot.waitUntil(lambda: win.viewer.decode.vae_button.isEnabled(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.viewer.decode.frame_key() is not None, timeout=WAIT_MS)
    win.viewer.decode.vae_button.click()
    assert win.vae_progress.isVisibleTo(win) and win.vae_cancel_button.isVisibleTo(win)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    win.vae_cancel_button.click()
    gate.set()
    qtbot.waitUntil(lambda: not win.vae_cancel_button.isVisibleTo(win), timeout=WAIT_MS)
    assert "cancelled" in win.status_label.text() and win.viewer.decode.shown_mode == vp.LATENT2RGB
    assert win.decode_vae_action.isEnabled()
    win.decode_vae_action.trigger()  # again, from the View menu, to the end
    qtbot.waitUntil(lambda: win.viewer.decode.shown_mode == vp.VAE, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not win.vae_progress.isVisibleTo(win), timeout=WAIT_MS)
    assert win.vae_progress.value() == win.vae_progress.maximum() > 0
