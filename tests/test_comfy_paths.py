"""Which folders "To ComfyUI" accepts, and where the open dialogs start (issue 15)."""
from pathlib import Path

import pytest

from unsampler_gui.core import comfy_paths as cp
from unsampler_gui.core.errors import BadParameterError


def _install(root: Path) -> Path:
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def _desktop(root: Path) -> Path:
    for name in ("input", "output", "models/checkpoints", "user", "custom_nodes"):
        (root / name).mkdir(parents=True)
    return root


def test_git_install_and_its_input_folder(tmp_path):
    root = _install(tmp_path / "ComfyUI")
    assert cp.resolve_comfy_folder(root) == cp.ComfyFolder(root, "install")
    assert cp.comfy_input_dir(root) == root / "input" and (root / "input").is_dir()
    assert cp.resolve_comfy_folder(root / "input").root == root


def test_desktop_user_folder_without_main_py(tmp_path):
    root = _desktop(tmp_path / "Documents" / "ComfyUI")
    folder = cp.resolve_comfy_folder(root)
    assert folder.kind == "desktop" and folder.root == root
    assert cp.comfy_input_dir(root) == root / "input"
    assert cp.resolve_comfy_folder(root / "input").root == root
    assert cp.model_folders(root, "checkpoints") == [root / "models" / "checkpoints"]


def test_model_paths_file_and_its_folder(tmp_path):
    user = _desktop(tmp_path / "Documents" / "ComfyUI")
    appdata = tmp_path / "config" / "ComfyUI"
    appdata.mkdir(parents=True)
    store = tmp_path / "store" / "ckpts"
    store.mkdir(parents=True)
    yaml_file = appdata / "extra_models_config.yaml"
    yaml_file.write_text(f"other:\n  base_path: {tmp_path}\n  checkpoints: store/ckpts\n"
                         f"comfyui_desktop:\n  base_path: {user}\n  is_default: true\n  checkpoints: models/checkpoints/\n")
    for chosen in (yaml_file, appdata):  # the file itself, or the folder that holds it
        folder = cp.resolve_comfy_folder(chosen)
        assert folder.root == user and folder.kind == "desktop" and folder.config == yaml_file
        assert cp.comfy_input_dir(chosen) == user / "input"
        assert cp.model_folders(chosen, "checkpoints") == [user / "models" / "checkpoints", store]
    # a base_path that names the models folder itself leads to its ComfyUI folder
    other = tmp_path / "extra_model_paths.yaml"
    other.write_text(f"comfyui:\n  base_path: {user / 'models'}\n")
    assert cp.resolve_comfy_folder(other).root == user


def test_refusals_name_what_is_accepted(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for bad in (plain, tmp_path / "missing"):
        with pytest.raises(BadParameterError, match="Desktop's user folder") as e:
            cp.resolve_comfy_folder(bad)
        assert "\n" not in str(e.value)
    y = tmp_path / "extra_model_paths.yaml"
    for text in ("a111:\n  base_path: /nonexistent/place\n", "[1, 2", "just text", "x: {base_path: 3}"):
        y.write_text(text)
        with pytest.raises(BadParameterError, match="names no ComfyUI folder"):
            cp.resolve_comfy_folder(y)
    # input/ and models/ alone, without any of the other parts, is not taken for a user folder
    (plain / "input").mkdir()
    (plain / "models").mkdir()
    assert not cp.looks_like_user_folder(plain)
    (plain / "user").mkdir()
    assert cp.looks_like_user_folder(plain)


def test_open_dialog_start_folders(tmp_path):
    root = _desktop(tmp_path / "ComfyUI")
    folder = cp.resolve_comfy_folder(root)
    assert folder.start_folder("latent") == root / "input"  # no output/latents yet
    (root / "output" / "latents").mkdir()
    assert folder.start_folder("latent") == root / "output" / "latents"
    assert folder.start_folder("checkpoint") == root / "models" / "checkpoints"
    (root / "models" / "checkpoints").rmdir()
    (root / "models" / "unet").mkdir()
    assert folder.start_folder("checkpoint") == root / "models" / "unet"
