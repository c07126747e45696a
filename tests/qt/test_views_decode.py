"""Decoded previews in the viewer and the thumbnails: TAESD after latent2rgb, the full VAE on demand, newest wins,
disabled modes that say what to add. Random diffusers networks in ComfyUI's file layouts (no downloaded weights)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import vae_factory as vf
from support import WAIT_MS
from views_helpers import fake_plan, feed, settle, shown
from unsampler_gui.core.vae import decode_to_uint8, load_taesd, load_vae
from unsampler_gui.core.vae import previews as vp

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI folder with a TAESD decoder (models/vae_approx) and an SD1.5-layout VAE (models/vae)."""
    root = vf.comfy_folder(tmp_path_factory.mktemp("decode") / "ComfyUI")
    _enc, dec = vf.taesd_layout(vf.taesd_network(seed=3))
    taesd = vf.save_safetensors(root / "models" / "vae_approx" / "taesd_decoder.safetensors", dec)
    vae = vf.save_safetensors(root / "models" / "vae" / "vae-ft-mse-test.safetensors",
                              vf.ldm_layout(vf.kl_network(seed=4)))
    return {"root": str(root), "taesd": taesd, "vae": vae}


def device(viewer):
    return viewer.decoders.shelf.device


def ready(qtbot, viewer, mode):
    qtbot.waitUntil(lambda: viewer.decoders.available(mode) and not viewer.decoders.busy(), timeout=WAIT_MS)


@pytest.fixture
def spy(monkeypatch):
    """Wraps ``decode_frame``: records the thread and frame of each call; ``gate`` holds the first call back."""
    calls, gate, base = [], threading.Event(), vp.decode_frame
    gate.set()

    def decode(vae, frame, *args, **kwargs):
        record = {"thread": threading.current_thread(), "frame": frame.clone(), "result": None}
        calls.append(record)
        gate.wait(WAIT_MS / 1000)
        try:
            record["result"] = base(vae, frame, *args, **kwargs)
        except BaseException as e:
            record["result"] = e
            raise
        return record["result"]

    monkeypatch.setattr(vp, "decode_frame", decode)
    base_many = vp.decode_frames

    def decode_many(vae, frames, *args, **kwargs):
        calls.append({"thread": threading.current_thread(), "frame": None, "result": None})
        return base_many(vae, frames, *args, **kwargs)

    monkeypatch.setattr(vp, "decode_frames", decode_many)
    return calls, gate


def test_viewer_shows_taesd_of_the_frame_off_the_gui_thread(qtbot, store, viewer, comfy, spy):
    calls, _gate = spy
    plan = fake_plan(steps=12, spatial=(8, 8))
    out = feed(store, plan)
    viewer.decoders.set_context(comfy_root=comfy["root"])
    ready(qtbot, viewer, vp.TAESD)
    assert viewer.decoders.mode == vp.TAESD  # found: the default
    viewer.select_frame(3)
    shown(qtbot, viewer, 3)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD and viewer.decode.frame_key()[1] == 3,
                    timeout=WAIT_MS)
    ref = decode_to_uint8(load_taesd(decoder=comfy["taesd"], family="SD15", device=device(viewer)), out[3][None])[0]
    assert ref.shape == (64, 64, 3)
    assert np.array_equal(viewer.image_item.image, ref)
    assert viewer.decode.source_label.text() == "shown: TAESD"
    assert calls and all(c["thread"] is not threading.main_thread() for c in calls)
    # the decoded picture sits where the latent preview was: 8x8 latent units
    item = viewer.image_item
    assert item.mapRectToView(item.boundingRect()).width() == pytest.approx(8)
    # back to latent2rgb: the latent preview again, and a cached decode comes back without a new call
    n = len(calls)
    assert viewer.decoders.set_mode(vp.LATENT2RGB)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.LATENT2RGB, timeout=WAIT_MS)
    assert viewer.image_item.image.shape[:2] == (8, 8)
    assert viewer.decoders.set_mode(vp.TAESD)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD, timeout=WAIT_MS)
    assert len(calls) == n and np.array_equal(viewer.image_item.image, ref)


