"""latent2rgb previews for every family, including Flux2's regrouped channels and packed audio-video latents."""
import numpy as np
import pytest
import torch

from unsampler_gui.core import family_names, get_family, preview


@pytest.mark.parametrize("name", family_names())
def test_every_family_previews(name):
    fam = get_family(name)
    lat = fam.latent
    shape = (lat.channels,) + ((2,) if lat.dimensions == 3 else ()) + (4, 6)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    rgb = preview.latent_rgb_linear(x, fam)
    k = lat.rgb_factors_reshape["pixel_shuffle"] if lat.rgb_factors_reshape else 1
    assert rgb.shape == (4 * k, 6 * k, 3) and rgb.dtype == np.float32 and np.isfinite(rgb).all()
    assert preview.render(x, fam).shape == (4 * k, 6 * k, 3)


def test_flux2_preview_is_comfyuis_reshape_then_linear():
    """ComfyUI's Flux2 ``latent_rgb_factors_reshape``: [B, 32, 2, 2, H, W] -> permute (0, 1, 4, 2, 5, 3) ->
    [B, 32, 2H, 2W], then ``F.linear`` with the 32 rows of factors."""
    fam = get_family("Flux2")
    x = torch.randn(128, 3, 5, generator=torch.Generator().manual_seed(3))
    t = x.unsqueeze(0)
    t = t.reshape(1, 32, 2, 2, 3, 5).permute(0, 1, 4, 2, 5, 3).reshape(1, 32, 6, 10)[0]
    w = torch.tensor(fam.latent.rgb_factors)
    b = torch.tensor(fam.latent.rgb_factors_bias)
    want = torch.nn.functional.linear(t.movedim(0, -1), w.t(), b).numpy()
    assert np.array_equal(preview.latent_rgb_linear(x, fam), want)


def test_packed_audio_video_previews_the_video_channels():
    fam = get_family("MiniMaxH3")
    assert fam.latent.channels == 32 and len(fam.latent.rgb_factors) == 24
    x = torch.randn(32, 1, 4, 4)
    y = x.clone()
    y[24:] = 100.0  # the audio stream does not reach the preview
    assert np.array_equal(preview.latent_rgb_linear(x, fam), preview.latent_rgb_linear(y, fam))
