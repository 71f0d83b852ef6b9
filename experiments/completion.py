"""Shape completion on the built-in test partials: GAN inversion against two baselines (issue 17, items 3-4).

    taskset -c 1 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python experiments/completion.py \\
        --kinds scan,hole --json /tmp/completion.json --figure docs/completion.png --morph docs/morph.png

Methods, all scored on the same test partials (``pc3d.data.partial``: single-view ``scan`` and ball
``hole``, 2048 points; the complete test cloud is the ground truth):

* ``partial input``: the partial cloud itself, as a floor reference (its CD to the truth shows what is missing).
* ``(a) nearest train shape``: the training shape (its complete cloud, 2048 points drawn with a fixed
  seed) with the smallest one-sided Chamfer distance partial -> shape (``mean_i min_j ||p_i - s_j||^2``
  over the 640 training shapes); that shape is the completion. No training, no network.
* ``(b0) shipped AE``: the shipped autoencoder (``pretrained:autoencoder``) applied to the partial cloud as
  it is, as a reference (trained on complete clouds only).
* ``(b) fine-tuned encoder``: a copy of the shipped autoencoder's PointNet encoder fine-tuned on
  (partial -> complete) pairs of the train split, with the shipped decoder frozen: loss the squared
  Chamfer distance (:func:`pc3d.ops.chamfer_distance`) of the decoded cloud to 2048 points drawn
  afresh at each step from the complete cloud, Adam, ``--ft-steps`` steps of ``--ft-batch`` pairs
  (one model per partial kind; the train partials of the kind only), validated every ``--ft-val-every``
  steps on the val partials (CD to fixed 2048-point truths), the best kept. This is the paired,
  supervised completion model.
* ``(c) GAN inversion``: :func:`pc3d.inversion.complete` with the shipped l-GAN
  (``pretrained:lgan``, or ``--inv-ckpt``); the knobs default to ``conf/invert.yaml`` (mask, weights, n_starts, the two
  Adam stages), the step counts of the stages are ``--inv-z-steps`` / ``--inv-g-steps``. No paired data.
* ``(bound) shipped AE on the COMPLETE cloud``: not a method (it needs the truth): the shipped encoder
  and decoder applied to the complete test cloud (2048 other points). No latent of this decoder does
  much better, so it bounds how far (b) and (c) can get with the shipped decoder (``--methods
  ...,decoder_bound``).

The l-GAN decodes through the autoencoder's decoder (``Dec(G(z))``), and the shipped l-GAN's
autoencoder is the shipped autoencoder (checked here: every tensor equal), so (b) and (c) share the
decoder architecture and starting weights (inversion then tunes a private copy per shape).

Metrics (per shape, then the mean over the test shapes), in the data's units (shapes fit the
sphere of radius 0.5; no normalization): ``CD`` squared Chamfer, the sum of both directional means,
to 2048 ground-truth points drawn from the complete cloud with a fixed seed; ``F-score@0.01``
(:func:`pc3d.metrics.reconstruction.reconstruction_metrics`, tau on the euclidean distance);
``UCD`` (:func:`pc3d.metrics.reconstruction.unidirectional_chamfer`, partial -> completion, squared)
and ``UHD`` (:func:`pc3d.metrics.reconstruction.unidirectional_hausdorff`, euclidean), which need no
ground truth; seconds per shape of the completion itself (the fine-tuning time of (b) is given apart).

The target of the issue: inversion beats (a) on CD and stays within 1.2x of (b) on CD.

Pictures: ``--figure`` (rows: the first test shape of airplane, chair, table, car; columns: partial |
(a) | (b) | (c) | ground truth, each caption ending with the CD x1e3 to the truth) and ``--morph`` (the
first chair and table test partials fitted as one pair with the same inversion settings, then
:func:`pc3d.inversion.morph`: slerp of ``z``, linear blend of the two tuned decoders), first kind only,
rendered with :func:`pc3d.viz.render.render_grid`.

The train / val partials are written when missing with ``--write-partials`` (:func:`pc3d.data.partial.
write_partial_set`, ``splits=("train", "val")``). The fine-tuned encoders and the completions are cached
under ``--cache`` (keyed by every argument that changes them); ``--reuse`` reads them back.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("partial", "nearest", "shipped_ae", "finetuned", "inversion", "decoder_bound")
LABELS = {
    "partial": "partial input (floor reference)",
    "nearest": "(a) nearest train shape",
    "shipped_ae": "(b0) shipped AE, no fine-tuning",
    "finetuned": "(b) fine-tuned encoder",
    "inversion": "(c) GAN inversion",
    "decoder_bound": "(bound) shipped AE on the COMPLETE cloud",
}
PAIRED = {"partial": "-", "nearest": "no (train shapes only)", "shipped_ae": "no",
          "finetuned": "yes", "inversion": "no", "decoder_bound": "needs the truth"}
FIGURE_CATEGORIES = ("airplane", "chair", "table", "car")


# ---------------------------------------------------------------------------------------------- arguments
def invert_defaults() -> dict[str, Any]:
    """The inversion knobs of ``conf/invert.yaml`` (mask, weights, n_starts, stages, batch size)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "invert.yaml")
    keys = ("n_starts", "stages", "w_feature", "w_prior", "cd_stop", "mask", "batch_size")
    return {k: OmegaConf.to_container(cfg[k]) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in keys}