def test_newest_frame_wins(qtbot, store, viewer, comfy, spy):
    calls, gate = spy
    plan = fake_plan(steps=12, spatial=(8, 8))
    out = feed(store, plan)
    viewer.decoders.set_context(comfy_root=comfy["root"])
    ready(qtbot, viewer, vp.TAESD)
    shown(qtbot, viewer, 0)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD, timeout=WAIT_MS)
    landed = []
    viewer.decode.decoded.connect(lambda mode: landed.append(viewer.decode.frame_key()[1]))
    gate.clear()
    n = len(calls)
    viewer.select_frame(2)
    qtbot.waitUntil(lambda: len(calls) > n, timeout=WAIT_MS)  # frame 2's decode started and is held
    viewer.select_frame(7)
    shown(qtbot, viewer, 7)
    gate.set()
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD and viewer.decode.frame_key()[1] == 7,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not viewer.decode.busy(), timeout=WAIT_MS)
    viewer.decode.wait(WAIT_MS)
    assert landed == [7]
    assert torch.equal(calls[n]["frame"], out[2])
    from unsampler_gui.core.errors import Cancelled
    assert isinstance(calls[n]["result"], Cancelled)  # cancelled between stages, never finished
    ref = decode_to_uint8(load_taesd(decoder=comfy["taesd"], family="SD15", device=device(viewer)), out[7][None])[0]
    assert np.array_equal(viewer.image_item.image, ref)


def test_full_vae_on_demand_with_progress_and_cancel(qtbot, store, viewer, comfy, spy):
    calls, gate = spy
    plan = fake_plan(steps=6, spatial=(8, 8))
    out = feed(store, plan)
    viewer.decoders.set_context(user_file=comfy["vae"])
    ready(qtbot, viewer, vp.VAE)
    assert viewer.decoders.mode == vp.LATENT2RGB  # the full VAE is never the default: it is slow
    assert viewer.decode.vae_button.isEnabled()
    viewer.select_frame(4)
    shown(qtbot, viewer, 4)
    busy, progress = [], []
    viewer.decode.vaeBusy.connect(busy.append)
    viewer.decode.vaeProgress.connect(lambda d, t: progress.append((d, t)))
    gate.clear()
    assert viewer.decode.decode_with_vae()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=WAIT_MS)
    viewer.decode.cancel_vae()
    gate.set()
    qtbot.waitUntil(lambda: busy == [True, False], timeout=WAIT_MS)
    from unsampler_gui.core.errors import Cancelled
    assert isinstance(calls[0]["result"], Cancelled)
    assert viewer.decode.shown_mode == vp.LATENT2RGB
    # again, to the end: the full VAE's picture of the frame, progress as it goes, then cached
    progress.clear()
    assert viewer.decode.decode_with_vae()
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.VAE, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: busy[-1] is False, timeout=WAIT_MS)
    ref = decode_to_uint8(load_vae(comfy["vae"], device=device(viewer)), out[4][None])[0]
    assert np.array_equal(viewer.image_item.image, ref)
    assert calls[-1]["thread"] is not threading.main_thread()
    done = [p for p in progress if p[1]]
    assert done and done[-1][0] == done[-1][1]
    n = len(calls)
    viewer.select_frame(1)
    shown(qtbot, viewer, 1)
    assert viewer.decode.shown_mode == vp.LATENT2RGB  # frame 1 is not decoded: on demand only
    viewer.select_frame(4)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.VAE, timeout=WAIT_MS)
    assert len(calls) == n and not viewer.decode.vae_busy()


def test_a_new_frame_supersedes_the_full_vae_decode(qtbot, store, viewer, comfy, spy):
    calls, gate = spy
    plan = fake_plan(steps=6, spatial=(8, 8))
    feed(store, plan)
    viewer.decoders.set_context(user_file=comfy["vae"])
    ready(qtbot, viewer, vp.VAE)
    shown(qtbot, viewer, 0)
    gate.clear()
    assert viewer.decode.decode_with_vae()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=WAIT_MS)
    landed = []
    viewer.decode.decoded.connect(landed.append)
    feed(store, fake_plan(steps=5, spatial=(8, 8)))  # the inputs changed: new frames
    assert not viewer.decode.vae_busy()
    gate.set()
    viewer.decode.wait(WAIT_MS)
    shown(qtbot, viewer, 0)
    qtbot.waitUntil(lambda: not viewer.decode.busy(), timeout=WAIT_MS)
    assert landed == [] and viewer.decode.shown_mode == vp.LATENT2RGB


