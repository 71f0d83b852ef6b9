"""TreeGCN, TreeGenerator and PointCritic: shapes, parameter counts, init, naive references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pc3d.nn import PointCritic, TreeGCN, TreeGenerator

PAPER_FEATURES = [96, 256, 256, 256, 128, 128, 128, 3]
PAPER_DEGREES = [1, 2, 2, 2, 2, 2, 64]


def analytic_generator_params(features, degrees, support=10) -> int:
    """Sum over layers of the weight shapes of the tree-GAN generator (official layout)."""
    total, nodes = 0, 1
    for l, d in enumerate(degrees):
        f_in, f_out = features[l], features[l + 1]
        total += sum(f * f_out for f in features[: l + 1])          # W_root_j: F_j -> F_{l+1}, no bias
        total += nodes * f_in * d * f_in                             # W_branch: (N_l, F_l, d*F_l)
        total += f_in * support * f_in + support * f_in * f_out      # W_loop: F -> K*F -> F', no bias
        total += d * f_out                                           # bias: (d, F') (unused in the last layer)
        nodes *= d
    return total


@pytest.fixture(scope="module")
def paper_generator() -> TreeGenerator:
    torch.manual_seed(0)
    return TreeGenerator().eval()


def test_default_generator_parameter_count(paper_generator):
    analytic = analytic_generator_params(PAPER_FEATURES, PAPER_DEGREES)
    counted = sum(p.numel() for p in paper_generator.parameters())
    trainable = sum(p.numel() for p in paper_generator.parameters() if p.requires_grad)
    print(f"tree-GAN generator: analytic {analytic:,}, counted {counted:,}, trainable {trainable:,}")
    assert counted == analytic == 40_690_272  # the official default model's count
    # the last layer's (64, 3) bias exists (official layout) but is frozen and unused
    assert trainable == counted - 64 * 3
    assert not paper_generator.layers[-1].bias.requires_grad


def test_default_stack_shapes_and_node_counts(paper_generator):
    assert paper_generator.node_counts == (1, 1, 2, 4, 8, 16, 32, 2048)
    assert paper_generator.latent_dim == 96 and paper_generator.n_points == 2048
    with torch.no_grad():
        tree = paper_generator(torch.randn(2, 96), return_tree=True)
    assert [tuple(x.shape) for x in tree] == [(2, n, f) for n, f in zip(paper_generator.node_counts, PAPER_FEATURES)]
    for l, layer in enumerate(paper_generator.layers):  # every layer of the default stack
        assert (layer.nodes, layer.out_nodes) == paper_generator.node_counts[l:l + 2]
        with torch.no_grad():
            out = layer(tree[: l + 1])
        assert out.shape == (2, paper_generator.node_counts[l + 1], PAPER_FEATURES[l + 1])
        assert torch.allclose(out, tree[l + 1])


def test_generator_eval_mode_batch_of_one(paper_generator):
    with torch.no_grad():
        x = paper_generator(torch.randn(1, 96))
        x3 = paper_generator(torch.randn(1, 1, 96))
    assert x.shape == x3.shape == (1, 2048, 3) and torch.isfinite(x).all()


def _naive_treegcn(layer: TreeGCN, tree: list[torch.Tensor], fused: bool) -> torch.Tensor:
    """Node-by-node, child-by-child evaluation of the TreeGCN update rule."""
    b = tree[0].shape[0]
    x = tree[-1]
    out = torch.zeros(b, layer.out_nodes, layer.out_features, dtype=x.dtype)
    w1, w2 = layer.W_loop[0].weight, layer.W_loop[1].weight
    for s in range(b):
        for i in range(layer.nodes):
            root = sum(layer.W_root[j].weight @ tree[j][s, i // (layer.nodes // n_j)]
                       for j, n_j in enumerate(layer.ancestor_nodes))
            if layer.ancestor_scale == "mean":
                root = root / len(tree)
            branch = x[s, i] @ layer.W_branch[i]  # (d*F,)
            for k in range(layer.degree):
                c = torch.nn.functional.leaky_relu(branch[k * layer.in_features:(k + 1) * layer.in_features], 0.2)
                y = (w2 @ w1) @ c if fused else w2 @ (w1 @ c)
                y = y + root
                if layer.activation:
                    y = torch.nn.functional.leaky_relu(y + layer.bias[k], 0.2)
                out[s, i * layer.degree + k] = y
    return out


@pytest.mark.parametrize("activation", [True, False])
@pytest.mark.parametrize("fuse_loop", [True, False])
@pytest.mark.parametrize("ancestor_scale", ["sum", "mean"])
def test_treegcn_matches_naive_update_rule(activation, fuse_loop, ancestor_scale):
    torch.manual_seed(0)
    features, degrees = [3, 4, 5, 6], [2, 3, 2]
    layer = TreeGCN(2, features, degrees, support=3, activation=activation, fuse_loop=fuse_loop,
                    ancestor_scale=ancestor_scale).double()
    tree = [torch.randn(2, n, f, dtype=torch.float64, requires_grad=True)
            for n, f in zip((1, 2, 6), features[:3])]
    out = layer(tree)
    ref = _naive_treegcn(layer, tree, fuse_loop)
    assert out.shape == (2, 12, 6)
    assert torch.allclose(out, ref, atol=1e-12)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), [*tree, layer.W_branch, layer.W_loop[0].weight])
    grads_ref = torch.autograd.grad((ref * w).sum(), [*tree, layer.W_branch, layer.W_loop[0].weight])
    for g, r in zip(grads, grads_ref):
        assert torch.allclose(g, r, atol=1e-10)


def test_fused_and_unfused_loop_agree():
    torch.manual_seed(1)
    a = TreeGenerator([8, 16, 8, 3], [2, 2, 4], support=10, fuse_loop=True)
    b = TreeGenerator([8, 16, 8, 3], [2, 2, 4], support=10, fuse_loop=False)
    b.load_state_dict(a.state_dict())
    z = torch.randn(3, 8)
    assert torch.allclose(a(z), b(z), atol=1e-5)


def test_treegcn_init_and_reset_parameters():
    torch.manual_seed(0)
    layer = TreeGCN(1, [8, 16, 32], [2, 4], support=2)
    n, f, df = layer.W_branch.shape
    assert (n, f, df) == (2, 16, 64)
    # torch's fans of a 3-D tensor: fan_in = size(1) * prod(size[2:]), fan_out = size(0) * prod(size[2:])
    bound = nn.init.calculate_gain("relu") * math.sqrt(6.0 / (f * df + n * df))
    assert layer.W_branch.abs().max() <= bound and layer.W_branch.abs().max() > 0.8 * bound
    assert layer.bias.shape == (4, 32) and layer.bias.abs().max() <= 1 / math.sqrt(32)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.reset_parameters()
    assert all(not torch.equal(before[k], v) for k, v in layer.state_dict().items())
    text = repr(layer)
    assert "nodes=2->8" in text and "W_branch=(2, 16, 64)" in text and "support=2" in text
    for b in (1, 3):  # no batch size stored in the layer
        assert layer([torch.randn(b, 1, 8), torch.randn(b, 2, 16)]).shape == (b, 8, 32)


def test_node_init_bounds_and_same_layout_as_official():
    torch.manual_seed(0)
    layer = TreeGCN(1, [8, 16, 32], [2, 4], support=2, init="node")
    n, f, df = layer.W_branch.shape
    # per-node fans: fan_in = F, fan_out = d*F, LeakyReLU(0.2) gain
    bound = nn.init.calculate_gain("leaky_relu", 0.2) * math.sqrt(6.0 / (f + df))
    for i in range(n):
        assert layer.W_branch[i].abs().max() <= bound and layer.W_branch[i].abs().max() > 0.8 * bound
    official = TreeGCN(1, [8, 16, 32], [2, 4], support=2)
    # same parameters, so a checkpoint of one loads into the other (warm starts across modes)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in official.state_dict().items()}
    official.load_state_dict(layer.state_dict())
    assert "init='node'" in repr(layer) and "ancestor_scale='sum'" in repr(layer)
    with pytest.raises(ValueError, match="init must be one of"):
        TreeGCN(1, [8, 16, 32], [2, 4], init="xavier")
    with pytest.raises(ValueError, match="ancestor_scale must be one of"):
        TreeGCN(1, [8, 16, 32], [2, 4], ancestor_scale="max")


def test_fixed_decoder_does_not_start_as_a_clump():
    """The official init puts every child on its parent: a cloud starts as one clump (spread << offset).

    The fixed decoder (per-node init, mean ancestor scale) starts with points spread over a
    region about as wide as its offset from the origin."""
    z = torch.rand(8, 128) * 8  # like a PointNet code after ReLU: non-negative, mean ~4
    spreads = {}
    for init, scale in (("official", "sum"), ("node", "mean")):
        torch.manual_seed(0)
        g = TreeGenerator([128, 128, 64, 64, 32, 3], [2, 2, 4, 8, 8], init=init, ancestor_scale=scale)
        with torch.no_grad():
            y = g(z)
        spreads[init] = (y.std(1).mean() / y.mean(1).abs().mean()).item()
    assert spreads["official"] < 0.1, spreads
    assert spreads["node"] > 0.5, spreads


def test_generator_any_degrees_and_errors():
    g = TreeGenerator([4, 8, 3], [4, 8], support=2, n_points=32)
    assert g(torch.randn(5, 4)).shape == (5, 32, 3)
    with pytest.raises(ValueError, match="prod"):
        TreeGenerator([4, 8, 3], [4, 8], n_points=2048)
    with pytest.raises(ValueError, match="len"):
        TreeGenerator([4, 8, 3], [4])
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        g(torch.randn(5, 5))
    with pytest.raises(ValueError, match="tree"):
        g.layers[1]([torch.randn(2, 1, 4)])


def test_critic_parameter_count_and_modes():
    torch.manual_seed(0)
    faithful = PointCritic()
    fixed = PointCritic(mode="fixed")
    for c in (faithful, fixed):
        assert sum(p.numel() for p in c.parameters()) == 2_536_065
    fixed.load_state_dict(faithful.state_dict())  # same layout
    x = torch.randn(2, 64, 3)
    with torch.no_grad():
        g = faithful.features(x)
        h = g
        for lin in faithful.head:  # faithful: the linears compose with nothing between them
            h = lin(h)
        assert torch.allclose(faithful(x), h, atol=1e-5)
        assert not torch.allclose(fixed(x), h, atol=1e-5)
    assert "head=1024-1024-512-512-1" in repr(faithful) and "fixed" in repr(fixed)
    with pytest.raises(ValueError, match="mode"):
        PointCritic(mode="other")


def test_critic_matches_conv1d_and_is_permutation_invariant():
    torch.manual_seed(0)
    c = PointCritic(conv=(8, 16), head=(16, 8), mode="fixed").double()
    x = torch.randn(3, 20, 3, dtype=torch.float64)
    h = x.transpose(1, 2)
    for conv in c.convs:  # the official layout: Conv1d on (B, C, N), max-pool over points
        h = torch.nn.functional.leaky_relu(conv(h), 0.2)
    assert torch.allclose(c.features(x), h.max(dim=2).values, atol=1e-12)
    perm = torch.randperm(20)
    assert torch.allclose(c(x[:, perm]), c(x), atol=1e-12)
    assert c(x).shape == (3, 1)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        c(torch.randn(3, 3, 20, 2))
