"""Frechet Point Distance (FPD; Shu et al., tree-GAN, ICCV 2019).

FPD is the Frechet distance between two Gaussians fitted to classifier features of two sets
of clouds, exactly like FID for images::

    FPD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Features (tree-GAN's choice, :meth:`pc3d.nn.PointNetClassifier.features`): the concatenation
of the max-pooled global feature before any ReLU (1024), ReLU(BN(fc1)) (512), ReLU(BN(fc2))
(256) and the logits (k), i.e. 1808 values for ``k = 16``; network in eval mode; clouds fed as
``(B, N, 3)`` (transposed to ``(B, 3, N)`` inside the network). tree-GAN's evaluator only
uses whole batches of 100; here every cloud is used (in eval mode the batch composition does
not change a cloud's features).

The statistics are ``mu = mean(features)`` and ``S = cov(features)`` with the unbiased
(``n - 1``) estimator, in float64. The trace term is computed stably in the symmetric form
``Tr (S_1 S_2)^(1/2) = Tr (S_1^(1/2) S_2 S_1^(1/2))^(1/2) = sum_i sqrt(lambda_i)`` where
``lambda_i`` are the eigenvalues of the symmetric PSD matrix ``S_1^(1/2) S_2 S_1^(1/2)``
(``S_1 S_2`` is similar to it), with tiny negative eigenvalues from rounding clipped to 0:
no complex square roots and no singular-product fallback are needed. The result is clipped
at 0.

Input frame: the features depend on the coordinates the classifier was trained on, so feed
clouds normalized the way its training data was (``normalize`` argument; the built-in data
is used as stored, ``"none"``; tree-GAN's classifier was trained on ShapeNet-part clouds
in a unit sphere).

Reference statistics are saved to / loaded from a ``.npz`` file (``mu``, ``sigma``, ``n``
and optional metadata), written atomically (temporary file + rename). ``pc3d-eval
task=fpd_stats`` stores what the statistics are of in the metadata: ``category_names``
(and the ``categories`` setting), ``n_points``, ``normalize_data`` / ``normalize_fpd``, the
classifier and the split. :func:`check_statistics` compares it with the clouds scored;
:func:`fpd` refuses a point-count mismatch (PointNet's max-pooled features depend on ``N``) and
warns on other categories or another normalisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from pc3d.geometry.normalize import NORMALIZATIONS, normalize_unit_bbox, normalize_unit_sphere
from pc3d.io import atomic_write

__all__ = [
    "FPD",
    "FPDScorer",
    "FeatureStats",
    "check_statistics",
    "compute_features",
    "feature_statistics",
    "fpd",
    "frechet_distance",
    "frechet_distance_to_features",
    "load_statistics",
    "save_statistics",
]


class FeatureStats(NamedTuple):
    """Gaussian statistics of a feature set: ``mu (D,)``, ``sigma (D, D)`` float64, ``n`` clouds."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    meta: dict


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` in float64.

    ``||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 sum_i sqrt(eig_i(sqrt(S1) S2 sqrt(S1)))``
    (the symmetric form, see the module docstring), clipped at 0.

    Shapes: mu ``(D,)``, sigma ``(D, D)`` (symmetric PSD) -> float.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"expected mu (D,) and sigma (D, D) with one D, got {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}"
        )
    for name, t in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    r1 = _sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(0.0, value)


def frechet_distance_to_features(features: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between the Gaussian fitted to ``features`` and ``N(mu2, sigma2)``.

    Same value as ``frechet_distance(*feature_statistics(features)[:2], mu2, sigma2)``, but
    when there are fewer clouds than feature dimensions (``M <= D``) the trace term uses
    ``S_1 = A^T A / (M - 1)`` (``A`` the centred features): the non-zero eigenvalues of
    ``S_1 S_2`` are those of the small symmetric PSD matrix ``A S_2 A^T / (M - 1)``
    (``M x M``), so no ``D x D`` eigendecomposition is needed.

    Shapes: features ``(M, D)``, mu2 ``(D,)``, sigma2 ``(D, D)`` -> float.
    """
    f = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
    f = f.astype(np.float64, copy=False)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (M, D) with M >= 2, got {f.shape}")
    m, d = f.shape
    if m > d:
        s = feature_statistics(f)
        return frechet_distance(s.mu, s.sigma, mu2, sigma2)
    mu2 = np.asarray(mu2, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if mu2.shape != (d,) or s2.shape != (d, d):
        raise ValueError(f"expected mu2 ({d},) and sigma2 ({d}, {d}), got {mu2.shape} and {s2.shape}")
    mu1 = f.mean(axis=0)
    a = (f - mu1) / np.sqrt(m - 1)
    small = a @ s2 @ a.T
    eig = np.linalg.eigvalsh((small + small.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + (a * a).sum() + np.trace(s2) - 2.0 * tr_covmean)
    return max(0.0, value)


def feature_statistics(features: Any, meta: dict | None = None) -> FeatureStats:
    """Mean and unbiased covariance of features, float64.

    Shapes: features ``(M, D)`` with ``M >= 2`` -> mu ``(D,)``, sigma ``(D, D)``.
    """
    f = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
    f = f.astype(np.float64, copy=False)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (M, D) with M >= 2, got {f.shape}")
    return FeatureStats(f.mean(axis=0), np.cov(f, rowvar=False), int(f.shape[0]), dict(meta or {}))


def save_statistics(path: str | os.PathLike, stats: FeatureStats) -> Path:
    """Write ``stats`` to a ``.npz`` file atomically (``mu``, ``sigma``, ``n``, ``meta`` JSON)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                mu=stats.mu,
                sigma=stats.sigma,
                n=np.int64(stats.n),
                meta=np.array(json.dumps(stats.meta, default=str)),
            )

    return atomic_write(path, write)


def load_statistics(path: str | os.PathLike) -> FeatureStats:
    """Read statistics written by :func:`save_statistics` (no pickles)."""
    with np.load(Path(path), allow_pickle=False) as z:
        missing = {"mu", "sigma"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not an FPD statistics file (missing {sorted(missing)})")
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
        n = int(z["n"]) if "n" in z.files else 0
        return FeatureStats(z["mu"].astype(np.float64), z["sigma"].astype(np.float64), n, meta)


def check_statistics(
    stats: FeatureStats,
    *,
    n_points: int | None = None,
    categories: Iterable[str] | None = None,
    normalize: str | None = None,
    where: str = "",
) -> list[str]:
    """Compare the metadata of reference statistics with the clouds about to be scored against them.

    A point-count mismatch (metadata ``n_points`` vs ``n_points``) raises ``ValueError``: FPD of
    512-point clouds against 2048-point statistics is not a meaningful number. Other categories
    (metadata ``category_names`` vs ``categories``) or another classifier frame (metadata
    ``normalize_fpd`` vs ``normalize``) give a ``UserWarning``. Statistics without metadata (or
    an argument ``None``) are not checked on that point. ``where`` names the statistics in messages.

    Returns the warning messages issued.
    """
    import warnings

    meta = stats.meta if isinstance(stats.meta, dict) else {}
    name = f" ({where})" if where else ""
    expected = meta.get("n_points")
    if n_points is not None and expected is not None and int(expected) != int(n_points):
        raise ValueError(
            f"FPD: the reference statistics{name} were computed on {int(expected)}-point clouds but the scored "
            f"clouds have {int(n_points)} points; subsample the clouds (n_points={int(expected)}) or recompute the "
            f"statistics (pc3d-eval task=fpd_stats data.n_points={int(n_points)} ...)"
        )
    msgs = []
    ref_cats = meta.get("category_names")
    if categories is not None and ref_cats is not None and sorted(map(str, categories)) != sorted(map(str, ref_cats)):
        msgs.append(
            f"FPD: the reference statistics{name} are of categories {list(ref_cats)} but the scored clouds are of "
            f"{list(categories)}; recompute them (pc3d-eval task=fpd_stats data.categories=[...])"
        )
    ref_norm = meta.get("normalize_fpd")
    if normalize is not None and ref_norm is not None and str(ref_norm) != str(normalize):
        msgs.append(
            f"FPD: the reference statistics{name} were computed with normalize={ref_norm!r} but the clouds are "
            f"scored with normalize={normalize!r}: the features are taken in another frame"
        )
    for m in msgs:
        warnings.warn(m, UserWarning, stacklevel=2)
    return msgs


@torch.no_grad()
def compute_features(
    classifier: nn.Module,
    clouds: Any,
    *,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    normalize: str = "none",
    group: Any = None,
) -> Tensor:
    """FPD features of every cloud (classifier temporarily in eval mode).

    Args:
        classifier: a network with ``features(points (B, N, 3)) -> (B, D)`` (e.g.
            :class:`pc3d.nn.PointNetClassifier` or :class:`pc3d.models.PointCloudClassifier`).
        clouds: ``(M, N, 3)`` tensor/array, or an iterable of ``(B, N, 3)`` batches.
        batch_size: clouds per forward pass.
        device: where to run (default: the classifier's device).
        normalize: ``"none" | "unit_sphere" | "unit_bbox"``, per cloud, before the network.
        group: a ``torch.distributed`` process group: the batches of ``batch_size`` clouds are
            split in contiguous blocks across its ranks and the features gathered, so every rank
            returns all of them; each batch is the same as in one process, hence the same
            features (given the same number of intra-op threads). Needs a tensor/array of clouds
            (an iterable of batches is computed whole on every rank).

    Shapes: ``(M, N, 3)`` -> float32 CPU ``(M, D)``.
    """
    if normalize not in ("none", "unit_sphere", "unit_bbox"):
        raise ValueError(f"normalize must be none | unit_sphere | unit_bbox for FPD features, got {normalize!r}")
    if device is None:
        p = next(classifier.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    if isinstance(clouds, np.ndarray | Tensor):
        t = torch.as_tensor(clouds)
        if t.dim() != 3 or t.shape[-1] != 3 or t.shape[0] == 0:
            raise ValueError(f"clouds must have shape (M, N, 3), got {tuple(t.shape)}")
        starts = list(range(0, t.shape[0], int(batch_size)))
        counts = None
        if group is not None:
            from pc3d.metrics.sharded import rank_and_size, row_blocks

            rank, world = rank_and_size(group)
            if world > 1:
                blocks = row_blocks(len(starts), world)
                counts = [sum(min(int(batch_size), t.shape[0] - starts[k]) for k in range(b0, b1)) for b0, b1 in blocks]
                starts = starts[blocks[rank][0] : blocks[rank][1]]
        batches: Iterable = (t[i : i + batch_size] for i in starts)
    else:
        counts = None
        batches = clouds
    was_training = classifier.training
    classifier.eval()
    feats = []
    try:
        for b in batches:
            b = torch.as_tensor(b, dtype=torch.float32)
            if normalize == "unit_sphere":
                b = normalize_unit_sphere(b)[0]
            elif normalize == "unit_bbox":
                b = normalize_unit_bbox(b)[0]
            feats.append(classifier.features(b.to(device)).float().cpu())
    finally:
        classifier.train(was_training)
    if counts is not None:
        from pc3d.metrics.sharded import all_gather_rows, rank_and_size

        local = torch.cat(feats) if feats else torch.empty(0, 0)
        # more ranks than batches leaves a rank without features: agree on the width first
        _, world = rank_and_size(group)
        width = all_gather_rows(torch.tensor([[local.shape[1] if feats else -1]]), [1] * world, group).max()
        return all_gather_rows(local.reshape(local.shape[0], int(width)), counts, group)
    if not feats:
        raise ValueError("no clouds given")
    return torch.cat(feats)


def fpd(
    samples: Any,
    reference: FeatureStats | str | os.PathLike | Any,
    classifier: nn.Module,
    *,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    normalize: str = "none",
    categories: Iterable[str] | None = None,
    group: Any = None,
) -> float:
    """Frechet Point Distance between generated clouds and a reference.

    Args:
        samples: ``(S, N, 3)`` clouds.
        reference: precomputed :class:`FeatureStats`, a path to a ``.npz`` written by
            :func:`save_statistics`, or reference clouds ``(R, M, 3)``.
        classifier, batch_size, device, normalize: see :func:`compute_features`.
        categories: the category names of the samples, when known: checked against the
            statistics' metadata (see :func:`check_statistics`; a point-count mismatch with
            the metadata always raises ``ValueError``).

    Shapes: samples ``(S, N, 3)`` (``S >= 2``) -> float.
    """
    where = ""
    if isinstance(reference, str | os.PathLike):
        where = str(reference)
        reference = load_statistics(reference)
    if isinstance(reference, FeatureStats):
        n = samples.shape[1] if hasattr(samples, "shape") and len(samples.shape) == 3 else None
        check_statistics(reference, n_points=n, categories=categories, normalize=normalize, where=where)
    else:
        reference = feature_statistics(
            compute_features(classifier, reference, batch_size=batch_size, device=device, normalize=normalize,
                             group=group)
        )
    feats = compute_features(classifier, samples, batch_size=batch_size, device=device, normalize=normalize,
                             group=group)
    return frechet_distance_to_features(feats, reference.mu, reference.sigma)


# ----------------------------------------------------------------------------- training hook

_SCORER_NORMALIZATIONS = NORMALIZATIONS


class FPDScorer:
    """FPD of generated clouds against fixed reference statistics, as a callable (training hook).

    Takes the feature network itself (an ``nn.Module`` with ``features``); reading it from a
    checkpoint is :func:`pc3d.models.io.fpd_scorer`'s job, which builds one from files
    (Hydra-friendly), e.g. ``model.fpd`` of :class:`pc3d.models.TreeGAN`::

        fpd:
          classifier_ckpt: outputs/fpd/pointnet_cls_synthetic.ckpt   # pc3d.models.io.load_classifier()
          stats: outputs/fpd/chair_train_512.npz                      # save_statistics()
          n_points: 512

    Frame: ``__call__`` takes clouds in the **data's stored coordinates** (the frame the
    reference statistics were computed in by ``pc3d-eval task=fpd_stats``, before the
    classifier's ``normalize``); :class:`~pc3d.models.TreeGAN` de-normalizes its samples
    first when its data module uses ``normalize="global"``. ``normalize`` is then applied per
    call, exactly like ``pc3d-eval``'s ``fpd.normalize``: ``"none"``, ``"unit_sphere"`` /
    ``"unit_bbox"`` (per cloud), or ``"global"`` with ``global_stats``
    (``{"mean": [3], "std": s}``: ``(x - mean) / std``, for a classifier trained on globally
    normalized data).

    Point count: PointNet's max-pooled features depend on ``N``, so the generated clouds
    should have as many points as the clouds the statistics came from (``stats`` metadata
    ``n_points``, written by ``pc3d-eval task=fpd_stats``). ``n_points`` subsamples every
    cloud with more points to that many (without replacement, the same fixed-seed rows for
    every call); fewer points raise ``ValueError``. A remaining mismatch with the metadata
    raises too (``check_n_points=False`` turns that into a warning).

    Args:
        classifier: the feature network (e.g. :class:`pc3d.nn.PointNetClassifier`), used in
            eval mode; :func:`pc3d.models.io.load_classifier` reads one from a checkpoint.
        stats: ``.npz`` reference statistics, or a :class:`FeatureStats`.
        n_points: subsample clouds to this many points (``None``: as given).
        normalize: see above. global_stats: for ``normalize="global"``.
        batch_size: clouds per forward pass. device: where the classifier runs (``None``: the
            device of the clouds passed in). seed: of the subsampling rows.
        classifier_ckpt: the file ``classifier`` was read from (shown by ``repr`` only).

    Shapes: ``__call__(clouds (M, N, 3))`` with ``M >= 2`` -> float.
    """

    def __init__(
        self,
        classifier: nn.Module,
        stats: str | os.PathLike | FeatureStats,
        *,
        n_points: int | None = None,
        normalize: str = "none",
        global_stats: Any = None,
        batch_size: int = 100,
        device: str | torch.device | None = None,
        seed: int = 0,
        check_n_points: bool = True,
        classifier_ckpt: str | os.PathLike | None = None,
    ) -> None:
        if normalize not in _SCORER_NORMALIZATIONS:
            raise ValueError(f"FPDScorer: normalize must be one of {_SCORER_NORMALIZATIONS}, got {normalize!r}")
        if normalize == "global" and global_stats is None:
            raise ValueError("FPDScorer: normalize='global' needs global_stats={'mean': [3 values], 'std': s}")
        if n_points is not None and (isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1):
            raise ValueError(f"FPDScorer: n_points must be a positive int or None, got {n_points!r}")
        if int(batch_size) < 1:
            raise ValueError(f"FPDScorer: batch_size must be >= 1, got {batch_size!r}")
        if not isinstance(classifier, nn.Module) or not callable(getattr(classifier, "features", None)):
            raise TypeError(
                f"FPDScorer: classifier must be an nn.Module with features(points (B, N, 3)), got "
                f"{type(classifier).__name__} (pc3d.models.io.fpd_scorer builds one from a checkpoint file)"
            )
        if isinstance(stats, FeatureStats):
            self.stats = stats
            self.stats_path = None
        else:
            self.stats_path = Path(stats)
            if not self.stats_path.is_file():
                raise FileNotFoundError(f"FPDScorer: stats file not found: {self.stats_path}")
            self.stats = load_statistics(self.stats_path)
        self.classifier_ckpt = None if classifier_ckpt is None else Path(classifier_ckpt)
        self.classifier = classifier.eval()
        self.n_points = n_points
        self.normalize = normalize
        self.global_stats = None
        if global_stats is not None:
            from pc3d.data.base import parse_global_stats

            shift, scale, _ = parse_global_stats(global_stats)
            self.global_stats = (torch.from_numpy(shift).reshape(1, 1, 3), torch.from_numpy(scale).reshape(1, 1, 1))
        self.batch_size = int(batch_size)
        self.device = None if device is None else torch.device(device)
        self.seed = int(seed)
        self.check_n_points = bool(check_n_points)
        self._warned = False
        meta = self.stats.meta if isinstance(self.stats.meta, dict) else {}
        frame = [meta.get(k) for k in ("normalize_data", "normalize_fpd") if meta.get(k) not in (None, "none")]
        if frame and frame[-1] != normalize:
            import warnings

            warnings.warn(
                f"FPDScorer: the statistics ({self.stats_path}) were computed on clouds normalized with "
                f"{' then '.join(frame)} (metadata normalize_data / normalize_fpd) but normalize={normalize!r}: "
                "the features are then taken in another frame",
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return (
            f"FPDScorer(classifier_ckpt={str(self.classifier_ckpt) if self.classifier_ckpt else None!r}, stats="
            f"{str(self.stats_path) if self.stats_path else '<FeatureStats>'!r}, n_points={self.n_points}, "
            f"normalize={self.normalize!r}, n_ref={self.stats.n})"
        )

    def prepare(self, clouds: Any) -> Tensor:
        """Subsample and normalize as the classifier expects; ``(M, N, 3)`` -> ``(M, N', 3)`` float32."""
        x = torch.as_tensor(clouds).detach().to(torch.float32)
        if x.dim() != 3 or x.shape[-1] != 3 or x.shape[0] < 2:
            raise ValueError(f"FPDScorer: clouds must have shape (M, N, 3) with M >= 2, got {tuple(x.shape)}")
        n = x.shape[1]
        if self.n_points is not None and n != self.n_points:
            if n < self.n_points:
                raise ValueError(f"FPDScorer: clouds have N={n} points, fewer than n_points={self.n_points}")
            rows = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: self.n_points]
            x = x[:, rows.to(x.device)]
        expected = self.stats.meta.get("n_points") if isinstance(self.stats.meta, dict) else None
        if expected is not None and int(expected) != x.shape[1]:
            msg = (
                f"FPDScorer: the reference statistics ({self.stats_path}) were computed on {int(expected)}-point "
                f"clouds but the scored clouds have {x.shape[1]} points; set n_points or recompute the statistics "
                f"(pc3d-eval task=fpd_stats data.n_points={x.shape[1]})"
            )
            if self.check_n_points:
                raise ValueError(msg)
            if not self._warned:
                import warnings

                warnings.warn(msg, stacklevel=3)
                self._warned = True
        if self.normalize == "global":
            shift, scale = self.global_stats
            x = (x - shift.to(x.device)) / scale.to(x.device)
        return x

    def features(self, clouds: Any) -> Tensor:
        """Classifier features of the prepared clouds: ``(M, N, 3)`` -> ``(M, D)`` float32 CPU."""
        x = self.prepare(clouds)
        device = self.device or x.device
        self.classifier.to(device)
        per_cloud = self.normalize if self.normalize in ("unit_sphere", "unit_bbox") else "none"
        return compute_features(self.classifier, x, batch_size=self.batch_size, device=device, normalize=per_cloud)

    def __call__(self, clouds: Any) -> float:
        feats = self.features(clouds)
        if feats.shape[1] != self.stats.mu.shape[0]:
            raise ValueError(
                f"FPDScorer: the classifier gives {feats.shape[1]}-d features but the statistics "
                f"({self.stats_path}) are {self.stats.mu.shape[0]}-d: not from this classifier"
            )
        return frechet_distance_to_features(feats, self.stats.mu, self.stats.sigma)


# ----------------------------------------------------------------------------- torchmetrics

from torchmetrics import Metric as _Metric  # noqa: E402  (a dependency of lightning)
from torchmetrics.utilities import dim_zero_cat as _dim_zero_cat  # noqa: E402


class FPD(_Metric):
    """FPD against fixed reference statistics, accumulated over batches (and DDP ranks).

    ``update(samples)`` computes the classifier features right away (only the ``(B, D)``
    features are kept, concatenated across ranks with ``dist_reduce_fx="cat"``);
    ``compute()`` fits the Gaussian and returns the Frechet distance to ``reference``.
    The classifier is not registered as a sub-module (it is not trained and not saved).

    Shapes: ``update(samples (B, N, 3))``; ``compute() -> ()`` tensor.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(
        self, classifier: nn.Module, reference: FeatureStats | str | os.PathLike, *, normalize: str = "none"
    ) -> None:
        super().__init__()
        self.add_state("features", default=[], dist_reduce_fx="cat")
        object.__setattr__(self, "_classifier", classifier.eval())
        self.reference = load_statistics(reference) if isinstance(reference, str | os.PathLike) else reference
        self.normalize = normalize

    def update(self, samples: Tensor) -> None:
        dev = next(self._classifier.parameters()).device
        self.features.append(
            compute_features(self._classifier, samples.detach(), device=dev, normalize=self.normalize).to(
                samples.device
            )
        )

    def compute(self) -> Tensor:
        feats = _dim_zero_cat(self.features)
        return torch.tensor(frechet_distance_to_features(feats, self.reference.mu, self.reference.sigma))
