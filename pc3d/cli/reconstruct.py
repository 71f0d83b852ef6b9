"""``pc3d-reconstruct``: point clouds from images with a trained image -> cloud model.

``reconstruct(cfg)`` is a plain function; ``main`` the thin ``@hydra.main`` wrapper::

    pc3d-reconstruct ckpt_path=<run>/checkpoints/last.ckpt image=chair.png out=chair.ply
    pc3d-reconstruct ckpt_path=... image=photos/ out=clouds/       # every image of the folder

The checkpoint (an :class:`pc3d.models.Image2Cloud` written by ``pc3d-train``) is loaded with
:func:`pc3d.models.load_model` (``weights_only=True``); the frozen autoencoder is not needed.

Images are read with Pillow and prepared like the training views:

* RGBA (and LA / palette images with transparency) are composited onto ``background``
  (default: the checkpoint's training background, white for the built-in data);
* grayscale (``L``, ``1``) images are **accepted** and replicated to 3 channels (a luminance
  image is a valid view; the encoder needs RGB); ``CMYK``/``YCbCr`` are converted to RGB;
* other modes (16/32-bit single channel ``I``/``F``, multi-band TIFFs ...) raise ``ValueError``
  naming the file and the mode;
* non-square images are padded to a square with the background colour (``square=pad``), centre
  cropped (``square=crop``) or refused (``square=error``);
* images with a side under ``min_size`` (16 px) raise ``ValueError``; everything else is
  resized to the data's ``image_size`` (then the encoder's own ``input_size``).

Output: one image and ``out`` ending in ``.ply`` or ``.npy`` -> that file; a folder of images
(``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``, ``.tif``, ``.tiff``), or one image with an
``out`` that has neither suffix, -> the folder ``out`` with ``<stem>.ply`` (and ``<stem>.npy``
with ``npy=true``); no ``out``: the run folder ``${paths.log_dir}/reconstruct/runs/<time>`` as
that folder. Every file is written atomically. Coordinates are in the model's
training units (the data module's normalization).
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

log = logging.getLogger("pc3d.reconstruct")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SQUARE_MODES = ("pad", "crop", "error")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_CONVERTIBLE = ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV", *_ALPHA_MODES)


def read_image(path: str | Path, *, background=(1.0, 1.0, 1.0), size: int | None = None, square: str = "pad",
               min_size: int = 16):
    """Read one image file as the model's input: (3, S, S) float32 tensor in [0, 1].

    See the module docstring for the accepted modes, the compositing and the size rules.
    Raises ``FileNotFoundError`` or ``ValueError`` (message starting with the path).
    """
    import torch
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if square not in SQUARE_MODES:
        raise ValueError(f"square must be one of {SQUARE_MODES}, got {square!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            mode, (w, h) = im.mode, im.size
            n_bands = len(im.getbands())
            if mode not in _CONVERTIBLE:
                raise ValueError(f"{path}: unsupported image mode {mode!r} ({n_bands} channel(s)); expected 1 "
                                 f"(grayscale, replicated to RGB), 3 (RGB) or 4 (RGBA) channels of 8 bits")
            has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if min(w, h) < min_size:
        raise ValueError(f"{path}: image of {w}x{h} px is too small (each side must be >= {min_size} px)")
    bg = np.asarray(background, np.float32).reshape(1, 1, 3)
    if arr.shape[-1] == 4:
        a = arr[..., 3:4]
        arr = arr[..., :3] * a + bg * (1.0 - a)
    if w != h:
        if square == "error":
            raise ValueError(f"{path}: image of {w}x{h} px is not square (square=pad or square=crop handle it)")
        side = max(w, h) if square == "pad" else min(w, h)
        if square == "pad":
            canvas = np.broadcast_to(bg, (side, side, 3)).copy()
            top, left = (side - h) // 2, (side - w) // 2
            canvas[top:top + h, left:left + w] = arr
            arr = canvas
        else:
            top, left = (h - side) // 2, (w - side) // 2
            arr = arr[top:top + side, left:left + side]
    from pc3d.data.renderings import resize_image

    img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return resize_image(img, size)  # the same resize as the training views (pc3d.data.renderings.load_view)


def _list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _write(path: Path, cloud: np.ndarray) -> None:
    from pc3d.cli.generate import save_ply
    from pc3d.io import atomic_save_npy

    if path.suffix.lower() == ".npy":
        atomic_save_npy(path, cloud.astype(np.float32))
    else:
        save_ply(path, cloud)


def reconstruct(cfg: DictConfig) -> dict[str, Any]:
    """Reconstruct ``cfg.image`` (a file or a folder) with ``cfg.ckpt_path``; write under ``cfg.out``
    (null: ``cfg.paths.output_dir``, the run folder).

    Returns ``{"clouds": {image path: (N, 3) float32 array}, "written": [paths]}``.
    """
    import torch

    from pc3d.data.renderings import parse_background
    from pc3d.models.io import load_model, read_checkpoint_config

    reject_renamed("pc3d-reconstruct", "reconstruct", cfg)
    from pc3d import pretrained

    ckpt = pretrained.resolve(str(cfg.ckpt_path))  # pretrained:<name>: the shipped weights
    image = Path(str(cfg.image))
    out = Path(str(cfg.out)) if cfg.get("out") else Path(cfg.paths.output_dir)
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt}: no such checkpoint file")
    if not image.exists():
        raise FileNotFoundError(f"image={image}: no such file or folder")
    data_cfg = (read_checkpoint_config(ckpt) or {}).get("data") or {}
    model = load_model(ckpt)
    if getattr(model, "input_key", None) != "image":
        raise ValueError(f"ckpt_path={ckpt}: the model ({type(model).__name__}) does not take images; train one with "
                         "experiment=img2cloud")
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    model.to(device).eval()
    background = parse_background(cfg.background if cfg.get("background") is not None
                                  else data_cfg.get("background", "white"))
    size = cfg.get("image_size") or data_cfg.get("image_size") or None
    files = _list_images(image) if image.is_dir() else [image]
    if image.is_dir() and out.suffix.lower() in (".ply", ".npy"):
        raise ValueError(f"out={out}: a folder of images needs an output folder, not a {out.suffix} file")
    imgs = [read_image(f, background=background, size=size, square=cfg.square, min_size=cfg.min_size)
            for f in files]
    if len({tuple(t.shape) for t in imgs}) > 1:  # no data size known: bring all to the first one's
        from pc3d.data.renderings import resize_image

        imgs = [resize_image(t, imgs[0].shape[-1]) for t in imgs]
    clouds = model.predict_clouds(torch.stack(imgs), batch_size=int(cfg.batch_size)).cpu().float().numpy()
    written: list[Path] = []
    result: dict[str, Any] = {"clouds": {}, "written": written}
    for f, cloud in zip(files, clouds):
        result["clouds"][str(f)] = cloud
        if image.is_dir() or out.suffix.lower() not in (".ply", ".npy"):  # out is a folder
            targets = [out / f"{f.stem}.ply"] + ([out / f"{f.stem}.npy"] if cfg.get("npy") else [])
        else:
            targets = [out]
        for t in targets:
            _write(t, cloud)
            written.append(t)
    log.info("reconstructed %d image(s) -> %s", len(files), out)
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="reconstruct")
def _hydra_main(cfg: DictConfig) -> None:
    result = reconstruct(cfg)
    n = len(result["clouds"])
    first = next(iter(result["clouds"].values()))
    print(f"pc3d-reconstruct: {n} image(s) -> {len(result['written'])} file(s) of {first.shape[0]} points "
          f"under {cfg.out or cfg.paths.output_dir}")


def main() -> None:
    """Console entry point ``pc3d-reconstruct``."""
    hydra_entry("pc3d-reconstruct", "reconstruct", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
