"""Lightning DataModule over every point-cloud layout pc3d reads (PC15k by default).

The layouts (``layout=``): ``pc15k`` (ShapeNetCore.v2.PC15k and the built-in set),
``shapenet_part``, ``modelnet40``, ``modelnet40_normal``, ``latent3d``, ``meshes``, or ``auto``
(detected, see :mod:`pc3d.data.layouts`). Whatever the layout, items and batches are the same.

Batches (see :func:`collate`)::

    points    (B, N, 3) float32   normalized, N = n_points
    category  (B,)      int64     labels in sorted-synset order (``dm.synsets``)
    synset    list[str]
    model_id  list[str]
    index     (B,)      int64     item index in its split
    shift     (B, 1, 3) float32   raw = points * scale + shift
    scale     (B, 1, 1) float32
    part_label (B, N)   int64     ShapeNet-part only: the part label of every point
    fine_label (B,)     int64     built-in set only: fine-grained class, an index into
                                  ``pc3d.data.synthetic.FINE_CLASSES`` (-1: not listed)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from pc3d.data.base import SAMPLINGS, PointCloudSet, parse_global_stats
from pc3d.data.layouts import LAYOUTS, detect_layout, layout_class
from pc3d.data.pc15k import PC15kDataset
from pc3d.data.sampling import ResumableDataLoader
from pc3d.data.splits import SPLITS
from pc3d.data.taxonomy import PC15K_DIRNAME

__all__ = ["PointCloudDataModule", "collate"]

log = logging.getLogger(__name__)


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack a list of :class:`~pc3d.data.PC15kDataset` items into a batch.

    Tensors are stacked on a new first dim (``points`` (N,3) -> (B,N,3), ``shift`` (1,3) ->
    (B,1,3), ``scale`` (1,1) -> (B,1,1), scalar ``category`` -> (B,)); numpy arrays likewise;
    Python ints/floats/bools become a ``(B,)`` tensor; strings and anything else stay lists.
    """
    if not items:
        raise ValueError("collate: empty list of items")
    keys = list(items[0].keys())
    for it in items[1:]:
        if list(it.keys()) != keys:
            raise ValueError(f"collate: items have different keys: {keys} vs {list(it.keys())}")
    out: dict[str, Any] = {}
    for key in keys:
        vals = [it[key] for it in items]
        first = vals[0]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(vals)
        elif isinstance(first, np.ndarray):
            out[key] = torch.from_numpy(np.stack(vals))
        elif isinstance(first, bool | int | float) and not isinstance(first, str):
            out[key] = torch.tensor(vals)
        else:
            out[key] = list(vals)
    return out


