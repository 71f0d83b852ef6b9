"""LatentGenerator / LatentCritic: sizes, shapes, bad input, re-initialisation, repr."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pc3d.nn import LatentCritic, LatentGenerator


def test_default_architecture_matches_the_documented_sizes():
    gen, critic = LatentGenerator(), LatentCritic()
    lin_g = [m for m in gen.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin_g] == [(128, 256), (256, 512), (512, 128)]
    assert [type(m) for m in gen.mlp] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]  # linear output
    lin_d = [m for m in critic.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin_d] == [(128, 512), (512, 256), (256, 1)]
    assert [type(m) for m in critic.mlp] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear]
    assert all(m.negative_slope == 0.2 for m in critic.mlp if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())  # WGAN-GP


@pytest.mark.parametrize("hidden", [(16, 32), (), (7,)])
def test_shapes(hidden):
    gen = LatentGenerator(noise_dim=5, latent_dim=9, hidden=hidden)
    critic = LatentCritic(latent_dim=9, hidden=hidden)
    w = gen(torch.randn(4, 5))
    assert w.shape == (4, 9)
    assert critic(w).shape == (4, 1)
    assert gen(torch.randn(0, 5)).shape == (0, 9)


def test_outputs_are_unbounded_and_critic_is_per_sample():
    torch.manual_seed(0)
    gen = LatentGenerator(4, 6, hidden=(8,))
    w = gen(torch.randn(64, 4) * 10)
    assert (w < 0).any() and (w > 0).any()  # linear output, no ReLU/tanh at the end
    critic = LatentCritic(6, hidden=(8,))
    x = torch.randn(5, 6)
    # no coupling across the batch (no normalisation): each row scores alone as in the batch
    assert torch.allclose(critic(x), torch.cat([critic(x[i : i + 1]) for i in range(5)]), atol=1e-6)


def test_bad_shapes_raise_value_error():
    gen, critic = LatentGenerator(5, 9, hidden=(8,)), LatentCritic(9, hidden=(8,))
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        gen(torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        gen(torch.randn(4, 2, 5))
    with pytest.raises(ValueError, match=r"\(B, 9\)"):
        critic(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"\(B, 9\)"):
        critic(torch.randn(9))
    for bad in (dict(noise_dim=0), dict(latent_dim=-1), dict(hidden=(4, 0))):
        with pytest.raises(ValueError, match="LatentGenerator: sizes must be positive"):
            LatentGenerator(**{"noise_dim": 3, "latent_dim": 3, "hidden": (4,), **bad})
    with pytest.raises(ValueError, match="LatentCritic: sizes must be positive"):
        LatentCritic(0)
    with pytest.raises(ValueError, match="negative_slope"):
        LatentCritic(4, negative_slope=-0.1)


@pytest.mark.parametrize("cls,args", [(LatentGenerator, (5, 9, (8, 16))), (LatentCritic, (9, (8, 16)))])
def test_reset_parameters_reinitialises_deterministically(cls, args):
    net = cls(*args)
    torch.manual_seed(0)
    net.reset_parameters()
    init = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    torch.manual_seed(0)
    net.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(init, net.parameters()))  # same seed: the same weights
    net.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(init, net.parameters()))  # other draw: every tensor moves


def test_repr_shows_the_sizes():
    assert "mlp=5 -> 8 -> 16 -> 9, activation=ReLU, output=linear" in repr(LatentGenerator(5, 9, (8, 16)))
    assert "mlp=9 -> 32 -> 1, activation=LeakyReLU(0.2), output=linear" in repr(LatentCritic(9, (32,)))
