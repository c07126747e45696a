"""Pictures in, in the app: File > Open, drop and the command line take PNG, JPEG, WebP and ComfyUI workflows; the
picture is encoded off the GUI thread with the VAE ComfyUI would use (random networks in ComfyUI's file layouts,
``vae_factory``), becomes the session's latent, and a ComfyUI picture fills the form."""
from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

import vae_factory as vf
from support import WAIT_MS
from unsampler_gui.qt import errors


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(vf.pixels(72, 56)).save(path)
    return path


@pytest.fixture
def comfy(tmp_path):
    """A ComfyUI folder with a random TAESD pair in models/vae_approx."""
    root = vf.comfy_folder(tmp_path / "ComfyUI")
    enc, dec = vf.taesd_layout(vf.taesd_network(seed=21))
    vf.save_safetensors(root / "models" / "vae_approx" / "taesd_encoder.safetensors", enc)
    vf.save_safetensors(root / "models" / "vae_approx" / "taesd_decoder.safetensors", dec)
    return root


@pytest.fixture
def shown(monkeypatch):
    """The error boxes the window would show."""
    out = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: out.append((title, text)))
    return out


def settled(win) -> bool:
    return not win.pictures.is_busy() and not win.panel.is_loading()


def wait_picture(qtbot, win, name="photo.png"):
    """Wait until the picture is the session's latent and the live sequence shows it."""
    qtbot.waitUntil(lambda: settled(win) and win.session.latent is not None and win.session.latent.name == name
                    and win.session.latent.kind == "picture", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.store.sequence_inputs is not None
                    and win.store.sequence_inputs.latent is win.session.latent, timeout=WAIT_MS)
    return win.session.latent


def test_file_open_encodes_a_picture_approximately_without_a_vae(window, qtbot, photo, monkeypatch):
    """File > Open's slot with a PNG: no VAE anywhere, so the approximate latent, labelled so, with the advice."""
    from unsampler_gui.core.vae import approximate_latent, read_picture

    filters = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda parent, title, folder, flt: (filters.append(flt), (str(photo), ""))[1])
    window.open_latent_action.trigger()
    lat = wait_picture(qtbot, window)
    assert "*.png" in filters[0] and "*.webp" in filters[0] and "*.json" in filters[0]
    assert torch.equal(lat.tensor, approximate_latent(read_picture(photo).pixels, "SD15"))
    assert lat.shape == (1, 4, 9, 7) and lat.picture["method"] == "approximate"
    text = window.pictures.source_label.text()
    assert "photo.png (APPROXIMATE" in text and "56x72 → 7x9" in text and "models/vae" in text
    assert "APPROXIMATE" in window.status_label.text() and "taesd_encoder.pth" in window.status_label.text()
    assert window.pictures.vae_combo.count() == 1 and window.pictures.vae_row.isVisible()
    assert window.windowTitle() == "photo.png — Unsampler"
    assert window.panel.session.latent_fit().fits


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_drop_a_picture(window, qtbot, tmp_path, comfy, fmt, ext):
    """A dropped PNG, JPEG or WebP is encoded with the ComfyUI folder's TAESD, bit for bit as the core does it."""
    from unsampler_gui.core.vae import load_taesd, read_picture

    window.settings.comfy_root = str(comfy)
    path = tmp_path / f"photo.{ext}"
    Image.fromarray(vf.pixels(72, 56)).save(path, format=fmt)
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPoint(10, 10).toPointF(), Qt.DropAction.CopyAction, md, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    assert window._dropped_paths(ev) == [str(path)]
    window.dropEvent(ev)
    lat = wait_picture(qtbot, window, path.name)
    vae = load_taesd(encoder=comfy / "models" / "vae_approx" / "taesd_encoder.safetensors", device="cpu")
    assert torch.equal(lat.tensor, vae.encode(read_picture(path).pixels))
    assert lat.picture["method"] == "taesd" and "encoded with TAESD taesd" in window.status_label.text()
    combo = window.pictures.vae_combo
    assert [combo.itemText(i).split(" (")[0] for i in range(combo.count())] == [
        "TAESD taesd", "approximate: latent preview inverse"]


