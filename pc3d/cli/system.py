"""The whole system as ``pc3d-train``'s main job: stages of ordinary ``pc3d-train`` runs in one parent run folder.

``conf/experiment/system.yaml`` lists the stages (autoencoder pretraining -> l-GAN in its latent
space -> image -> cloud in the same latent space). Each stage is composed exactly as
``pc3d-train experiment=<its experiment> <its overrides>`` would be, gets the earlier stages'
checkpoints through its ``from`` keys (``model.ae_ckpt_path: ae``: the best, else the last,
checkpoint of stage ``ae``), runs with :func:`pc3d.cli.train.train` into ``<run>/<stage>/``, and
the parent writes:

* ``<run>/summary.json``: per stage its experiment, overrides, checkpoints, seconds and final metrics;
* ``<run>/final_metrics.json``: every stage's final metrics as ``<stage>/<metric>``;
* ``<run>/system.png``: generated shapes (the generator stage) and image -> cloud triples (input
  view, prediction, ground truth) for one test shape per category (the image stage);

and prints a table of every stage's metrics.

When ``pc3d-train`` runs it (:func:`is_system_run`): no ``experiment=``, ``model=``, ``data=``,
``debug=``, ``hparams_search=`` choice and no ``ckpt_path=`` on the command line (those name one
run); ``experiment=system`` asks for it explicitly. Command-line overrides ``<stage>.<key>=<value>``
go to that stage only (``ae.trainer.max_epochs=5``); any other override goes to every stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pc3d.io import atomic_write_json

log = logging.getLogger("pc3d.system")

#: Command-line keys that choose a single run (then ``pc3d-train`` is one Lightning run, not the system).
SINGLE_RUN_KEYS = ("experiment", "model", "data", "debug", "hparams_search", "ckpt_path")
#: The stage names of ``conf/experiment/system.yaml`` (for routing ``<stage>.<key>=<value>`` before composing).
STAGE_NAMES = ("ae", "gan", "img")
#: Where ``<stage>.<key>=<value>`` overrides travel through Hydra (forced additions, read back by the runner).
_CARRIER = "stage_overrides"
_PREFIXES = ("++", "+", "~", "")


def _split(arg: str) -> tuple[str, str, str]:
    prefix = next(p for p in _PREFIXES if arg.startswith(p))
    body = arg[len(prefix):]
    return prefix, body.split("=", 1)[0], body


def is_system_run(args: Sequence[str]) -> bool:
    """Whether ``pc3d-train <args>`` runs the whole system (see the module docstring)."""
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        _, key, body = _split(arg)
        group = key.split("/", 1)[0].split(".", 1)[0]
        if key == "experiment" and body.split("=", 1)[1] == "system":
            return True
        if key in SINGLE_RUN_KEYS or (group in ("model", "data") and "." not in key):
            return False
    return True


def system_args(args: Sequence[str]) -> list[str]:
    """``pc3d-train``'s arguments for a system run: ``experiment=system`` first (unless given), and each
    ``<stage>.<key>=<value>`` as ``++stage_overrides.<stage>.<key>=<value>`` (read back by :func:`stage_overrides`)."""
    out = [] if any(a.split("=", 1)[0].lstrip("+") == "experiment" for a in args) else ["experiment=system"]
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        prefix, key, body = _split(arg)
        stage = key.split(".", 1)[0]
        if stage in STAGE_NAMES and "." in key:
            out.append(("++" if prefix in ("", "++") else prefix) + f"{_CARRIER}." + body)
        else:
            out.append(arg)
    return out


def stage_overrides(task_overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Hydra's task overrides of a system run -> ``(overrides for every stage, {stage: its own})``.
    ``experiment=system`` and Hydra's own keys are dropped."""
    common: list[str] = []
    per: dict[str, list[str]] = {s: [] for s in STAGE_NAMES}
    for arg in task_overrides:
        prefix, key, body = _split(arg)
        if key in ("experiment", "out", "hydra") or key.startswith(("hydra.", "hydra/")):
            continue  # out: the parent's folder (each stage writes into <out>/<stage>)
        if key.startswith(_CARRIER + "."):
            stage, rest = body[len(_CARRIER) + 1:].split(".", 1)
            per.setdefault(stage, []).append(("" if prefix == "++" else prefix) + rest)
        else:
            common.append(arg)
    return common, per


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides``, also from inside a running Hydra app (whose
    global state is put back afterwards; Hydra's ``initialize_config_dir`` refuses to run inside one)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pc3d.cli._common import CONFIG_DIR

    g = GlobalHydra.instance()
    outer = g.hydra if g.is_initialized() else None
    g.clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name, overrides=overrides)
    finally:  # the context swapped the singleton object itself: fetch it again
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def compose_train(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` with ``overrides`` (see :func:`compose_config`)."""
    return compose_config("train", overrides)


def run_system(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run every stage of ``cfg.stages`` in order (see the module docstring); ``overrides`` are Hydra's task
    overrides of the parent run. Returns ``{"stages": {name: train()'s result}, "metrics", "objective",
    "output_dir"}``."""
    from pc3d.cli.train import train, write_final_metrics

    common, per = stage_overrides(overrides)
    unknown = sorted(set(per) - set(cfg.stages))
    if any(per[u] for u in unknown):
        raise ValueError(f"pc3d-train: stage overrides for unknown stages {unknown}; stages: {list(cfg.stages)}")
    out = Path(str(cfg.paths.output_dir)).absolute()
    out.mkdir(parents=True, exist_ok=True)
    ckpts: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {"stages": {}, "common_overrides": common}
    t_start = time.perf_counter()
    for name, stage in cfg.stages.items():
        sources = dict(stage.get("from") or {})
        missing = [src for src in sources.values() if src not in ckpts]
        if missing:
            raise ValueError(f"stage {name}: 'from' names stages {missing} that do not run before it")
        ov = [f"experiment={stage.experiment}", *[str(o) for o in stage.get("overrides") or []],
              *[f"{key}={ckpts[src]}" for key, src in sources.items()], *common, *per.get(name, []),
              f"paths.output_dir={out / name}"]
        log.info("system: stage %s: pc3d-train %s", name, " ".join(ov))
        t0 = time.perf_counter()
        res = train(compose_train(ov))
        seconds = time.perf_counter() - t0
        ckpt = res["best_ckpt"] or res["last_ckpt"]
        if not ckpt:
            raise RuntimeError(f"stage {name} wrote no checkpoint; later stages need one")
        ckpts[name] = ckpt
        results[name] = res
        summary["stages"][name] = {"experiment": str(stage.experiment), "overrides": ov, "seconds": seconds,
                                   "best_ckpt": res["best_ckpt"], "last_ckpt": res["last_ckpt"],
                                   "metrics": res["metrics"]}
    summary["seconds"] = time.perf_counter() - t_start
    metrics = {f"{n}/{k}": v for n, r in results.items() for k, v in r["metrics"].items()}
    atomic_write_json(out / "summary.json", summary)
    write_final_metrics(out, metrics)
    picture = None
    try:
        picture = system_picture(results, out / "system.png")
    except Exception as e:  # a picture is never worth a failed run
        log.warning("system: could not draw system.png (%s: %s)", type(e).__name__, e)
    print_system_summary(summary, out, picture)
    objective_key = cfg.get("optimized_metric")
    return {"stages": results, "metrics": metrics, "output_dir": str(out), "picture": picture,
            "objective": metrics.get(str(objective_key)) if objective_key else None}


def system_picture(results: Mapping[str, Mapping[str, Any]], path: Path, n_samples: int = 8) -> Path | None:
    """``system.png``: a row of generated shapes (the first stage whose model has ``sample``) and, for the first
    stage whose model reads images, one test shape per category: its input view, the prediction, the truth."""
    import numpy as np
    import torch

    from pc3d.viz.render import render_grid, save_png

    rows: dict[str, Any] = {}
    captions: list[list[str]] = []
    gen = next((r for r in results.values() if hasattr(r["model"], "sample")), None)
    if gen is not None:
        with torch.no_grad():
            samples = gen["model"].eval().sample(n_samples, seed=0)
        rows["generated"] = samples.float().cpu().numpy()
        captions.append([f"sample {i}" for i in range(n_samples)])
    img = next((r for r in results.values() if getattr(r["model"], "input_key", None) == "image"), None)
    if img is not None:
        model, dm = img["model"].eval(), img["datamodule"]
        try:
            names = list(dm.names)
        except Exception:  # no names: indices
            names = None
        picked: dict[int, tuple[Any, Any]] = {}
        for batch in dm.test_dataloader():
            for i, c in enumerate(batch["category"].tolist()):
                if c not in picked:
                    picked[c] = (batch["image"][i], batch["points"][i])
            if len(picked) >= n_samples:
                break
        cats = sorted(picked)[:n_samples]
        images = torch.stack([picked[c][0] for c in cats])
        with torch.no_grad():
            pred = model.predict_clouds(images.to(model.device)).float().cpu().numpy()
        truth = np.stack([picked[c][1].numpy() for c in cats])
        label = [str(names[c]) if names is not None and c < len(names) else str(c) for c in cats]
        rows["input view"] = images.float().cpu().numpy()
        rows["image -> cloud"] = pred
        rows["ground truth"] = truth
        captions += [label, label, label]
    if not rows:
        return None
    width = max(len(r) for r in rows.values())
    captions = [c + [""] * (width - len(c)) for c in captions]
    grid = render_grid(rows, captions=captions, image_size=140, fit="column")
    return save_png(grid, path)


def _per_category(key: str) -> bool:
    """``test/cd_chair`` and the like (a metric per category of the built-in data)."""
    from pc3d.data.synthetic import CATEGORIES

    return any(key.endswith("_" + c) for c in CATEGORIES)


def print_system_summary(summary: Mapping[str, Any], out: Path, picture: Path | None) -> None:
    """The table of every stage's final metrics, times and checkpoints (console and train.log)."""
    from rich.console import Console
    from rich.table import Table

    from pc3d.cli._common import log_to_files

    table = Table(title="pc3d: the whole system, final metrics per stage", show_header=True)
    for col in ("stage", "metric", "value"):
        table.add_column(col, justify="right" if col == "value" else "left")
    lines = ["pc3d: the whole system, final metrics per stage"]
    for name, st in summary["stages"].items():
        first = True
        for k, v in st["metrics"].items():
            if _per_category(k):  # the per-category values stay in summary.json
                continue
            table.add_row(f"{name} ({st['experiment']}, {st['seconds'] / 60:.1f} min)" if first else "", k, f"{v:.6g}")
            lines.append(f"  {name}/{k} = {v:.6g}")
            first = False
        table.add_section()
    console = Console()
    console.print(table)
    tail = [f"run dir:  {out}  ({summary['seconds'] / 60:.1f} min in all)"]
    for name, st in summary["stages"].items():
        tail.append(f"{name}: {st['best_ckpt'] or st['last_ckpt']}")
    if picture is not None:
        tail.append(f"picture:  {picture}")
    for t in tail:
        console.print(t, soft_wrap=True, highlight=False)
    log_to_files("\n".join(lines + tail))
