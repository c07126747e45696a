"""The job: spec validation and the plan, the reporter protocol (planned, progress, partials, cancel), the
front door ``run_unsample`` (a spec or a plan; a sink or the older keywords), and the import layering."""
import pytest
import torch

from unsampler_gui.core import (Cancelled, LatentSink, MemorySink, Reporter, plan_unsample, read_latent,
                                run_unsample)
from unsampler_gui.core import unsample
from unsampler_gui.core.errors import BadParameterError


class Cancelling(Reporter):
    def __init__(self, after):
        self.after, self.calls, self.partials = after, 0, []

    def is_cancelled(self):
        self.calls += 1
        return self.calls > self.after

    def partial(self, start, stop, frames):
        self.partials.append((start, stop))


class Recorder(Reporter):
    def __init__(self):
        self.plans, self.prog, self.parts = [], [], []

    def planned(self, plan):
        self.plans.append(plan)

    def progress(self, d, t):
        self.prog.append((d, t))

    def partial(self, a, b, frames):
        self.parts.append((a, b, frames.shape[0]))


def test_cancel_stops_at_next_chunk_and_reports_partials(make_spec):
    rep = Cancelling(after=2)
    with pytest.raises(Cancelled):
        run_unsample(make_spec(steps=100, chunk_frames=10), rep)
    assert rep.partials == [(0, 10), (10, 20)]


@pytest.mark.parametrize("noise", ["independent", "trajectory"])
def test_progress_and_partials_cover_everything(make_spec, noise):
    rep = Recorder()
    run_unsample(make_spec(shape=(2, 4, 8, 8), steps=25, chunk_frames=10, noise=noise), rep)
    assert rep.prog[-1] == (25, 25)
    assert [(a, b) for a, b, _ in rep.parts] == [(0, 10), (10, 20), (20, 25)]
    assert [n for *_, n in rep.parts] == [20, 20, 10]


def test_planned_comes_once_before_any_frame(make_spec):
    rep = Recorder()
    s = make_spec(steps=12, chunk_frames=5)
    run_unsample(s, rep)
    (plan,) = rep.plans
    assert plan.n_steps == 12 and rep.parts[0] == (0, 5, 5)


def test_a_plan_in_hand_is_not_planned_again(make_spec, monkeypatch):
    """The caller that planned already (the app's worker, the CLI) passes the plan: no second validation,
    no second NaN pass over the latent, and no second ``planned``."""
    s = make_spec(shape=(2, 4, 8, 8), steps=12, seed=4)
    plan = plan_unsample(s)
    want = run_unsample(s).latent

    def refuse(spec):
        raise AssertionError("planned again")

    monkeypatch.setattr(unsample, "plan_unsample", refuse)
    rep = Recorder()
    r = run_unsample(plan, rep)
    assert r.plan is plan and torch.equal(r.latent, want)
    assert rep.plans == []


def test_a_duck_typed_reporter_is_enough(make_spec, tmp_path):
    """The CLI's progress bar has only is_cancelled/progress/partial/message: the job fills in the rest."""
    seen = []

    class Bar:
        def is_cancelled(self):
            return False

        def progress(self, done, total):
            seen.append((done, total))

    r = run_unsample(make_spec(steps=6), Bar(), output=str(tmp_path / "o.latent"))
    assert seen[-1] == (6, 6) and read_latent(r.path).tensor.shape == (6, 4, 32, 32)