def test_command_line_picture(qtbot, settings, photo, comfy):
    from unsampler_gui.qt import app as app_mod

    settings.comfy_root = str(comfy)
    win = app_mod.build_window(app_mod.parse_args([str(photo)]), settings)
    qtbot.addWidget(win)
    lat = wait_picture(qtbot, win)
    assert lat.picture["method"] == "taesd" and win.panel.family_name() == "SD15"
    win.close()


def test_checkpoint_vae_first_then_another_choice_and_a_picked_file(window, qtbot, comfy, tmp_path):
    """With a checkpoint open, its own VAE encodes (as diffusers' AutoencoderKL on the same weights); the row offers
    the TAESD and the approximate latent too; a VAE file the user picks is used and remembered."""
    from unsampler_gui.core.vae import read_picture

    kl = vf.kl_network(seed=5)
    ckpt = vf.full_checkpoint(comfy / "models" / "checkpoints" / "sd15.safetensors", vf.ldm_layout(kl))
    window.settings.comfy_root = str(comfy)
    window.open_model(ckpt)
    qtbot.waitUntil(lambda: window.session.model_in_use() is not None and settled(window), timeout=WAIT_MS)
    photo = tmp_path / "odd.png"
    Image.fromarray(vf.pixels(76, 61)).save(photo)
    window.open_file(str(photo))
    lat = wait_picture(qtbot, window, "odd.png")
    x = torch.from_numpy(read_picture(photo).pixels)[2:74, 2:58].unsqueeze(0)  # VAE Encode's centred crop to 8s
    with torch.inference_mode():
        expect = kl.encode((x * 2 - 1).movedim(-1, 1).contiguous()).latent_dist.mean
    assert torch.equal(lat.tensor, expect) and lat.picture["method"] == "vae"
    assert "odd.png (encoded with the VAE of sd15.safetensors" in window.pictures.source_label.text()
    assert "61x76, cropped to 56x72 → 7x9" in window.pictures.source_label.text()
    combo = window.pictures.vae_combo
    assert combo.count() == 3 and combo.currentIndex() == 0 and combo.itemText(1).startswith("TAESD taesd")

    combo.setCurrentIndex(2)
    combo.activated.emit(2)  # the approximate latent, chosen by the user
    qtbot.waitUntil(lambda: settled(window) and window.session.latent.picture["method"] == "approximate",
                    timeout=WAIT_MS)
    assert combo.currentIndex() == 2

    other = vf.kl_network(seed=6)
    mine = vf.save_safetensors(tmp_path / "my_vae.safetensors", vf.ldm_layout(other))
    window.pictures.use_vae_file(mine)
    qtbot.waitUntil(lambda: settled(window) and window.session.latent.picture["encoder"].startswith("my_vae"),
                    timeout=WAIT_MS)
    with torch.inference_mode():
        expect = other.encode((x * 2 - 1).movedim(-1, 1).contiguous()).latent_dist.mean
    assert torch.equal(window.session.latent.tensor, expect)
    assert window.settings.vae_file == mine
    assert window.viewer.decoders.user_file == mine  # the previews decode with the same file
    assert combo.itemText(combo.currentIndex()).startswith("my_vae.safetensors")
    assert combo.itemText(0).startswith("the VAE inside sd15.safetensors")  # the checkpoint's stays first


def test_a_family_change_encodes_again(window, qtbot, photo):
    """Another family takes other latents: the picture is encoded again for it, so the latent fits."""
    window.open_file(str(photo))
    assert wait_picture(qtbot, window).shape == (1, 4, 9, 7)
    window.panel.set_family("Flux")
    qtbot.waitUntil(lambda: settled(window) and window.session.latent.shape == (1, 16, 9, 7), timeout=WAIT_MS)
    assert window.session.latent.picture["family"] == "Flux" and window.session.latent_fit().fits