def test_unavailable_modes_are_disabled_and_say_what_to_add(qtbot, store, viewer, tmp_path):
    feed(store, fake_plan(steps=4, spatial=(8, 8)))
    root = vf.comfy_folder(tmp_path / "ComfyUI")
    viewer.decoders.set_context(comfy_root=str(root))
    qtbot.waitUntil(lambda: viewer.decoders.family is not None and not viewer.decoders.busy(), timeout=WAIT_MS)
    d = viewer.decode
    qtbot.waitUntil(lambda: "taesd_decoder.pth" in d.item(vp.TAESD).toolTip(), timeout=WAIT_MS)
    assert not d.item(vp.TAESD).isEnabled() and not d.item(vp.VAE).isEnabled() and d.item(vp.LATENT2RGB).isEnabled()
    assert str(root / "models" / "vae_approx") in d.item(vp.TAESD).toolTip()
    assert str(root / "models" / "vae") in d.item(vp.VAE).toolTip()
    assert not d.vae_button.isEnabled()
    assert not viewer.decoders.set_mode(vp.TAESD) and viewer.decoders.mode == vp.LATENT2RGB
    d.combo.setCurrentIndex(vp.MODES.index(vp.TAESD))  # the display choice refuses it too
    assert d.combo.currentIndex() == vp.MODES.index(vp.LATENT2RGB) and viewer.decoders.mode == vp.LATENT2RGB
    assert [d.combo.itemText(i) for i in range(3)] == ["RGB (latent2rgb)", "RGB (TAESD)", "RGB (full VAE)"]


@pytest.mark.parametrize("family, taesd_words, vae_words", [
    ("WAN22_T2V", "lighttaew2_2", "Wan 2.2 VAE"),
    ("Flux2", "taef2", "models"),
    ("LTXV", "no TAESD exists", "no VAE network"),
])
def test_families_without_a_decoder_get_the_core_message(family, taesd_words, vae_words, tmp_path):
    root = vf.comfy_folder(tmp_path / "ComfyUI")
    opts = vp.preview_options(family, comfy_root=str(root))
    assert not opts[vp.TAESD].available and taesd_words in opts[vp.TAESD].reason
    assert not opts[vp.VAE].available and vae_words in opts[vp.VAE].reason
    assert opts[vp.LATENT2RGB].available


def test_wan_vae_decodes_the_viewers_time_index(qtbot, store, viewer, tmp_path, spy):
    wan = vf.save_safetensors(tmp_path / "wan_2.1_vae.safetensors", vf.wan_layout(vf.wan_network(seed=5)))
    plan = fake_plan(steps=3, family="WAN21_T2V", spatial=(8, 8))
    out = feed(store, plan)
    viewer.decoders.set_context(user_file=wan)
    ready(qtbot, viewer, vp.VAE)
    assert "lighttaew2_1" in viewer.decode.item(vp.TAESD).toolTip()
    shown(qtbot, viewer, 0)
    viewer.set_time_index(2)
    shown(qtbot, viewer, 0)
    assert viewer.decode.decode_with_vae()
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.VAE, timeout=WAIT_MS)
    ref = decode_to_uint8(load_vae(wan, device=device(viewer)), out[0][None], time_index=2)[0]
    assert np.array_equal(viewer.image_item.image, ref)


