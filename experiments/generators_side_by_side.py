"""Point-cloud generators side by side on built-in chairs, under ONE wall-clock budget per variant.

Every variant is trained through the real ``pc3d.cli.train.train(cfg)`` with a config composed from
``conf/`` (one run dir per stage under ``--out``), on a chairs-only built-in set (default 600 chairs
split 400/100/100, 512 points everywhere):

``faithful``
    ``experiment=treegan_synthetic`` as it is (the reduced tree-GAN: generator features
    [96, 128, 128, 64, 64, 3], degrees [1, 2, 4, 4, 16], the paper's initialisation and eq. 2), the
    whole budget.
``treegan_warm``
    stage 1: an autoencoder (PointNet encoder, latent 96) whose decoder is a TreeGenerator of EXACTLY
    the tree-GAN generator's sizes, with the fixed knobs ``init=node ancestor_scale=mean``; Adam 1e-3,
    batch 16, cosine over ``--ae-epochs``, for ``--ae-fraction`` of the budget. Stage 2: the tree-GAN
    with ``model.warm_start_ckpt_path=<stage-1 checkpoint>`` and the same ``init``/``ancestor_scale`` (it changes
    the forward rule, so it must match), for the rest of the budget.
``lgan_fc``
    stage 1: an autoencoder with the FC decoder (latent 128, 512 points, Adam 1e-3, batch 32, cosine
    over ``--ae-epochs``) for ``--ae-fraction`` of the budget; stage 2: ``experiment=lgan_synthetic``
    (l-GAN, WGAN-GP in the frozen autoencoder's latent space) for the rest.
``lgan_tree``
    the l-GAN on the stage-1 autoencoder of ``treegan_warm`` (the same checkpoint, trained once: its
    time is counted in BOTH variants' budgets).
``treegan_warm_unif`` (optional)
    ``treegan_warm`` plus ``model.uniformity_weight=--uniformity-weight`` (the density-uniformity term
    added to the generator loss) in the GAN stage, starting from ``treegan_warm``'s autoencoder (shared,
    counted in both budgets) unless ``--ae-uniformity-weight`` asks for an own autoencoder trained with
    the term (mind the scales: the term is a squared coefficient of variation, O(0.1-1), the AE's
    Chamfer loss O(1e-3)); skipped with a message when ``conf/model/treegan.yaml`` has no
    ``uniformity_weight``.

Budget: each stage gets ``trainer.max_time`` (whole seconds) and a generous ``max_epochs``; the
autoencoder stage gets ``max_epochs=--ae-epochs`` too, with the cosine ``T_max`` equal to it (so
when the time cap stops it first, the learning rate has not decayed to 0). A GAN stage gets the
budget minus the MEASURED wall-clock of its autoencoder stage. Measured seconds are those of the
whole ``train(cfg)`` call (data loading, model building, fitting, validations every
``--val-every-tree`` / ``--val-every-lgan`` epochs), so a variant's total can pass the budget by the
set-up time and by Lightning's stopping granularity (the time cap is checked after every
iteration). Data generation, the FPD classifier and the evaluation are NOT in any budget.

Evaluation (after training, not in the budget): the checkpoint chosen by ``--eval-ckpt`` (``best``:
the best ``val/mmd_cd`` over the validations of the GAN stage, on the VAL split; ``end``: the model
when the budget ran out) is loaded with ``pc3d.models.load_model``; ``--n-eval`` clouds are generated
with ``sample(n, seed=--eval-seed)`` and scored against the first ``--n-eval`` TEST chairs (fixed
512-point clouds of the test split), with ``pc3d.metrics.generative.evaluate_generation``
(``normalize="none"``, the data's own units): 1-NNA, COV and MMD with the Chamfer distance (squared,
sum of both directions, 512 points), 1-NNA, COV (and MMD) with the EMD (mean matched euclidean
distance) on seeded ``--emd-points``-point subsamples of every cloud, solved by pc3d's auction
(``emd_method="approx"``: at most 1% above the exact EMD by construction, ~4x faster than the exact
solver at 256 points), and FPD (``pc3d.metrics.fpd``: PointNet features of the generated clouds
against the Gaussian of the test chairs' features, 512 points, every cloud used: pc3d has no
tree-GAN "whole batches of 100 only" rule). The classifier is ``--fpd-classifier`` or, when not
given, trained here on the 8-category built-in set (``experiment=fpd_classifier_synthetic``,
512 points, ``--fpd-epochs``) and cached in ``<out>/fpd_classifier.ckpt``. A ``real`` row scores the
first ``--n-eval`` TRAIN chairs against the same test chairs (what a perfect generator would get).

Prints one Markdown table and the ratio of every variant's numbers to ``faithful``'s, writes
``<out>/side_by_side.json`` (atomically), ``<out>/<variant>/eval_samples.npy`` (``(n_eval, 512, 3)``
float32, the scored samples), the GAN runs' CSV logs (``<out>/<variant>/csv/metrics.csv``, with
``time/elapsed_s`` at every validation for ``experiments/plot_quality_vs_time.py``) and, with
``--grid``, a picture of 4 samples per variant (``--grid-out``, default docs/generators_samples.png).

    OMP_NUM_THREADS=1 python experiments/generators_side_by_side.py --budget 900 \\
        --out outputs/generators/side_by_side --grid
    python experiments/plot_quality_vs_time.py outputs/generators/side_by_side

``--resume`` reuses every stage (``<stage dir>/stage.json``) and evaluation (``<out>/<variant>/eval.json``, when
it scored the same checkpoint the same way) already finished in ``--out``, so ``--resume --eval-ckpt end`` re-scores
the trained runs at the end of their budgets (overwriting side_by_side.json and the samples); trailing
``key=value`` arguments are Hydra overrides for every training run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402

VARIANTS = ("faithful", "treegan_warm", "lgan_fc", "lgan_tree", "treegan_warm_unif")
DEFAULT_VARIANTS = "faithful,treegan_warm,lgan_fc,lgan_tree,treegan_warm_unif"
N_POINTS = 512
TREE_FEATURES = [96, 128, 128, 64, 64, 3]  # = experiment=treegan_synthetic's generator
TREE_DEGREES = [1, 2, 4, 4, 16]
TREE_KNOBS = ["init=node", "ancestor_scale=mean"]
BIG_EPOCHS = 1_000_000
WALL_CLOCK_TARGET = "experiments.generators_side_by_side.WallClock"
BASELINE = "faithful"


class WallClock(L.Callback):
    """Log ``time/elapsed_s`` at the end of every validation (not the sanity check), so that the CSV
    log can be plotted against wall-clock time: seconds since this callback was built, i.e. since
    the start of ``train(cfg)`` (after building the data module and model objects, before loading
    the data and fitting), which is what a stage's measured seconds count too.

    Callback hooks run before the model's own ``on_validation_epoch_end``, so the value is taken
    before that validation's generation metrics are computed: the time at which the model had
    that state (every earlier validation's cost included)."""

    def __init__(self) -> None:
        super().__init__()
        self._t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            pl_module.log("time/elapsed_s", time.perf_counter() - self._t0)


# ----------------------------------------------------------------------------- small helpers


def parse_seconds(text: str) -> float:
    """``"900"``, ``"15m"``, ``"1.5h"``, ``"HH:MM:SS"`` or ``"DD:HH:MM:SS"`` -> seconds."""
    t = str(text).strip()
    if ":" in t:
        parts = [float(p) for p in t.split(":")]
        if len(parts) not in (3, 4):
            raise ValueError(f"expected HH:MM:SS or DD:HH:MM:SS, got {text!r}")
        mult = [86400, 3600, 60, 1][-len(parts):]
        return sum(p * m for p, m in zip(parts, mult))
    for suffix, m in (("s", 1), ("m", 60), ("h", 3600)):
        if t.endswith(suffix):
            return float(t[:-1]) * m
    return float(t)


def max_time(seconds: float) -> str:
    """Lightning's ``"DD:HH:MM:SS"`` for ``seconds`` (whole seconds, at least 1)."""
    s = max(1, int(seconds))
    return f"{s // 86400:02d}:{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_splits(text: str) -> list[float]:
    """``"2/3,1/6,1/6"`` or ``"0.8,0.1,0.1"`` -> 3 floats summing to 1."""
    fr = [Fraction(p.strip()) for p in text.split(",")]
    if len(fr) != 3 or sum(fr) != 1 or any(f < 0 for f in fr):
        raise ValueError(f"--splits must be 3 non-negative fractions summing to 1, got {text!r}")
    return [float(f) for f in fr]


def hydra_list(values) -> str:
    return "[" + ",".join(repr(v) if isinstance(v, float) else str(v) for v in values) + "]"


def compose(overrides: list[str]):
    from pc3d.cli.pipeline import _compose

    return _compose(overrides)


def key_exists(base: list[str], dotted: str) -> bool:
    """Whether ``dotted`` (e.g. ``model.uniformity_weight``) is in the config composed from ``base``."""
    from omegaconf import OmegaConf

    return OmegaConf.select(compose(base), dotted, default="__missing__") != "__missing__"


def fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


# ----------------------------------------------------------------------------- stages


class Runner:
    """Builds the overrides of every stage and runs (or, with ``--resume``, reuses) them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out).absolute()
        self.data_dir = Path(args.data_dir).absolute()
        self.chairs_root = Path(args.chairs_root or self.data_dir / f"pc3d_chairs{args.n_chairs}").absolute()
        self.splits = parse_splits(args.splits)
        self.budget = parse_seconds(args.budget)
        self.ae_budget = args.ae_fraction * self.budget
        self.stages: dict[str, dict] = {}

    # --- overrides
    def data_overrides(self) -> list[str]:
        return [
            f"paths.data_dir={self.data_dir}",
            f"data.synthetic.root={self.chairs_root}",
            "++data.synthetic.categories=chair",
            f"data.synthetic.n_per_category={self.args.n_chairs}",
            f"++data.synthetic.splits={hydra_list(self.splits)}",
            "data.synthetic.n_views=0",
            "data.categories=chair",
            f"data.n_points={N_POINTS}",
        ]

    def data_config(self):
        """The chairs' data config, as every stage composes it (user overrides included)."""
        return compose([*self.data_overrides(), *self.args.overrides, f"paths.output_dir={self.out}"]).data

    def common(self) -> list[str]:
        return [
            "callbacks.progress_bar=null",
            "callbacks.model_summary=null",
            f"+callbacks.wall_clock={{_target_:{WALL_CLOCK_TARGET}}}",
            "test=false",  # scored by this script, outside the budget
            f"seed={self.args.seed}",
        ]

    def ae_overrides(self, decoder: str, uniformity: float | None = None) -> list[str]:
        a = self.args
        if decoder == "tree":
            dec = [
                "model/decoder=treegcn",
                "model.latent_dim=96",
                f"model.decoder.features={hydra_list(TREE_FEATURES)}",
                f"model.decoder.degrees={hydra_list(TREE_DEGREES)}",
                "model.decoder.support=10",
                *(f"++model.decoder.{k}" for k in TREE_KNOBS),
                f"data.batch_size={self.ae_batch(16)}",
            ]
        else:
            dec = ["model/decoder=fc", "model.latent_dim=128", "model.decoder.hidden=[256,256]",
                   f"data.batch_size={self.ae_batch(32)}"]
        sched = f"{{_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true,T_max:{a.ae_epochs}}}"
        out = ["model=autoencoder", *dec, "model.optimizer.lr=0.001", f"model.scheduler={sched}",
               f"trainer.max_epochs={a.ae_epochs}", f"trainer.max_time={max_time(self.ae_budget)}",
               "monitor=val/cd", "monitor_mode=min"]
        if uniformity is not None:
            out.append(f"model.uniformity_weight={uniformity}")
        return out

    def ae_batch(self, want: int) -> int:
        from pc3d.data.splits import split_counts as _split_counts

        n_train = _split_counts(self.args.n_chairs, self.splits)[0]
        return min(want, n_train)  # only tiny smoke sets have fewer train chairs than a batch

    def gan_overrides(self, kind: str, gan_seconds: float, ae_ckpt: str | None = None, ae_latent: int | None = None,
                      uniformity: float | None = None) -> list[str]:
        a = self.args
        if kind == "tree":
            out = ["experiment=treegan_synthetic", f"trainer.check_val_every_n_epoch={a.val_every_tree}"]
            if ae_ckpt is not None:
                out += [f"model.warm_start_ckpt_path={ae_ckpt}", *(f"++model.generator.{k}" for k in TREE_KNOBS)]
        else:
            out = ["experiment=lgan_synthetic", f"model.ae_ckpt_path={ae_ckpt}", f"model.latent_dim={ae_latent}",
                   f"trainer.check_val_every_n_epoch={a.val_every_lgan}"]
        out += [f"trainer.max_epochs={BIG_EPOCHS}", f"trainer.max_time={max_time(gan_seconds)}"]
        if uniformity is not None:
            out.append(f"model.uniformity_weight={uniformity}")
        return out

    # --- running
    def run_stage(self, name: str, overrides: list[str], run_dir: Path, ae: dict | None = None) -> dict:
        """Train one stage in ``run_dir`` (or reuse its ``stage.json``); returns its record."""
        if name in self.stages:
            return self.stages[name]
        record_path = run_dir / "stage.json"
        if self.args.resume and record_path.is_file():
            rec = json.loads(record_path.read_text())
            print(f"[side_by_side] {name}: reusing {record_path} ({rec['seconds']:.0f} s)", flush=True)
            self.stages[name] = rec
            return rec
        from pc3d.cli.train import train
        from pc3d.io import atomic_write_json

        full = [*overrides, *self.data_overrides(), *self.common(), *self.args.overrides]
        cfg = compose([*full, f"paths.output_dir={run_dir}"])
        print(f"[side_by_side] {name}: training in {run_dir} (max_time {cfg.trainer.max_time}, "
              f"max_epochs {cfg.trainer.max_epochs})", flush=True)
        t0 = time.perf_counter()
        res = train(cfg)
        seconds = time.perf_counter() - t0
        trainer = res["trainer"]
        end_ckpt = run_dir / "checkpoints" / "end.ckpt"  # the model when the budget ran out
        trainer.save_checkpoint(end_ckpt)
        rec = {
            "stage": name, "seconds": seconds, "run_dir": str(run_dir), "overrides": full,
            "max_time": str(cfg.trainer.max_time), "max_epochs": int(cfg.trainer.max_epochs),
            "epochs_started": int(trainer.current_epoch), "global_step": int(trainer.global_step),
            "best_ckpt": res["best_ckpt"], "last_ckpt": res["last_ckpt"], "end_ckpt": str(end_ckpt),
            "final_metrics": res["metrics"],
            # the autoencoder stage this stage started from (its seconds are part of the variant's budget)
            "ae_stage": None if ae is None else ae["stage"], "ae_seconds": None if ae is None else ae["seconds"],
        }
        atomic_write_json(record_path, rec)
        print(f"[side_by_side] {name}: {seconds:.1f} s, {rec['epochs_started']} epochs, step {rec['global_step']}",
              flush=True)
        self.stages[name] = rec
        del res, trainer
        return rec

    def ae_stage(self, key: str, decoder: str, uniformity: float | None = None) -> dict:
        rec = self.run_stage(key, self.ae_overrides(decoder, uniformity), self.out / key)
        rec["latent_dim"] = 96 if decoder == "tree" else 128
        return rec

    def gan_stage(self, variant: str, kind: str, ae: dict | None, uniformity: float | None = None) -> dict:
        gan_seconds = self.budget - (ae["seconds"] if ae else 0.0)
        if gan_seconds < 1:
            raise RuntimeError(f"{variant}: the autoencoder stage took {ae['seconds']:.0f} s, the whole budget "
                               f"({self.budget:.0f} s): lower --ae-fraction or raise --budget")
        ae_ckpt = None if ae is None else (ae["best_ckpt"] or ae["end_ckpt"])
        latent = None if ae is None else ae["latent_dim"]
        return self.run_stage(variant, self.gan_overrides(kind, gan_seconds, ae_ckpt, latent, uniformity),
                              self.out / variant, ae)

    def train_variant(self, variant: str) -> dict:
        """Both stages of a variant; returns ``{"ae": record | None, "gan": record, "ae_note": str}``."""
        if variant == "faithful":
            return {"ae": None, "gan": self.gan_stage(variant, "tree", None), "ae_note": ""}
        if variant == "treegan_warm":
            ae = self.ae_stage("ae_tree", "tree")
            return {"ae": ae, "gan": self.gan_stage(variant, "tree", ae), "ae_note": ""}
        if variant == "lgan_fc":
            ae = self.ae_stage("ae_fc", "fc")
            return {"ae": ae, "gan": self.gan_stage(variant, "lgan", ae), "ae_note": ""}
        if variant == "lgan_tree":
            ae = self.ae_stage("ae_tree", "tree")
            return {"ae": ae, "gan": self.gan_stage(variant, "lgan", ae), "ae_note": "shared with treegan_warm"}
        if variant == "treegan_warm_unif":
            w, ae_w = self.args.uniformity_weight, self.args.ae_uniformity_weight
            if ae_w:
                if not key_exists(["model=autoencoder"], "model.uniformity_weight"):
                    raise SystemExit("--ae-uniformity-weight: conf/model/autoencoder.yaml has no uniformity_weight")
                ae, note = self.ae_stage("ae_tree_unif", "tree", ae_w), f"own AE, uniformity_weight={ae_w:g}"
            else:  # the same AE as treegan_warm: only the GAN loss differs
                ae, note = self.ae_stage("ae_tree", "tree"), "shared with treegan_warm"
            return {"ae": ae, "gan": self.gan_stage(variant, "tree", ae, w), "ae_note": note}
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


# ----------------------------------------------------------------------------- evaluation


def subsample(clouds, k: int, seed: int):
    """Seeded ``k``-point subsample of every cloud (its own rows, without replacement): (M, N, 3) -> (M, k, 3)."""
    import numpy as np
    import torch

    m, n = clouds.shape[:2]
    if k >= n:
        return clouds
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(np.stack([rng.permutation(n)[:k] for _ in range(m)]))
    return torch.gather(clouds, 1, idx.unsqueeze(-1).expand(-1, -1, 3))


class Scorer:
    """Scores sets of clouds against the fixed test chairs (see the module docstring)."""

    def __init__(self, refs, *, emd_points: int, seed: int, fpd_classifier: Path | None) -> None:
        from pc3d.metrics.fpd import compute_features, feature_statistics
        from pc3d.models.io import load_classifier

        self.refs = refs.float()
        self.emd_points = emd_points
        self.seed = seed
        self.refs_emd = subsample(self.refs, emd_points, seed)
        self.fpd_classifier = fpd_classifier
        self.net = None if fpd_classifier is None else load_classifier(fpd_classifier)
        self.ref_stats = None
        if self.net is not None:
            feats = compute_features(self.net, self.refs, batch_size=len(self.refs))
            self.ref_stats = feature_statistics(feats, meta={"n_points": int(self.refs.shape[1])})

    def __call__(self, samples) -> dict[str, float]:
        from pc3d.metrics.fpd import fpd
        from pc3d.metrics.generative import evaluate_generation

        samples = samples.detach().cpu().float()
        t0 = time.perf_counter()
        out = evaluate_generation(samples, self.refs, distances=("cd",), normalize="none")
        t1 = time.perf_counter()
        out.update(evaluate_generation(subsample(samples, self.emd_points, self.seed + 1), self.refs_emd,
                                       distances=("emd",), normalize="none", emd_method="approx"))
        t2 = time.perf_counter()
        if self.net is not None:
            out["fpd"] = fpd(samples, self.ref_stats, self.net, batch_size=len(samples))
        out = {k: float(v) for k, v in out.items()}
        out["eval_s"] = {"cd": t1 - t0, "emd": t2 - t1, "fpd": time.perf_counter() - t2}
        return out


def chair_clouds(runner: Runner, split: str, n: int):
    """The first ``n`` clouds of ``split`` (fixed 512-point sampling), (n, 512, 3)."""
    import torch
    from hydra.utils import instantiate

    dm = instantiate(runner.data_config())
    clouds = []
    for batch in dm.probe_dataloader(split, batch_size=100):
        clouds.append(batch["points"])
        if sum(len(c) for c in clouds) >= n:
            break
    clouds = torch.cat(clouds)[:n]
    if len(clouds) < n:
        raise ValueError(f"the {split} split of {runner.chairs_root} has {len(clouds)} chairs, fewer than --n-eval={n}")
    return clouds.float()


def ensure_fpd_classifier(runner: Runner) -> Path | None:
    a = runner.args
    if a.no_fpd:
        return None
    if a.fpd_classifier:
        return Path(a.fpd_classifier)
    cached = runner.out / "fpd_classifier.ckpt"
    if cached.is_file():
        print(f"[side_by_side] FPD classifier: reusing {cached}", flush=True)
        return cached
    from pc3d.cli.train import train
    from pc3d.io import atomic_write

    run_dir = runner.out / "fpd_classifier_run"
    overrides = ["experiment=fpd_classifier_synthetic", f"paths.data_dir={runner.data_dir}",
                 f"data.n_points={N_POINTS}", f"trainer.max_epochs={a.fpd_epochs}", "callbacks.progress_bar=null",
                 "callbacks.model_summary=null", "test=false", f"seed={a.seed}", *a.fpd_overrides,
                 f"paths.output_dir={run_dir}"]
    print(f"[side_by_side] FPD classifier: training ({a.fpd_epochs} epochs, 8 built-in categories, "
          f"{N_POINTS} points) in {run_dir}", flush=True)
    res = train(compose(overrides))
    src = res["best_ckpt"] or res["last_ckpt"]
    if not src:
        src = str(run_dir / "checkpoints" / "end.ckpt")
        res["trainer"].save_checkpoint(src)
    atomic_write(cached, lambda tmp: shutil.copyfile(src, tmp))
    acc = res["metrics"].get("val/acc")
    print(f"[side_by_side] FPD classifier: {cached} (val/acc {fmt(acc, '.4f')})", flush=True)
    return cached


def eval_variant(runner: Runner, variant: str, stages: dict, scorer: Scorer) -> dict:
    import torch

    from pc3d.callbacks import atomic_save_npy
    from pc3d.io import atomic_write_json
    from pc3d.models import load_model

    a = runner.args
    vdir = runner.out / variant
    eval_path = vdir / "eval.json"
    gan = stages["gan"]
    ckpt = (gan["best_ckpt"] or gan["end_ckpt"]) if a.eval_ckpt == "best" else gan["end_ckpt"]
    protocol = {"ckpt": ckpt, "n_eval": a.n_eval, "eval_seed": a.eval_seed, "emd_points": a.emd_points,
                "fpd_classifier": None if scorer.net is None else str(scorer.fpd_classifier)}
    if a.resume and eval_path.is_file():
        cached = json.loads(eval_path.read_text())
        if cached.get("protocol") == protocol:  # the same checkpoint scored the same way
            return cached
    model = load_model(ckpt)
    with torch.no_grad():
        samples = model.sample(a.n_eval, seed=a.eval_seed).detach().cpu().float()
    if tuple(samples.shape[1:]) != (N_POINTS, 3):
        raise ValueError(f"{variant}: samples have shape {tuple(samples.shape)}, expected (n, {N_POINTS}, 3)")
    samples_path = atomic_save_npy(vdir / "eval_samples.npy", samples.numpy())
    metrics = scorer(samples)
    result = {"ckpt": ckpt, "samples": str(samples_path), "metrics": metrics, "protocol": protocol}
    atomic_write_json(eval_path, result)
    return result


# ----------------------------------------------------------------------------- report

COLUMNS = [("1-NNA-CD", "1nna_cd", ".3f"), ("1-NNA-EMD", "1nna_emd", ".3f"), ("COV-CD", "cov_cd", ".3f"),
           ("COV-EMD", "cov_emd", ".3f"), ("MMD-CD", "mmd_cd", ".3e"), ("FPD", "fpd", ".4g")]


def markdown_table(rows: dict[str, dict], emd_points: int) -> str:
    head = ["variant", "AE stage s", "GAN stage s", "total s"] + [c[0] if c[1] != "1nna_emd" and c[1] != "cov_emd"
                                                                  else f"{c[0]} (N={emd_points})" for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in rows.items():
        m = r.get("metrics", {})
        ae = fmt(r.get("ae_s"), ".1f") + (f" ({r['ae_note']})" if r.get("ae_note") else "")
        cells = [name, ae, fmt(r.get("gan_s"), ".1f"), fmt(r.get("total_s"), ".1f")]
        cells += [fmt(m.get(key), spec) for _, key, spec in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(rows: dict[str, dict], baseline: str) -> tuple[str, dict]:
    base = rows.get(baseline, {}).get("metrics")
    if not base:
        return f"(no ratios: the baseline {baseline!r} was not run)", {}
    keys = [(c[0], c[1]) for c in COLUMNS]
    lines = ["| variant / " + baseline + " | " + " | ".join(k for k, _ in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    ratios = {}
    for name, r in rows.items():
        m = r.get("metrics", {})
        ratios[name] = {key: (m[key] / base[key] if m.get(key) is not None and base.get(key) else None)
                        for _, key in keys}
        lines.append(f"| {name} | " + " | ".join(fmt(ratios[name][key], ".3f") for _, key in keys) + " |")
    return "\n".join(lines), ratios


def save_grid(samples: dict[str, Any], refs, path: Path) -> Path:
    from pc3d.viz.render import render_grid, save_png

    rows = {**{k: v[:4] for k, v in samples.items()}, "real (test)": refs[:4]}
    captions = [[f"{k} #{i}" for i in range(len(v))] for k, v in rows.items()]
    # fit="column": the clouds of one column share one transform, so sizes compare with the real chair below
    image = render_grid(list(rows.values()), captions=captions, image_size=160, fit="column", colors="height")
    return save_png(image, path)


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/generators/side_by_side")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--budget", default="900", help="wall-clock per variant: seconds, 15m, HH:MM:SS (default 900)")
    p.add_argument("--ae-fraction", type=float, default=0.5, help="share of the budget for the AE stage")
    p.add_argument("--ae-epochs", type=int, default=60, help="AE max_epochs = cosine T_max")
    p.add_argument("--val-every-tree", type=int, default=2, help="tree-GAN: validate every N epochs (in budget)")
    p.add_argument("--val-every-lgan", type=int, default=20, help="l-GAN: validate every N epochs (in budget)")
    p.add_argument("--uniformity-weight", type=float, default=0.1,
                   help="treegan_warm_unif: model.uniformity_weight of the GAN stage (added to L_G)")
    p.add_argument("--ae-uniformity-weight", type=float, default=None,
                   help="treegan_warm_unif: also train its own AE with this model.uniformity_weight (default: "
                        "reuse treegan_warm's AE, so only the GAN loss differs)")
    p.add_argument("--data-dir", default=None, help="paths.data_dir (default $PC3D_DATA_DIR or <repo>/data)")
    p.add_argument("--chairs-root", default=None, help="built-in chairs root (default <data-dir>/pc3d_chairs<N>)")
    p.add_argument("--n-chairs", type=int, default=600, help="chairs generated (data.synthetic.n_per_category)")
    p.add_argument("--splits", default="2/3,1/6,1/6", help="train,val,test fractions (600 -> 400/100/100)")
    p.add_argument("--n-eval", type=int, default=100, help="generated clouds = test chairs scored")
    p.add_argument("--eval-seed", type=int, default=2024)
    p.add_argument("--eval-ckpt", choices=("best", "end"), default="best",
                   help="best: best val/mmd_cd validation of the GAN stage; end: the model when the budget ran out")
    p.add_argument("--emd-points", type=int, default=256, help="points per cloud for the EMD metrics")
    p.add_argument("--fpd-classifier", default=None, help="PointNet classifier checkpoint (trained here if absent)")
    p.add_argument("--fpd-epochs", type=int, default=2)
    p.add_argument("--fpd-override", action="append", default=[], dest="fpd_overrides",
                   help="a Hydra override of the classifier run (repeatable)")
    p.add_argument("--no-fpd", action="store_true", help="skip FPD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", action="store_true", help="also write the sample grid (--grid-out)")
    p.add_argument("--grid-out", default=str(ROOT / "docs" / "generators_samples.png"))
    p.add_argument("--resume", action="store_true", help="reuse finished stages and evaluations in --out")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every training run (key=value)")
    return p


def main(argv: list[str] | None = None) -> dict:
    import os

    import numpy as np

    from pc3d.data.splits import split_counts as _split_counts
    from pc3d.data.synthetic import ensure_generated
    from pc3d.io import atomic_write_json

    args = build_parser().parse_args(argv)
    if args.data_dir is None:
        args.data_dir = os.environ.get("PC3D_DATA_DIR") or str(ROOT / "data")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {VARIANTS}")
    if not 0 < args.ae_fraction < 1:
        raise SystemExit("--ae-fraction must be in (0, 1)")
    runner = Runner(args)
    runner.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    # data (not in any budget)
    counts = dict(zip(("train", "val", "test"), _split_counts(args.n_chairs, runner.splits)))
    if min(counts["val"], counts["test"], counts["train"]) < args.n_eval:
        raise SystemExit(f"--n-chairs {args.n_chairs} with --splits {args.splits} gives {counts}: every split needs "
                         f">= --n-eval={args.n_eval} chairs")
    from omegaconf import OmegaConf

    # exactly what every stage's prepare_data asks for
    ensure_generated(**OmegaConf.to_container(runner.data_config().synthetic, resolve=True))

    skipped: dict[str, str] = {}
    if "treegan_warm_unif" in variants and not key_exists(["experiment=treegan_synthetic"],
                                                         "model.uniformity_weight"):
        skipped["treegan_warm_unif"] = "conf/model/treegan.yaml has no uniformity_weight (not in this checkout yet)"
        print(f"[side_by_side] skipping treegan_warm_unif: {skipped['treegan_warm_unif']}", flush=True)
        variants.remove("treegan_warm_unif")

    # training (each variant: one budget)
    trained = {v: runner.train_variant(v) for v in variants}
    t_trained = time.perf_counter()

    # evaluation (not in any budget)
    fpd_ckpt = ensure_fpd_classifier(runner)
    test = chair_clouds(runner, "test", args.n_eval)
    scorer = Scorer(test, emd_points=args.emd_points, seed=args.eval_seed, fpd_classifier=fpd_ckpt)
    rows: dict[str, dict] = {}
    samples: dict[str, Any] = {}
    for v in variants:
        st = trained[v]
        ev = eval_variant(runner, v, st, scorer)
        ae_s = st["ae"]["seconds"] if st["ae"] else None
        rows[v] = {"ae_s": ae_s, "gan_s": st["gan"]["seconds"], "total_s": (ae_s or 0.0) + st["gan"]["seconds"],
                   "ae_note": st["ae_note"], "ae_stage": st["ae"], "gan_stage": st["gan"], **ev}
        samples[v] = np.load(ev["samples"])
        print(f"[side_by_side] {v}: " + ", ".join(f"{k} {ev['metrics'].get(k, float('nan')):.4g}"
                                                  for _, k, _ in COLUMNS), flush=True)
    real = chair_clouds(runner, "train", args.n_eval)
    rows["real (train vs test)"] = {"metrics": scorer(real), "ae_note": ""}
    t_end = time.perf_counter()

    table = markdown_table(rows, args.emd_points)
    ratios_md, ratios = ratio_table({k: r for k, r in rows.items()}, BASELINE)
    protocol = (
        f"Budget {runner.budget:.0f} s of wall-clock per variant (AE stage: max_time = {args.ae_fraction:g} x budget "
        f"and max_epochs = cosine T_max = {args.ae_epochs}; GAN stage: the budget minus the measured AE stage). "
        f"Stage s = measured wall-clock of the whole train(cfg) call; an AE stage marked 'shared' was trained once "
        f"and is counted in full in each variant that uses it. Data: {args.n_chairs} built-in chairs "
        f"{counts['train']}/{counts['val']}/{counts['test']}, {N_POINTS} points. Evaluation (not in the budget): "
        f"{args.n_eval} samples (seed {args.eval_seed}, {args.eval_ckpt} checkpoint) vs the first {args.n_eval} "
        f"test chairs; CD squared (sum of both directions) at {N_POINTS} points; EMD = mean matched euclidean "
        f"distance by pc3d's auction (<= 1% above exact) on seeded N={args.emd_points}-point subsamples; "
        f"FPD: {fpd_ckpt or 'off'} at {N_POINTS} points, all clouds used. Real row: the first {args.n_eval} "
        f"train chairs vs the same test chairs."
    )
    result = {
        "command": [sys.executable, *sys.argv] if argv is None else ["generators_side_by_side.py", *argv],
        "protocol": protocol, "budget_s": runner.budget, "ae_fraction": args.ae_fraction,
        "ae_epochs": args.ae_epochs, "n_eval": args.n_eval, "emd_points": args.emd_points,
        "emd_method": "approx (auction, tol 1e-2)", "eval_ckpt": args.eval_ckpt, "eval_seed": args.eval_seed,
        "data": {"root": str(runner.chairs_root), "counts": counts, "n_points": N_POINTS},
        "fpd_classifier": None if fpd_ckpt is None else str(fpd_ckpt), "baseline": BASELINE,
        "variants": variants, "skipped": skipped, "rows": rows, "ratios": ratios,
        "markdown": table, "ratios_markdown": ratios_md,
        "seconds": {"training": t_trained - t_start, "evaluation": t_end - t_trained, "total": t_end - t_start},
    }
    if args.grid:
        result["grid"] = str(save_grid(samples, test.numpy(), Path(args.grid_out)))
    out_json = atomic_write_json(runner.out / "side_by_side.json", result)
    print()
    print(protocol)
    print()
    print(table)
    print()
    print(f"Ratio to {BASELINE} (lower is better for 1-NNA, MMD, FPD; higher for COV):")
    print()
    print(ratios_md)
    for v, why in skipped.items():
        print(f"\nskipped {v}: {why}")
    print(f"\nresults: {out_json}" + (f"; grid: {result['grid']}" if args.grid else ""))
    return result


if __name__ == "__main__":
    main()
