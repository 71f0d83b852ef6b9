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
