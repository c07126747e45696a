"""A spec for the tests; conftest.py serves it as the `make_spec` fixture."""


def build_spec(family="SD15", shape=None, *, latent_seed=0, **kw):
    """The tests' one spec builder: ``family`` (a name) and a latent of ``shape`` drawn as N(0.2, 0.5^2) from
    ``latent_seed`` (default shape: one item of the family's channels, 32x32, with 3 frames for a video
    family); ``steps`` defaults to 20, every other field to ``UnsampleSpec``'s."""
    import torch

    from unsampler_gui.core import UnsampleSpec, get_family

    fam = get_family(family)
    if shape is None:
        shape = (1, fam.latent.channels) + ((3,) if fam.latent.dimensions == 3 else ()) + (32, 32)
    g = torch.Generator().manual_seed(latent_seed)
    x = torch.randn(*shape, generator=g) * 0.5 + 0.2
    kw.setdefault("steps", 20)
    return UnsampleSpec(family=fam, latent=x, **kw)
