"""Hostile files and faults (issue 13): every named case, reproduced as an attacker or an unlucky user would.

Each test is one case of the issue; the ones that could crash or hang the test process run the
command line in a subprocess with a timeout. Messages must be one clear line, never a traceback,
an "internal error" or a Python-internal text.
"""
from __future__ import annotations

import collections
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

import ckpt_factory as cf
import pickle_factory as pf
from unsampler_gui.core.detect import detect_model
from unsampler_gui.core.errors import BadFileError, UnsamplerError
from unsampler_gui.core.latent_io import read_latent, write_latent

INTERNAL_TEXTS = ("Traceback", "internal error", "Exceeds the limit", "offset must be", "codec can't",
                  "max_workers", "OverflowError", "MemoryError", "RecursionError", "unexpected error")


def run_cli(*args, timeout=120, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "unsampler_gui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=e)


def assert_clean_error(err: str, *words):
    """One line starting with 'unsampler: error:', containing ``words``, and no Python internals."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("unsampler: error:"), err
    for w in INTERNAL_TEXTS:
        assert w not in err, err
    for w in words:
        assert w in err, err


def cli_main(capsys, *args):
    from unsampler_gui.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def latent_with_metadata(path, unsampler_text: str):
    cf.write_safetensors(path, {"latent_format_version_0": ("F32", [0]),
                                "latent_tensor": np.zeros((1, 4, 8, 8), np.float32)},
                         {"unsampler": unsampler_text})


# ----------------------------------------------------------------------------- the unpickler


def _poison_then_legit(tmp_path, poison: bytes):
    """Open a hostile pickle, then a legitimate checkpoint that uses collections.defaultdict."""
    bad = tmp_path / "poison.pt"
    bad.write_bytes(poison)
    with pytest.raises(BadFileError):
        detect_model(bad)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {k: torch.zeros(1, dtype=torch.float16).expand(*s[1]) if s[1] else torch.zeros(())
                               for k, s in cf.minimal_entries("SD15").items() if not isinstance(s, np.ndarray)},
                "loops": collections.defaultdict(list, {"a": [1]})}, good)
    assert detect_model(good).family == "SD15"


@pytest.mark.parametrize("target", [("collections", "defaultdict"), ("torch._utils", "_rebuild_tensor_v2"),
                                    ("collections", "OrderedDict"), ("torch", "Size"), ("builtins", "set")])
def test_a_pickle_cannot_change_the_reader_for_later_files(tmp_path, target):
    """BUILD with a slot state does setattr on whatever find_class returned: a shared class or function."""
    ops = pf.Ops().proto(2).global_(*target).none().empty_dict().str("__init__")
    ops.global_("torch._utils", "_rebuild_tensor_v2").setitem().str("__defaults__").mark().int(1).tuple().setitem()
    ops.tuple2().build().stop()
    _poison_then_legit(tmp_path, ops.bytes())


def test_setitems_on_a_shared_object_is_refused(tmp_path):
    ops = pf.Ops().proto(2).global_("collections", "OrderedDict").mark().str("k").int(1).setitems().stop()
    _poison_then_legit(tmp_path, ops.bytes())


def test_deep_tuple_key_does_not_crash(tmp_path):
    """200,000 nested tuples as a dict key made CPython's hash recurse in C: SIGSEGV."""
    p = tmp_path / "deep.pt"
    p.write_bytes(pf.Ops().proto(2).empty_dict().empty_tuple().raw(b"\x85" * 200_000).none().setitem().stop().bytes())
    r = run_cli("info", p)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert_clean_error(r.stderr, "nested")


def test_nesting_50000_deep_is_a_clear_message(tmp_path):
    p = tmp_path / "deep.pt"
    p.write_bytes(pf.Ops().proto(2).empty_list().raw(b"]" * 50_000).raw(b"a" * 50_000).stop().bytes())
    with pytest.raises(BadFileError, match="nested"):
        detect_model(p)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        try:
            fn()
        except UnsamplerError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_43_byte_pickle_cannot_allocate_2_gib(tmp_path):
    p = tmp_path / "bomb.pt"
    p.write_bytes(pf.Ops().proto(2).global_("builtins", "bytearray").int(2**31 - 1).tuple1().reduce().stop().bytes())
    assert len(p.read_bytes()) <= 43
    with pytest.raises(BadFileError):
        detect_model(p)
    assert _peak_bytes(lambda: detect_model(p)) < 16 << 20


def test_9_byte_pickle_cannot_grow_the_memo(tmp_path):
    p = tmp_path / "memo.pt"
    p.write_bytes(pf.Ops().proto(2).none().long_binput(2**27).stop().bytes())
    assert len(p.read_bytes()) == 9
    assert _peak_bytes(lambda: detect_model(p)) < 16 << 20
    with pytest.raises(BadFileError):
        detect_model(p)


def test_tiny_zip_with_a_huge_data_pkl_is_refused_before_unpacking(tmp_path):
    p = tmp_path / "zipbomb.ckpt"
    body = pf.Ops().proto(2).empty_list().raw(b"N" * (100 << 20)).stop().bytes()
    pf.torch_zip(p, body, compression=zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 200_000
    assert _peak_bytes(lambda: detect_model(p)) < 16 << 20
    with pytest.raises(BadFileError, match="data.pkl"):
        detect_model(p)


def _sd2_pickle(vpred_size, vpred_numel=320, offset=0):
    """The minimal SD2 keys as stubs, the v-prediction test's tensor with the given shape."""
    from unsampler_gui.core.detect.model_type import SD2_VPRED_KEY

    tensors = {}
    for i, (name, e) in enumerate(cf.minimal_entries("SD21_768_v").items()):
        shape = e.shape if isinstance(e, np.ndarray) else e[1]
        n = int(np.prod(shape)) if len(shape) else 1
        tensors[name] = (str(i), n, tuple(shape))
    key = cf.PREFIX + SD2_VPRED_KEY
    tensors[key] = ("vpred", vpred_numel, tuple(vpred_size), None, offset)
    return pf.tensor_pickle(tensors), {"vpred": np.ones(vpred_numel, np.float16).tobytes()}


def test_negative_shape_in_a_zip_storage_is_refused(tmp_path):
    p = tmp_path / "neg.ckpt"
    data, storages = _sd2_pickle((-1,), vpred_numel=4 << 20)
    pf.torch_zip(p, data, storages)
    assert _peak_bytes(lambda: detect_model(p)) < 6 << 20
    with pytest.raises(BadFileError, match="shape"):
        detect_model(p)


def test_negative_storage_offset_is_a_clear_message(tmp_path):
    p = tmp_path / "off.ckpt"
    data, storages = _sd2_pickle((320,), offset=-8)
    pf.torch_zip(p, data, storages)
    with pytest.raises(BadFileError) as e:
        detect_model(p)
    assert "offset must be" not in str(e.value)


def test_integer_with_5000_digits_in_a_pickle(tmp_path):
    p = tmp_path / "digits.pt"
    p.write_bytes(pf.Ops().proto(2).text_int("7" * 5000).stop().bytes())
    with pytest.raises(BadFileError) as e:
        detect_model(p)
    assert "Exceeds the limit" not in str(e.value)


# ----------------------------------------------------------------------------- zip members and JSON readers


@pytest.mark.parametrize("case", ["encrypted", "method 9", "corrupt deflate"])
def test_unreadable_zip_members_are_clear(tmp_path, case):
    p = tmp_path / "z.ckpt"
    data, storages = _sd2_pickle((320,))
    if case == "encrypted":
        pf.torch_zip(p, data, storages, member_flags=1)
    elif case == "method 9":
        pf.torch_zip(p, data, storages, method=9)
    else:
        pf.torch_zip(p, data, storages, compression=zipfile.ZIP_DEFLATED)
        raw = bytearray(p.read_bytes())
        i = raw.find(b"PK\x03\x04") + 30 + len("archive/data.pkl")
        raw[i:i + 40] = b"\xff" * 40
        p.write_bytes(bytes(raw))
    r = run_cli("info", p)
    assert r.returncode == 2
    assert_clean_error(r.stderr, "z.ckpt")


def test_safetensors_header_with_5000_digit_integer(tmp_path):
    p = tmp_path / "digits.latent"
    cf.write_raw_header(p, b'{"latent_tensor": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}')
    r = run_cli("info", p)
    assert r.returncode == 2
    assert_clean_error(r.stderr)


@pytest.mark.parametrize("meta", ["[1, 2]", '{"family": "SD15", "source": "x.latent"}', "[" * 100_000 + "]" * 100_000,
                                  '{"family": ["SD15"], "steps": {"a": 1}, "source": {"name": 5}}'])
def test_odd_unsampler_metadata_is_not_an_internal_error(tmp_path, capsys, meta):
    p = tmp_path / "m.latent"
    latent_with_metadata(p, meta)
    code, out, err = cli_main(capsys, "info", p)
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err
    code, out, err = cli_main(capsys, "info", p, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["unsampler"] is None or isinstance(doc["unsampler"], dict)


def _diffusers(tmp_path, index: dict, component=None, config=None, scheduler=None):
    root = tmp_path / "pipe"
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps(index))
    if component:
        (root / component).mkdir()
        (root / component / "config.json").write_text(json.dumps(config or {}))
    if scheduler is not None:
        (root / "scheduler").mkdir()
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return root


@pytest.mark.parametrize("index,component,config,scheduler", [
    ({"_class_name": ["StableDiffusionPipeline"]}, None, None, None),
    ({"_class_name": {"a": 1}}, None, None, None),
    ({"_class_name": "StableDiffusionPipeline"}, "unet", {"_class_name": "UNet2DConditionModel",
                                                           "cross_attention_dim": {"x": 768}}, None),
    ({"_class_name": "StableDiffusionPipeline"}, "unet", {"cross_attention_dim": 768},
     {"prediction_type": ["v_prediction"]}),
    ({"_class_name": "FluxPipeline"}, "transformer", {"in_channels": [384], "guidance_embeds": {"a": 1}},
     {"shift": [3.0]}),
    ({"_class_name": "StableDiffusionXLPipeline"}, "unet", {"cross_attention_dim": 2048},
     {"_class_name": ["EDMDPMSolverMultistepScheduler"], "sigma_data": [0.5]}),
])
def test_diffusers_configs_with_lists_or_objects(tmp_path, capsys, index, component, config, scheduler):
    root = _diffusers(tmp_path, index, component, config, scheduler)
    code, out, err = cli_main(capsys, "info", root)
    assert code in (0, 2), err
    assert "internal error" not in err and "Traceback" not in err and "unhashable" not in err


@pytest.mark.parametrize("shift,word", [(float("inf"), "inf"), (float("nan"), "nan"), (-1, "-1"), ("3", "'3'"),
                                        (1e300, "1e+300"), (True, "True")])
def test_diffusers_shift_out_of_range_is_reported_in_the_evidence(tmp_path, shift, word):
    root = _diffusers(tmp_path, {"_class_name": "StableDiffusion3Pipeline"}, "transformer", {"num_layers": 24},
                      {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": shift})
    det = detect_model(root)
    assert det.shift == 3.0  # ComfyUI's default for SD3, not the config's value
    said = [e for e in det.evidence if "shift" in e and "ignored" in e]
    assert said and word in said[0], det.evidence


# ----------------------------------------------------------------------------- latents and memory


def test_latent_declaring_160_gb_over_a_sparse_file(tmp_path):
    p = tmp_path / "huge.latent"
    cf.write_safetensors(p, {"latent_format_version_0": ("F32", [0]),
                             "latent_tensor": ("F32", [1, 4, 100000, 100000])})
    r = run_cli("run", "--model", "SD15", "--latent", p, "--steps", "2", "-o", tmp_path / "o.latent")
    assert r.returncode == 2
    assert_clean_error(r.stderr, "huge.latent")
    assert not (tmp_path / "o.latent").exists()


def test_info_on_a_huge_sparse_latent_says_what_it_skipped(tmp_path):
    p = tmp_path / "huge.latent"
    cf.write_safetensors(p, {"latent_format_version_0": ("F32", [0]),
                             "latent_tensor": ("F32", [1, 4, 100000, 100000])})
    r = run_cli("info", p, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "[1, 4, 100000, 100000]" in r.stdout and "not computed" in r.stdout


def _peak_rss_of(*args) -> int:
    code = ("import resource, sys; from unsampler_gui.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stderr.strip().splitlines()[-1])


def test_info_statistics_are_computed_in_chunks(tmp_path):
    small, big = tmp_path / "small.latent", tmp_path / "big.latent"
    write_latent(small, torch.zeros(1, 4, 8, 8))
    rows = 384  # 384 frames of [4, 128, 128] float32: 100 MB
    cf.write_safetensors(big, {"latent_format_version_0": ("F32", [0]), "latent_tensor": ("F32", [rows, 4, 128, 128])})
    size = rows * 4 * 128 * 128 * 4
    extra = _peak_rss_of("info", big) - _peak_rss_of("info", small)
    assert extra < 0.5 * size, f"info used {extra >> 20} MiB more for a {size >> 20} MiB latent"


def test_info_values_match_a_direct_computation(tmp_path, capsys):
    p = tmp_path / "v.latent"
    t = torch.randn(37, 4, 16, 16) * 3 + 1
    t[5, 1, 2, 3] = float("nan")
    t[9, 0, 0, 0] = float("inf")
    write_latent(p, t)
    code, out, err = cli_main(capsys, "info", p, "--json")
    assert code == 0, err
    d = json.loads(out)
    finite = t[torch.isfinite(t)].double()
    assert d["nonfinite"] == 2
    assert d["min"] == float(finite.min()) and d["max"] == float(finite.max())
    assert d["mean"] == pytest.approx(float(finite.mean()), rel=1e-12)
    assert d["std"] == pytest.approx(float(finite.std()), rel=1e-9)


# ----------------------------------------------------------------------------- FIFOs and special files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("command", ["run", "info", "detect"])
def test_a_fifo_given_as_input_does_not_hang(tmp_path, command):
    fifo = tmp_path / "pipe.latent"
    os.mkfifo(fifo)
    if command == "run":
        args = ["run", "--model", "SD15", "--latent", fifo, "--steps", "3", "-o", tmp_path / "o.latent"]
    elif command == "info":
        args = ["info", fifo]
    else:
        fifo = fifo.rename(tmp_path / "pipe.ckpt")
        args = ["info", fifo]
    r = run_cli(*args, timeout=60)
    assert r.returncode == 2
    assert_clean_error(r.stderr, "not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_the_app_smoke_test_with_a_fifo_latent_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.latent"
    os.mkfifo(fifo)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(tmp_path), HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "unsampler_gui", str(fifo), "--smoke-test"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_overwrite_never_replaces_a_fifo(tmp_path):
    src = tmp_path / "in.latent"
    write_latent(src, torch.zeros(1, 4, 8, 8))
    fifo = tmp_path / "out.latent"
    os.mkfifo(fifo)
    r = run_cli("run", "--model", "SD15", "--latent", src, "--steps", "3", "-o", fifo, "--overwrite", timeout=60)
    assert r.returncode == 2
    assert_clean_error(r.stderr, "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.latent", "out.latent"]


def test_overwrite_refuses_a_device_node_before_writing():
    from unsampler_gui.core.atomic import check_replaceable

    with pytest.raises(UnsamplerError, match="not a regular file"):
        check_replaceable(os.devnull, overwrite=True)


# ----------------------------------------------------------------------------- two writers, one output


def test_two_writers_without_overwrite_cannot_both_succeed(tmp_path):
    from unsampler_gui.core.latent_io import LatentWriter

    out = tmp_path / "o.latent"
    a = LatentWriter(out, (1, 4, 2, 2))
    b = LatentWriter(out, (1, 4, 2, 2))
    a.write(torch.ones(1, 4, 2, 2))
    b.write(torch.zeros(1, 4, 2, 2))
    a.commit()
    with pytest.raises(UnsamplerError, match="already exists"):
        b.commit()
    assert float(read_latent(out).tensor.sum()) == 16.0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.latent"]


# ----------------------------------------------------------------------------- signals and stale partial files


def _start_export(tmp_path, out):
    src = tmp_path / "in.latent"
    write_latent(src, torch.zeros(1, 4, 64, 64))
    return subprocess.Popen([sys.executable, "-m", "unsampler_gui.cli", "run", "--model", "SD15", "--latent", str(src),
                             "--steps", "10000", "--threads", "1", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_partial(folder, proc, min_bytes=1 << 20):
    """Block until the export has written ``min_bytes`` into its temporary file (bounded by the export itself)."""
    while proc.poll() is None:
        parts = [p for p in folder.iterdir() if p.name.endswith(".partial")]
        if parts and parts[0].stat().st_size >= min_bytes:
            return parts[0]
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass
    raise AssertionError(f"the export ended before writing: {proc.stderr.read()}")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_killed_export_leaves_nothing(tmp_path, sig):
    import signal

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start_export(tmp_path, out_dir / "o.latent")
    _wait_for_partial(out_dir, proc)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "nothing was written" in err and "Traceback" not in err, err
    assert list(out_dir.iterdir()) == []


def test_a_crashed_exports_partial_file_is_cleaned_by_the_next_export(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start_export(tmp_path, out_dir / "o.latent")
    part = _wait_for_partial(out_dir, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert part.exists()  # SIGKILL: nothing could clean up
    old = part.stat().st_mtime - 2 * 3600
    os.utime(part, (old, old))
    mine = out_dir / "notes.partial"  # not ours: kept
    mine.write_text("x")
    write_latent(out_dir / "next.latent", torch.zeros(1, 4, 8, 8))
    assert sorted(x.name for x in out_dir.iterdir()) == ["next.latent", "notes.partial"]


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-2G", "0", "abc"])
def test_max_memory_values(tmp_path, capsys, value):
    src = tmp_path / "in.latent"
    write_latent(src, torch.zeros(1, 4, 8, 8))
    code, out, err = cli_main(capsys, "run", "--model", "SD15", "--latent", src, "--steps", "3",
                              "-o", tmp_path / "o.latent", "--max-memory", value)
    assert code == 2
    assert_clean_error(err, "--max-memory", "--help")


def test_max_memory_that_cannot_be_met_says_the_least(tmp_path, capsys):
    src = tmp_path / "in.latent"
    write_latent(src, torch.zeros(1, 16, 128, 128))  # 1 MiB a frame
    code, out, err = cli_main(capsys, "run", "--model", "Flux", "--latent", src, "--steps", "20",
                              "-o", tmp_path / "o.latent", "--max-memory", "512K", "--threads", "2")
    assert code == 2
    assert_clean_error(err, "--max-memory", "at least")
    assert not (tmp_path / "o.latent").exists()


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-1", "0", "1000"])
def test_shift_out_of_range_is_refused_with_the_range(capsys, value):
    code, out, err = cli_main(capsys, "sigmas", "--model", "SD3", "--steps", "4", "--shift", value)
    assert code == 2
    assert_clean_error(err, "shift", "100")


@pytest.mark.parametrize("args", [["run", "--model", "SD15"], ["sigmas"], ["nope"], ["sigmas", "--model", "SD15",
                                                                                       "--steps", "x"]])
def test_argument_errors_are_one_line_with_a_help_hint(capsys, args):
    code, out, err = cli_main(capsys, *args)
    assert code == 2
    assert_clean_error(err, "--help")
    assert "usage:" not in err


@pytest.mark.parametrize("threads", ["-1", "-5"])
def test_negative_threads(tmp_path, capsys, threads):
    src = tmp_path / "in.latent"
    write_latent(src, torch.zeros(1, 4, 8, 8))
    code, out, err = cli_main(capsys, "run", "--model", "SD15", "--latent", src, "--steps", "3",
                              "-o", tmp_path / "o.latent", "--threads", threads)
    assert code == 2
    assert_clean_error(err, "--threads")


def test_a_file_name_with_a_newline_gives_one_line(tmp_path, capsys):
    p = tmp_path / "two\nlines.latent"
    p.write_bytes(b"\0" * 16)
    code, out, err = cli_main(capsys, "info", p)
    assert code == 2
    assert_clean_error(err, "two\\nlines.latent")


def test_info_escapes_terminal_sequences(tmp_path, capsys):
    p = tmp_path / "esc\x1b[2J.latent"
    latent_with_metadata(p, json.dumps({"family": "\x1b]0;pwned\x07", "sampler": "\x1b[2J\x1b[8m",
                                        "scheduler": "\ud800", "source": {"name": "a\rb", "sha256": "\x9b31m"}}))
    code, out, err = cli_main(capsys, "info", p)
    assert code == 0, err
    for ch in ("\x1b", "\x07", "\r", "\x9b", "\ud800"):
        assert ch not in out and ch not in err
    assert "\\x1b]0;pwned\\x07" in out


def test_info_of_a_checkpoint_escapes_its_metadata(tmp_path, capsys):
    p = tmp_path / "m.safetensors"
    cf.write_safetensors(p, cf.minimal_entries("SDXL"), {"modelspec.architecture": "\x1b]0;x\x07\ud800"})
    code, out, err = cli_main(capsys, "info", p)
    assert code == 0, err
    assert "\x1b" not in out and "\ud800" not in out and "\x07" not in out


# ----------------------------------------------------------------------------- the app's labels


def test_latent_panel_escapes_file_metadata():
    from unsampler_gui.core.inputs import LoadedLatent
    from unsampler_gui.qt.param_panel import describe_latent

    lat = LoadedLatent(tensor=torch.zeros(1, 4, 8, 8), name="a.latent", path="/x/a.latent", sha256="0", stored_dtype="F32",
                       kind="latent", summary={}, unsampler={"family": "<img src='/dev/zero'>", "sampler": "<b>x",
                                                             "scheduler": "&", "steps": "<i>"})
    html = describe_latent(lat)
    assert "<img" not in html and "<b>x" not in html and "<i>" not in html
    assert "&lt;img src=" in html


def test_error_labels_and_boxes_are_plain_text(qtbot):
    from PySide6.QtCore import Qt

    from unsampler_gui.qt.errors import show_error

    box = show_error(None, "Unsampler", "<img src='/dev/zero'>: not a safetensors file")
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText
    box.close()


def test_unsampler_errors_are_always_one_safe_line():
    e = BadFileError("a\nb\x1b[2J\ud800")
    assert str(e) == "a\\nb\\x1b[2J\\ud800"
