"""Helpers shared by tests (importable as tests.helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The tiny built-in dataset every end-to-end test reads (the real generator and reader are used).
TINY_SYNTHETIC = {"n_per_category": 5, "n_points": 2500, "n_views": 1, "image_size": 32, "seed": 0}


def compose_train(overrides: list[str], output_dir: Path, builtin_root: Path | None = None):
    """Compose ``conf/train.yaml`` like the CLI does, with outputs in ``output_dir``.

    If ``builtin_root`` is given, the data config is pointed at it: the built-in data config
    gets the tiny generation parameters, a real-data config gets its PC15k folder as root.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])
    if builtin_root is not None:
        with open_dict(cfg):
            if cfg.data.get("synthetic") is not None:
                cfg.data.synthetic.root = str(builtin_root)
                cfg.data.synthetic.update(TINY_SYNTHETIC)
            else:
                cfg.data.root = str(builtin_root / "ShapeNetCore.v2.PC15k")
                cfg.data.pointflow_split = False
            cfg.data.num_workers = 0
            cfg.data.batch_size = 4
    return cfg


def write_pc15k(root, spec, n_rows=64, name_map=None, seed=0):
    """Write ``root/<synset>/<split>/<model_id>.npy`` clouds; return ``{path: array}``.

    ``spec`` is ``{synset: {split: n_files}}``. Every cloud is an anisotropic Gaussian with its
    own offset, so every normalization mode has something to do.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for synset, splits in spec.items():
        for split, n in splits.items():
            d = root / synset / split
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pts = rng.normal(size=(n_rows, 3)) * [1.0, 2.0, 0.5] + rng.uniform(-3, 3, size=3)
                path = d / f"{synset}_{split}_{i:03d}.npy"
                np.save(path, pts.astype(np.float32))
                out[path] = pts.astype(np.float32)
    if name_map is not None:
        (root / "synsetoffset2category.txt").write_text("".join(f"{n}\t{s}\n" for n, s in name_map.items()))
    return out


def tiny_autoencoder_config(latent_dim: int, decoder: dict, hidden=(16, 32), data: dict | None = None) -> dict:
    """A ``pc3d_config``-style dict of a tiny :class:`pc3d.models.Autoencoder` (PointNet encoder
    with BatchNorm, the given ``decoder`` config); ``data`` is stored beside it when given."""
    cfg = {"model": {"_target_": "pc3d.models.Autoencoder", "latent_dim": latent_dim, "linear_probe": False,
                     "encoder": {"_target_": "pc3d.nn.PointNetEncoder", "in_dim": 3, "hidden": list(hidden),
                                 "latent_dim": latent_dim},
                     "decoder": decoder}}
    if data is not None:
        cfg["data"] = data
    return cfg


def save_autoencoder_ckpt(path: Path, config: dict, n_points: int, seed: int = 0) -> Path:
    """Write a pc3d-train-style autoencoder checkpoint (weights + the plain ``config``) to ``path``.

    The model is built from ``config["model"]`` under ``torch.manual_seed(seed)`` and its
    BatchNorm running statistics are moved away from their init by three train-mode forward
    passes on random clouds of ``n_points`` points, so that a frozen copy can be told apart from
    a re-initialised or re-normalised one. Returns ``path``.
    """
    import torch
    from hydra.utils import instantiate

    torch.manual_seed(seed)
    ae = instantiate(config["model"])
    ae.train()
    with torch.no_grad():
        for _ in range(3):
            ae.encode(torch.randn(8, n_points, 3) * 0.3)
    torch.save({"state_dict": ae.state_dict(), "pc3d_config": config}, path)
    return path


def tiny_lgan_overrides(tmp_path: Path, latent_dim: int = 8, n_points: int = 64) -> list[str]:
    """Overrides that let ``model=lgan`` (e.g. ``experiment=lgan_synthetic``) run on the tiny data:
    a tiny FC-decoder autoencoder checkpoint written to ``tmp_path/lgan_ae.ckpt`` (trained on
    nothing, ``normalize=none`` like the built-in data) and the sizes that match it."""
    decoder = {"_target_": "pc3d.nn.FCDecoder", "latent_dim": latent_dim, "n_points": n_points, "hidden": [16]}
    config = tiny_autoencoder_config(latent_dim, decoder, data={"normalize": "none", "n_points": n_points})
    path = save_autoencoder_ckpt(Path(tmp_path) / "lgan_ae.ckpt", config, n_points=n_points)
    return [f"model.ae_ckpt={path}", f"model.latent_dim={latent_dim}", f"data.n_points={n_points}"]
