"""3D-R2N2 renderings (``ShapeNetRendering``) paired with PC15k clouds, and their DataModule.

Layout (3D-R2N2's, which ``pc3d.data.synthetic`` also writes)::

    <render_root>/<synset>/<model_id>/rendering/
        00.png 01.png ...           RGBA views (137 x 137 in R2N2)
        renderings.txt              one PNG file name per line (the view order)
        rendering_metadata.txt      one line per view: azimuth elevation in_plane_rotation distance_ratio fov

A cloud item ``(synset, model_id)`` of a :class:`~pc3d.data.PC15kDataset` is paired with the
folder ``<render_root>/<synset>/<model_id>/rendering`` (a cloud data set with ``render_ids``, such
as :class:`~pc3d.data.meshes.MeshFolderDataset`, names its folders ``<render_id>`` instead).

A folder of your own meshes (``layout=meshes``) trains the image models too: its renderings are
made by ``prepare_data`` into ``<mesh cache>/ShapeNetRendering`` (``layout_options.render_views``,
:data:`DEFAULT_MESH_VIEWS` when unset) and read from there::

    pc3d-train experiment=img2cloud data=meshes data.root=/my/assets

(``conf/data/meshes.yaml`` builds :func:`mesh_datamodule`: an :class:`ImageCloudDataModule` when
``image_size`` is set, as the image experiments do, else a plain point-cloud DataModule). Items of
:class:`ImageCloudDataset` are the cloud item dict plus::

    image   FloatTensor (3, H, W)   RGB in [0, 1], RGBA composited onto ``background``
    view    int                     index of the view in renderings.txt

Views: ``view="random"`` draws a view per call from torch's global RNG (train);
``view="seeded"`` picks the same view for an index every time, from ``(seed, index)``
(val/test); an int always uses that view.

Several views per item (multi-view reconstruction, issue 16): with ``views=k`` (the DataModule's
``train_views`` / ``eval_views``) an item carries instead::

    image       FloatTensor (k, 3, H, W)   k views of the object (zeros where padded)
    view_mask   BoolTensor (k,)            True for real views, False for padding (items with < k views)
    view        LongTensor (k,)            view indices (-1 where padded)

The first view is the single-view choice above (so ``views=1`` shows the same image as
``views=None``, as a (1, 3, H, W) stack); the others are the remaining views in a random order
(``"random"``: torch's global RNG per call; ``"seeded"``: fixed by ``(seed, index)``, so the views
of ``views=2`` are the first two of ``views=4``; an int ``v``: ``v, v+1, ...`` cyclically).
``views=None`` (the default) keeps the single-view items.

Pairing is checked when the data set is built: a cloud without a rendering folder, a folder
whose ``renderings.txt`` lists missing files, or whose metadata has a different number of lines
than views is an error (``missing="error"``, the message lists them) or is dropped and listed
in ``unpaired`` (``missing="skip"``). :func:`check_silhouettes` checks the *content* of pairs:
it projects each cloud with its view's camera (the R2N2 metadata convention documented in
:mod:`pc3d.data.synthetic`) and measures how many points land on the image's object pixels,
which catches swapped or mislabelled folders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pc3d.data.base import item_index
from pc3d.data.datamodule import PointCloudDataModule
from pc3d.data.pc15k import PC15kDataset
from pc3d.data.taxonomy import read_text_lines

__all__ = [
    "DEFAULT_MESH_VIEWS",
    "RENDERING_DIRNAME",
    "ImageCloudDataModule",
    "ImageCloudDataset",
    "check_rendering_folder",
    "check_rendering_root",
    "check_silhouettes",
    "check_view",
    "check_views",
    "is_rendering_root",
    "load_view",
    "mesh_datamodule",
    "parse_background",
    "read_rendering_folder",
    "resize_image",
]

RENDERING_DIRNAME = "ShapeNetRendering"
VIEW_MODES = ("random", "seeded")
#: views rendered per mesh (as in R2N2) when an image DataModule reads a mesh folder without ``render_views``
DEFAULT_MESH_VIEWS = 24
MISSING_MODES = ("error", "skip")


def parse_background(background: Any) -> tuple[float, float, float]:
    """``"white"`` / ``"black"`` / a grey level in [0, 1] / 3 values in [0, 1] -> an RGB triple."""
    named = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
    if isinstance(background, str):
        if background.lower() not in named:
            raise ValueError(f"background must be 'white', 'black', a grey level or 3 values in [0, 1], "
                             f"got {background!r}")
        return named[background.lower()]
    vals = [float(background)] * 3 if isinstance(background, int | float) else [float(v) for v in background]
    if len(vals) != 3 or not all(0.0 <= v <= 1.0 for v in vals):
        raise ValueError(f"background must be 3 values in [0, 1], got {background!r}")
    return tuple(vals)  # type: ignore[return-value]


def read_rendering_folder(folder: str | Path) -> tuple[list[Path], np.ndarray]:
    """Views of one ``<synset>/<id>/rendering`` folder: PNG paths (in ``renderings.txt`` order)
    and the metadata ``(V, 5)`` float64 (azimuth, elevation, in-plane rotation, distance ratio,
    fov). Without ``renderings.txt`` the folder's ``NN.png`` files are used in name order.

    Raises ``FileNotFoundError`` (no folder / listed PNG missing) or ``ValueError`` (bad
    metadata line, line count != number of views, no views, text that is not UTF-8, a listed
    view that is a directory), naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no rendering folder")
    listing = folder / "renderings.txt"
    if listing.is_file():
        names = [ln.strip() for ln in read_text_lines(listing) if ln.strip()]
        pngs = [folder / n for n in names]
        dirs = [str(p) for p in pngs if p.is_dir()]
        if dirs:
            raise ValueError(f"{dirs[0]}: is a directory, not a PNG view (listed in {listing})")
        missing = [str(p) for p in pngs if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{listing}: lists {len(missing)} missing file(s), first {missing[0]}")
    else:
        pngs = sorted(p for p in folder.glob("*.png"))
        dirs = [str(p) for p in pngs if p.is_dir()]
        if dirs:
            raise ValueError(f"{dirs[0]}: is a directory, not a PNG view")
    if not pngs:
        raise ValueError(f"{folder}: no views (no renderings.txt entries or .png files)")
    meta_path = folder / "rendering_metadata.txt"
    meta = np.zeros((len(pngs), 5))
    if meta_path.is_file():
        rows = []
        for lineno, line in enumerate(read_text_lines(meta_path), start=1):
            if not line.strip():
                continue
            try:
                vals = [float(v) for v in line.replace(",", " ").split()]
            except ValueError:
                vals = []
            if len(vals) != 5 or not all(math.isfinite(v) for v in vals):
                raise ValueError(f"{meta_path}: line {lineno}: expected 5 numbers 'azimuth elevation "
                                 f"in_plane_rotation distance_ratio fov', got {line!r}")
            rows.append(vals)
        if len(rows) != len(pngs):
            raise ValueError(f"{meta_path}: {len(rows)} metadata lines for {len(pngs)} views")
        meta = np.asarray(rows, dtype=np.float64)
    return pngs, meta


def check_view(path: str | Path) -> None:
    """Decode one view fully (no conversion); ``ValueError`` naming the file when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def check_rendering_folder(folder: str | Path) -> tuple[list[Path], np.ndarray]:
    """:func:`read_rendering_folder` plus a full decode of every view (:func:`check_view`)."""
    pngs, meta = read_rendering_folder(folder)
    for png in pngs:
        check_view(png)
    return pngs, meta


def is_rendering_root(root: str | Path) -> bool:
    """``root`` looks like a ``ShapeNetRendering`` folder (``<synset>/<id>/rendering/`` folders)."""
    root = Path(root)
    if root.name == RENDERING_DIRNAME:
        return root.is_dir()
    for synset in (d for d in root.iterdir() if d.is_dir()) if root.is_dir() else ():
        for model in synset.iterdir():
            return (model / "rendering").is_dir()
    return False


def check_rendering_root(root: str | Path) -> dict[str, Any]:
    """Check every ``<synset>/<id>/rendering`` folder of a ``ShapeNetRendering`` root (listing,
    metadata lines, every PNG decoded).

    Returns ``{"counts": {synset: usable folders}, "bad_files": ["<path>: <problem>", ...]}``.
    """
    root = Path(root)
    counts: dict[str, int] = {}
    bad: list[str] = []
    for synset in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        counts[synset.name] = 0
        for model in sorted(d for d in synset.iterdir() if not d.name.startswith(".")):
            folder = model / "rendering"
            try:
                if not model.is_dir():
                    raise ValueError(f"{model}: expected a <model_id> folder holding rendering/, found a file")
                check_rendering_folder(folder)
            except (FileNotFoundError, ValueError) as exc:
                bad.append(str(exc))
                continue
            counts[synset.name] += 1
    return {"counts": counts, "bad_files": bad}


def load_view(path: str | Path, background: Sequence[float] = (1.0, 1.0, 1.0),
              size: int | None = None) -> torch.Tensor:
    """Read one view: RGBA composited onto ``background`` (RGB/L images used as they are).

    ``size`` resizes the composited image to ``size x size`` (:func:`resize_image`). Raises ``ValueError``
    naming the file when it is not a readable image.

    Shapes: returns (3, H, W) float32 in [0, 1].
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            im = im.convert("RGBA") if mode in ("RGBA", "LA", "P", "PA", "La") else im.convert("RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:4]
        rgb = arr[..., :3] * alpha + np.asarray(background, np.float32).reshape(1, 1, 3) * (1.0 - alpha)
    else:
        rgb = arr[..., :3]
    return resize_image(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), size)


def resize_image(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinear resize to ``size x size`` (antialiased when shrinking); ``None`` or the same size: unchanged.

    Shapes: (3, H, W) -> (3, size, size), values clamped to [0, 1].
    """
    if size is None or tuple(image.shape[-2:]) == (size, size):
        return image
    h, w = image.shape[-2:]
    out = torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                                          antialias=h > size or w > size)[0]
    return out.clamp(0.0, 1.0)


class ImageCloudDataset(Dataset):
    """A :class:`~pc3d.data.PC15kDataset` split with the 3D-R2N2 renderings of each model.

    Args:
        clouds: the cloud data set (its items give ``synset`` and ``model_id``).
        render_root: the ``ShapeNetRendering`` directory.
        view: ``"random"`` (train), ``"seeded"`` (val/test, from ``(seed, index)``) or a view index.
        image_size: resize the views to this side when loading (``None``: keep, 137 in R2N2).
        background: colour under transparent pixels (see :func:`parse_background`).
        missing: ``"error"`` or ``"skip"`` for clouds without a valid rendering folder.
        seed: seed of ``"seeded"`` views (default: the cloud data set's seed).
        cache_images: keep decoded views in memory (uint8, per view, filled lazily).
        skip_bad: decode every view at construction and drop (listing them in ``bad_files``) the
            items whose PNG, ``renderings.txt`` or ``rendering_metadata.txt`` is broken;
            ``None`` (default): the cloud data set's ``skip_bad``. Without it a broken view
            raises ``ValueError`` naming the PNG when it is read.

    Attributes: ``pairs`` (cloud index, folder) per item, ``unpaired`` (``"<synset>/<id>: why"``
    per dropped cloud), ``bad_files`` (the clouds' plus the broken rendering files, ``"<path>:
    <problem>"``), ``n_views`` (views per item). Unknown attributes (``synsets``,
    ``names``, ``global_stats``, ``set_global_stats`` ...) are those of ``clouds``.

    Shapes: item ``image`` (3, H, W) float32 in [0, 1], ``points`` (n_points, 3) as ``clouds``.
    """

    def __init__(
        self,
        clouds: PC15kDataset,
        render_root: str | Path,
        view: str | int = "random",
        image_size: int | None = None,
        background: Any = "white",
        missing: str = "error",
        seed: int | None = None,
        cache_images: bool = False,
        skip_bad: bool | None = None,
        views: int | None = None,
    ) -> None:
        super().__init__()
        check_views(views, "views")
        if not (view in VIEW_MODES or (isinstance(view, int) and not isinstance(view, bool) and view >= 0)):
            raise ValueError(f"view must be one of {VIEW_MODES} or a view index >= 0, got {view!r}")
        if missing not in MISSING_MODES:
            raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")
        if image_size is not None and (isinstance(image_size, bool) or int(image_size) < 8):
            raise ValueError(f"image_size must be an int >= 8 or None, got {image_size!r}")
        self.clouds = clouds
        #: files the cloud reader dropped with ``skip_bad`` (the DataModule reports them)
        self.bad_files = list(getattr(clouds, "bad_files", None) or [])
        self.render_root = Path(render_root).expanduser().absolute()
        if not self.render_root.is_dir():
            raise FileNotFoundError(f"{self.render_root}: no renderings directory (expected the 3D-R2N2 "
                                    f"ShapeNetRendering layout <synset>/<model_id>/rendering/)")
        self.view = view
        self.views = None if views is None else int(views)
        self.image_size = None if image_size is None else int(image_size)
        self.background = parse_background(background)
        self.missing = missing
        self.seed = int(getattr(clouds, "seed", 0) if seed is None else seed)
        self.cache_images = bool(cache_images)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

        pairs: list[tuple[int, list[Path], np.ndarray]] = []
        unpaired: list[str] = []
        self.skip_bad = bool(getattr(clouds, "skip_bad", False) if skip_bad is None else skip_bad)
        folder_ids = list(getattr(clouds, "render_ids", None) or clouds.model_ids)
        for i in range(len(clouds)):
            synset, mid = clouds.synset_of_item[i], clouds.model_ids[i]
            folder = self.render_root / synset / folder_ids[i] / "rendering"
            try:
                pngs, meta = check_rendering_folder(folder) if self.skip_bad else read_rendering_folder(folder)
            except ValueError as exc:
                if self.skip_bad:  # a broken PNG / metadata / listing: skipped and listed like a bad cloud
                    self.bad_files.append(str(exc))
                else:
                    unpaired.append(f"{synset}/{mid}: {exc}")
                continue
            except FileNotFoundError as exc:
                unpaired.append(f"{synset}/{mid}: {exc}")
                continue
            if isinstance(view, int) and view >= len(pngs):
                unpaired.append(f"{synset}/{mid}: view {view} requested but {folder} has {len(pngs)} views")
                continue
            pairs.append((i, pngs, meta))
        self.unpaired = unpaired
        if unpaired and missing == "error":
            shown = "\n  ".join(unpaired[:10])
            more = f"\n  ... and {len(unpaired) - 10} more" if len(unpaired) > 10 else ""
            raise ValueError(
                f"{len(unpaired)} of {len(clouds)} clouds of {clouds.root} ({clouds.split}) have no usable "
                f"rendering in {self.render_root} (paired by <synset>/<model_id>):\n  {shown}{more}\n"
                f"(missing='skip' drops them)"
            )
        if not pairs:
            raise ValueError(f"no cloud of {clouds.root} ({clouds.split}) has renderings in {self.render_root}")
        self._pairs = pairs

    # ------------------------------------------------------------------ delegation
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "clouds":
            raise AttributeError(name)
        return getattr(self.clouds, name)

    @property
    def pairs(self) -> list[tuple[int, Path]]:
        return [(i, pngs[0].parent) for i, pngs, _ in self._pairs]

    @property
    def n_views(self) -> list[int]:
        return [len(pngs) for _, pngs, _ in self._pairs]

    def metadata(self, index: int) -> np.ndarray:
        """Camera metadata ``(V, 5)`` of item ``index``."""
        return self._pairs[index][2]

    def variant(self, *, sampling: str | None = None, transform=..., seed: int | None = None,
                view: str | int | None = None, views: int | None | type(...) = ...) -> ImageCloudDataset:
        """A copy over ``clouds.variant(...)`` (shared pairing and cache); a ``"fixed"``
        sampling also fixes the view (``"seeded"``) unless ``view`` is given; ``views`` (an int or
        ``None``) sets the views per item (default: unchanged)."""
        import copy

        other = copy.copy(self)
        if views is not ...:
            check_views(views, "views")
            other.views = None if views is None else int(views)
        other.clouds = self.clouds.variant(sampling=sampling, transform=transform, seed=seed)
        if view is not None:
            other.view = view
        elif sampling == "fixed" and self.view == "random":
            other.view = "seeded"
        return other

    # ------------------------------------------------------------------ items
    def _view_index(self, index: int, n_views: int) -> int:
        if self.view == "random":
            return int(torch.randint(n_views, ()).item())
        if self.view == "seeded":
            return int(np.random.default_rng((self.seed, index)).integers(n_views))
        return int(self.view)

    def _view_indices(self, index: int, n_views: int, k: int) -> list[int]:
        """``min(k, n_views)`` distinct view indices of item ``index``: the single-view choice first."""
        first = self._view_index(index, n_views)
        if self.view == "random":
            rest = [v for v in torch.randperm(n_views).tolist() if v != first]
        elif self.view == "seeded":
            rest = [int(v) for v in np.random.default_rng((self.seed, index, 1)).permutation(n_views) if v != first]
        else:
            rest = [(first + j) % n_views for j in range(1, n_views)]
        return [first, *rest][:k]

    def image(self, index: int, view: int) -> torch.Tensor:
        """View ``view`` of item ``index`` as (3, H, W) float32 in [0, 1]."""
        _, pngs, _ = self._pairs[index]
        key = (index, view)
        if self.cache_images and key in self._cache:
            return torch.from_numpy(self._cache[key].astype(np.float32) / 255.0)
        img = load_view(pngs[view], self.background, self.image_size)
        if self.cache_images:
            self._cache[key] = np.rint(img.numpy() * 255.0).astype(np.uint8)
            return torch.from_numpy(self._cache[key].astype(np.float32) / 255.0)
        return img

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = item_index(index, len(self))
        cloud_index, pngs, _ = self._pairs[index]
        item = dict(self.clouds[cloud_index])
        view = self._view_index(index, len(pngs))
        item["index"] = index
        if self.views is None:
            item["image"] = self.image(index, view)
            item["view"] = view
            return item
        k = self.views
        chosen = self._view_indices(index, len(pngs), k)
        imgs = [self.image(index, v) for v in chosen]
        mask = torch.zeros(k, dtype=torch.bool)
        mask[:len(chosen)] = True
        if len(chosen) < k:
            imgs += [torch.zeros_like(imgs[0])] * (k - len(chosen))
        item["image"] = torch.stack(imgs)
        item["view_mask"] = mask
        item["view"] = torch.tensor(chosen + [-1] * (k - len(chosen)), dtype=torch.long)
        return item


def check_views(views: Any, name: str) -> None:
    """``views`` must be ``None`` (single-view items) or an int >= 1 (views per item)."""
    if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
        raise ValueError(f"{name} must be null (one view per item, (3, H, W)) or an int >= 1 (views per item, "
                         f"(V, 3, H, W) with a view mask), got {views!r}")


def _silhouette_hits(points: np.ndarray, alpha: np.ndarray, meta_row: np.ndarray) -> float:
    """Fraction of ``points`` (P, 3), raw coordinates, projected inside the mask ``alpha`` (S, S)."""
    from pc3d.geometry.camera import MAX_CAMERA_DISTANCE, camera_intrinsics, camera_pose

    az, el, _, ratio, fov = (float(v) for v in meta_row)
    eye, rot = camera_pose(az, el, ratio, MAX_CAMERA_DISTANCE)
    k = camera_intrinsics(alpha.shape[0], fov)
    cam = (points - eye) @ rot.T
    z = cam[:, 2]
    ok = z > 1e-6
    col = k[0, 2] + k[0, 0] * cam[:, 0] / np.where(ok, z, 1.0)
    row = k[1, 2] - k[1, 1] * cam[:, 1] / np.where(ok, z, 1.0)
    ci, ri = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    s = alpha.shape[0]
    inside = ok & (ci >= 0) & (ci < s) & (ri >= 0) & (ri < s)
    hits = np.zeros(len(points), bool)
    hits[inside] = alpha[ri[inside], ci[inside]] > 0
    return float(hits.mean())


def check_silhouettes(dataset: ImageCloudDataset, indices: Sequence[int] | None = None, *,
                      threshold: float = 0.9, n_points: int = 512) -> dict[str, Any]:
    """Check that images show their clouds: project each cloud into each of its views.

    For every item (or ``indices``) and view, ``n_points`` of the cloud (raw coordinates:
    ``points * scale + shift``) are projected with the view's camera (``rendering_metadata.txt``,
    the convention of :mod:`pc3d.data.synthetic`: eye ``d (cos e sin a, sin e, cos e cos a)``,
    ``d = distance_ratio * 2.9``) and the fraction landing on pixels with alpha > 0 is the
    view's score. A correct pair scores ~1 (points are on the surface, which the mask covers);
    a swapped pair scores much lower. Items whose mean score is below ``threshold`` are
    reported. Needs RGBA views; on real data it holds only if the clouds are in the rendering's
    object frame.

    Returns ``{"scores": {"<synset>/<id>": mean score}, "bad": ["<synset>/<id>: score", ...]}``.
    """
    from PIL import Image

    scores: dict[str, float] = {}
    bad: list[str] = []
    for index in range(len(dataset)) if indices is None else indices:
        cloud_index, pngs, meta = dataset._pairs[index]
        item = dataset.clouds[cloud_index]
        raw = (item["points"] * item["scale"] + item["shift"]).numpy().astype(np.float64)
        raw = raw[np.random.default_rng(0).permutation(len(raw))[:n_points]]
        vals = []
        for png, row in zip(pngs, meta):
            with Image.open(png) as im:
                if im.mode not in ("RGBA", "LA", "PA"):
                    raise ValueError(f"{png}: check_silhouettes needs views with an alpha channel, got mode {im.mode}")
                alpha = np.asarray(im.getchannel("A"))
            vals.append(_silhouette_hits(raw, alpha, row))
        key = f"{dataset.clouds.synset_of_item[cloud_index]}/{dataset.clouds.model_ids[cloud_index]}"
        scores[key] = float(np.mean(vals))
        if scores[key] < threshold:
            bad.append(f"{key}: {scores[key]:.3f} of the projected points fall on the object ({pngs[0].parent})")
    return {"scores": scores, "bad": bad}


class ImageCloudDataModule(PointCloudDataModule):
    """:class:`~pc3d.data.PointCloudDataModule` whose items also carry a rendered view.

    Every split's cloud data set is wrapped in an :class:`ImageCloudDataset` (by overriding
    ``_make``): train draws a random view per item and step, val/test/probe loaders a fixed
    view per item (``eval_view``, ``"seeded"`` by default: deterministic by ``seed``).
    Batches are those of :func:`~pc3d.data.collate` plus ``image`` (B, 3, H, W) float in [0, 1]
    and ``view`` (B,).

    Args (besides those of :class:`~pc3d.data.PointCloudDataModule`, passed through):
        render_root: the ``ShapeNetRendering`` directory; ``None`` means, for ``layout="meshes"``,
            the mesh cache's ``<cache>/ShapeNetRendering`` (rendered by :meth:`prepare_data`, with
            ``layout_options.render_views`` views per mesh, :data:`DEFAULT_MESH_VIEWS` when it is 0
            or unset), else with ``synthetic`` ``<synthetic.root>/ShapeNetRendering`` (the built-in data).
        image_size: side the views are resized to when loaded (``None``: keep).
        background: colour under transparent pixels (default white).
        train_view, eval_view: view mode of train and of val/test (``"random"``, ``"seeded"``
            or an index).
        train_views, eval_views: views per item of train and of val/test (``None``: one view,
            ``image`` (B, 3, H, W), the default; an int k: ``image`` (B, k, 3, H, W) with
            ``view_mask`` (B, k) and ``view`` (B, k), see :class:`ImageCloudDataset`).
        missing: ``"error"`` or ``"skip"`` for clouds without renderings.
        cache_images: keep decoded views in memory (uint8).
    """

    def __init__(
        self,
        *args: Any,
        render_root: str | Path | None = None,
        image_size: int | None = 64,
        background: Any = "white",
        train_view: str | int = "random",
        eval_view: str | int = "seeded",
        missing: str = "error",
        cache_images: bool = True,
        train_views: int | None = None,
        eval_views: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_views(train_views, "train_views")
        check_views(eval_views, "eval_views")
        if render_root is None and self.requested_layout == "meshes":
            render_root = self._mesh_render_root()
        if render_root is None:
            if self.synthetic is None:
                raise ValueError("ImageCloudDataModule: pass render_root (the ShapeNetRendering directory) "
                                 "or synthetic (the built-in data)")
            render_root = Path(self.synthetic["root"]) / RENDERING_DIRNAME
        self.render_root = Path(render_root)
        self.image_size = image_size
        self.background = parse_background(background)
        self.train_view = train_view
        self.eval_view = eval_view
        self.missing = missing
        self.cache_images = bool(cache_images)
        self.train_views = train_views
        self.eval_views = eval_views
        self.hparams.update({"render_root": str(render_root), "image_size": image_size,
                             "background": list(self.background), "train_view": train_view,
                             "eval_view": eval_view, "missing": missing, "cache_images": self.cache_images})
        if train_views is not None or eval_views is not None:  # only then: single-view hparams stay as they were
            self.hparams.update({"train_views": train_views, "eval_views": eval_views})

    def _mesh_render_root(self) -> Path:
        """``<mesh cache>/ShapeNetRendering`` of ``layout="meshes"``; makes ``prepare_data`` render it."""
        from pc3d.data.meshes import cache_root_for

        cache_dir = self.layout_options.get("cache_dir", None)
        if cache_dir is False:
            raise ValueError("ImageCloudDataModule on a mesh folder renders its views into the mesh cache: set "
                             "layout_options.cache_dir to null or a folder (not false), or pass render_root")
        if not self.layout_options.get("render_views"):
            self.layout_options["render_views"] = DEFAULT_MESH_VIEWS
        root = Path(self.root).expanduser()
        cache = root / ".pc3d_cache" if cache_dir is None else cache_root_for(root, cache_dir)
        return cache / RENDERING_DIRNAME

    def _make(self, split: str, sampling: str, categories, in_memory: bool, transform=None):  # type: ignore[override]
        clouds = super()._make(split, sampling, categories, in_memory, transform=transform)
        is_train = split == "train" and sampling != "fixed"  # probes use "fixed"
        view = self.train_view if is_train else self.eval_view
        return ImageCloudDataset(clouds, self.render_root, view=view, image_size=self.image_size,
                                 background=self.background, missing=self.missing, seed=self.seed,
                                 cache_images=self.cache_images,
                                 views=self.train_views if is_train else self.eval_views)



def mesh_datamodule(*, image_size: int | None = None, **kwargs: Any) -> PointCloudDataModule:
    """The DataModule of ``conf/data/meshes.yaml``: a folder of your own meshes (``layout=meshes``).

    ``image_size=None`` (the config's default): a :class:`~pc3d.data.PointCloudDataModule` (clouds
    only). An ``image_size`` (the image experiments set ``data.image_size``, e.g.
    ``pc3d-train experiment=img2cloud data=meshes data.root=/my/assets``): an
    :class:`ImageCloudDataModule` whose views ``prepare_data`` renders into the mesh cache
    (``layout_options.render_views``, :data:`DEFAULT_MESH_VIEWS` when 0 or unset). The image
    options (``render_root``, ``background``, ``train_view``, ``eval_view``, ``missing``,
    ``cache_images``) are passed to it; all other keyword arguments go to the DataModule.
    """
    image_keys = ("render_root", "background", "train_view", "eval_view", "missing", "cache_images", "train_views",
                  "eval_views")
    if image_size is None:
        given = sorted(k for k in image_keys if k in kwargs)
        if given:
            raise ValueError(f"mesh_datamodule: {given} only apply to image batches; set image_size too")
        return PointCloudDataModule(**kwargs)
    return ImageCloudDataModule(image_size=image_size, **kwargs)
