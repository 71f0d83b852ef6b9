"""Autoencoder: the optional density-uniformity term in the reconstruction loss."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.models import Autoencoder
from pc3d.nn import FCDecoder, PointNetEncoder
from pc3d.ops import chamfer_distance
from tests.helpers import assert_same_fit, fit_spying, uniformity_reference

LATENT, N_IN, N_OUT = 8, 32, 24


def tiny_ae(**kw) -> Autoencoder:
    enc = PointNetEncoder(in_dim=3, hidden=(8, 16), latent_dim=LATENT)
    dec = FCDecoder(latent_dim=LATENT, n_points=N_OUT, hidden=(16,))
    return Autoencoder(enc, dec, latent_dim=LATENT, **kw)


def loader(n: int = 8, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    items = [{"points": torch.randn(N_IN, 3, generator=g), "category": 0} for _ in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def fit_one_step(model: Autoencoder) -> tuple[dict, list[torch.Tensor]]:
    """One optimizer step on the first batch; the logged metrics and the reconstructions the loss saw."""
    return fit_spying(model, "reconstruction_loss", loader())


def test_weight_zero_is_bit_identical_to_the_default():
    torch.manual_seed(0)
    default = tiny_ae()
    torch.manual_seed(0)
    explicit = tiny_ae(uniformity_weight=0.0, uniformity_k=3)
    assert (default.uniformity_weight, default.uniformity_k) == (0.0, 8)
    assert default.hparams["uniformity_weight"] == 0.0 and explicit.hparams["uniformity_k"] == 3
    # the loss is exactly the plain Chamfer distance
    g = torch.Generator().manual_seed(5)
    recon, points = torch.randn(2, N_OUT, 3, generator=g), torch.randn(2, N_IN, 3, generator=g)
    loss, parts = explicit.reconstruction_loss(recon, points)
    assert torch.equal(loss, chamfer_distance(recon, points)) and parts == {}

    run_default, run_explicit = fit_one_step(default), fit_one_step(explicit)
    assert "train/uniformity" not in run_explicit[0]
    assert_same_fit(default, run_default, explicit, run_explicit)


def test_uniformity_term_adds_exactly_weight_times_u():
    weight, k = 0.25, 4
    torch.manual_seed(0)
    plain = tiny_ae()
    torch.manual_seed(0)
    unif = tiny_ae(uniformity_weight=weight, uniformity_k=k)

    # fixed inputs: CD + weight * U, U against an independent reference
    g = torch.Generator().manual_seed(5)
    recon, points = torch.randn(2, N_OUT, 3, generator=g), torch.randn(2, N_IN, 3, generator=g)
    loss, parts = unif.reconstruction_loss(recon, points)
    cd = chamfer_distance(recon, points)
    torch.testing.assert_close(parts["uniformity"].double(), uniformity_reference(recon, k), rtol=1e-5, atol=0)
    assert torch.equal(parts["cd"], cd) and torch.equal(loss, cd + weight * parts["uniformity"])

    # one training step: same reconstruction, loss moved by exactly weight * U(recon)
    m_plain, seen_plain = fit_one_step(plain)
    m_unif, seen_unif = fit_one_step(unif)
    assert torch.equal(seen_plain[0], seen_unif[0])
    u = m_unif["train/uniformity_step"]
    torch.testing.assert_close(u.double(), uniformity_reference(seen_unif[0], k), rtol=1e-5, atol=0)
    assert u > 0
    assert torch.equal(m_unif["train/cd_step"], m_plain["train/loss_step"])
    assert torch.equal(m_unif["train/loss_step"], m_plain["train/loss_step"] + weight * u)
    # the term has a gradient: the decoder took a different step
    assert not all(torch.equal(a, b) for a, b in zip(plain.decoder.parameters(), unif.decoder.parameters()))


def test_uniformity_arguments_are_checked():
    with pytest.raises(ValueError, match="uniformity_weight"):
        tiny_ae(uniformity_weight=-1.0)
    with pytest.raises(ValueError, match="uniformity_k"):
        tiny_ae(uniformity_k=True)
    with pytest.raises(ValueError, match="uniformity_k must be < the number of generated points"):
        tiny_ae(uniformity_weight=0.1, uniformity_k=N_OUT)


def test_config_keys_match_the_defaults():
    from tests.helpers import compose_train

    for overrides in ([], ["model=treegan"]):
        cfg = compose_train(overrides, "/tmp/unused")
        assert cfg.model.uniformity_weight == 0.0 and cfg.model.uniformity_k == 8
