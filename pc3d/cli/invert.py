"""``pc3d-invert``: GAN inversion with a pretrained generator (:mod:`pc3d.inversion`).

``invert(cfg)`` is a plain function (usable from notebooks and tests); ``main`` is the thin
``@hydra.main`` wrapper behind the console script and ``python -m pc3d.cli.invert``::

    pc3d-invert mode=complete input=partial.npy out=done.npy
    pc3d-invert mode=morph input=a.ply input2=b.ply morph.frames=12 out=morph/

Modes: ``reconstruct`` (fit full clouds), ``complete`` (fit partial clouds under a mask; the
results are the completions), ``diversity`` (``n_samples`` completions per shape from different
starts), ``jitter`` (``n_samples`` variations of each fitted shape: ``z + jitter.sigma * eps``
decoded with the shape's tuned generator) and ``morph`` (``morph.frames`` clouds from the first
shape of ``input`` to the first of ``input2``: ``z`` by slerp, tuned weights linearly). The
generator is ``ckpt_path`` (default the shipped ``pretrained:lgan``).

Outputs: ``out`` a ``.npy`` / ``.ply`` / ``.pcd`` file -> the results there (``.npy``: ``(N, 3)``
for one cloud, else ``(R, N, 3)``; ``.ply`` / ``.pcd`` with several clouds: ``<stem>_NNNN.<ext>``)
and ``<stem>.png`` / ``<stem>.gif`` / ``<stem>.json`` beside it; ``out`` a folder (or null: the run
folder ``${paths.log_dir}/invert/runs/<time>``) -> ``<out>/clouds.npy``, ``<out>/ply/cloud_NNNN.ply``,
``<out>/clouds.png``, ``<out>/clouds.gif``, ``<out>/clouds.json``. Result order: reconstruct /
complete one cloud per input shape; diversity and jitter ``n_samples`` per shape, shape-major;
morph the frames. The JSON holds per-shape fitting CD (squared Chamfer, masked in complete
mode), optimisation steps and seconds (a batch's time divided by its shapes), and the whole
resolved config. Every file is written atomically.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from pc3d.cli._common import CONFIG_DIR, hydra_entry, plain_config, reject_renamed

log = logging.getLogger("pc3d.invert")

OUT_SUFFIXES = (".npy", ".ply", ".pcd")


def read_input(path: Any, key: str = "input") -> np.ndarray:
    """The clouds of ``path`` as float32 ``(B, N, 3)``; errors name the config key and the file."""
    from pc3d.viz.io import load_clouds

    if path in (None, "", "???"):
        raise ValueError(f"{key}= is required: a .npy/.npz/.ply/.pcd/.xyz cloud file")
    try:
        clouds, _ = load_clouds(Path(str(path)))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{key}={path}: no such file") from e
    except ValueError as e:
        raise ValueError(f"{key}={path}: {e}") from e
    return clouds


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _write_clouds(path: Path, clouds: np.ndarray, ply: bool) -> list[Path]:
    """Write ``clouds`` (R, N, 3) to ``path`` (.npy / .ply / .pcd); returns the files written."""
    from pc3d.cli.generate import save_ply
    from pc3d.io import atomic_save_npy

    written: list[Path] = []
    suffix = path.suffix.lower()
    width = max(4, len(str(len(clouds) - 1)))
    if suffix == ".npy":
        atomic_save_npy(path, clouds[0] if len(clouds) == 1 else clouds)
        written.append(path)
        if ply:
            for i, c in enumerate(clouds):
                p = path.with_name(f"{path.stem}_{i:0{width}d}.ply") if len(clouds) > 1 else path.with_suffix(".ply")
                save_ply(p, c)
                written.append(p)
    else:  # .ply / .pcd: Open3D writes by suffix
        for i, c in enumerate(clouds):
            p = path if len(clouds) == 1 else path.with_name(f"{path.stem}_{i:0{width}d}{path.suffix}")
            save_ply(p, c)
            written.append(p)
    return written


def _fit_kwargs(cfg: DictConfig) -> dict[str, Any]:
    from omegaconf import OmegaConf

    stages = OmegaConf.to_container(cfg.stages, resolve=True) if cfg.get("stages") is not None else None
    mask = OmegaConf.to_container(cfg.mask, resolve=True) if cfg.get("mask") is not None else None
    return {"n_starts": cfg.n_starts, "n_candidates": cfg.get("n_candidates", 1), "stages": stages,
            "w_feature": cfg.w_feature, "w_prior": cfg.w_prior, "cd_stop": cfg.cd_stop, "mask": mask}


def _in_batches(fn, shapes: list, batch_size: int, seed: int | None):
    """Run ``fn(batch, seed)`` on consecutive batches; returns ``[(result, first index, n, seconds)]``."""
    out = []
    for s in range(0, len(shapes), batch_size):
        t0 = time.perf_counter()
        res = fn(shapes[s: s + batch_size], None if seed is None else seed + s)
        out.append((res, s, len(shapes[s: s + batch_size]), time.perf_counter() - t0))
    return out


def invert(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.mode`` on ``cfg.input`` (and ``cfg.input2``); write results under ``cfg.out``.

    Returns ``{"clouds": (R, N, 3) float32 results, "inputs": [(P_b, 3) arrays], "shapes": [per-shape
    records], "written": [paths], "json": path}``. Raises ``ValueError`` naming the key for bad
    values (``mode``, ``mask.kind``, ``input`` ...) and ``FileNotFoundError`` for missing files.
    """
    import torch

    from pc3d.inversion import MODES, InvertibleGenerator, check_mask, check_stages, diversity, jitter, morph
    from pc3d.inversion import invert as fit_clouds

    reject_renamed("pc3d-invert", "invert", cfg)
    t_start = time.perf_counter()
    mode = str(cfg.mode)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fit = str(cfg.get("fit", "auto"))
    if fit == "auto":
        fit = "complete" if mode in ("complete", "diversity") else "reconstruct"
    if mode in ("complete", "reconstruct") and fit != mode:
        fit = mode
    if fit not in ("complete", "reconstruct"):
        raise ValueError(f"fit must be auto, complete or reconstruct, got {cfg.fit!r}")
    for name in ("batch_size", "n_samples", "n_starts", "n_candidates"):
        v = cfg.get(name, 1 if name == "n_candidates" else None)  # n_candidates: absent from older configs
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    kw = _fit_kwargs(cfg)
    check_stages(kw["stages"])
    kw["mask"] = check_mask(fit, kw["mask"])
    if mode == "morph" and cfg.get("input2") in (None, ""):
        raise ValueError("mode=morph needs input2= (the shape to morph into)")
    if mode != "morph" and cfg.get("input2") not in (None, ""):
        raise ValueError(f"input2= is for mode=morph only (mode={mode})")
    out = Path(str(cfg.out)) if cfg.get("out") else Path(cfg.paths.output_dir)
    if out.suffix and out.suffix.lower() not in OUT_SUFFIXES and out.suffix.lower() in (".json", ".npz", ".xyz",
                                                                                           ".obj", ".glb"):
        raise ValueError(f"out={out}: expected a .npy / .ply / .pcd file or a folder")

    inputs = [c for c in read_input(cfg.input)]
    if mode == "morph":
        inputs = [inputs[0], read_input(cfg.input2, "input2")[0]]
    seed = None if cfg.get("seed") is None else int(cfg.seed)
    device = _device(str(cfg.get("device", "auto")))
    gen = InvertibleGenerator.from_checkpoint(str(cfg.ckpt_path), map_location=device)
    tensors = [torch.from_numpy(c).to(device) for c in inputs]
    n = int(cfg.n_samples)
    fkw = {k: v for k, v in kw.items() if k != "mask"}
    mkw = {"mask": kw["mask"]} if fit == "complete" else {}

    shapes: list[dict[str, Any]] = []
    fits = []
    if mode == "diversity":
        runs = _in_batches(lambda b, s: diversity(gen, b, n, mode=fit, seed=s, **mkw, **fkw),
                           tensors, int(cfg.batch_size), seed)
        results = []
        for (res, start, count, secs) in runs:
            results.append(res[1].reshape(-1, *res[1].shape[2:]))
            for i in range(count):
                rows = slice(i * n, (i + 1) * n)
                shapes.append({"index": start + i, "cd": res[0].cd[rows].tolist(),
                               "steps": res[0].steps[rows].tolist(), "seconds": secs / count})
        clouds = torch.cat(results)
    else:
        # morph fits its two shapes in one batch (each with its own seed offset)
        bs = max(int(cfg.batch_size), 2) if mode == "morph" else int(cfg.batch_size)
        runs = _in_batches(lambda b, s: fit_clouds(gen, b, mode=fit, seed=s, **mkw, **fkw), tensors, bs, seed)
        for (res, start, count, secs) in runs:
            fits.append(res)
            for i in range(count):
                shapes.append({"index": start + i, "cd": float(res.cd[i]), "steps": int(res.steps[i]),
                               "seconds": secs / count, "tuned_generator": res.params is not None})
        if mode in ("complete", "reconstruct"):
            clouds = torch.cat([r.clouds for r in fits])
        elif mode == "jitter":
            clouds = torch.cat([jitter(gen, r, n, float(cfg.jitter.sigma), seed=None if seed is None else seed + start)
                                .reshape(-1, *r.clouds.shape[1:]) for r, (_, start, _, _) in zip(fits, runs)])
        else:
            clouds = morph(gen, fits[0], int(cfg.morph.frames))
    clouds_np = clouds.detach().cpu().float().numpy()

    if out.suffix.lower() in OUT_SUFFIXES:
        folder, stem, target = out.parent, out.stem, out
    else:
        folder, stem, target = out, "clouds", out / "clouds.npy"
    folder.mkdir(parents=True, exist_ok=True)
    want_ply = bool(cfg.get("ply", True))
    if target.parent == folder and out.suffix.lower() in OUT_SUFFIXES:  # out names a file
        written = _write_clouds(target, clouds_np, want_ply)
    else:  # a folder: clouds.npy and ply/cloud_NNNN.ply
        written = _write_clouds(target, clouds_np, False)
        if want_ply:
            for i, c in enumerate(clouds_np):
                written += _write_clouds(folder / "ply" / f"cloud_{i:04d}.ply", c[None], False)
    render = cfg.get("render") or {}
    if render.get("png", True):
        written.append(_picture(folder / f"{stem}.png", mode, inputs, clouds_np, n, render))
    if render.get("gif", True) and mode in ("diversity", "jitter", "morph"):
        written.append(_gif(folder / f"{stem}.gif", mode, clouds_np, n, render))

    from pc3d.io import atomic_write_json

    record = {"mode": mode, "fit": fit, "input": str(cfg.input), "input2": cfg.get("input2"),
              "ckpt_path": str(cfg.ckpt_path), "n_shapes": len(inputs), "n_results": int(len(clouds_np)),
              "result_shape": list(clouds_np.shape), "device": str(device),
              "cd_note": "fitting Chamfer distance: squared, mean both ways summed; masked in complete mode",
              "shapes": shapes, "seconds_total": time.perf_counter() - t_start,
              "outputs": [str(p) for p in written], "config": plain_config(cfg)}
    json_path = atomic_write_json(folder / f"{stem}.json", record)
    log.info("pc3d-invert: %s of %d shape(s) -> %s", mode, len(inputs), target)
    return {"clouds": clouds_np, "inputs": inputs, "shapes": shapes, "written": written, "json": json_path,
            "target": target}


