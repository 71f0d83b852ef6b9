import pytest
import torch

from pc3d.nn import FCDecoder, PointNetEncoder


def test_pointnet_encoder_shapes_and_permutation_invariance():
    torch.manual_seed(0)
    enc = PointNetEncoder(latent_dim=32).eval()
    x = torch.randn(3, 100, 3)
    z = enc(x)
    assert z.shape == (3, 32)
    perm = torch.randperm(100)
    assert torch.allclose(enc(x[:, perm]), z, atol=1e-6)
    # final ReLU: codes are non-negative (Achlioptas et al.)
    assert (z >= 0).all()


def test_pointnet_encoder_matches_naive_per_point_mlp():
    """The shared MLP equals a per-point loop of affine maps followed by a max over points."""
    torch.manual_seed(1)
    enc = PointNetEncoder(hidden=(8, 16), latent_dim=4, batchnorm=False, final_activation=False).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    convs = [m for m in enc.mlp if isinstance(m, torch.nn.Linear)]
    ref = []
    for b in range(2):
        feats = []
        for i in range(7):
            h = x[b, i]
            for j, c in enumerate(convs):
                h = c.weight @ h + c.bias
                if j < len(convs) - 1:
                    h = torch.relu(h)
            feats.append(h)
        ref.append(torch.stack(feats).max(0).values)
    assert torch.allclose(enc(x), torch.stack(ref), atol=1e-12)


def test_pointnet_encoder_rejects_bad_shapes():
    enc = PointNetEncoder()
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        enc(torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        enc(torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="non-empty"):
        enc(torch.randn(2, 0, 3))


def test_fc_decoder_shapes_and_layout():
    dec = FCDecoder(latent_dim=16, n_points=50, hidden=(32, 32))
    y = dec(torch.randn(4, 16))
    assert y.shape == (4, 50, 3)
    lin = [m for m in dec.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(16, 32), (32, 32), (32, 150)]
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        dec(torch.randn(4, 8))


def test_repr_and_reset_parameters():
    enc = PointNetEncoder(latent_dim=8)
    assert "3 -> 64 -> 128 -> 128 -> 256 -> 8" in repr(enc)
    dec = FCDecoder(latent_dim=8, n_points=10)
    assert "10x3" in repr(dec)
    before = dec.mlp[0].weight.clone()
    torch.manual_seed(123)
    dec.reset_parameters()
    assert not torch.equal(before, dec.mlp[0].weight)
