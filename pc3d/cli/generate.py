"""``pc3d-generate``: write point clouds sampled from a trained generator (tree-GAN).

``generate(cfg)`` is a plain function (usable from notebooks and tests); ``main`` is the thin
``@hydra.main`` wrapper behind the console script and ``python -m pc3d.cli.generate``::

    pc3d-generate ckpt_path=<run>/checkpoints/last.ckpt n_samples=64 out=samples/ [seed=0 batch_size=100]

The checkpoint is loaded with :func:`pc3d.models.load_model` (``torch.load(weights_only=True)``);
its model must have ``sample(n, *, seed, batch_size) -> (n, N, 3)`` (:class:`pc3d.models.TreeGAN`).
Outputs (see ``conf/generate.yaml``; without ``out``, the run folder
``${paths.log_dir}/generate/runs/<time>``): ``<out>/samples.npy`` (n_samples, N, 3) float32,
``<out>/ply/sample_NNNN.ply`` and optionally ``<out>/npy/sample_NNNN.npy`` (N, 3), each written
to a temp file in the same folder and renamed into place. Coordinates are in the units the model
was trained in (the data module's normalisation).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from pc3d.cli._common import CONFIG_DIR, hydra_entry, reject_renamed
from pc3d.io import atomic_save_npy, atomic_write

log = logging.getLogger("pc3d.generate")


def save_ply(path: Path, points: np.ndarray) -> None:
    """Write an (N, 3) cloud as ``.ply`` with Open3D, atomically; raises ``OSError`` if Open3D fails."""
    import open3d as o3d

    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"save_ply: expected points of shape (N, 3), got {points.shape}")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))

    def write(tmp: Path) -> None:
        # Open3D reports failures with a warning and False instead of raising: check both ways.
        if not o3d.io.write_point_cloud(str(tmp), pcd):
            raise OSError(f"Open3D could not write {path}")
        back = o3d.io.read_point_cloud(str(tmp))
        if len(back.points) != len(points):
            raise OSError(f"{path}: wrote {len(points)} points but read back {len(back.points)}")

    atomic_write(path, write)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Sample ``cfg.n_samples`` clouds from the generator in ``cfg.ckpt_path``; write them under ``cfg.out``.

    ``out`` null: ``cfg.paths.output_dir`` (the run folder).
    Returns ``{"samples": (n_samples, N, 3) float32 array, "npy": path or None, "ply": [paths],
    "npy_per_cloud": [paths]}``. Raises ``FileNotFoundError`` for a missing checkpoint and
    ``ValueError`` for a model that cannot sample or bad arguments.
    """
    from pc3d.models import load_model

    reject_renamed("pc3d-generate", "generate", cfg)
    n, batch_size = cfg.n_samples, cfg.batch_size
    for name, value, low in (("n_samples", n, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    seed = None if cfg.get("seed") is None else int(cfg.seed)
    device = _device(str(cfg.get("device", "auto")))
    model = load_model(cfg.ckpt_path, map_location=device)
    sample = getattr(model, "sample", None)
    if not callable(sample):
        raise ValueError(f"{cfg.ckpt_path}: the model ({type(model).__name__}) is not a generator: it has no "
                         "sample(n, seed=..., batch_size=...) method (train one, e.g. experiment=treegan_synthetic)")
    model.to(device)
    clouds = sample(n, seed=seed, batch_size=batch_size).detach().cpu().float().numpy()
    if clouds.ndim != 3 or clouds.shape[0] != n or clouds.shape[2] != 3:
        raise ValueError(f"{type(model).__name__}.sample returned shape {clouds.shape}, expected ({n}, N, 3)")
    if not np.isfinite(clouds).all():
        log.warning("some generated coordinates are not finite")

    out = Path(str(cfg.out)) if cfg.get("out") else Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"samples": clouds, "npy": None, "ply": [], "npy_per_cloud": []}
    width = max(4, len(str(n - 1)))
    if cfg.get("npy", True):
        result["npy"] = out / "samples.npy"
        atomic_save_npy(result["npy"], clouds)
    for i, cloud in enumerate(clouds):
        if cfg.get("npy_per_cloud", False):
            p = out / "npy" / f"sample_{i:0{width}d}.npy"
            atomic_save_npy(p, cloud)
            result["npy_per_cloud"].append(p)
        if cfg.get("ply", True):
            p = out / "ply" / f"sample_{i:0{width}d}.ply"
            save_ply(p, cloud)
            result["ply"].append(p)
    log.info("wrote %d clouds of %d points to %s (seed %s)", n, clouds.shape[1], out, seed)
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    result = generate(cfg)
    written = [str(result["npy"])] if result["npy"] else []
    for key in ("ply", "npy_per_cloud"):
        if result[key]:
            written.append(f"{len(result[key])} x {Path(result[key][0]).parent}/")
    print(f"pc3d-generate: {len(result['samples'])} clouds -> {', '.join(written)}")


def main() -> None:
    """Console entry point ``pc3d-generate``."""
    hydra_entry("pc3d-generate", "generate", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