def test_export_records_the_picture(window, qtbot, photo, set_steps):
    window.open_file(str(photo))
    wait_picture(qtbot, window)
    set_steps(window, 4)
    src = window.session.export_source()
    assert src.spec.source_picture["source"] == "photo.png" and src.spec.source_picture["method"] == "approximate"


def test_comfyui_picture_fills_the_form_and_opens_its_model(window, qtbot, tmp_path, comfy):
    """A PNG as SaveImage writes it: its KSampler's settings fill the form (undoable), its checkpoint is found in
    the ComfyUI folder and opened, and the picture is encoded with that checkpoint's VAE."""
    kl = vf.kl_network(seed=8)
    name = vf.PROMPT["4"]["inputs"]["ckpt_name"]
    (comfy / "models" / "checkpoints" / "SD1.5").mkdir()
    ckpt = vf.full_checkpoint(comfy / "models" / "checkpoints" / name, vf.ldm_layout(kl))
    window.settings.comfy_root = str(comfy)
    window.panel.set_params({"sampler": "dpmpp_2m", "scheduler": "karras", "steps": 7}, family=False)
    png = vf.comfy_png(tmp_path / "ComfyUI_00001_.png", vf.PROMPT, vf.WORKFLOW)
    window.open_file(str(png))
    lat = wait_picture(qtbot, window, "ComfyUI_00001_.png")
    p = window.session.params
    assert (p.sampler, p.scheduler, p.steps, p.start_at_step, p.end_at_step) == ("euler", "normal", 20, 0, 10000)
    assert window.session.model_source() == ckpt and lat.picture["method"] == "vae"
    assert lat.picture["encoder"].startswith("the VAE of v1-5-pruned-emaonly.safetensors")
    note = window.pictures.note_label.text()
    assert "from the prompt of ComfyUI_00001_.png" in note and "steps 20 (KSampler #3)" in note
    assert "seed 156680208700286 left out" in note and ckpt in note
    history = window.extras.history
    for _ in range(6):  # the graph's values came as form changes: undo takes them back
        if window.session.params.steps == 7:
            break
        history.undo()
    assert (window.session.params.steps, window.session.params.sampler) == (7, "dpmpp_2m")


def test_workflow_json_fills_the_form_only(window, qtbot, tmp_path):
    sample = window.session.latent
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(vf.WORKFLOW))
    window.open_file(str(path))
    qtbot.waitUntil(lambda: settled(window) and window.session.params.steps == 40, timeout=WAIT_MS)
    p = window.session.params
    assert (p.sampler, p.scheduler, p.seed, p.start_at_step, p.end_at_step) == ("dpmpp_2m", "karras", 7, 10, 40)
    assert window.session.latent is sample  # no picture: the latent stays
    assert "flow.json: took sampler dpmpp_2m" in window.status_label.text()
    assert "model sdxl.safetensors" in window.pictures.note_label.text()
    assert "denoise 0.75" in window.pictures.note_label.text()


def test_cancel_during_encoding_keeps_the_latent(window, qtbot, photo, comfy, monkeypatch):
    """Cancel in the status bar stops the encoding between network stages; nothing of it is kept."""
    from unsampler_gui.core import vae

    reached, gate = threading.Event(), threading.Event()
    real = vae.picture_latent

    def gated(*args, progress=None, **kw):
        def held(done, total):
            reached.set()
            gate.wait(WAIT_MS / 1000)
            if progress is not None:
                progress(done, total)
        return real(*args, progress=held, **kw)

    monkeypatch.setattr(vae, "picture_latent", gated)
    window.settings.comfy_root = str(comfy)
    sample = window.session.latent
    window.open_file(str(photo))
    qtbot.waitUntil(reached.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(window.cancel_button.isVisible, timeout=WAIT_MS)
    window.cancel_button.click()
    gate.set()
    qtbot.waitUntil(lambda: settled(window) and "encoding cancelled" in window.status_label.text(), timeout=WAIT_MS)
    assert window.session.latent is sample and not window.cancel_button.isVisible()
    assert not window.pictures.isVisible()


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b"random bytes, not a picture"), "junk.png: not a picture Unsampler can read"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), "junk.png: (cannot|not a picture)"),
    (lambda p: (Image.fromarray(vf.pixels(64, 64)).save(p), p.write_bytes(p.read_bytes()[:200])), "junk.png: cannot"),
    (lambda p: Image.new("CMYK", (16, 16)).save(p.with_suffix(".tif")) or p.write_bytes(
        p.with_suffix(".tif").read_bytes()), "junk.png: a TIFF picture; Unsampler reads PNG, JPEG and WebP"),
])
def test_bad_pictures_are_one_line_and_change_nothing(window, qtbot, tmp_path, shown, make, match):
    sample, before = window.session.latent, window.session.params
    path = tmp_path / "junk.png"
    make(path)
    window.open_file(str(path))
    qtbot.waitUntil(lambda: bool(shown) and settled(window), timeout=WAIT_MS)
    title, text = shown[0]
    assert title == "Open picture" and re.match(match, text) and "\n" not in text
    assert window.status_label.text() == text
    assert window.session.latent is sample and window.session.params == before


