"""``pc3d-eval``: score a checkpoint or two sets of clouds; print a table, write JSON.

Tasks (``task=``; ``auto`` picks from what is given):

``reconstruction``
    A ``pc3d-train`` autoencoder checkpoint (``ckpt_path``): every cloud of ``split`` of the
    checkpoint's data (or ``data`` overrides) is reconstructed; per-shape CD / EMD / F-score
    (:mod:`pc3d.metrics.reconstruction`), per category and overall. An image -> cloud checkpoint
    (:class:`pc3d.models.Image2Cloud`, ``input_key = "image"``) is scored the same way from the
    split's images (one fixed view per model, as in its ``test/...`` metrics); add EMD with
    ``metrics.reconstruction=[cd,emd,fscore]``.
``generation``
    A checkpoint of a model with ``sample(n, *, seed=None, batch_size=...) -> (n, N, 3)``
    (the tree-GAN): ``n_samples`` clouds (default: as many as references) against the clouds
    of ``split`` (PointFlow uses val/test): MMD / COV / 1-NNA / JSD
    (:mod:`pc3d.metrics.generative`) and, with ``fpd.classifier_ckpt_path``, FPD.
``sets``
    Two sets of clouds, ``samples`` and ``refs``, each a folder of ``.npy`` clouds, or a file
    ``pc3d-view`` reads (``.npy`` ``(S, N, 3)``, ``.npz``: the single array, else the first of
    :data:`pc3d.io.NPZ_KEYS`; ``.ply`` ...): the generation metrics between them.
``fpd_stats``
    Reference statistics for FPD: features of ``split`` (of the classifier checkpoint's data,
    or ``data`` overrides) by ``fpd.classifier_ckpt_path``, saved to ``fpd.stats_out`` (``.npz``).

Distributed (DDP) evaluation: under ``torchrun --nproc_per_node K`` (or any launcher that sets
``WORLD_SIZE`` > 1, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; under SLURM ``srun`` the
``SLURM_NTASKS`` / ``SLURM_PROCID`` / ``SLURM_LOCALID`` variables are used when ``WORLD_SIZE`` is
not set, with ``MASTER_ADDR`` / ``MASTER_PORT`` exported by the job script) the process group is
initialised from the environment (gloo on the CPU, nccl on CUDA), the generation metrics
(MMD / COV / 1-NNA distance matrices or pruned EMD queries, FPD features) are split across the
ranks (:mod:`pc3d.metrics.sharded`; the numbers are identical to one process) and only rank 0
prints and writes the JSON. Samples are drawn with the same seed on every rank.

Results go to ``out`` (JSON, written atomically: a ``.json`` path, or a folder that gets
``metrics.json``; default ``<run dir>/metrics.json`` with the run dir
``${paths.log_dir}/eval/runs/<time>``) and, with ``wandb=true``, to an offline W&B run beside it.
``evaluate(cfg)`` is the plain function behind the console script::

    pc3d-eval ckpt_path=<run>/checkpoints/last.ckpt split=test out=results/ae.json
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from pc3d.cli._common import CONFIG_DIR, hydra_entry, reject_renamed
from pc3d.io import atomic_write_json

log = logging.getLogger("pc3d.eval")

TASKS = ("auto", "reconstruction", "generation", "sets", "fpd_stats")


# ----------------------------------------------------------------------------- loading


def load_clouds(path: str | os.PathLike, n_points: int | None = None, seed: int = 0,
                key: str | None = None) -> torch.Tensor:
    """Clouds from a folder of cloud files, or one file that ``pc3d-view`` reads.

    A file (``.npy``, ``.npz``, ``.ply`` ...) is read by :func:`pc3d.viz.io.load_clouds`, hence its
    ``.npy`` / ``.npz`` part by :func:`pc3d.io.read_clouds`, the reader every command uses (an
    ``.npz`` with several arrays: ``key``, else the first of :data:`pc3d.io.NPZ_KEYS`). A folder:
    :func:`pc3d.io.read_cloud_folder` (per-cloud ``(N, 3)`` ``.npy`` files, a stacked ``samples.npy``
    beside them being the same clouds; e.g. the folder ``pc3d-generate`` writes), or, when it has no
    ``.npy`` file, its ``.ply`` / ``.pcd`` / ... files, one cloud each, in sorted path order.
    ``n_points`` subsamples every cloud to that many points (without replacement when possible,
    a fixed RNG ``seed``) so that clouds of different sizes can be stacked.

    Shapes: -> ``(S, N, 3)`` float32.
    """
    from pc3d.io import read_cloud_folder
    from pc3d.viz.io import SUFFIXES
    from pc3d.viz.io import load_clouds as read_file

    path = Path(path)
    rng = np.random.default_rng(seed)
    if path.is_dir():
        if any(path.rglob("*.npy")):
            clouds = read_cloud_folder(path)[0]
        else:
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                           and f.suffix.lower() != ".npz" and not f.name.startswith("."))
            if not files:
                raise FileNotFoundError(f"{path}: no cloud files (.npy, or {', '.join(SUFFIXES[2:])})")
            clouds = [c for f in files for c in read_file(f)[0]]
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    else:
        clouds = list(read_file(path, key=key)[0])
    out = []
    for c in clouds:
        if n_points is not None and c.shape[0] != n_points:
            c = c[rng.choice(c.shape[0], n_points, replace=c.shape[0] < n_points)]
        out.append(c.astype(np.float32))
    if len({c.shape[0] for c in out}) != 1:
        raise ValueError(f"{path}: clouds have different point counts; set n_points to subsample them")
    return torch.from_numpy(np.stack(out))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _datamodule(cfg: DictConfig, ckpt_build: dict | None):
    """The data module of the checkpoint's run (its build data, ``pc3d.models.io.read_build``), with
    ``cfg.data`` merged over it; built from registered classes only (never a stored ``_target_``)."""
    from pc3d.models.io import build_datamodule

    overrides = _drop_nulls(OmegaConf.to_container(cfg.get("data") or OmegaConf.create({}), resolve=True))
    dm = build_datamodule((ckpt_build or {}).get("data"), overrides, source=str(cfg.get("ckpt_path") or ""))
    prepare = getattr(dm, "prepare_data", None)
    root = getattr(dm, "root", None)
    if callable(prepare) and root is not None and not Path(root).exists():
        prepare()  # the built-in data is generated on first use, as pc3d-train does (shipped weights)
    return dm


def _drop_nulls(d: Any) -> Any:
    """``d`` without its ``None`` values and the mappings left empty (``conf/eval.yaml`` lists the data keys
    as ``null`` = keep the checkpoint's value, so that ``data.root=...`` needs no ``+``)."""
    if not isinstance(d, dict):
        return d
    out = {}
    for k, v in d.items():
        v = _drop_nulls(v)
        if v is None or (isinstance(v, dict) and not v):
            continue
        out[k] = v
    return out


def _split_clouds(dm, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    points, labels = [], []
    for batch in dm.probe_dataloader(split):
        points.append(batch["points"])
        labels.append(batch["category"])
    return torch.cat(points), torch.cat(labels)


def _load_ckpt_model(path: str, device: torch.device):
    from pc3d.models.io import load_model, read_build

    model = load_model(path).to(device).eval()
    return model, read_build(path)


# ----------------------------------------------------------------------------- tasks


class PairProgress:
    """Progress of the pairwise distance matrices, ``progress(label, done, total)`` for
    :func:`pc3d.metrics.generative.evaluate_generation`.

    On a terminal (``stream.isatty()``): a tqdm bar per matrix. Otherwise (logs, ``| tee``): a plain
    line ``pc3d-eval: <label>: <done>/<total> pairs (<pct>%, <s> s)`` on ``stream`` (stderr) at the first
    update, then at most every ``interval`` seconds, and one when a matrix is complete.
    """

    def __init__(self, stream: Any = None, interval: float = 5.0, tty: bool | None = None, unit: str = "pairs") -> None:
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._label: str | None = None
        self._bar: Any = None
        self._start = self._last = 0.0

    def __call__(self, label: str, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if label != self._label:
            self.close()
            self._label, self._start, self._last = label, now, now - self.interval  # first update: a line
            if self.tty:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=f"pc3d-eval {label}", unit=self.unit.rstrip("s"), file=self.stream,
                                 leave=False)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif now - self._last >= self.interval or done >= total:
            self._last = now
            print(f"pc3d-eval: {label}: {done}/{total} {self.unit} ({100.0 * done / max(total, 1):.0f}%, "
                  f"{now - self._start:.1f} s)", file=self.stream, flush=True)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._label = None


def init_distributed(device: torch.device) -> Any:
    """The process group of a DDP launch, from the environment; ``None`` for a single process.

    ``WORLD_SIZE`` > 1 (torchrun) or, without it, ``SLURM_NTASKS`` > 1 (srun; ``RANK`` /
    ``WORLD_SIZE`` / ``LOCAL_RANK`` are then taken from ``SLURM_PROCID`` / ``SLURM_NTASKS`` /
    ``SLURM_LOCALID``; ``MASTER_ADDR`` / ``MASTER_PORT`` must be set). Backend ``nccl`` on CUDA
    (device ``cuda:LOCAL_RANK``), ``gloo`` otherwise. An already initialised group is reused.
    """
    import torch.distributed as dist

    env = os.environ
    if "WORLD_SIZE" not in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        for key, slurm in (("RANK", "SLURM_PROCID"), ("WORLD_SIZE", "SLURM_NTASKS"), ("LOCAL_RANK", "SLURM_LOCALID")):
            env[key] = env.get(slurm, "0")
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in env]
        if missing:
            raise ValueError(f"pc3d-eval under SLURM with {env['WORLD_SIZE']} tasks needs {' and '.join(missing)} "
                             "in the environment (export them in the job script)")
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(env.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.group.WORLD


def _device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _generation_metrics(samples: torch.Tensor, refs: torch.Tensor, cfg: DictConfig, device: torch.device,
                        categories: list[str] | None = None, group: Any = None) -> dict:
    """MMD / COV / 1-NNA / JSD and, with a classifier, FPD (checked against the statistics' metadata:
    point count, ``categories`` of the samples when known, normalisation; :func:`pc3d.metrics.fpd.check_statistics`)."""
    from pc3d.metrics.generative import evaluate_generation

    m = cfg.metrics
    dists = list(m.distances) + (["jsd"] if m.jsd else [])
    bar = PairProgress()
    try:
        res = evaluate_generation(samples.to(device), refs.to(device), distances=dists, normalize=m.normalize,
                                  batch_size=m.get("batch_size"), emd_method=m.emd_method,
                                  emd_pruning=bool(m.get("emd_pruning", True)), emd_tol=float(m.get("emd_tol", 1e-2)),
                                  progress=bar, group=group)
    finally:
        bar.close()
    if cfg.fpd.classifier_ckpt_path:
        from pc3d.metrics.fpd import fpd
        from pc3d.models.io import load_classifier

        net = load_classifier(cfg.fpd.classifier_ckpt_path).to(device)
        reference = cfg.fpd.stats if cfg.fpd.stats else refs
        res["fpd"] = fpd(samples, reference, net, device=device, normalize=cfg.fpd.normalize, categories=categories,
                         group=group)
    return res


def _reconstruction(model, dm, cfg: DictConfig, device: torch.device) -> dict:
    from pc3d.metrics.reconstruction import per_category_means, reconstruction_metrics

    per_shape: dict[str, list[torch.Tensor]] = {}
    cats = []
    key = getattr(model, "input_key", "points")  # image -> cloud models (Image2Cloud) read the batch's images
    loader = dm.probe_dataloader(cfg.split)
    try:
        total = len(loader.dataset)
    except TypeError:  # an iterable dataset: no total known
        total = 0
    bar = PairProgress(unit="shapes")  # per-shape EMD takes minutes on a CPU: say where it is
    done = 0
    with torch.no_grad():
        for batch in loader:
            points = batch["points"].to(device)
            if key not in batch:
                raise ValueError(f"{cfg.ckpt_path}: the model reads batch[{key!r}], which the data module "
                                 f"({type(dm).__name__}) does not provide (image models need data=renderings)")
            pred = model(batch[key].to(device))
            vals = reconstruction_metrics(pred, points, metrics=list(cfg.metrics.reconstruction),
                                          tau=cfg.metrics.tau, normalize=cfg.metrics.normalize,
                                          emd_method=cfg.metrics.emd_method)
            for k, v in vals.items():
                per_shape.setdefault(k, []).append(v)
            cats.append(batch["category"])
            done += len(points)
            bar(f"reconstruction {'+'.join(cfg.metrics.reconstruction)} ({cfg.split})", done, max(total, done))
    bar.close()
    values = {k: torch.cat(v) for k, v in per_shape.items()}
    table = per_category_means(values, torch.cat(cats), names=list(dm.names))
    return {"per_category": table, **{k: v for k, v in table["all"].items() if k != "count"}}


def _names(dm) -> list[str] | None:
    """The category names of a set-up data module (``None`` when it has none)."""
    try:
        return list(dm.names)
    except Exception:  # not set up / no names: nothing to check against
        return None


def _fpd_stats(cfg: DictConfig, device: torch.device) -> dict:
    from pc3d.metrics.fpd import compute_features, feature_statistics, save_statistics
    from pc3d.models.io import load_classifier, read_build

    if not cfg.fpd.classifier_ckpt_path:
        raise ValueError("task=fpd_stats needs fpd.classifier_ckpt_path=<classifier checkpoint or state_dict>")
    ckpt_cfg = read_build(cfg.fpd.classifier_ckpt_path)
    net = load_classifier(cfg.fpd.classifier_ckpt_path).to(device)
    dm = _datamodule(cfg, ckpt_cfg)
    clouds, _ = _split_clouds(dm, cfg.split)
    feats = compute_features(net, clouds, device=device, normalize=cfg.fpd.normalize)
    meta = {"classifier": str(cfg.fpd.classifier_ckpt_path), "split": cfg.split, "root": str(getattr(dm, "root", "")),
            "categories": getattr(dm, "categories", None), "category_names": _names(dm),
            "n_points": int(clouds.shape[1]),
            "normalize_data": getattr(dm, "normalize", None), "normalize_fpd": cfg.fpd.normalize}
    stats = feature_statistics(feats, meta=meta)
    out = Path(cfg.fpd.stats_out)
    save_statistics(out, stats)
    return {"n_clouds": stats.n, "feature_dim": int(stats.mu.shape[0]), "stats_file": str(out)}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation ``cfg`` describes (see the module docstring and ``conf/eval.yaml``).

    Returns the JSON-able result: ``task``, ``metrics`` ({name: float}), optionally
    ``per_category`` and the protocol (``normalize``, distances, ``tau`` ...).
    """
    reject_renamed("pc3d-eval", "eval", cfg)
    if cfg.get("seed") is not None:
        import lightning as L

        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = cfg.task
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    device = _device(cfg.device)
    import torch.distributed as dist

    owned = dist.is_available() and not dist.is_initialized()
    group = init_distributed(device)
    owned = owned and group is not None
    device = _device_for_rank(device)
    try:
        result = _evaluate(cfg, task, device, group)
        if group is not None:
            dist.barrier(group)  # rank 0 has written the JSON when every rank returns
        return result
    finally:
        if owned:
            dist.destroy_process_group()


def _evaluate(cfg: DictConfig, task: str, device: torch.device, group: Any) -> dict[str, Any]:
    model = ckpt_cfg = None
    if task == "auto":
        if cfg.get("samples") and cfg.get("refs"):
            task = "sets"
        elif cfg.get("ckpt_path"):
            model, ckpt_cfg = _load_ckpt_model(cfg.ckpt_path, device)
            task = "generation" if hasattr(model, "sample") else "reconstruction"
        elif cfg.fpd.get("classifier_ckpt_path") and cfg.fpd.get("stats_out"):
            task = "fpd_stats"
        else:
            raise ValueError("nothing to evaluate: pass ckpt_path=..., or samples=... refs=..., "
                             "or task=fpd_stats fpd.classifier_ckpt_path=...")
    result: dict[str, Any] = {"task": task, "protocol": OmegaConf.to_container(cfg.metrics, resolve=True)}
    if task in ("reconstruction", "generation"):
        if not cfg.get("ckpt_path"):
            raise ValueError(f"task={task} needs ckpt_path=<pc3d-train checkpoint>")
        if model is None:
            model, ckpt_cfg = _load_ckpt_model(cfg.ckpt_path, device)
        result["ckpt_path"] = str(cfg.ckpt_path)
        dm = _datamodule(cfg, ckpt_cfg)
        result["split"] = cfg.split
        if task == "reconstruction":
            res = _reconstruction(model, dm, cfg, device)
            result["per_category"] = res.pop("per_category")
        else:
            if not hasattr(model, "sample"):
                raise ValueError(f"{cfg.ckpt_path}: the model has no sample(n, seed=...) method")
            refs = load_clouds(cfg.refs, cfg.get("n_points")) if cfg.get("refs") else _split_clouds(dm, cfg.split)[0]
            categories = _names(dm) if not cfg.get("refs") else None
            n = int(cfg.n_samples or refs.shape[0])
            with torch.no_grad():
                samples = model.sample(n, seed=cfg.seed).detach().float()
            result.update(n_samples=n, n_refs=int(refs.shape[0]))
            res = _generation_metrics(samples, refs, cfg, device, categories=categories, group=group)
    elif task == "sets":
        if not (cfg.get("samples") and cfg.get("refs")):
            raise ValueError("task=sets needs samples=<path> and refs=<path>")
        samples = load_clouds(cfg.samples, cfg.get("n_points"), seed=cfg.seed or 0)
        refs = load_clouds(cfg.refs, cfg.get("n_points"), seed=(cfg.seed or 0) + 1)
        result.update(samples=str(cfg.samples), refs=str(cfg.refs), n_samples=int(samples.shape[0]),
                      n_refs=int(refs.shape[0]))
        res = _generation_metrics(samples, refs, cfg, device, group=group)
    else:
        res = _fpd_stats(cfg, device)
        result["split"] = cfg.split
    result["metrics"] = {k: (float(v) if isinstance(v, int | float) else v) for k, v in res.items()}
    if group is not None:
        import torch.distributed as dist

        result["world_size"] = dist.get_world_size(group)
        if dist.get_rank(group) != 0:  # rank 0 writes and prints; the others return the same numbers
            result["json"] = str(output_file(cfg))
            return result
    out = atomic_write_json(output_file(cfg), result)
    result["json"] = str(out)
    if cfg.get("wandb"):
        _log_wandb(cfg, result)
    print_table(result)
    return result


def output_file(cfg: DictConfig) -> Path:
    """Where the metrics JSON goes: ``out`` (a ``.json`` file, or a folder: ``<out>/metrics.json``),
    else ``<paths.output_dir>/metrics.json`` (the run folder)."""
    out = cfg.get("out")
    if not out:
        return Path(cfg.paths.output_dir) / "metrics.json"
    out = Path(str(out))
    return out if out.suffix.lower() == ".json" else out / "metrics.json"


def _log_wandb(cfg: DictConfig, result: dict[str, Any]) -> None:
    import wandb

    run = wandb.init(project=cfg.get("wandb_project", "pc3d"), name=cfg.task_name, dir=str(output_file(cfg).parent),
                     mode="offline", config=OmegaConf.to_container(cfg, resolve=True), job_type="eval")
    try:
        run.summary.update({f"eval/{k}": v for k, v in result["metrics"].items() if isinstance(v, float)})
    finally:
        wandb.finish()


def print_table(result: dict[str, Any]) -> None:
    """Print the metrics (and the per-category table of a reconstruction run)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    per_cat = result.get("per_category")
    if per_cat:
        cols = [k for k in next(iter(per_cat.values())) if k != "count"]
        table = Table(title=f"pc3d-eval: {result['task']} ({result.get('split', '')})")
        table.add_column("category")
        table.add_column("n", justify="right")
        for c in cols:
            table.add_column(c, justify="right")
        for cat, row in per_cat.items():
            table.add_row(cat, str(row["count"]), *(f"{row[c]:.6g}" for c in cols))
    else:
        table = Table(title=f"pc3d-eval: {result['task']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result["metrics"].items():
            table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"json: {result['json']}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    """Console entry point ``pc3d-eval``."""
    hydra_entry("pc3d-eval", "eval", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