def test_sinks_and_the_older_keywords_are_the_same_run(make_spec, tmp_path):
    s = make_spec(shape=(2, 4, 8, 8), steps=9, noise="trajectory", frames=(8, 1, 2), seed=6)
    mem = run_unsample(s, None, MemorySink())
    assert mem.path is None and mem.latent.shape == (6, 4, 8, 8)
    a = run_unsample(s, None, LatentSink(tmp_path / "a.latent", max_memory=1 << 20)).path
    b = run_unsample(s, output=str(tmp_path / "b.latent"), max_memory=1 << 20).path
    c = run_unsample(s, None, str(tmp_path / "c.latent")).path  # the older positional form
    assert open(a, "rb").read() == open(b, "rb").read() == open(c, "rb").read()
    assert torch.equal(read_latent(a).tensor, mem.latent)
    with pytest.raises(TypeError):
        run_unsample(s, None, MemorySink(), output=str(tmp_path / "d.latent"))


@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), "steps"), (dict(start_at_step=5, end_at_step=5), "nothing to do"),
    (dict(steps=10, start_at_step=11), "nothing to do"), (dict(sampler="nope"), "unknown sampler"),
    (dict(scheduler="nope"), "unknown scheduler"), (dict(noise="pink"), "noise"),
    (dict(formula="x"), "formula"), (dict(steps=1, scheduler="kl_optimal"), "NaN"),
])
def test_bad_parameters(make_spec, kw, match):
    with pytest.raises(BadParameterError, match=match):
        plan_unsample(make_spec(**kw))


def test_channel_mismatch_names_matching_families(make_spec):
    with pytest.raises(BadParameterError, match="Flux"):
        plan_unsample(make_spec("SD15", shape=(1, 16, 8, 8)))


def test_output_size_known_before_running(make_spec):
    p = plan_unsample(make_spec(shape=(1, 4, 64, 64), steps=10000))
    assert p.out_shape == (10000, 4, 64, 64) and p.out_bytes == 10000 * 4 * 64 * 64 * 4
    assert p.step_bytes == 4 * 64 * 64 * 4


def test_cuda_request_without_cuda_is_clear(make_spec):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from unsampler_gui.core.errors import ResourceError

    with pytest.raises(ResourceError, match="CUDA"):
        plan_unsample(make_spec(device="cuda"))


def test_a_plan_moves_to_another_device_without_being_checked_again(make_spec):
    p = plan_unsample(make_spec(steps=5))
    q = p.on("cpu")
    assert q.device == torch.device("cpu") and q.spec.device == "cpu" and q.schedule is p.schedule


def _core_imports() -> dict:
    """module -> the core modules it imports (at the top or inside a function), read from the source."""
    import ast
    from pathlib import Path

    import unsampler_gui.core as core

    root = Path(core.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps
    return graph


def test_the_engine_layers_import_one_way():
    """job <- frames <- chunks, sink <- the drivers <- unsample: each layer imports only layers below it,
    and nothing the engine stands on imports back into its front door (the session, the parameters and the
    exports stand above it)."""
    layers = ["job", "frames", "chunks", "sink", "drive_cpu", "drive_cuda", "unsample"]
    allowed = {"job": set(), "frames": {"job"}, "chunks": {"job", "frames"}, "sink": {"job", "frames"},
               "drive_cpu": {"job", "frames", "chunks", "sink"}, "drive_cuda": {"job", "frames", "chunks", "sink"},
               "unsample": {"job", "frames", "chunks", "sink", "drive_cpu", "drive_cuda"}}
    graph = _core_imports()
    for name in layers:
        assert graph[name] & set(layers) <= allowed[name], (name, graph[name] & set(layers) - allowed[name])
    below, todo = set(), ["unsample"]  # every core module the engine's front door stands on
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep in graph and dep not in below:
                below.add(dep)
                todo.append(dep)
    assert not [m for m in below if "unsample" in graph[m]]
    assert "cuda_pipeline" not in graph


def test_core_has_no_import_cycle():
    graph = _core_imports()
    state = {}

    def visit(m, path):
        if state.get(m) == "done" or m not in graph:
            return
        assert state.get(m) != "open", " -> ".join(path + [m])
        state[m] = "open"
        for d in graph[m]:
            visit(d, path + [m])
        state[m] = "done"

    for m in graph:
        visit(m, [])
