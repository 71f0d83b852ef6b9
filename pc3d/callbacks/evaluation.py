"""Evaluation callbacks: metrics that score a model without changing what it learns.

The systems (:mod:`pc3d.models`) own their training rule and the metrics of that rule
(``train/*``, the autoencoder's ``val/cd`` / ``test/cd``, the GANs' critic estimate
``val/wasserstein``); the protocols below are callbacks, wired by the model configs
(``conf/model/*.yaml`` pull in ``conf/callbacks/evaluation/*.yaml``), so one key means one kind
of metric whatever the model:

=============================  ==================================================  ======================
key                            meaning                                             callback
=============================  ==================================================  ======================
``test/cd``                    Chamfer distance, squared, sum of the two           model (autoencoder) /
                               directional means, mean over test shapes            :class:`ReconstructionMetrics`
``test/emd``, ``test/fscore``  EMD, F-score@tau, mean over test shapes             :class:`ReconstructionMetrics`
``test/<m>_<category>``        the same per category (``test/cd_chair``)           :class:`ReconstructionMetrics`
``test/linear_probe_acc``      category accuracy of a linear probe on the latents  :class:`LinearProbe`
``test/linear_probe_<l>_acc``  the same for item key ``<l>_label`` (``label_key``,  :class:`LinearProbe`
                               e.g. ``test/linear_probe_fine_acc``)
``val|test/mmd_cd``,           MMD / COV / 1-NNA with Chamfer of generated clouds  :class:`GenerationMetrics`
``val|test/cov_cd``,           against the first references of the split
``val|test/1nna_cd``
``val|test/fpd``               Frechet Point Distance of the generated clouds      :class:`GenerationMetrics`
=============================  ==================================================  ======================

Metrics logged from a callback's ``on_validation_epoch_end`` are in ``trainer.callback_metrics``
before any ``ModelCheckpoint`` reads them (Lightning runs checkpoint callbacks last), so a
checkpoint may monitor ``val/mmd_cd``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch

from pc3d.models._generation import ReferenceClouds

__all__ = ["EVAL_KEYS", "GenerationMetrics", "LinearProbe", "ReconstructionMetrics", "generation_metrics"]

#: Metrics of ``pc3d.metrics.generative.evaluate_generation`` logged under ``val/`` / ``test/``.
EVAL_KEYS = ("mmd_cd", "cov_cd", "1nna_cd")


def generation_metrics(samples: torch.Tensor, refs: torch.Tensor, *, batch_size: int = 100) -> dict[str, float]:
    """MMD-CD, COV-CD and 1-NNA-CD of ``samples`` against ``refs`` (keys :data:`EVAL_KEYS`, no stage).

    ``pc3d.metrics.generative.evaluate_generation`` with the Chamfer distance and
    ``normalize="none"`` (both sets are taken as they are, e.g. in the data module's
    normalised units).

    Shapes:
        samples: (M, N, 3); refs: (M', N', 3)
    """
    from pc3d.metrics.generative import evaluate_generation

    metrics = evaluate_generation(samples, refs, distances=("cd",), normalize="none", batch_size=batch_size)
    return {k: float(metrics[k]) for k in EVAL_KEYS if k in metrics}


def _fpd_spec(fpd: Any) -> Callable[[torch.Tensor], float] | dict | None:
    """Check ``fpd``: ``None``, a callable, or a mapping of FPD scorer arguments (returned as a
    plain dict; no file is read here)."""
    if fpd is None or callable(fpd):
        return fpd
    if type(fpd).__name__ == "DictConfig":
        from omegaconf import OmegaConf

        fpd = OmegaConf.to_container(fpd, resolve=True)
    if not isinstance(fpd, Mapping):
        raise TypeError(f"GenerationMetrics: fpd must be None, a callable clouds -> float or a mapping, "
                        f"got {type(fpd).__name__}")
    kwargs = dict(fpd)
    if "classifier_ckpt" in kwargs:
        raise ValueError("GenerationMetrics: fpd.classifier_ckpt is now fpd.classifier_ckpt_path")
    missing = [k for k in ("classifier_ckpt_path", "stats") if not kwargs.get(k)]
    if missing:
        raise ValueError(f"GenerationMetrics: fpd needs {missing} (FPDScorer arguments), got keys {sorted(kwargs)}")
    return kwargs


class GenerationMetrics(L.Callback):
    """Sample metrics of a generative model (tree-GAN, l-GAN) at validation and test.

    The first ``max_refs`` clouds of the validation (test) loader, in loader order and gathered
    over ranks, are the references ``R``; at the end of the epoch (every ``every_n_epochs``
    validation epochs, never in the sanity check) ``|R|`` clouds are drawn with
    ``pl_module.sample(|R|, seed=seed, batch_size=batch_size)`` and scored with
    ``pc3d.metrics.generative.evaluate_generation`` (Chamfer, no extra normalisation):

    * ``val/mmd_cd``, ``val/cov_cd``, ``val/1nna_cd`` (``test/...`` at test): MMD-CD in squared
      units of the data module's normalised frame, COV and 1-NNA as fractions;
    * ``val/fpd`` (``test/fpd``) when ``fpd`` is given: a callable ``(M, N, 3) -> float`` or a
      mapping with ``classifier_ckpt_path`` (the classifier checkpoint, read by
      :func:`pc3d.models.io.fpd_scorer`), ``stats`` and optionally the other
      :class:`pc3d.metrics.fpd.FPDScorer` arguments ``n_points``, ``normalize``,
      ``batch_size``, ``device``, ``seed``, ``check_n_points``; the scorer is built (its files
      read) in :meth:`setup`.

    Frames: samples and references are in the data module's normalised units. The FPD
    classifier needs clouds in its own training frame, so ``fpd`` receives the samples mapped
    back to the data's stored coordinates (:meth:`to_data_frame`: ``x * std + mean`` with the
    data module's global statistics when ``data.normalize == "global"``, unchanged otherwise; a
    per-cloud normalisation cannot be undone, so there the statistics and the scorer's
    ``normalize`` must use the same per-cloud normalisation).

    When a checkpoint monitors one of these keys keep ``every_n_epochs=1`` and set the cadence
    with ``trainer.check_val_every_n_epoch``.

    Shapes:
        batch["points"]: (B, N, 3); pl_module.sample(n, seed=, batch_size=) -> (n, N, 3)
    """

    def __init__(
        self,
        max_refs: int = 100,
        every_n_epochs: int = 1,
        seed: int = 1234,
        batch_size: int = 100,
        fpd: Callable[[torch.Tensor], float] | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in (("max_refs", max_refs, 0), ("every_n_epochs", every_n_epochs, 1),
                                 ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GenerationMetrics: {name} must be an int >= {low}, got {value!r}")
        self.max_refs = int(max_refs)
        self.every_n_epochs = int(every_n_epochs)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        # a mapping becomes an FPDScorer (which reads the classifier and statistics files) in setup
        self._fpd_spec = _fpd_spec(fpd)
        self.fpd = self._fpd_spec if callable(self._fpd_spec) else None
        self._refs = ReferenceClouds(self.max_refs)

    def build_fpd(self) -> Callable[[torch.Tensor], float] | None:
        """The FPD callable, building the :class:`~pc3d.metrics.fpd.FPDScorer` from a mapping on first use."""
        if self.fpd is None and isinstance(self._fpd_spec, dict):
            from pc3d.models.io import fpd_scorer

            spec = dict(self._fpd_spec)
            self.fpd = fpd_scorer(spec.pop("classifier_ckpt_path"), **spec)
        return self.fpd

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.build_fpd()  # fail early on a wrong fpd path

    @staticmethod
    def to_data_frame(clouds: torch.Tensor, trainer: L.Trainer | None) -> torch.Tensor:
        """Clouds in the data module's normalised units -> the data's stored coordinates.

        ``x * std + mean`` when the trainer's data module uses ``normalize="global"`` (its
        ``global_stats``), the clouds unchanged otherwise (no data module, ``none``, or a
        per-cloud normalisation, which cannot be undone). Shapes: (M, N, 3) -> (M, N, 3).
        """
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if dm is None or getattr(dm, "normalize", None) != "global":
            return clouds
        stats = getattr(dm, "global_stats", None)
        if stats is None:
            raise RuntimeError("GenerationMetrics: the data module normalizes with 'global' but has no global_stats")
        mean = torch.as_tensor(stats["mean"], dtype=clouds.dtype, device=clouds.device).reshape(1, 1, 3)
        return clouds * float(stats["std"]) + mean

    def evaluate_samples(self, samples: torch.Tensor, refs: torch.Tensor,
                         trainer: L.Trainer | None = None) -> dict[str, float]:
        """Metrics of ``samples`` (M, N, 3) against ``refs`` (M', N', 3), keys without stage.

        Both sets in the data module's normalised units: MMD / COV / 1-NNA with Chamfer (when
        ``pc3d.metrics.generative`` is importable) and ``fpd`` (on :meth:`to_data_frame` of the
        samples) when an FPD scorer was given.
        """
        out = generation_metrics(samples, refs, batch_size=self.batch_size)
        if self.build_fpd() is not None:
            out["fpd"] = float(self.fpd(self.to_data_frame(samples, trainer)))
        return out

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        refs = self._refs.take(pl_module, stage, self.every_n_epochs)  # None: nothing to evaluate now
        if refs is None:
            return
        samples = pl_module.sample(len(refs), seed=self.seed, batch_size=self.batch_size)
        logs = self.evaluate_samples(samples, refs, trainer)
        if logs:
            pl_module.log_dict({f"{stage}/{k}": v for k, v in logs.items()}, sync_dist=True)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._refs.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._refs.add(batch["points"])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._evaluate(trainer, pl_module, "val")

    # the test epoch gathers its references the same way
    on_test_epoch_start = on_validation_epoch_start
    on_test_batch_end = on_validation_batch_end

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._evaluate(trainer, pl_module, "test")


class _Relabelled:
    """A loader whose batches carry ``batch[key]`` as ``"category"`` (for ``pl_module.embed``)."""

    def __init__(self, loader, key: str) -> None:
        self.loader, self.key = loader, key

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            batch = dict(batch)
            batch["category"] = batch[self.key]
            yield batch


class LinearProbe(L.Callback):
    """Linear probe of an encoder's latents at the end of testing (self-supervised pretraining).

    Collects the latents ``outputs["z"]`` (B, D) that the model's ``test_step`` returns, with
    ``batch[label_key]`` (B,); at the end of testing a logistic regression
    (:func:`pc3d.metrics.probe.linear_probe`) is fitted on the latents of the whole train split
    (``pl_module.embed(datamodule.probe_dataloader("train"))``, its labels read from ``label_key``)
    and predicts the labels of the test shapes. Logged: ``test/linear_probe_acc`` (test accuracy)
    and ``test/linear_probe_train_acc`` (train accuracy), fractions in [0, 1]. A no-op when the
    test steps return no ``"z"`` or the data module has no ``probe_dataloader``.

    Args:
        label_key: the batch key of the labels: ``"category"`` (default) or another integer label,
            e.g. ``"fine_label"`` (the built-in set's fine-grained classes, see
            :data:`pc3d.data.synthetic.FINE_CLASSES`). Other keys log under the key's name without
            a ``_label`` suffix: ``test/linear_probe_fine_acc``, ``test/linear_probe_fine_train_acc``.
            Shapes labelled ``-1`` (unknown) are left out of the probe; a no-op (with a warning)
            when the batches have no ``label_key``.

    Shapes:
        outputs["z"]: (B, D); batch[label_key]: (B,); pl_module.embed(loader) -> ((M, D), (M,))
    """

    def __init__(self, label_key: str = "category") -> None:
        super().__init__()
        if not isinstance(label_key, str) or not label_key:
            raise ValueError(f"LinearProbe: label_key must be a non-empty str, got {label_key!r}")
        self.label_key = label_key
        name = label_key[: -len("_label")] if label_key.endswith("_label") else label_key
        self.prefix = "test/linear_probe" if label_key == "category" else f"test/linear_probe_{name}"
        self._latents: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._missing = False

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._latents.clear()
        self._labels.clear()
        self._missing = False

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if isinstance(outputs, Mapping) and outputs.get("z") is not None:
            if self.label_key not in batch:
                self._missing = True
                return
            self._latents.append(outputs["z"].cpu())
            self._labels.append(torch.as_tensor(batch[self.label_key]).cpu())

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        from pc3d.metrics.probe import linear_probe

        if self._missing:
            warnings.warn(f"LinearProbe: the test batches have no {self.label_key!r}; no probe", stacklevel=2)
            self._latents.clear()
            self._labels.clear()
            return
        if not self._latents:
            return
        dm = getattr(trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "probe_dataloader"):
            return
        z_te = torch.cat(self._latents)
        y_te = torch.cat(self._labels)
        if trainer.world_size > 1:  # every rank saw a shard of the test split
            z_te = pl_module.all_gather(z_te.to(pl_module.device)).reshape(-1, z_te.shape[1]).cpu()
            y_te = pl_module.all_gather(y_te.to(pl_module.device)).reshape(-1).cpu()
        loader = dm.probe_dataloader("train")
        z_tr, y_tr = pl_module.embed(loader if self.label_key == "category" else _Relabelled(loader, self.label_key))
        self._latents.clear()
        self._labels.clear()
        if self.label_key != "category":  # -1: a shape without this label
            keep_tr, keep_te = y_tr >= 0, y_te >= 0
            z_tr, y_tr, z_te, y_te = z_tr[keep_tr], y_tr[keep_tr], z_te[keep_te], y_te[keep_te]
            if len(y_tr) == 0 or len(y_te) == 0:
                warnings.warn(f"LinearProbe: no labelled {self.label_key!r} shapes; no probe", stacklevel=2)
                return
        result = linear_probe(z_tr, y_tr, z_te, y_te)
        pl_module.log(f"{self.prefix}_acc", result.accuracy, sync_dist=True)  # equal on every rank
        pl_module.log(f"{self.prefix}_train_acc", result.train_accuracy, sync_dist=True)


class ReconstructionMetrics(L.Callback):
    """Reconstruction metrics of predicted clouds at test, overall and per category.

    Each test step's prediction ``outputs["recon"]`` (B, N, 3) is scored against
    ``batch["points"]`` (B, M, 3) by :func:`pc3d.metrics.reconstruction.reconstruction_metrics`
    (``metrics``, ``tau``, ``normalize``, ``emd_method``); at the end of testing
    :func:`~pc3d.metrics.reconstruction.per_category_means` (category names from the data
    module's ``names``) gives the logged keys:

    * ``test/<metric>``: mean over the test shapes (``test/cd``: Chamfer, squared, sum of the
      two directional means, the same quantity as the autoencoder's ``test/cd``; ``test/emd``;
      ``test/fscore`` at ``tau`` on the euclidean distance);
    * ``test/<metric>_<category>``: the same mean over one category's shapes (``test/cd_chair``).

    Values in the data's normalised units unless ``normalize`` says otherwise. ``results`` keeps
    the last table ``{category | "all": {metric: mean, "count": n}}``.

    Shapes:
        outputs["recon"]: (B, N, 3); batch["points"]: (B, M, 3); batch["category"]: (B,)
    """

    def __init__(self, metrics: Sequence[str] = ("cd", "emd", "fscore"), tau: float = 0.01,
                 normalize: str = "none", emd_method: str = "exact") -> None:
        super().__init__()
        self.metrics = tuple(str(m) for m in metrics)
        self.tau = float(tau)
        self.normalize = str(normalize)
        self.emd_method = str(emd_method)
        self._values: dict[str, list[torch.Tensor]] = {}
        self._labels: list[torch.Tensor] = []
        self.results: dict[str, dict[str, float]] | None = None

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._values = {}
        self._labels = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from pc3d.metrics.reconstruction import reconstruction_metrics

        if not isinstance(outputs, Mapping) or outputs.get("recon") is None:
            return
        vals = reconstruction_metrics(outputs["recon"], batch["points"], metrics=self.metrics, tau=self.tau,
                                      normalize=self.normalize, emd_method=self.emd_method)
        for k, v in vals.items():
            self._values.setdefault(k, []).append(v)
        self._labels.append(batch["category"].detach().cpu())

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        from pc3d.metrics.reconstruction import per_category_means

        if not self._labels:
            return
        values = {k: torch.cat(v) for k, v in self._values.items()}
        labels = torch.cat(self._labels)
        if trainer.world_size > 1:  # every rank scored a shard (padded to equal sizes by the sampler)
            values = {k: pl_module.all_gather(v.to(pl_module.device)).reshape(-1).cpu() for k, v in values.items()}
            labels = pl_module.all_gather(labels.to(pl_module.device)).reshape(-1).cpu()
        dm = getattr(trainer, "datamodule", None)
        names = list(dm.names) if dm is not None and hasattr(dm, "names") else None
        table = per_category_means(values, labels, names=names)
        self.results = table
        logs = {}
        for cat, row in table.items():
            for k, v in row.items():
                if k == "count":
                    continue
                logs[f"test/{k}" if cat == "all" else f"test/{k}_{cat}"] = float(v)
        pl_module.log_dict(logs, sync_dist=False)
