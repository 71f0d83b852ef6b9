"""Helpers shared by tests (importable as tests.helpers)."""

from __future__ import annotations

from pathlib import Path

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
