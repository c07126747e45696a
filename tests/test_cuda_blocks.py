"""The CUDA path's block noise, run on the CPU: frames gathered from blocks equal the frames one by one."""
import torch

from unsampler_gui.core import UnsampleSpec, get_family, plan_unsample
from unsampler_gui.core.cuda_pipeline import BLOCK, _BlockNoise
from unsampler_gui.core.unsample import _Engine


def _noise(frames=None, steps=300):
    spec = UnsampleSpec(family=get_family("SD15"), latent=torch.randn(2, 4, 4, 4), steps=steps, seed=3,
                        frames=frames)
    eng = _Engine(plan_unsample(spec))
    return eng, _BlockNoise(eng)


def _one_by_one(blocks: _BlockNoise, steps):
    return torch.stack([blocks.get(blocks.eng.k[i]).clone() for i in steps])


def test_block_gather_matches_frame_by_frame():
    eng, blocks = _noise()
    n = len(eng.k)
    cases = [list(range(n)), list(range(5, 5 + 2 * BLOCK + 7)), [0], list(range(BLOCK - 1, BLOCK + 1)),
             [7, 3, 250, 251, 4, 4, 0]]
    for steps in cases:
        v = torch.empty(len(steps), eng.B, 4, 4, 4)
        blocks.fill(v, steps)
        ref = _one_by_one(_noise()[1], steps)
        assert torch.equal(v, ref), steps[:5]