def test_a_huge_picture_is_refused(window, qtbot, photo, shown, monkeypatch):
    from unsampler_gui.core.vae import images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    sample = window.session.latent
    window.open_file(str(photo))
    qtbot.waitUntil(lambda: bool(shown) and settled(window), timeout=WAIT_MS)
    assert "56x72 pixels is more than" in shown[0][1] and window.session.latent is sample


def test_a_vae_that_does_not_fit_is_a_message(window, qtbot, photo, tmp_path, shown):
    flux_vae = vf.save_safetensors(tmp_path / "ae.safetensors",
                                   vf.ldm_layout(vf.kl_network(seed=3, latent_channels=16, quant=False)))
    window.open_file(str(photo))
    first = wait_picture(qtbot, window)
    window.pictures.use_vae_file(flux_vae)
    qtbot.waitUntil(lambda: bool(shown) and settled(window), timeout=WAIT_MS)
    assert shown[0][0] == "Encode picture" and "16-channel" in shown[0][1]
    assert window.session.latent is first
    assert np.isfinite(first.tensor.numpy()).all()


def test_the_newest_picture_wins(window, qtbot, photo, comfy, tmp_path, monkeypatch):
    """A picture opened while another is being encoded supersedes it: the first never becomes the latent."""
    from unsampler_gui.core import vae

    reached, gate = threading.Event(), threading.Event()
    real = vae.picture_latent

    def gated(picture, *args, progress=None, **kw):
        def held(done, total):
            if picture.path == str(photo):
                reached.set()
                gate.wait(WAIT_MS / 1000)
            if progress is not None:
                progress(done, total)
        return real(picture, *args, progress=held, **kw)

    monkeypatch.setattr(vae, "picture_latent", gated)
    window.settings.comfy_root = str(comfy)
    seen = []
    window.panel.latentChanged.connect(lambda lat: seen.append(lat.name))
    second = tmp_path / "second.png"
    Image.fromarray(vf.pixels(40, 48, seed=3)).save(second)
    window.open_file(str(photo))
    qtbot.waitUntil(reached.is_set, timeout=WAIT_MS)
    window.open_file(str(second))
    # the first holds the picture thread, so the second waits to be read
    qtbot.waitUntil(lambda: "reading second.png" in window.status_label.text(), timeout=WAIT_MS)
    gate.set()
    lat = wait_picture(qtbot, window, "second.png")
    assert lat.shape == (1, 4, 5, 6) and seen == ["second.png"]


def test_run_waits_for_the_picture(qtbot, settings, photo):
    """``unsampler-gui photo.png --run``: the run starts once the picture is encoded, and runs on its latent."""
    from unsampler_gui.qt import app as app_mod

    win = app_mod.build_window(app_mod.parse_args([str(photo), "--steps", "4", "--run"]), settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.runFinished, timeout=WAIT_MS):
        win.run_when_ready()
    result = win.result()
    assert result is not None and result.plan.spec.source_name == "photo.png"
    assert result.plan.spec.source_picture["method"] == "approximate" and win.session.latent.kind == "picture"
    win.close()