def _plain(obj: Any) -> Any:
    """Mappings/sequences (incl. OmegaConf containers) and Paths -> plain dict/list/str."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, str | bytes):
        return obj
    if isinstance(obj, Sequence) or (hasattr(obj, "__iter__") and type(obj).__name__ == "ListConfig"):
        return [_plain(v) for v in obj]
    return obj


class PointCloudDataModule(LightningDataModule):
    """Train/val/test loaders over a data set root in any layout pc3d reads (PC15k by default).

    Args:
        root: the DATASET root in ``layout``'s structure (PC15k: ``<root>/<synset>/{train,val,
            test}/*.npy``; for the built-in set ``<builtin_root>/ShapeNetCore.v2.PC15k``). May be
            ``None`` when ``synthetic`` is given (it then defaults to
            ``synthetic["root"]/ShapeNetCore.v2.PC15k``).
        categories: ``"all"``, a name, a synset id or a list (see :class:`PC15kDataset`).
            Resolved on the train split; val/test use the same synsets so labels agree.
        n_points: points per cloud.
        normalize: ``"none" | "unit_sphere" | "unit_bbox" | "global"``. ``"global"`` computes
            PointFlow's statistics on the train split in :meth:`setup` (unless given or
            restored from a checkpoint) and uses them for every split.
        batch_size: train batch size. eval_batch_size: val/test/probe batch size (default
            ``batch_size``).
        num_workers, persistent_workers (default: ``num_workers > 0``), pin_memory: passed
            to every DataLoader.
        pointflow_split: PointFlow's row split (train rows [0, 10000), val/test the rest).
        in_memory: load every file of a split into memory once.
        synthetic: ``None`` for real data, or the keyword arguments of
            ``pc3d.data.synthetic.ensure_generated`` including ``root`` (the built-in root);
            :meth:`prepare_data` then generates the set if it is missing.
        seed: seed of the fixed val/test/probe sampling.
        drop_last: drop the last incomplete train batch (default True, so BatchNorm never
            sees a batch of 1). Val/test never drop.
        global_stats: ``{"mean": [3], "std": s}`` to use instead of computing them.
        train_transform: optional ``(N,3) -> (N,3)`` augmentation for the train split only
            (e.g. :class:`pc3d.data.transforms.RandomRotateY`); not saved in hparams.
        layout: ``"pc15k"`` (default), ``"shapenet_part"``, ``"modelnet40"``,
            ``"modelnet40_normal"``, ``"latent3d"``, ``"meshes"`` or ``"auto"`` (detected once,
            see :func:`pc3d.data.layouts.detect_layout`; :attr:`layout` then holds the result).
        layout_options: extra keyword arguments of the layout's reader (e.g. ``surface_points``,
            ``cache_dir`` for meshes, ``val_fraction`` for ModelNet40, ``part_labels``).
        skip_bad: drop unreadable/invalid files (each split reads all its files once when built)
            and list them in :attr:`bad_files` (logged, and written to ``bad_files_report``);
            ``False`` raises a ``ValueError`` naming the first bad file met.
        bad_files_report: JSON file (written atomically after every :meth:`setup`) with
            ``{split: ["<path>: <problem>", ...]}``; ``None``: not written.
        train_split: ``"train"`` (default) or ``"all"``: train on every shape of the categories,
            whatever its split (tree-GAN's protocol); val/test still use their splits.
        train_sampling: sampling of the train split: ``"random"`` (default), ``"fixed"`` or
            ``"treegan"`` (fixed per-shape index sets drawn with replacement, see
            :mod:`pc3d.data.base`).

    After :meth:`setup`: ``train_set``/``val_set``/``test_set``, ``num_classes``, ``names``,
    ``synsets``, ``global_stats``. :meth:`state_dict` carries ``global_stats`` (plain types)
    into checkpoints; :meth:`load_state_dict` restores them into every built data set.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        categories: str | Sequence[str] = "all",
        n_points: int = 2048,
        normalize: str = "none",
        batch_size: int = 32,
        num_workers: int = 0,
        pointflow_split: bool = False,
        in_memory: bool = False,
        synthetic: Mapping[str, Any] | None = None,
        seed: int = 0,
        eval_batch_size: int | None = None,
        drop_last: bool = True,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        global_stats: Mapping[str, Any] | None = None,
        train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        layout: str = "pc15k",
        layout_options: Mapping[str, Any] | None = None,
        skip_bad: bool = False,
        bad_files_report: str | Path | None = None,
        train_split: str = "train",
        train_sampling: str = "random",
    ):
        super().__init__()
        if layout != "auto" and layout not in LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {sorted(LAYOUTS)}, got {layout!r}")
        if train_split not in ("train", "all"):
            raise ValueError(f"train_split must be 'train' or 'all', got {train_split!r}")
        if train_sampling not in SAMPLINGS:
            raise ValueError(f"train_sampling must be one of {SAMPLINGS}, got {train_sampling!r}")
        layout_options = {} if layout_options is None else _plain(layout_options)
        bad_files_report = None if bad_files_report is None else str(bad_files_report)
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        categories = categories if isinstance(categories, str) else [str(c) for c in categories]
        synthetic = None if synthetic is None else _plain(synthetic)
        if synthetic is not None and "root" not in synthetic:
            raise ValueError(f"synthetic must include 'root' (the built-in data root), got keys {sorted(synthetic)}")
        if root is None:
            if synthetic is None:
                raise ValueError("pass root (the PC15k directory) or synthetic (ensure_generated kwargs with 'root')")
            root = Path(synthetic["root"]) / PC15K_DIRNAME
        root = str(root)
        if global_stats is not None:
            global_stats = parse_global_stats(global_stats)[2]
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
            raise ValueError(f"eval_batch_size must be a positive int or None, got {eval_batch_size!r}")
        self.save_hyperparameters(ignore=["train_transform"])

        self.root = Path(root)
        self.categories = categories
        self.n_points = n_points
        self.normalize = normalize
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pointflow_split = pointflow_split
        self.in_memory = in_memory
        self.synthetic = synthetic
        self.seed = seed
        self.drop_last = drop_last
        self.persistent_workers = num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        self.pin_memory = pin_memory
        self.global_stats: dict[str, Any] | None = global_stats
        self.train_transform = train_transform
        self.requested_layout = layout
        self._layout: str | None = None if layout == "auto" else layout
        self.layout_options = dict(layout_options)
        self.skip_bad = bool(skip_bad)
        self.bad_files_report = bad_files_report
        self.train_split = train_split
        self.train_sampling = train_sampling
        #: ``{split: ["<path>: <problem>", ...]}`` of the files ``skip_bad`` dropped (after setup).
        self.bad_files: dict[str, list[str]] = {}

        self.train_set: PointCloudSet | None = None
        self.val_set: PointCloudSet | None = None
        self.test_set: PointCloudSet | None = None
        self._probe_sets: dict[str, PointCloudSet] = {}

    @property
    def layout(self) -> str:
        """The layout read (``layout="auto"`` is detected here, once)."""
        if self._layout is None:
            self._layout = detect_layout(self.root)
        return self._layout

    # ------------------------------------------------------------------ data preparation
    def prepare_data(self) -> None:
        """Generate the built-in set when ``synthetic`` is given and something this module reads
        lies inside it (:meth:`reads_builtin`: a ``data.root=`` elsewhere generates nothing), and
        sample (and render) a mesh folder into its cache for ``layout="meshes"`` (rank 0 only under
        DDP)."""
        if not self.reads_builtin():
            if self.layout == "meshes" and self.layout_options.get("cache_dir", None) is not False:
                self._prepare_meshes()
            return
        try:
            from pc3d.data.synthetic import ensure_generated
        except ImportError as exc:  # pragma: no cover - depends on the installed package
            raise ImportError("synthetic data needs pc3d.data.synthetic, which could not be imported") from exc
        ensure_generated(**self.synthetic)

    def reads_builtin(self) -> bool:
        """Whether any folder this module reads (``root``, and ``render_root`` where a subclass has
        one) lies inside the built-in root ``synthetic["root"]``; ``False`` without ``synthetic``.
        Only then does :meth:`prepare_data` generate the built-in set."""
        if self.synthetic is None:
            return False
        builtin = Path(self.synthetic["root"]).expanduser().absolute()
        read = [self.root, getattr(self, "render_root", None)]
        return any(p is not None and Path(p).expanduser().absolute().is_relative_to(builtin) for p in read)

    def _prepare_meshes(self) -> None:
        from pc3d.data.meshes import MeshFolderDataset

        folder = MeshFolderDataset(self.root, split="all", n_points=1, seed=self.seed, **self.layout_options)
        report = folder.prepare()
        if report["bad_files"] and not self.skip_bad:
            shown = "\n  ".join(report["bad_files"][:20])
            raise ValueError(
                f"{len(report['bad_files'])} meshes in {self.root} cannot be used (set skip_bad=true to skip "
                f"them):\n  {shown}"
            )
        log.info("mesh cache of %s: %s", self.root, {k: v for k, v in report.items() if k != "bad_files"})

    def _make(self, split: str, sampling: str, categories, in_memory: bool, transform=None) -> PointCloudSet:
        """Build the data set of one split; the single place data sets are built (subclasses wrap it).

        ``split == "train"`` reads ``train_split`` (``"train"`` or ``"all"``)."""
        common = {
            "categories": categories,
            "split": self.train_split if split == "train" else split,
            "n_points": self.n_points,
            "sampling": sampling,
            "normalize": self.normalize,
            "global_stats": self.global_stats if self.normalize == "global" else None,
            "in_memory": in_memory,
            "seed": self.seed,
            "transform": transform,
            "skip_bad": self.skip_bad,
        }
        if self.layout == "pc15k":
            return PC15kDataset(self.root, pointflow_split=self.pointflow_split, **common, **self.layout_options)
        if self.pointflow_split:
            raise ValueError(f"pointflow_split is PC15k's row split; set it to false for layout {self.layout!r}")
        return layout_class(self.layout)(self.root, **common, **self.layout_options)

    def _note_bad_files(self, split: str, dataset: PointCloudSet) -> None:
        """Record (log, and write to ``bad_files_report``) the files ``skip_bad`` dropped from a split.
        A data set that a subclass's ``_make`` wraps reports them when it exposes ``bad_files``."""
        bad = list(getattr(dataset, "bad_files", None) or [])
        if not bad:
            return
        self.bad_files[split] = bad
        log.warning("skipped %d bad files in the %s split of %s:\n  %s", len(bad), split, self.root, "\n  ".join(bad))
        if self.bad_files_report is not None:
            from pc3d.io import atomic_write_json

            atomic_write_json(self.bad_files_report, self.bad_files)

    def setup(self, stage: str | None = None) -> None:
        """Build the data sets that ``stage`` needs (``fit``: train+val, ``validate``: val,
        ``test``/``predict``: test, ``None``: all). The train split is always listed, since
        it fixes the synsets (labels) and the global statistics."""
        fit = stage in (None, "fit")
        if self.train_set is None or (fit and self.in_memory and not self.train_set.in_memory):
            self.train_set = self._make(
                "train",
                self.train_sampling,
                self.categories,
                in_memory=self.in_memory and fit,
                transform=self.train_transform,
            )
            self._note_bad_files("train", self.train_set)
            if self.normalize == "global" and self.global_stats is None:
                self.global_stats = self.train_set.global_stats
        synsets = self.train_set.synsets
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._make("val", "fixed", synsets, in_memory=self.in_memory)
            self._note_bad_files("val", self.val_set)
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._make("test", "fixed", synsets, in_memory=self.in_memory)
            self._note_bad_files("test", self.test_set)

    # ------------------------------------------------------------------ properties
    def _require_setup(self) -> PointCloudSet:
        if self.train_set is None:
            raise RuntimeError("call setup() first")
        return self.train_set

    @property
    def synsets(self) -> list[str]:
        """Selected synset ids; ``label == synsets.index(synset)``."""
        return list(self._require_setup().synsets)

    @property
    def names(self) -> list[str]:
        """A name per synset (same order as :attr:`synsets`)."""
        return list(self._require_setup().names)

    @property
    def num_classes(self) -> int:
        return len(self._require_setup().synsets)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Plain-typed state for checkpoints: the global statistics and the synsets."""
        state: dict[str, Any] = {}
        if self.global_stats is not None:
            state["global_stats"] = dict(self.global_stats)
        if self.train_set is not None:
            state["synsets"] = list(self.train_set.synsets)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the global statistics (into every data set already built)."""
        stats = state_dict.get("global_stats")
        if stats is not None:
            self.global_stats = parse_global_stats(stats)[2]
            if self.normalize == "global":
                for ds in (self.train_set, self.val_set, self.test_set, *self._probe_sets.values()):
                    if ds is not None:
                        ds.set_global_stats(self.global_stats)
        saved = state_dict.get("synsets")
        if saved is not None and self.train_set is not None and list(saved) != list(self.train_set.synsets):
            warnings.warn(
                f"the checkpoint was trained on synsets {saved} but this data module selects "
                f"{self.train_set.synsets}; category labels may not match",
                stacklevel=2,
            )

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: PointCloudSet, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            # with workers, starting an iterator draws its base seed from this generator, not from
            # torch's global RNG: a resumed run (which starts its persistent workers at another
            # time than an uninterrupted one) then makes the same global draws
            generator=torch.Generator().manual_seed(self.seed) if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        n = len(self.train_set)
        if self.drop_last and n < self.batch_size:
            raise ValueError(
                f"the train split of {self.root} has {n} items, fewer than batch_size={self.batch_size}; "
                f"with drop_last=True no batch would be produced: lower batch_size or set drop_last=False"
            )
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            # DDP: Lightning swaps in a DistributedSampler (each rank its shard); resume restarts at
            # the epoch boundary there (the RNG callback), not mid-epoch.
            return self._loader(self.train_set, self.batch_size, shuffle=True, drop_last=self.drop_last)
        # Same batches as DataLoader(shuffle=True); its position is saved in checkpoints (mid-epoch resume).
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            consumed=self._train_batches_used,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def _train_batches_used(self) -> int | None:
        """Batches of the current epoch that training has used (``None`` outside a trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False, drop_last=False)

    def probe_dataloader(self, split: str, batch_size: int | None = None) -> DataLoader:
        """A split in fixed order with fixed sampling and no augmentation (for linear probes).

        Every call yields the same points in the same order; the train split is re-read
        with ``sampling="fixed"``.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._probe_sets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
            base = {"train": self.train_set, "val": self.val_set, "test": self.test_set}[split]
            self._probe_sets[split] = base.variant(sampling="fixed", transform=None)
        return self._loader(self._probe_sets[split], batch_size or self.eval_batch_size, shuffle=False, drop_last=False)