def build_parser() -> argparse.ArgumentParser:
    inv = invert_defaults()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root", type=Path, default=ROOT / "data" / "pc3d_synthetic", help="the built-in data root")
    p.add_argument("--kinds", default="scan,hole", help="partial kinds (comma-separated)")
    p.add_argument("--noise", type=float, default=0.0, help="noise sigma of the test partials (0 or a written level)")
    p.add_argument("--n-test", type=int, default=None, help="first N test shapes only (default: all)")
    p.add_argument("--every", type=int, default=1, help="every k-th test shape only (a subset across categories)")
    p.add_argument("--n-points", type=int, default=2048, help="points of the ground truth / train shapes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--write-partials", action="store_true", help="write missing train/val partials first")
    # (b)
    p.add_argument("--nn-shortlist", type=int, default=16, help="(a) shapes ranked on --nn-probe points, "
                   "then scored on every partial point")
    p.add_argument("--nn-probe", type=int, default=256, help="(a) partial points of the first ranking (0: exhaustive)")
    p.add_argument("--ft-steps", type=int, default=400, help="(b) fine-tuning steps")
    p.add_argument("--ft-batch", type=int, default=32, help="(b) pairs per step")
    p.add_argument("--ft-lr", type=float, default=3e-4, help="(b) Adam learning rate")
    p.add_argument("--ft-val-every", type=int, default=50, help="(b) validate every N steps (and at the end)")
    # (c)
    z_st, g_st = inv["stages"][0], inv["stages"][-1]
    p.add_argument("--inv-z-steps", type=int, default=z_st["steps"], help="(c) steps of the z-only stage")
    p.add_argument("--inv-g-steps", type=int, default=g_st["steps"], help="(c) steps of the z+G stage")
    p.add_argument("--inv-lr-z", type=float, nargs=2, default=[z_st["lr_z"], g_st["lr_z"]],
                   help="(c) lr of z in the two stages")
    p.add_argument("--inv-lr-g", type=float, default=g_st["lr_g"], help="(c) lr of G in the second stage")
    p.add_argument("--inv-ckpt", default="pretrained:lgan",
                   help="(c) the generator: pretrained:lgan (shipped) or an l-GAN / tree-GAN checkpoint")
    p.add_argument("--inv-n-starts", type=int, default=inv["n_starts"], help="(c) random starts per shape")
    p.add_argument("--inv-batch", type=int, default=inv["batch_size"], help="(c) shapes optimised at once")
    p.add_argument("--inv-mask-k", type=int, default=inv["mask"].get("k", 8), help="(c) knn mask k")
    # outputs
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--figure", type=Path, default=None, help="completion grid PNG (first kind)")
    p.add_argument("--morph", type=Path, default=None, help="morph strip PNG between two inverted test shapes")
    p.add_argument("--morph-frames", type=int, default=8)
    p.add_argument("--morph-categories", default="chair,table",
                   help="the morph runs between the first test shapes of these two categories (refitted as a pair)")
    p.add_argument("--image-size", type=int, default=170, help="pixels per figure tile")
    p.add_argument("--cache", type=Path, default=Path("/tmp/pc3d_completion_cache"))
    p.add_argument("--reuse", action="store_true", help="reuse cached fine-tuned encoders and completions")
    p.add_argument("--methods", default=",".join(METHODS), help="methods to run (comma-separated)")
    return p


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- data
def sample_points(cloud: np.ndarray, n: int, seed: Sequence[int]) -> np.ndarray:
    """``n`` rows of ``cloud`` (without replacement when it has enough), drawn from ``SeedSequence(seed)``.

    Shapes: (N, 3) -> (n, 3) float32.
    """
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    idx = rng.choice(len(cloud), n, replace=len(cloud) < n)
    return np.ascontiguousarray(cloud[idx], dtype=np.float32)


