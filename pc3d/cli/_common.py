"""Helpers shared by the Hydra entry points.

The CLI policy (see ``DESIGN.md``): jobs are Hydra ``key=value`` commands with the same key names
(``ckpt_path``, ``out``, ``seed``, ``n_samples``); a job writes to ``out`` when given, else to its
run folder ``${paths.log_dir}/<task_name>/runs/<time>`` (``PC3D_LOG_DIR`` moves ``paths.log_dir``).
The run folder is ``hydra.run.dir`` in ``conf/hydra/default.yaml``, computed by the
``pc3d.run_dir`` resolver registered here: ``out`` as given, else a timestamped folder that the
resolver creates itself with an atomic ``mkdir`` (:func:`claim_dir`), so that two jobs started in
the same second get two folders (``<time>`` and ``<time>_1``) and never share one.
Keys renamed by that policy are refused with a
message naming the new key (:func:`reject_renamed`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("pc3d")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

#: ``out`` values with one of these suffixes name a file; the run folder is then its parent.
FILE_SUFFIXES = (".json", ".ply", ".npy", ".npz", ".pcd", ".xyz", ".obj", ".glb")


def run_dir(out: Any, default: str) -> str:
    """The folder a job runs in: ``out`` (its parent when ``out`` names a file), else ``default``.

    Registered as the OmegaConf resolver ``pc3d.run_dir`` (used by ``hydra.run.dir`` and
    ``hydra.sweep.dir``), so that a job given ``out=`` makes no folder under ``paths.log_dir``.
    """
    if out is None or str(out) == "":
        return str(default)
    path = Path(str(out))
    if path.suffix.lower() in FILE_SUFFIXES:
        return str(path.parent)
    return str(path)


def claim_dir(base: str | os.PathLike, max_tries: int = 10_000) -> str:
    """Create and return a folder no other job has: ``base``, else ``base_1``, ``base_2`` ...

    Each candidate is made with ``os.mkdir`` (atomic: exactly one of several processes racing
    for a name succeeds), parents first. Used for the timestamped run folders, whose names
    collide when two jobs start in the same second.
    """
    base = str(base).rstrip("/\\") or str(base)
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    for i in range(max_tries):
        candidate = base if i == 0 else f"{base}_{i}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{base}: {max_tries} run folders of that name exist already")


def _run_dir_resolver(out: Any, default: str) -> str:
    """The ``pc3d.run_dir`` resolver: :func:`run_dir`, where the default (timestamped) folder is
    claimed with :func:`claim_dir`. Cached per config (``use_cache``, like Hydra's ``now``, and
    copied by Hydra into every sweep job's config), so one job resolves to one folder however
    often Hydra reads ``hydra.run.dir`` / ``hydra.sweep.dir``."""
    if out is None or str(out) == "":
        return claim_dir(default)
    return run_dir(out, default)


if not OmegaConf.has_resolver("pc3d.run_dir"):
    OmegaConf.register_new_resolver("pc3d.run_dir", _run_dir_resolver, use_cache=True)

#: The metric that picks a model's best checkpoint when no experiment sets ``monitor`` (``model=treegan`` alone
#: must not keep the autoencoder's ``val/cd``, which a GAN never logs): model class -> (monitor, mode).
DEFAULT_MONITORS = {
    "pc3d.models.Autoencoder": ("val/cd", "min"),
    "pc3d.models.Image2Cloud": ("val/cd", "min"),
    "pc3d.models.TreeGAN": ("val/1nna_cd", "min"),
    "pc3d.models.LatentGAN": ("val/mmd_cd", "min"),
    "pc3d.models.PointCloudClassifier": ("val/acc", "max"),
}


def default_monitor(target: Any, what: str = "monitor") -> str:
    """The ``pc3d.monitor`` resolver: ``DEFAULT_MONITORS[model._target_]`` (``what``: ``monitor`` or ``mode``);
    ``val/cd`` / ``min`` for a class not listed."""
    key, mode = DEFAULT_MONITORS.get(str(target), ("val/cd", "min"))
    return mode if what == "mode" else key


if not OmegaConf.has_resolver("pc3d.monitor"):
    OmegaConf.register_new_resolver("pc3d.monitor", default_monitor)

_HYDRA_SUBDIRS: dict[str, str] = {}


def hydra_subdir(output_dir: Any, ckpt_path: Any) -> str:
    """Where Hydra writes a job's config record (``hydra.output_subdir``), relative to its run folder.

    ``.hydra``, except for a resumed job (``ckpt_path`` given) whose run folder already holds a
    ``.hydra/config.yaml`` (a run resumed into its own folder): then ``.hydra/resume-<n>``, the first
    free ``n``, so the first run's record is kept. Registered as the resolver ``pc3d.hydra_subdir``;
    one answer per run folder per process (Hydra may read the key again after writing the files).
    """
    key = str(output_dir)
    if key in _HYDRA_SUBDIRS:
        return _HYDRA_SUBDIRS[key]
    base = Path(key) / ".hydra"
    sub = ".hydra"
    if ckpt_path not in (None, "") and (base / "config.yaml").is_file():
        n = 1
        while (base / f"resume-{n}").exists():
            n += 1
        sub = f".hydra/resume-{n}"
    _HYDRA_SUBDIRS[key] = sub
    return sub


if not OmegaConf.has_resolver("pc3d.hydra_subdir"):
    OmegaConf.register_new_resolver("pc3d.hydra_subdir", hydra_subdir)


#: Keys renamed by the CLI policy, per command: ``{old key: new key}``.
RENAMED = {
    "eval": {"ckpt": "ckpt_path", "fpd.classifier": "fpd.classifier_ckpt_path", "fpd.classifier_ckpt":
             "fpd.classifier_ckpt_path", "n": "n_samples"},
    "generate": {"ckpt": "ckpt_path", "n": "n_samples"},
    "reconstruct": {"ckpt": "ckpt_path"},
    "invert": {"ckpt": "ckpt_path", "n": "n_samples"},
    "train": {},
    "pipeline": {},
}


#: Config groups a command does not read, with why: an override of one of their keys (``data.root=...``)
#: exits with this message instead of Hydra's "Key 'data' is not in struct".
NOT_READ = {
    "generate": {"data": "pc3d-generate reads no data: it samples the generator's latent prior, and the checkpoint "
                         "holds everything it needs (data.* keys are for pc3d-train and pc3d-eval, e.g. "
                         "pc3d-eval ckpt_path=<ckpt> data.root=<folder> to score the samples against a data split)"},
    "reconstruct": {"data": "pc3d-reconstruct reads the images given as image=, not a data split (its image_size= "
                            "sets the resolution; data.* keys are for pc3d-train and pc3d-eval)"},
}


def _override_key(arg: str) -> str | None:
    """The key of a Hydra override (``+a.b=1`` -> ``a.b``); ``None`` for flags (``--help``, ``-m``)."""
    if arg.startswith("-"):
        return None
    key = arg.split("=", 1)[0]
    return key.lstrip("+~") or None


def renamed_message(prog: str, old: str, new: str) -> str:
    return (f"{prog}: the key '{old}' was renamed to '{new}' (one set of key names for every pc3d command): "
            f"use {new}=... (see {prog} --help)")


def reject_renamed(prog: str, command: str, args: Iterable[str] | Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the new key when ``args`` use a key renamed for ``command``.

    ``args`` are command-line overrides (``key=value`` strings) or a config (its keys, also
    dotted ones, are checked).
    """
    renamed = RENAMED.get(command, {})
    if isinstance(args, Mapping | DictConfig):
        keys = []
        for old in renamed:
            node: Any = args
            for part in old.split("."):
                if isinstance(node, Mapping | DictConfig) and part in node:
                    node = node[part]
                else:
                    break
            else:
                keys.append(old)
    else:
        keys = [k for k in (_override_key(a) for a in args) if k is not None]
    for key in keys:
        if key in renamed:
            raise ValueError(renamed_message(prog, key, renamed[key]))
    if not isinstance(args, Mapping | DictConfig):
        for key in keys:
            why = NOT_READ.get(command, {}).get(key.split(".", 1)[0])
            if why is not None:
                raise ValueError(f"{prog}: {key} is not a key of this command: {why}")


def hydra_entry(prog: str, command: str, hydra_main, argv: Sequence[str] | None = None) -> Any:
    """Run a ``@hydra.main`` function as the console script ``prog``, refusing renamed keys first.

    A renamed key exits with status 2 and a message naming the new key (Hydra itself would only
    say the old key is not in the config).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        reject_renamed(prog, command, args)
    except ValueError as err:
        print(f"{err}", file=sys.stderr)
        raise SystemExit(2) from None
    if argv is not None:
        sys.argv = [sys.argv[0], *args]
    return hydra_main()


def instantiate_group(group: DictConfig | None) -> dict[str, Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); ``null`` entries are skipped.

    Returns ``{entry name: object}`` in config order.
    """
    from hydra.utils import instantiate

    if not group:
        return {}
    out = {}
    for name, sub in group.items():
        if isinstance(sub, Mapping | DictConfig) and "_target_" in sub:
            out[name] = instantiate(sub)
        elif sub is not None:
            raise ValueError(f"config entry '{name}' has no _target_: {OmegaConf.to_yaml(sub)}")
    return out


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (safe for ``torch.load(weights_only=True)``)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Turn Lightning's ``callback_metrics`` (tensors) into a sorted ``{name: float}`` dict."""
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


class _DropTips(logging.Filter):
    """Drop third-party advertising lines (Lightning's litlogger / LitServe tips)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("litlogger" in msg or "💡 Tip" in msg or msg.lstrip().startswith("Tip:"))


def tidy_console_logging() -> None:
    """One line per log record: when the root logger has handlers (Hydra's console and ``train.log``),
    Lightning's loggers lose their own console handler (which printed every line a second time as
    ``INFO: ...``) and propagate to the root; third-party tips are dropped. Idempotent."""
    root = logging.getLogger()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in lg.filters):
            lg.addFilter(_DropTips())
        if root.handlers:
            for h in list(lg.handlers):
                if type(h) is logging.StreamHandler:
                    lg.removeHandler(h)
            lg.propagate = True
    for h in root.handlers:
        if not any(isinstance(f, _DropTips) for f in h.filters):
            h.addFilter(_DropTips())


def log_to_files(text: str, logger: str = "pc3d") -> None:
    """Write ``text`` to the root logger's file handlers only (``train.log`` under Hydra), not the console."""
    record = logging.getLogger(logger).makeRecord(logger, logging.INFO, __file__, 0, text, None, None)
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler):
            h.handle(record)