def _picture(path: Path, mode: str, inputs: list[np.ndarray], clouds: np.ndarray, n: int, render) -> Path:
    """Inputs and results side by side: one row per shape (morph: one row of frames)."""
    from pc3d.viz.render import render_grid, save_png

    size, max_rows = int(render.get("image_size", 192)), int(render.get("max_rows", 4))
    rows, labels, caps = [], [], []
    if mode == "morph":
        idx = np.unique(np.linspace(0, len(clouds) - 1, min(len(clouds), 8)).round().astype(int))
        rows.append([inputs[0], *[clouds[i] for i in idx], inputs[1]])
        caps.append(["input", *[f"t={i / max(len(clouds) - 1, 1):.2f}" for i in idx], "input2"])
        labels.append("morph")
    else:
        per = n if mode in ("diversity", "jitter") else 1
        for b in range(min(len(inputs), max_rows)):
            res = [clouds[b * per + j] for j in range(min(per, 6))]
            rows.append([inputs[b], *res])
            name = {"diversity": "completion", "jitter": "variation"}.get(mode, mode.replace("complete", "completion"))
            caps.append(["input", *([name] if per == 1 else [f"{name} {j}" for j in range(len(res))])])
            labels.append(f"shape {b}")
    img = render_grid(rows, captions=caps, row_labels=labels, image_size=size, fit="each",
                      backend=str(render.get("backend", "auto")))
    return save_png(img, path)


def _gif(path: Path, mode: str, clouds: np.ndarray, n: int, render) -> Path:
    """diversity / jitter: the first shape's results in turn; morph: the frames there and back."""
    from pc3d.viz.render import render_clouds, save_gif

    seq = list(clouds[:n]) if mode in ("diversity", "jitter") else list(clouds)
    if mode == "morph" and len(seq) > 2:
        seq = seq + seq[-2:0:-1]
    frames = render_clouds(seq, image_size=int(render.get("image_size", 192)), fit="all",
                           backend=str(render.get("backend", "auto")))
    return save_gif(list(frames), path, fps=float(render.get("fps", 6)))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="invert")
def _hydra_main(cfg: DictConfig) -> None:
    result = invert(cfg)
    cds = [s["cd"] for s in result["shapes"]]
    flat = [c for x in cds for c in (x if isinstance(x, list) else [x])]
    print(f"pc3d-invert: {cfg.mode}: {len(result['clouds'])} cloud(s) -> {result['target']} "
          f"(fitting CD max {max(flat):.3g}; {result['json']})")


def main() -> None:
    """Console entry point ``pc3d-invert``."""
    hydra_entry("pc3d-invert", "invert", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