def _sid(item) -> list[int]:
    return [int(item.synset), int(hashlib.sha256(item.model_id.encode()).hexdigest()[:8], 16)]


def load_split(root: Path, kind: str, split: str, noise: float, n_points: int, seed: int, limit: int | None = None,
               every: int = 1):
    """Partial items of a split with a fixed ``n_points`` ground truth per shape: (items, partials, truths).

    Shapes: partials (S, P, 3), truths (S, n_points, 3) float32.
    """
    from pc3d.data.partial import read_partial_set

    items = read_partial_set(root, kind, split, noise=noise if noise else None)
    items = items[::every]
    if limit is not None:
        items = items[:limit]
    parts = np.stack([it.partial for it in items]).astype(np.float32)
    truths = np.stack([sample_points(it.complete, n_points, [seed, *_sid(it)]) for it in items])
    return items, parts, truths


def ensure_partials(root: Path, kinds: Sequence[str], write: bool) -> None:
    from pc3d.data.partial import read_partial_set

    missing = []
    for kind in kinds:
        for split in ("train", "val"):
            try:
                read_partial_set(root, kind, split)
            except ValueError:
                missing.append((kind, split))
    if not missing:
        return
    if not write:
        raise SystemExit(f"completion: missing partials {missing}: rerun with --write-partials, or "
                         f"pc3d-data partial --root {root} --kinds {','.join(kinds)} --splits train,val")
    from pc3d.data.partial import write_partial_set

    write_partial_set(root, kinds=tuple(kinds), splits=("train", "val"), noise=(0.0,), progress=True)


# ---------------------------------------------------------------------------------------------- metrics
def score(pred: np.ndarray, truth: np.ndarray, partial: np.ndarray) -> dict[str, np.ndarray]:
    """Per-shape CD, F-score@0.01 (to the truth), UCD and UHD (partial -> pred). Shapes: (S, *, 3) -> (S,)."""
    import torch

    from pc3d.metrics.reconstruction import reconstruction_metrics, unidirectional_chamfer, unidirectional_hausdorff

    p, t, q = (torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (pred, truth, partial))
    m = reconstruction_metrics(p, t, metrics=("cd", "fscore"), tau=0.01)
    return {"cd": m["cd"].numpy(), "fscore": m["fscore"].numpy(),
            "ucd": unidirectional_chamfer(q, p).numpy(), "uhd": unidirectional_hausdorff(q, p).numpy()}