def test_taesd_thumbnails_toggle(qtbot, store, comfy, spy):
    from PySide6.QtGui import QAction
    from unsampler_gui.qt.frame_viewer import FrameViewer
    from unsampler_gui.qt.preview_decoders import bind_thumbnails_action
    from unsampler_gui.qt.thumbnail_grid import GridPane, ThumbnailGrid

    grid = ThumbnailGrid(store, thumb_size=48)
    pane = GridPane(grid)
    viewer = FrameViewer(store)
    for w in (pane, viewer):
        qtbot.addWidget(w)
    pane.resize(400, 300)
    pane.show()
    qtbot.waitExposed(pane)
    grid.set_decoders(viewer.decoders)
    option = bind_thumbnails_action(QAction("TAESD thumbnails", pane), viewer.decoders)
    plan = fake_plan(steps=10, spatial=(8, 8))
    out = feed(store, plan)
    model = grid.thumbnail_model()
    qtbot.waitUntil(lambda: "taesd_decoder.pth" in option.toolTip(), timeout=WAIT_MS)
    assert not option.isEnabled()
    viewer.decoders.set_context(comfy_root=comfy["root"])
    qtbot.waitUntil(option.isEnabled, timeout=WAIT_MS)
    settle(qtbot, model)
    visible = list(grid.visible_rows())
    assert visible and not any(model.is_decoded(r) for r in visible)
    plain = model.decoration(visible[0]).copy()
    option.setChecked(True)
    assert viewer.decoders.thumbnails_on and model.decoder_token is not None
    grid.viewport().update()
    qtbot.waitUntil(lambda: all(model.is_decoded(r) for r in grid.visible_rows()), timeout=WAIT_MS)
    assert spy[0] and all(c["thread"] is not threading.main_thread() for c in spy[0])
    row = visible[0]
    img = model.decoration(row)
    assert img != plain and img.width() == 48
    tae = load_taesd(decoder=comfy["taesd"], family="SD15", device=viewer.decoders.shelf.device)
    from PySide6.QtCore import QSize, Qt
    from unsampler_gui.qt.thumb_renderer import qimage_from_rgb
    ref = qimage_from_rgb(decode_to_uint8(tae, out[model.frame_of(row)][None])[0]).scaled(
        QSize(48, 48), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    assert img == ref
    option.setChecked(False)
    assert model.decoder_token is None and model.decoration(row) == plain
    settle(qtbot, model)
    viewer.close()
    viewer.shutdown()
    grid.shutdown()


def test_a_new_family_never_uses_the_old_familys_decoder(qtbot, store, viewer, comfy):
    feed(store, fake_plan(steps=4, spatial=(8, 8)))
    viewer.decoders.set_context(comfy_root=comfy["root"])
    ready(qtbot, viewer, vp.TAESD)
    feed(store, fake_plan(steps=4, family="Flux", spatial=(8, 8)))
    assert not viewer.decoders.available(vp.TAESD) and viewer.decoders.mode == vp.LATENT2RGB  # at once
    qtbot.waitUntil(lambda: "taef1_decoder.pth" in viewer.decode.item(vp.TAESD).toolTip(), timeout=WAIT_MS)
    assert "16-channel" in viewer.decode.item(vp.VAE).toolTip()  # models/vae holds a 4-channel VAE only
    feed(store, fake_plan(steps=4, spatial=(8, 8)))
    ready(qtbot, viewer, vp.TAESD)
    assert viewer.decoders.mode == vp.TAESD


def test_a_broken_taesd_file_is_said_once_and_the_frames_stay_latent2rgb(qtbot, store, tmp_path):
    from PySide6.QtGui import QAction
    from unsampler_gui.qt.frame_viewer import FrameViewer
    from unsampler_gui.qt.preview_decoders import bind_thumbnails_action
    from unsampler_gui.qt.thumbnail_grid import ThumbnailGrid

    root = vf.comfy_folder(tmp_path / "ComfyUI")
    (root / "models" / "vae_approx" / "taesd_decoder.pth").write_bytes(b"not a pickle at all" * 10)
    grid, viewer = ThumbnailGrid(store, thumb_size=48), FrameViewer(store)
    for w in (grid, viewer):
        qtbot.addWidget(w)
    grid.resize(300, 200)
    grid.show()
    viewer.show()
    grid.set_decoders(viewer.decoders)
    option = bind_thumbnails_action(QAction("TAESD thumbnails", grid), viewer.decoders)
    feed(store, fake_plan(steps=6, spatial=(8, 8)))
    statuses, failures = [], []
    viewer.decode.status.connect(statuses.append)
    grid.thumbnail_model().decodeFailed.connect(lambda exc: failures.append(exc))
    viewer.decoders.set_context(comfy_root=str(root))
    qtbot.waitUntil(lambda: len(statuses) == 1, timeout=WAIT_MS)
    assert statuses[0].startswith("TAESD preview failed: taesd_decoder.pth") and "\n" not in statuses[0]
    assert viewer.decode.shown_mode == vp.LATENT2RGB and "failed" in viewer.decode.source_label.text()
    option.setChecked(True)
    grid.viewport().update()
    qtbot.waitUntil(lambda: len(failures) == 1, timeout=WAIT_MS)
    settle(qtbot, grid.thumbnail_model())
    grid.viewport().repaint()
    assert not grid.thumbnail_model().busy() and len(failures) == 1  # not retried at every paint
    for w in (viewer, grid):
        w.close()
    viewer.shutdown()
    grid.shutdown()


def test_no_taesd_decodes_while_playing_on_the_cpu(qtbot, store, viewer, comfy, spy, monkeypatch):
    from unsampler_gui.qt import viewer_decode

    monkeypatch.setattr(viewer_decode, "cuda_available", lambda: False)
    calls, _gate = spy
    feed(store, fake_plan(steps=30, spatial=(8, 8)))
    viewer.decoders.set_context(comfy_root=comfy["root"])
    ready(qtbot, viewer, vp.TAESD)
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD, timeout=WAIT_MS)
    n = len(calls)
    viewer.play()
    qtbot.waitUntil(lambda: viewer.current_frame() >= 4, timeout=WAIT_MS)
    assert len(calls) == n and "paused" in viewer.decode.source_label.text()
    viewer.stop()
    qtbot.waitUntil(lambda: viewer.decode.shown_mode == vp.TAESD
                    and viewer.decode.frame_key()[1] == viewer.current_frame(), timeout=WAIT_MS)
