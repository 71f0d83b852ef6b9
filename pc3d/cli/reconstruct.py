"""``pc3d-reconstruct``: point clouds from images with a trained image -> cloud model.

``reconstruct(cfg)`` is a plain function; ``main`` the thin ``@hydra.main`` wrapper::

    pc3d-reconstruct ckpt_path=<run>/checkpoints/last.ckpt image=chair.png out=chair.ply
    pc3d-reconstruct ckpt_path=... image=photos/ out=clouds/       # every image of the folder
    pc3d-reconstruct ckpt_path=... 'views=[front.png,side.png,back.png]' out=chair.ply   # ONE cloud
    pc3d-reconstruct ckpt_path=... views=frames/ out=chair.ply     # a folder of frames of one object
    pc3d-reconstruct ckpt_path=... video=turntable.mp4 max_frames=8 out=chair.ply

``image=`` is one file or a folder of **independent** images (one cloud each). ``views=`` (a list
of image files, or a folder of frames) and ``video=`` (a video file, read with imageio's ffmpeg
plugin) are views of **one** object: every view is encoded, the latents are fused (the model's
``fusion``: mean, or the learned attention pooling) and decoded once
(:meth:`pc3d.models.Image2Cloud.predict_cloud_from_views`). Exactly one of the three keys is given.
Frames of a video or of a folder are thinned by ``frame_stride`` (every n-th frame) then, when more
than ``max_frames`` remain, ``max_frames`` evenly spaced frames are kept (``null``: all). Video
frames are prepared like images (``square``, ``min_size``, resized to ``image_size``); an
unreadable video or one without frames raises ``ValueError`` naming the file.

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
that folder. ``views=`` / ``video=``: ``out`` ending in ``.ply`` / ``.npy`` -> that file; otherwise
the folder ``out`` (or the run folder) with ``<stem>.ply`` (``<stem>.npy`` with ``npy=true``), the
stem being the video's, the folder's name, or the first view's. Every file is written atomically.
Coordinates are in the model's training units (the data module's normalization).
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
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")
SQUARE_MODES = ("pad", "crop", "error")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_CONVERTIBLE = ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV", *_ALPHA_MODES)


def read_image(path: str | Path, *, background=(1.0, 1.0, 1.0), size: int | None = None, square: str = "pad",
               min_size: int = 16):
    """Read one image file as the model's input: (3, S, S) float32 tensor in [0, 1].

    See the module docstring for the accepted modes, the compositing and the size rules.
    Raises ``FileNotFoundError`` or ``ValueError`` (message starting with the path).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if square not in SQUARE_MODES:
        raise ValueError(f"square must be one of {SQUARE_MODES}, got {square!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            n_bands = len(im.getbands())
            if mode not in _CONVERTIBLE:
                raise ValueError(f"{path}: unsupported image mode {mode!r} ({n_bands} channel(s)); expected 1 "
                                 f"(grayscale, replicated to RGB), 3 (RGB) or 4 (RGBA) channels of 8 bits")
            has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    return prepare_array(arr, path, background=background, size=size, square=square, min_size=min_size)


def prepare_array(arr: np.ndarray, path: str | Path, *, background=(1.0, 1.0, 1.0), size: int | None = None,
                  square: str = "pad", min_size: int = 16):
    """An (H, W, 3) RGB or (H, W, 4) RGBA float32 array in [0, 1] -> the model's (3, S, S) input
    (alpha compositing, ``square`` and ``min_size`` rules, resize); ``path`` names it in errors."""
    import torch

    if square not in SQUARE_MODES:
        raise ValueError(f"square must be one of {SQUARE_MODES}, got {square!r}")
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: expected an (H, W, 3) or (H, W, 4) image array, got {arr.shape}")
    h, w = arr.shape[:2]
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


def read_video(path: str | Path, *, frame_stride: int = 1, max_frames: int | None = None,
               background=(1.0, 1.0, 1.0), size: int | None = None, square: str = "pad", min_size: int = 16):
    """Frames of a video file as the model's input: (F, 3, S, S) float32 in [0, 1] (RGB).

    Read with imageio's ffmpeg plugin (``imageio-ffmpeg`` bundles ffmpeg); every ``frame_stride``-th
    frame is kept, then ``max_frames`` evenly spaced ones when more remain (``None``: all). Raises
    ``FileNotFoundError``, or ``ValueError`` naming the file when it is not a readable video or has
    no frames.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    _check_frame_options(frame_stride, max_frames)
    try:
        import imageio.v2 as iio
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("reading videos needs imageio and imageio-ffmpeg: "
                          "pip install imageio imageio-ffmpeg") from exc
    frames: list[np.ndarray] = []
    try:
        with iio.get_reader(path, format="FFMPEG") as reader:
            for i, frame in enumerate(reader):
                if i % frame_stride == 0:
                    frames.append(np.asarray(frame))
    except Exception as exc:  # imageio / ffmpeg raise OSError, RuntimeError, IndexError ... on bad files
        raise ValueError(f"{path}: not a readable video ({type(exc).__name__}: {str(exc).strip()[:300]})") from exc
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    frames = [frames[i] for i in _thin(len(frames), max_frames)]
    out = []
    for k, fr in enumerate(frames):  # ffmpeg decodes to (H, W, 3) uint8 RGB
        arr = fr.astype(np.float32) / 255.0
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        out.append(prepare_array(arr[..., :3], f"{path} (frame {k})", background=background, size=size,
                                 square=square, min_size=min_size))
    return torch.stack(out)


def _check_frame_options(frame_stride: int, max_frames: int | None) -> None:
    if isinstance(frame_stride, bool) or int(frame_stride) != frame_stride or frame_stride < 1:
        raise ValueError(f"frame_stride must be an int >= 1, got {frame_stride!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 1):
        raise ValueError(f"max_frames must be null or an int >= 1, got {max_frames!r}")


def _thin(n: int, max_frames: int | None) -> list[int]:
    """Indices of ``max_frames`` evenly spaced items of ``n`` (all when ``n <= max_frames`` or None)."""
    if max_frames is None or n <= max_frames:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, int(max_frames))})


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

    reject_renamed("pc3d-reconstruct", "reconstruct", cfg)
    from pc3d import pretrained

    given = [k for k in ("image", "views", "video") if cfg.get(k) not in (None, "", [])]
    if len(given) != 1:
        raise ValueError(f"pc3d-reconstruct: give exactly one of image= (independent images, one cloud each), "
                         f"views= (several images or a folder of frames of one object -> one cloud) or video= "
                         f"(a video file -> one cloud); got {given or 'none'}")
    ckpt = pretrained.resolve(str(cfg.ckpt_path))  # pretrained:<name>: the shipped weights
    out = Path(str(cfg.out)) if cfg.get("out") else Path(cfg.paths.output_dir)
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt}: no such checkpoint file")
    if given[0] != "image":
        return _reconstruct_views(cfg, ckpt, out, given[0])
    image = Path(str(cfg.image))
    if not image.exists():
        raise FileNotFoundError(f"image={image}: no such file or folder")
    model, background, size = _load(cfg, ckpt)
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


def _load(cfg: DictConfig, ckpt: Path):
    """The model (on ``cfg.device``, eval mode), the background and the image size to read inputs with."""
    import torch

    from pc3d.data.renderings import parse_background
    from pc3d.models.io import load_model, read_checkpoint_config

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
    return model, background, size


def _reconstruct_views(cfg: DictConfig, ckpt: Path, out: Path, key: str) -> dict[str, Any]:
    """``views=`` (a list of image files or a folder of frames) or ``video=``: ONE cloud from all views."""
    from omegaconf import ListConfig

    stride = cfg.get("frame_stride", 1)
    max_frames = cfg.get("max_frames")
    _check_frame_options(stride, max_frames)
    value = cfg.get(key)
    if key == "video":
        source = Path(str(value))
        if not source.exists():
            raise FileNotFoundError(f"video={source}: no such file")
        if source.is_dir():
            raise ValueError(f"video={source}: a folder; pass a folder of frames as views={source}")
        files, stem = [source], source.stem
    elif isinstance(value, ListConfig | list | tuple):
        files = [Path(str(v)) for v in value]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"views: no such image file(s): {', '.join(missing[:5])}")
        source, stem = files[0], files[0].stem
    else:
        source = Path(str(value))
        if not source.exists():
            raise FileNotFoundError(f"views={source}: no such file or folder")
        if source.is_dir():
            strided = _list_images(source)[::stride]
            files, stem = [strided[i] for i in _thin(len(strided), max_frames)], source.name
        elif source.suffix.lower() in VIDEO_SUFFIXES:
            key, files, stem = "video", [source], source.stem
        else:
            files, stem = [source], source.stem
    model, background, size = _load(cfg, ckpt)
    opts = dict(background=background, size=size, square=cfg.square, min_size=cfg.min_size)
    if key == "video":
        views = read_video(source, frame_stride=stride, max_frames=max_frames, **opts)
    else:
        import torch

        imgs = [read_image(f, **opts) for f in files]
        if len({tuple(t.shape) for t in imgs}) > 1:  # no data size known: bring all to the first one's
            from pc3d.data.renderings import resize_image

            imgs = [resize_image(t, imgs[0].shape[-1]) for t in imgs]
        views = torch.stack(imgs)
    if not hasattr(model, "predict_cloud_from_views"):
        raise ValueError(f"ckpt_path={ckpt}: the model ({type(model).__name__}) does not fuse several views")
    cloud = model.predict_cloud_from_views(views, batch_size=int(cfg.batch_size)).cpu().float().numpy()
    if out.suffix.lower() in (".ply", ".npy"):
        targets = [out]
    else:
        targets = [out / f"{stem}.ply"] + ([out / f"{stem}.npy"] if cfg.get("npy") else [])
    for t in targets:
        _write(t, cloud)
    log.info("reconstructed one cloud from %d view(s) of %s -> %s", len(views), source, targets[0])
    return {"clouds": {str(source): cloud}, "written": targets, "n_views": int(len(views))}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="reconstruct")
def _hydra_main(cfg: DictConfig) -> None:
    result = reconstruct(cfg)
    n = len(result["clouds"])
    first = next(iter(result["clouds"].values()))
    if "n_views" in result:
        print(f"pc3d-reconstruct: {result['n_views']} view(s) -> one cloud of {first.shape[0]} points: "
              f"{', '.join(str(p) for p in result['written'])}")
        return
    print(f"pc3d-reconstruct: {n} image(s) -> {len(result['written'])} file(s) of {first.shape[0]} points "
          f"under {cfg.out or cfg.paths.output_dir}")


def main() -> None:
    """Console entry point ``pc3d-reconstruct``."""
    hydra_entry("pc3d-reconstruct", "reconstruct", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