# ---------------------------------------------------------------------------------------------- (a)
def nearest_train_shape(partials: np.ndarray, train: np.ndarray, *, trees: Sequence[Any] | None = None,
                        shortlist: int = 16, probe: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """For each partial, the index of the train shape with the smallest one-sided Chamfer partial -> shape
    (``mean_i min_j ||p_i - s_j||^2``, squared as pc3d's CD halves).

    Exact search made cheap: the one-sided CD of ``probe`` random partial points ranks every train
    shape, and the full one-sided CD (every partial point) picks the best of the ``shortlist`` first.
    (``shortlist >= len(train)`` or ``probe <= 0``: every shape gets the full distance.)

    Returns (index (S,), the one-sided CD to that shape (S,), seconds, the KD-tree build included).
    Shapes: partials (S, P, 3), train (T, N, 3).
    """
    from scipy.spatial import cKDTree

    t0 = time.perf_counter()
    if trees is None:
        trees = [cKDTree(s.astype(np.float64)) for s in train]
    rng = np.random.default_rng(seed)
    best = np.empty(len(partials), dtype=np.int64)
    best_d = np.empty(len(partials))
    for i, p in enumerate(partials.astype(np.float64)):
        cand = np.arange(len(trees))
        if 0 < probe < len(p) and shortlist < len(trees):
            q = p[rng.choice(len(p), probe, replace=False)]
            coarse = np.array([np.mean(tr.query(q, k=1)[0] ** 2) for tr in trees])
            cand = np.argsort(coarse, kind="stable")[:shortlist]
        d = np.array([np.mean(trees[j].query(p, k=1)[0] ** 2) for j in cand])
        k = int(np.argmin(d))
        best[i], best_d[i] = cand[k], d[k]
    return best, best_d, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- (b)
def finetune_encoder(ae, train_parts: np.ndarray, train_full: Sequence[np.ndarray], val_parts: np.ndarray,
                     val_truth: np.ndarray, *, steps: int, batch: int, lr: float, val_every: int, n_points: int,
                     seed: int, log=print) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a copy of ``ae.encoder`` on (partial -> complete) pairs with ``ae.decoder`` frozen.

    Each step: ``batch`` random pairs, ``n_points`` points drawn afresh from each complete cloud, loss
    the squared Chamfer distance of ``decoder(encoder(partial))`` to them, one Adam step. Every
    ``val_every`` steps (and at the end) the mean val CD is measured (eval mode); the best encoder is kept.

    Shapes: train_parts (T, P, 3); train_full T clouds (N_t, 3); val_parts (V, P, 3), val_truth (V, n_points, 3).
    Returns (the best encoder in eval mode, a record {steps, seconds, val_cd_start, val_cd_best, best_step, curve}).
    """
    import torch

    from pc3d.ops import chamfer_distance

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    enc = copy.deepcopy(ae.encoder)
    dec = ae.decoder.eval()
    for prm in dec.parameters():
        prm.requires_grad_(False)
    for prm in enc.parameters():
        prm.requires_grad_(True)
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    vp, vt = torch.from_numpy(val_parts), torch.from_numpy(val_truth)

    @torch.no_grad()
    def val_cd() -> float:
        enc.eval()
        out = torch.cat([dec(enc(vp[i:i + 64])) for i in range(0, len(vp), 64)])
        return float(chamfer_distance(out, vt, reduction="mean"))

    t0 = time.perf_counter()
    best = val_cd()
    rec: dict[str, Any] = {"val_cd_start": best, "best_step": 0, "curve": [(0, best)]}
    best_state = copy.deepcopy(enc.state_dict())
    for step in range(1, steps + 1):
        enc.train()
        idx = rng.choice(len(train_parts), min(batch, len(train_parts)), replace=False)
        x = torch.from_numpy(train_parts[idx])
        y = torch.from_numpy(np.stack([train_full[i][rng.choice(len(train_full[i]), n_points,
                                                                 replace=len(train_full[i]) < n_points)]
                                       for i in idx]).astype(np.float32))
        loss = chamfer_distance(dec(enc(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % val_every == 0 or step == steps:
            v = val_cd()
            rec["curve"].append((step, v))
            log(f"  ft step {step}/{steps}: train CD {loss.item() * 1e3:.3f}e-3, val CD {v * 1e3:.3f}e-3 "
                f"({time.perf_counter() - t0:.0f} s)")
            if v < best:
                best, rec["best_step"] = v, step
                best_state = copy.deepcopy(enc.state_dict())
    enc.load_state_dict(best_state)
    enc.eval()
    for prm in enc.parameters():
        prm.requires_grad_(False)
    rec.update(steps=steps, seconds=time.perf_counter() - t0, val_cd_best=best)
    return enc, rec


def encode_decode(enc, dec, parts: np.ndarray) -> tuple[np.ndarray, float]:
    """``dec(enc(parts))`` in eval mode, shape by shape timed as a batch. Shapes: (S, P, 3) -> (S, N, 3)."""
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        x = torch.from_numpy(parts)
        out = torch.cat([dec(enc(x[i:i + 16])) for i in range(0, len(x), 16)]).numpy()
    return out, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- (c)
def run_inversion(gen, parts: np.ndarray, args, log=print):
    """Complete ``parts`` with :func:`pc3d.inversion.complete` in batches of ``--inv-batch`` (shape ``i`` is
    started from the seed ``seed + i``); returns (clouds (S, N, 3), seconds, the stages)."""
    import torch

    from pc3d.inversion import complete

    inv = invert_defaults()
    stages = [{"steps": args.inv_z_steps, "lr_z": args.inv_lr_z[0], "lr_g": 0.0},
              {"steps": args.inv_g_steps, "lr_z": args.inv_lr_z[1], "lr_g": args.inv_lr_g}]
    mask = dict(inv["mask"], kind="knn", k=args.inv_mask_k)
    clouds, secs = [], 0.0
    for s in range(0, len(parts), args.inv_batch):
        x = torch.from_numpy(parts[s:s + args.inv_batch])
        res = complete(gen, x, mask={"kind": mask["kind"], "k": mask["k"]}, n_starts=args.inv_n_starts,
                       n_candidates=inv.get("n_candidates", 1),
                       stages=stages, w_feature=inv["w_feature"], w_prior=inv["w_prior"], cd_stop=inv["cd_stop"],
                       seed=args.seed + s)
        clouds.append(res.clouds.numpy())
        secs += res.seconds
        log(f"  inversion {min(s + len(x), len(parts))}/{len(parts)}: fit CD {res.cd.mean().item() * 1e3:.3f}e-3, "
            f"{res.seconds:.0f} s")
    return np.concatenate(clouds), secs, stages


def morph_frames(gen, parts: np.ndarray, args, log=print) -> np.ndarray:
    """Fit the two partial clouds ``parts`` with the settings of :func:`run_inversion` (in one batch, seeds
    ``seed`` and ``seed + 1``) and return :func:`pc3d.inversion.morph` between them. Shapes: (2, P, 3) ->
    (frames, N, 3)."""
    import torch

    from pc3d.inversion import complete, morph

    inv = invert_defaults()
    stages = [{"steps": args.inv_z_steps, "lr_z": args.inv_lr_z[0], "lr_g": 0.0},
              {"steps": args.inv_g_steps, "lr_z": args.inv_lr_z[1], "lr_g": args.inv_lr_g}]
    fit = complete(gen, torch.from_numpy(parts), mask={"kind": "knn", "k": args.inv_mask_k},
                   n_starts=args.inv_n_starts, stages=stages, w_feature=inv["w_feature"], w_prior=inv["w_prior"],
                   cd_stop=inv["cd_stop"], seed=args.seed)
    log(f"  morph: fitted the pair in {fit.seconds:.0f} s (fit CD {fit.cd.mean().item() * 1e3:.3f}e-3)")
    return morph(gen, fit, frames=args.morph_frames, pair=(0, 1)).numpy()


# ---------------------------------------------------------------------------------------------- table
def table(rows: dict[str, dict[str, float]]) -> str:
    head = ("| method | CD x1e3 | F-score@0.01 | UCD x1e3 (partial->completion) | UHD | seconds per shape "
            "| paired training? |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for m in METHODS:
        if m not in rows:
            continue
        r = rows[m]
        lines.append(f"| {LABELS[m]} | {r['cd'] * 1e3:.3f} | {r['fscore']:.3f} | {r['ucd'] * 1e3:.4f} | "
                     f"{r['uhd']:.4f} | {r['seconds_per_shape']:.3g} | {PAIRED[m]} |")
    return head + "\n".join(lines)


def verdict(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "inversion" in rows and "nearest" in rows:
        out["inv_over_nearest_cd"] = rows["inversion"]["cd"] / rows["nearest"]["cd"]
        out["beats_nearest"] = bool(out["inv_over_nearest_cd"] < 1.0)
    if "inversion" in rows and "finetuned" in rows:
        out["inv_over_finetuned_cd"] = rows["inversion"]["cd"] / rows["finetuned"]["cd"]
        out["within_1p2_of_finetuned"] = bool(out["inv_over_finetuned_cd"] <= 1.2)
    if "beats_nearest" in out and "within_1p2_of_finetuned" in out:
        out["target_holds"] = out["beats_nearest"] and out["within_1p2_of_finetuned"]
    return out


def verdict_text(v: dict[str, Any]) -> str:
    s = []
    if "inv_over_nearest_cd" in v:
        r = v["inv_over_nearest_cd"]
        s.append(f"inversion/(a) CD = {r:.3f} ({'beats (a) by' if r < 1 else 'misses (a) by'} "
                 f"{abs(1 - r) * 100:.1f}% of (a)'s CD)")
    if "inv_over_finetuned_cd" in v:
        r = v["inv_over_finetuned_cd"]
        s.append(f"inversion/(b) CD = {r:.3f} (target <= 1.2: {'holds' if r <= 1.2 else f'misses by {r - 1.2:.3f}'})")
    if "target_holds" in v:
        s.append(f"target {'HOLDS' if v['target_holds'] else 'DOES NOT HOLD'}")
    return "; ".join(s)


# ---------------------------------------------------------------------------------------------- figures
def figure_rows(items, kind_out: dict[str, np.ndarray], per: dict[str, dict[str, np.ndarray]],
                categories: Sequence[str] = FIGURE_CATEGORIES) -> list[int]:
    """Indices of the first test shape of each of ``categories`` (those present), at most 4."""
    picks = []
    for c in categories:
        idx = [i for i, it in enumerate(items) if it.category == c]
        if idx:
            picks.append(idx[0])
    if len(picks) < 4:  # a tiny set: fill with other categories
        seen = {items[i].category for i in picks}
        for i, it in enumerate(items):
            if len(picks) >= 4:
                break
            if it.category not in seen:
                picks.append(i)
                seen.add(it.category)
    return picks[:4]


def completion_figure(items, picks, parts, truths, outs: dict[str, np.ndarray], per, size: int) -> np.ndarray:
    """rows = shapes, columns = partial | (a) | (b) | (c) | ground truth; each caption ends with the CD x1e3
    of the cloud to the ground truth."""
    from pc3d.viz.render import render_grid

    cols = [("partial", parts)] + [(m, outs[m]) for m in ("nearest", "finetuned", "inversion") if m in outs]
    cols.append(("truth", truths))
    names = {"partial": "partial", "nearest": "(a) nearest", "finetuned": "(b) fine-tuned",
             "inversion": "(c) inversion", "truth": "ground truth"}
    rows, caps = [], []
    for i in picks:
        rows.append([c[i] for _, c in cols])
        cap = []
        for m, _ in cols:
            if m == "truth":
                cap.append("ground truth")
            else:
                cap.append(f"{names[m]} {per[m]['cd'][i] * 1e3:.2f}")
        caps.append(cap)
    return render_grid(rows, captions=caps, row_labels=[items[i].category for i in picks], image_size=size,
                       fit="all")


def morph_figure(frames: np.ndarray, labels: tuple[str, str], size: int) -> np.ndarray:
    from pc3d.viz.render import render_grid

    n = len(frames)
    caps = [f"t={k / (n - 1):.2f}" + (f" {labels[0]}" if k == 0 else f" {labels[1]}" if k == n - 1 else "")
            for k in range(n)]
    return render_grid([list(frames)], captions=[caps], image_size=size, fit="all")


# ---------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"completion: unknown methods {bad} (known: {', '.join(METHODS)})")
    kinds = [k for k in args.kinds.split(",") if k]
    t_all = time.perf_counter()
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    from pc3d import pretrained
    from pc3d.inversion import InvertibleGenerator

    ensure_partials(args.root, kinds, args.write_partials)
    ae = pretrained.load("autoencoder")
    lgan = pretrained.load("lgan")
    sa, sl = ae.state_dict(), {k[len("autoencoder."):]: v for k, v in lgan.state_dict().items()
                               if k.startswith("autoencoder.")}
    same_ae = set(sa) == set(sl) and all(torch.equal(sa[k], sl[k]) for k in sa)
    log(f"shipped l-GAN's autoencoder == shipped autoencoder: {same_ae} ({len(sa)} tensors)")
    gen = InvertibleGenerator.from_checkpoint(args.inv_ckpt) if "inversion" in methods else None
    gen_sha = pretrained.sha256(pretrained.resolve(args.inv_ckpt))  # in the cache keys of (c)
    args.cache.mkdir(parents=True, exist_ok=True)

    result: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                              "same_autoencoder": same_ae, "kinds": {},
                              "machine": {"cpu_affinity": sorted(os.sched_getaffinity(0)),
                                          "torch_threads": torch.get_num_threads(), "nproc": os.cpu_count()}}
    markdown = []
    trees = None  # (a): the train shapes' KD-trees, shared by the kinds (the same complete clouds)
    for kind in kinds:
        log(f"== {kind} (noise {args.noise:g})")
        items, parts, truths = load_split(args.root, kind, "test", args.noise, args.n_points, args.seed, args.n_test,
                                         args.every)
        # the train shapes, complete (for (a)) and their partials (for (b)), same for val
        tr_items, tr_parts, tr_truths = load_split(args.root, kind, "train", 0.0, args.n_points, args.seed)
        outs: dict[str, np.ndarray] = {}
        secs: dict[str, float] = {}
        extra: dict[str, Any] = {"n_test": len(items), "n_train": len(tr_items)}
        if "partial" in methods:
            outs["partial"], secs["partial"] = parts, 0.0
        if "nearest" in methods:
            if trees is None or trees[0] != tr_truths.shape or not np.array_equal(trees[1], tr_truths[:, :4]):
                from scipy.spatial import cKDTree

                t0 = time.perf_counter()
                trees = (tr_truths.shape, tr_truths[:, :4].copy(), [cKDTree(c.astype(np.float64)) for c in tr_truths])
                log(f"  (a) {len(tr_truths)} KD-trees built in {time.perf_counter() - t0:.1f} s")
            idx, d1, s = nearest_train_shape(parts, tr_truths, trees=trees[2], seed=args.seed,
                                             shortlist=args.nn_shortlist, probe=args.nn_probe)
            outs["nearest"], secs["nearest"] = tr_truths[idx], s
            extra["nearest"] = {"train_index": idx.tolist(), "one_sided_cd": d1.tolist(),
                                "same_category": float(np.mean([tr_items[j].category == it.category
                                                                for j, it in zip(idx, items)]))}
            log(f"  (a) nearest: {s:.1f} s, same category {extra['nearest']['same_category']:.2f}")
        if "decoder_bound" in methods:  # not a method: what the decoder makes of the complete cloud's latent
            full = np.stack([sample_points(it.complete, args.n_points, [args.seed + 7, *_sid(it)]) for it in items])
            outs["decoder_bound"], secs["decoder_bound"] = encode_decode(ae.encoder.eval(), ae.decoder.eval(), full)
        if "shipped_ae" in methods:
            outs["shipped_ae"], secs["shipped_ae"] = encode_decode(ae.encoder.eval(), ae.decoder.eval(), parts)
        if "finetuned" in methods:
            ft_key = _key("ft", kind, args.seed, args.ft_steps, args.ft_batch, args.ft_lr, args.ft_val_every,
                          args.n_points, pretrained.sha256(pretrained.path("autoencoder")))
            ft_file = args.cache / f"encoder_{kind}_{ft_key}.safetensors"
            ft_rec_file = ft_file.with_suffix(".json")
            enc = copy.deepcopy(ae.encoder)
            if args.reuse and ft_file.is_file() and ft_rec_file.is_file():
                from safetensors.torch import load_file

                enc.load_state_dict(load_file(str(ft_file)))
                enc.eval()
                rec = json.loads(ft_rec_file.read_text())
                rec["reused"] = str(ft_file)
                log(f"  (b) reused {ft_file}")
            else:
                from safetensors.torch import save_file

                from pc3d.io import atomic_write, atomic_write_json

                _, va_parts, va_truths = load_split(args.root, kind, "val", 0.0, args.n_points, args.seed)
                enc, rec = finetune_encoder(ae, tr_parts, [it.complete for it in tr_items], va_parts, va_truths,
                                            steps=args.ft_steps, batch=args.ft_batch, lr=args.ft_lr,
                                            val_every=args.ft_val_every, n_points=args.n_points, seed=args.seed,
                                            log=log)
                state = {k: v.contiguous() for k, v in enc.state_dict().items()}
                atomic_write(ft_file, lambda tmp, state=state: save_file(state, str(tmp)))
                atomic_write_json(ft_rec_file, rec)
            extra["finetune"] = rec
            outs["finetuned"], secs["finetuned"] = encode_decode(enc, ae.decoder.eval(), parts)
        picks = figure_rows(items, outs, {}) if items else []
        if "inversion" in methods:
            mpair = picks[:2]  # (in the key for the caches of earlier versions, which also held a morph)
            inv_key = _key("inv", kind, args.noise, args.n_test, args.seed, args.inv_z_steps, args.inv_g_steps,
                           args.inv_lr_z, args.inv_lr_g, args.inv_n_starts, args.inv_batch, args.inv_mask_k,
                           args.morph_frames, mpair, invert_defaults(), *([args.every] if args.every != 1 else []),
                           gen_sha)
            inv_file = args.cache / f"inversion_{kind}_{inv_key}.npz"
            if args.reuse and inv_file.is_file():
                with np.load(inv_file, allow_pickle=False) as z:
                    outs["inversion"], secs["inversion"] = z["clouds"], float(z["seconds"])
                    stages = json.loads(str(z["stages"]))
                log(f"  (c) reused {inv_file}")
            else:
                outs["inversion"], secs["inversion"], stages = run_inversion(gen, parts, args, log)
                from pc3d.io import atomic_open

                with atomic_open(inv_file) as fh:
                    np.savez(fh, clouds=outs["inversion"], seconds=secs["inversion"], stages=json.dumps(stages))
            extra["inversion"] = {"stages": stages, "mask": {"kind": "knn", "k": args.inv_mask_k},
                                  "n_starts": args.inv_n_starts, "batch": args.inv_batch,
                                  "defaults": invert_defaults()}
        per = {m: score(outs[m], truths, parts) for m in outs}
        rows = {m: {**{k: float(np.mean(v)) for k, v in per[m].items()},
                    "seconds_per_shape": secs[m] / max(len(items), 1)} for m in per}
        v = verdict(rows)
        md = f"### {kind} (noise {args.noise:g}), {len(items)} test shapes\n\n{table(rows)}\n\n{verdict_text(v)}\n"
        if "finetune" in extra:
            ft = extra["finetune"]
            md += (f"\n(b) fine-tuning: {ft['steps']} steps x {args.ft_batch} pairs, {ft['seconds']:.0f} s, "
                   f"best val CD {ft['val_cd_best'] * 1e3:.3f}e-3 at step {ft['best_step']} "
                   f"(start {ft['val_cd_start'] * 1e3:.3f}e-3)\n")
        log(md)
        markdown.append(md)
        result["kinds"][kind] = {"rows": rows, "verdict": v, "extra": extra,
                                 "per_shape": {m: {k: a.tolist() for k, a in per[m].items()} for m in per},
                                 "ids": [f"{it.synset}/{it.model_id}" for it in items]}
        if args.figure is not None and kind == kinds[0] and picks:
            from pc3d.viz.render import save_png

            img = completion_figure(items, picks, parts, truths, outs, per, args.image_size)
            log(f"wrote {save_png(img, args.figure)} ({img.shape[1]}x{img.shape[0]} px)")
        if args.morph is not None and kind == kinds[0] and "inversion" in methods:
            from pc3d.viz.render import save_png

            cats = [c for c in args.morph_categories.split(",") if c]
            pair = [next((i for i, it in enumerate(items) if it.category == c), None) for c in cats]
            if len(pair) != 2 or None in pair:  # a tiny set: the first two figure shapes
                pair = picks[:2]
            if len(pair) == 2:
                m_key = _key("morph", kind, args.noise, args.seed, args.inv_z_steps, args.inv_g_steps, args.inv_lr_z,
                             args.inv_lr_g, args.inv_n_starts, args.inv_mask_k, args.morph_frames,
                             [f"{items[i].synset}/{items[i].model_id}" for i in pair], invert_defaults(), gen_sha)
                m_file = args.cache / f"morph_{kind}_{m_key}.npy"
                if args.reuse and m_file.is_file():
                    frames = np.load(m_file, allow_pickle=False)
                else:
                    from pc3d.io import atomic_save_npy

                    frames = morph_frames(gen, parts[pair], args, log)
                    atomic_save_npy(m_file, frames)
                img = morph_figure(frames, (items[pair[0]].category, items[pair[1]].category), args.image_size)
                log(f"wrote {save_png(img, args.morph)} ({img.shape[1]}x{img.shape[0]} px)")
    result["seconds_total"] = time.perf_counter() - t_all
    result["markdown"] = "\n".join(markdown)
    if args.json is not None:
        from pc3d.io import atomic_write_json

        atomic_write_json(args.json, result)
    log(f"total {result['seconds_total']:.0f} s")
    return result


if __name__ == "__main__":
    main()
