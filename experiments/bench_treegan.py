"""tree-GAN iteration benchmark: one full WGAN-GP iteration (n_critic critic steps + 1 generator
step) of the paper's configuration (B=20, N=2048, 40.7 M generator / 2.5 M critic parameters).

    python experiments/bench_treegan.py [--repeats 1] [--batch 20] [--device cpu|cuda]

Two implementations with the SAME parameters are timed in this process:
- "official layout": the computation as the official code arranges it: the loop term's two
  bias-free linear maps applied one after the other (K*F-wide intermediate), the critic's
  kernel-1 convolutions run as Conv1d on (B, C, N);
- "pc3d": pc3d's TreeGenerator (loop maps fused into their product, formed once per call) and
  PointCritic (the same weights applied as linear maps on (B, N, C)).
Both start from identical weights; the script first checks that generator outputs and critic
scores agree up to float rounding, then times the iteration (median/min over --repeats) and
prints the ratio official/pc3d.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

from pc3d.models.treegan import gradient_penalty
from pc3d.nn import PointCritic, TreeGenerator


class Conv1dCritic(PointCritic):
    """PointCritic computed as the official code does: Conv1d over (B, C, N)."""

    def features(self, points: torch.Tensor) -> torch.Tensor:
        h = points.transpose(1, 2)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), self.negative_slope)
        return h.amax(dim=2)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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
    print(f"torch {torch.__version__}, device={dev}, threads={torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"generator {n_g:,} parameters, critic {n_d:,} parameters, B={args.batch}, N={gen.n_points}")

    with torch.no_grad():
        z = torch.randn(args.batch, 96, device=dev)
        a, b = gen(z), gen_off(z)
        sa, sb = critic(a), critic_off(a)
    print(f"same outputs: generator max |diff| {float((a - b).abs().max()):.2e} (max |x| {float(a.abs().max()):.2e}), "
          f"critic max |diff| {float((sa - sb).abs().max()):.2e} (max |score| {float(sa.abs().max()):.2e})")

    real = torch.rand(args.batch, gen.n_points, 3, device=dev) - 0.5
    rows = []
    variants = (("official layout", (gen_off, critic_off)), ("pc3d", (copy.deepcopy(gen), copy.deepcopy(critic))))
    for name, (g, d) in variants:
        parts = make(g, d)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            iteration(*parts, real)
            times.append(time.perf_counter() - t)
        rows.append((name, statistics.median(times), min(times)))
        print(f"  {name:16s} median {rows[-1][1]:8.2f} s   min {rows[-1][2]:8.2f} s   ({args.repeats} repeats)",
              flush=True)
    print(f"ratio official layout / pc3d (median): {rows[0][1] / rows[1][1]:.2f}x; "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
