"""tree-GAN iteration benchmark: one full WGAN-GP iteration (n_critic critic steps + 1 generator
step) of the paper's configuration (B=20, N=2048, 40.7 M generator / 2.5 M critic parameters).

    python experiments/bench_treegan.py [--repeats 1] [--batch 20] [--device cpu|cuda] [--real data|uniform]

Two implementations with the SAME parameters are timed in this process:
- "official layout": the computation as the official code arranges it: the loop term's two
  bias-free linear maps applied one after the other (K*F-wide intermediate), the critic's
  kernel-1 convolutions run as Conv1d on (B, C, N) over all N points in every pass;
- "pc3d": pc3d's TreeGenerator (loop maps fused into their product, formed once per call) and
  PointCritic (the same weights applied as linear maps on (B, N, C); when gradients are needed,
  the differentiable passes run on the critical points only, see ``PointCritic``).
Both start from identical weights. The script first checks that they compute the same things up
to float rounding: generator outputs, critic scores and input gradients, and the WGAN-GP
gradient penalty (same real/fake/alpha) with its gradients w.r.t. the critic parameters (double
backward), in float32 (pc3d against itself without the critical-point path, and against the
official layout) and in float64 (against the official layout; float32 max-pools have near-ties
that rounding can break either way, which moves single gradient rows in any two layouts). It
reports the critical-set size |S| (points attaining the max of at least one of the critic's
channels) on the generated and the real clouds, then times the iteration (median/min over
--repeats) and prints the ratio official/pc3d.

The real batch (``--real data``, default) is B clouds of the built-in synthetic PC15k set
(``data/pc3d_synthetic``, one per category in turn, 2048 random points each); ``--real uniform``
uses uniform noise in [-0.5, 0.5]^3 instead.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing pc3d

from pc3d.models.treegan import gradient_penalty  # noqa: E402
from pc3d.nn import PointCritic, TreeGenerator  # noqa: E402

DATA = ROOT / "data" / "pc3d_synthetic" / "ShapeNetCore.v2.PC15k"


class Conv1dCritic(PointCritic):
    """PointCritic computed as the official code does: Conv1d over (B, C, N), all N points every pass."""

    def __init__(self, **kw) -> None:
        super().__init__(critical_points=False, **kw)

    def point_features(self, points: torch.Tensor) -> torch.Tensor:
        h = points.transpose(1, 2)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), self.negative_slope)
        return h.transpose(1, 2)


def real_batch(kind: str, b: int, n: int, device: torch.device) -> torch.Tensor:
    """(b, n, 3) float32: clouds of the built-in PC15k set (train split) or uniform noise."""
    if kind == "uniform":
        return torch.rand(b, n, 3, device=device) - 0.5
    from pc3d.data.pc15k import load_cloud

    synsets = sorted(p for p in DATA.iterdir() if p.is_dir()) if DATA.is_dir() else []
    if not synsets:
        raise ValueError(f"bench_treegan: --real data needs the built-in set at {DATA}; use --real uniform")
    files = [sorted((s / "train").glob("*.npy")) for s in synsets]
    rng = np.random.default_rng(0)
    clouds = []
    for i in range(b):
        cloud = np.asarray(load_cloud(files[i % len(files)][i // len(files)]), dtype=np.float32)
        clouds.append(cloud[rng.choice(len(cloud), n, replace=False)])
    return torch.from_numpy(np.stack(clouds)).to(device)


def iteration(gen, critic, opt_g, opt_d, real, n_critic=5, gp_lambda=10.0):
    b = real.shape[0]
    for _ in range(n_critic):
        with torch.no_grad():
            fake = gen(torch.randn(b, 96, device=real.device))
        d_loss = critic(fake).mean() - critic(real).mean() + gp_lambda * gradient_penalty(critic, real, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    for p in critic.parameters():
        p.requires_grad_(False)
    g_loss = -critic(gen(torch.randn(b, 96, device=real.device))).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    for p in critic.parameters():
        p.requires_grad_(True)
    if real.is_cuda:
        torch.cuda.synchronize()


def make(gen, critic):
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.0, 0.99))
    return gen, critic, opt_g, opt_d


def max_rel(a: torch.Tensor, b: torch.Tensor) -> str:
    """'max |a - b| (max |b|)' as text."""
    return f"{float((a - b).abs().max()):.2e} (max {float(b.abs().max()):.2e})"


def critic_quantities(critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor):
    """Scores of ``fake`` with grad, d(sum of scores)/d fake, the GP and dGP/d(critic parameters)."""
    x = fake.clone().requires_grad_(True)
    scores = critic(x)
    (gx,) = torch.autograd.grad(scores.sum(), x)
    gp = gradient_penalty(critic, real, fake, alpha=alpha)
    grads = torch.autograd.grad(gp, list(critic.parameters()), allow_unused=True)
    return scores.detach(), gx, gp.detach(), grads


def compare_critics(name: str, critic, reference, real: torch.Tensor, fake: torch.Tensor) -> None:
    """Print how far ``critic`` is from ``reference`` on scores, input gradients, GP and its gradients."""
    alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    (s, gx, gp, grads), (s_r, gx_r, gp_r, grads_r) = (critic_quantities(c, real, fake, alpha)
                                                      for c in (critic, reference))
    worst = max((float((u - v).abs().max()) / max(float(v.abs().max()), 1e-30), n)
                for (n, _), u, v in zip(critic.named_parameters(), grads, grads_r) if v is not None)
    print(f"  {name}: scores {max_rel(s, s_r)}; d score/d points {max_rel(gx, gx_r)}; GP {float(gp):.9e} vs "
          f"{float(gp_r):.9e} (rel {abs(float(gp - gp_r)) / float(gp_r):.1e}); dGP/d params worst "
          f"max|diff|/max|grad| {worst[0]:.1e} ({worst[1]})")


def check_same(gen, gen_off, critic, critic_off, real, dev) -> torch.Tensor:
    """Print the agreement of the two implementations; returns one batch of generated clouds."""
    b = real.shape[0]
    with torch.no_grad():
        z = torch.randn(b, 96, device=dev)
        fake, fake_off = gen(z), gen_off(z)
        s, s_off = critic(fake), critic_off(fake)
    print(f"same outputs: generator max |diff| {max_rel(fake, fake_off)}; critic scores (no grad) {max_rel(s, s_off)}")
    plain = copy.deepcopy(critic)
    plain.critical_points = False
    print("critic with gradients (generated clouds as fake, the real batch as real):")
    compare_critics("float32, pc3d vs pc3d without critical points", critic, plain, real, fake)
    compare_critics("float32, pc3d vs official layout", critic, critic_off, real, fake)
    # float32 max-pools over 2048 points have near-ties that rounding may break either way (the
    # official layout and pc3d's plain path differ there too); float64 shows the exact agreement
    k = min(b, 4)
    compare_critics(f"float64 ({k} clouds), pc3d vs official layout", copy.deepcopy(critic).double(),
                    copy.deepcopy(critic_off).double(), real[:k].double(), fake[:k].double())
    return fake


def critical_sizes(critic, clouds: torch.Tensor) -> str:
    count = critic.critical_mask(clouds).sum(dim=1).float()
    return f"mean {float(count.mean()):.0f}, min {int(count.min())}, max {int(count.max())} of {clouds.shape[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--real", choices=("data", "uniform"), default="data")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    gen = TreeGenerator().to(dev)
    critic = PointCritic().to(dev)
    gen_off = TreeGenerator(fuse_loop=False).to(dev)
    gen_off.load_state_dict(gen.state_dict())
    critic_off = Conv1dCritic().to(dev)
    critic_off.load_state_dict(critic.state_dict())
    n_g = sum(p.numel() for p in gen.parameters())
    n_d = sum(p.numel() for p in critic.parameters())
    assert n_g == sum(p.numel() for p in gen_off.parameters())
    assert n_d == sum(p.numel() for p in critic_off.parameters())
    print(f"torch {torch.__version__}, device={dev}, threads={torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"generator {n_g:,} parameters, critic {n_d:,} parameters (both implementations), B={args.batch}, "
          f"N={gen.n_points}, real={args.real}")

    real = real_batch(args.real, args.batch, gen.n_points, dev)
    fake = check_same(gen, gen_off, critic, critic_off, real, dev)
    print(f"critical set |S| per cloud: generated {critical_sizes(critic, fake)}; real {critical_sizes(critic, real)}")

    variants = (("official layout", make(gen_off, critic_off)),
                ("pc3d", make(copy.deepcopy(gen), copy.deepcopy(critic))))
    times = {name: [] for name, _ in variants}
    for r in range(args.repeats):  # interleaved, so that a change of machine load hits both
        for name, parts in variants:
            t = time.perf_counter()
            iteration(*parts, real)
            times[name].append(time.perf_counter() - t)
            print(f"  repeat {r + 1}: {name:16s} {times[name][-1]:8.2f} s", flush=True)
    rows = [(name, statistics.median(ts), min(ts)) for name, ts in times.items()]
    print(f"{'':18s} {'median':>10s} {'min':>10s}   ({args.repeats} repeats, one iteration = 5 critic steps + 1 "
          f"generator step)")
    for name, med, low in rows:
        print(f"  {name:16s} {med:8.2f} s {low:8.2f} s")
    with torch.no_grad():  # |S| after the timed iterations (the critic has taken n_critic * repeats steps)
        fake = variants[1][1][0](torch.randn(args.batch, 96, device=dev))
    print(f"critical set |S| after the timed steps: generated {critical_sizes(variants[1][1][1], fake)}; "
          f"real {critical_sizes(variants[1][1][1], real)}")
    print(f"ratio official layout / pc3d: median {rows[0][1] / rows[1][1]:.2f}x, min {rows[0][2] / rows[1][2]:.2f}x; "
          f"load average after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
