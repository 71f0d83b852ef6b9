"""``pc3d-demo``: the toolkit in one command, with the shipped pretrained weights, under a minute on a CPU.

``demo(cfg)`` is a plain function (usable from notebooks and tests); ``main`` is the thin
``@hydra.main`` wrapper behind the console script and ``python -m pc3d.cli.demo``::

    pc3d-demo out=demo/                       # then open demo/index.html (works offline)
    pc3d-demo generator=<ckpt> image_model=<ckpt> n_samples=8 seed=0 out=demo/

Steps (``conf/demo.yaml``):

1. **Generate**: ``n_samples`` clouds from ``generator`` (``pretrained:lgan`` by default; any
   checkpoint whose model has ``sample(n, *, seed, batch_size) -> (n, N, 3)``, e.g. a
   :class:`pc3d.models.LatentGAN` or :class:`pc3d.models.TreeGAN`), with ``seed``.
2. **Reconstruct**: one fresh built-in shape of ``category`` (:func:`pc3d.data.synthetic.shape_arrays`
   with a random stream of its own, so not a shape of the built-in data set) is rendered by the
   built-in data's renderer (:func:`pc3d.data.synthetic.render_view`: same camera ranges, shading,
   colours, transparent background) at the render size of the image model's training data (its
   checkpoint's ``data.synthetic.image_size``, default 137 px) to ``<out>/view.png``; that file is
   read exactly as ``pc3d-reconstruct`` reads an image (:func:`pc3d.cli.reconstruct.read_image`:
   composited onto the checkpoint's training background, resized to its ``data.image_size``) and
   ``image_model`` (``pretrained:image2cloud``; an :class:`pc3d.models.Image2Cloud`) predicts the
   cloud. The ground truth is sampled from the shape's surface.
3. **Mesh**: the reconstruction is meshed with the alpha shape of :mod:`pc3d.export` (as
   ``pc3d-export``) and written as ``<out>/mesh.<mesh_format>`` (GLB, PLY or OBJ) with a preview.
4. **Page**: ``<out>/index.html`` (:mod:`pc3d.viz.html`): the PNG renders of :mod:`pc3d.viz`
   (embedded as base64 ``data:`` URIs, and also written beside the page) and an interactive 3D viewer
   (plotly, one ``scatter3d`` per cloud, at most ``viewer_points`` points, coloured by height) with
   the plotly.js bundle inlined: one self-contained file that works from ``file://`` without network.

Outputs (without ``out``, the run folder ``${paths.log_dir}/demo/runs/<time>``), each written
atomically: ``index.html``, ``samples.png``, ``samples.npy`` (n_samples, N, 3), ``view.png`` (the
RGBA rendering), ``reconstruction.png``, ``reconstruction.npy`` (M, 3), ``ground_truth.npy``
(M, 3), ``mesh.<mesh_format>``, ``mesh.png``. Every ``.npy`` is a valid input of ``pc3d-view``,
``pc3d-export`` and ``pc3d-eval``. Coordinates are in the models' training units.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from pc3d.cli._common import CONFIG_DIR, hydra_entry

log = logging.getLogger("pc3d.demo")

MESH_FORMATS = ("glb", "ply", "obj")
#: The render size of the built-in data's views (``data.synthetic.image_size``) when a checkpoint does not say.
DEFAULT_RENDER_SIZE = 137
#: A random stream of the demo's own (``"demo"`` in ASCII): its shapes are not those of the built-in data set.
_DEMO_STREAM = 0x64656D6F


class Timings:
    """Wall-clock seconds per step, in order: ``with timings("step"): ...``; ``timings.seconds`` is the dict."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - t0


def load_checkpoint(key: str, spec: Any, device: Any = "cpu") -> tuple[Any, Path]:
    """The model of the checkpoint ``spec`` (``pretrained:<name>``, a ``.ckpt`` or a ``.safetensors``
    file), in eval mode, and its file. Every error names the config key: ``FileNotFoundError``
    ("generator=<path>: no such checkpoint file") or ``ValueError``."""
    from pc3d import pretrained
    from pc3d.models.io import load_model

    if spec is None or str(spec).strip() in ("", "???"):
        raise ValueError(f"{key} is required: pretrained:<name> or a checkpoint file")
    try:
        path = pretrained.resolve(str(spec))
    except ValueError as e:  # pretrained:<name> of weights that are not shipped
        raise ValueError(f"{key}={spec}: {e}; or pass a checkpoint file: {key}=<path>") from None
    if not path.is_file():
        raise FileNotFoundError(f"{key}={spec}: no such checkpoint file")
    try:
        model = load_model(path, map_location=device)
    except ValueError as e:  # CheckpointError: the message names the file
        raise ValueError(f"{key}={spec}: {e}") from e
    return model.eval(), path


def render_builtin_view(category: str, seed: int, image_size: int = DEFAULT_RENDER_SIZE) -> dict[str, Any]:
    """Render one fresh built-in shape of ``category`` as the built-in data set renders its views.

    The shape is drawn from a random stream of its own (``seed``), so it is not one of the data
    set's shapes; the camera (azimuth in [0, 360), elevation and distance in the data's ranges
    :data:`~pc3d.data.synthetic.rendering.ELEVATION_RANGE` /
    :data:`~pc3d.data.synthetic.rendering.DISTANCE_RATIO_RANGE`) and the shape's colour are drawn like
    the data's (:func:`pc3d.data.synthetic.rendering.write_renderings`).

    Returns ``{"rgba": (S, S, 4) uint8 (background transparent white), "mesh": (vertices (V, 3),
    triangles (T, 3)), "camera": {azimuth, elevation, distance_ratio}, "rng": the generator (to
    sample the ground truth from)}``. Raises ``ValueError`` for an unknown category.
    """
    from pc3d.data.synthetic.categories import CATEGORIES, shape_arrays
    from pc3d.data.synthetic.rendering import DISTANCE_RATIO_RANGE, ELEVATION_RANGE, _shape_color, render_view

    if category not in CATEGORIES:
        raise ValueError(f"category={category!r}: expected one of {', '.join(CATEGORIES)}")
    rng = np.random.default_rng([int(seed), int(CATEGORIES[category]), _DEMO_STREAM])
    v, f = shape_arrays(category, rng)
    color = _shape_color(rng)  # the data's colour distribution (write_renderings draws it the same way)
    camera = {"azimuth": float(rng.uniform(0.0, 360.0)), "elevation": float(rng.uniform(*ELEVATION_RANGE)),
              "distance_ratio": float(rng.uniform(*DISTANCE_RATIO_RANGE))}
    rgba = render_view((v, f), camera["azimuth"], camera["elevation"], camera["distance_ratio"],
                       image_size=int(image_size), color=color)
    return {"rgba": rgba, "mesh": (v, f), "camera": camera, "rng": rng}


def _save_rgba_png(rgba: np.ndarray, path: Path) -> Path:
    from PIL import Image

    from pc3d.io import atomic_write

    img = Image.fromarray(np.asarray(rgba, np.uint8), mode="RGBA")
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def _check_cfg(cfg: DictConfig) -> None:
    for name, low in (("n_samples", 1), ("viewer_points", 16), ("png_size", 32)):
        value = cfg.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if str(cfg.mesh_format).lower().lstrip(".") not in MESH_FORMATS:
        raise ValueError(f"mesh_format must be one of {', '.join(MESH_FORMATS)}, got {cfg.mesh_format!r}")


def demo(cfg: DictConfig) -> dict[str, Any]:
    """Run the demo (see the module docstring) and write its files under ``cfg.out``
    (null: ``cfg.paths.output_dir``, the run folder).

    Returns ``{"page": <out>/index.html, "files": {name: path}, "samples": (n, N, 3), "reconstruction":
    (M, 3), "ground_truth": (M, 3), "timings": {step: seconds}}``. Raises ``FileNotFoundError`` /
    ``ValueError`` naming the key (``generator=...``, ``image_model=...``) for a bad checkpoint.
    """
    timings = Timings()
    t_start = time.perf_counter()
    _check_cfg(cfg)
    n, seed = int(cfg.n_samples), int(cfg.seed)
    mesh_format = str(cfg.mesh_format).lower().lstrip(".")
    with timings("import (torch, Lightning, Open3D, models)"):
        import open3d  # noqa: F401 - the import cost shows up here, not in a later step
        import torch

        from pc3d.cli.reconstruct import read_image
        from pc3d.data.renderings import parse_background
        from pc3d.models.io import read_checkpoint_config

    device = torch.device("cuda" if str(cfg.device) == "auto" and torch.cuda.is_available() else
                          ("cpu" if str(cfg.device) == "auto" else str(cfg.device)))
    out = Path(str(cfg.out)) if cfg.get("out") else Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    # 1. generate
    with timings("load the generator"):
        generator, gen_path = load_checkpoint("generator", cfg.generator, device)
        if not callable(getattr(generator, "sample", None)):
            raise ValueError(f"generator={cfg.generator}: the model ({type(generator).__name__}) is not a generator: "
                             "it has no sample(n, seed=...) method (an l-GAN or tree-GAN checkpoint is needed)")
    with timings("sample clouds"):
        samples = generator.sample(n, seed=seed).detach().cpu().float().numpy()
    if samples.ndim != 3 or samples.shape[0] != n or samples.shape[2] != 3:
        raise ValueError(f"generator={cfg.generator}: sample() returned shape {samples.shape}, expected ({n}, N, 3)")

    # 2. reconstruct a rendered view of a built-in shape
    with timings("load the image model"):
        image_model, img_path = load_checkpoint("image_model", cfg.image_model, device)
        if getattr(image_model, "input_key", None) != "image":
            raise ValueError(f"image_model={cfg.image_model}: the model ({type(image_model).__name__}) does not take "
                             "images (an Image2Cloud checkpoint is needed, pc3d-train experiment=img2cloud)")
        data_cfg = (read_checkpoint_config(img_path) or {}).get("data") or {}
    render_size = int((data_cfg.get("synthetic") or {}).get("image_size") or DEFAULT_RENDER_SIZE)
    background = parse_background(data_cfg.get("background", "white"))
    input_size = data_cfg.get("image_size") or None
    with timings("render the built-in view"):
        view = render_builtin_view(str(cfg.category), seed, render_size)
        files["view"] = _save_rgba_png(view["rgba"], out / "view.png")
    with timings("reconstruct"):
        image = read_image(files["view"], background=background, size=input_size)  # as pc3d-reconstruct reads it
        recon = image_model.predict_clouds(image[None]).cpu().float().numpy()[0]
    from pc3d.data.synthetic.primitives import sample_surface

    truth = sample_surface(view["mesh"], recon.shape[0], view["rng"]).astype(np.float32)

    # 3. mesh the reconstruction
    with timings("mesh (alpha shape) + export"):
        from pc3d import export as E
        from pc3d.io import atomic_write

        try:
            mesh = E.cloud_to_mesh(recon.astype(np.float64), "alpha")
        except ValueError as e:
            raise ValueError(f"image_model={cfg.image_model}: meshing the reconstructed cloud failed: {e}") from e
        files["mesh"] = atomic_write(out / f"mesh.{mesh_format}", lambda tmp: E.write_mesh(mesh, tmp))

    # 4. pictures, arrays, page
    from pc3d.io import atomic_save_npy

    with timings("PNG renders"):
        from pc3d.cli.export import render_mesh_preview
        from pc3d.viz.render import render_grid, save_png

        size, backend = int(cfg.png_size), str(cfg.get("render_backend", "numpy"))
        files["samples_png"] = save_png(render_grid(samples, ncols=min(4, n), image_size=size, fit="each",
                                                    captions=[f"sample {i}" for i in range(n)], backend=backend),
                                        out / "samples.png")
        rows = {"input view": image[None], "reconstruction": recon[None], "ground truth": truth[None]}
        files["reconstruction_png"] = save_png(render_grid(rows, image_size=size, backend=backend),
                                               out / "reconstruction.png")
        files["mesh_png"] = render_mesh_preview(mesh, out / "mesh.png", size=2 * size)
    files["samples"] = atomic_save_npy(out / "samples.npy", samples.astype(np.float32))
    files["reconstruction"] = atomic_save_npy(out / "reconstruction.npy", recon.astype(np.float32))
    files["ground_truth"] = atomic_save_npy(out / "ground_truth.npy", truth)

    with timings("HTML page (plotly)"):
        from pc3d.viz.html import Picture, Section, write_page

        cam = view["camera"]
        sections = [
            Section("Generated shapes",
                    f"{n} clouds of {samples.shape[1]} points sampled from {cfg.generator} "
                    f"({type(generator).__name__}), seed {seed}.",
                    [Picture(files["samples_png"], "pc3d.viz renders (samples.png)")],
                    {f"sample {i}": c for i, c in enumerate(samples)},
                    {"samples.npy": "samples.npy"}),
            Section("A cloud from one picture",
                    f"A new built-in {cfg.category} (not in the built-in data set), rendered like the built-in data "
                    f"({render_size} px, azimuth {cam['azimuth']:.0f}, elevation {cam['elevation']:.0f} degrees), "
                    f"then reconstructed by {cfg.image_model} ({type(image_model).__name__}); the ground truth is "
                    f"sampled from the shape's surface.",
                    [Picture(files["view"], "the input view (view.png)"),
                     Picture(files["reconstruction_png"], "input, reconstruction, ground truth")],
                    {"reconstruction": recon, "ground truth": truth},
                    {"view.png": "view.png", "reconstruction.npy": "reconstruction.npy",
                     "ground_truth.npy": "ground_truth.npy"}),
            Section("A mesh of the reconstruction",
                    f"Alpha shape (pc3d.export, as pc3d-export): {len(mesh.vertices)} vertices, "
                    f"{len(mesh.triangles)} triangles, written as {files['mesh'].name}.",
                    [Picture(files["mesh_png"], f"{files['mesh'].name} (preview)")],
                    links={files["mesh"].name: files["mesh"].name}),
        ]
        shown = dict(timings.seconds)
        shown["total until the page"] = time.perf_counter() - t_start
        files["page"] = write_page(out / "index.html", "pc3d demo", sections, timings=shown,
                                   intro="Point clouds generated and reconstructed by pc3d's pretrained models; "
                                         "this page is one self-contained file (works offline).",
                                   max_points=int(cfg.viewer_points))
    timings.seconds["total"] = time.perf_counter() - t_start
    log.info("pc3d-demo: wrote %s", files["page"])
    return {"page": files["page"], "files": files, "samples": samples, "reconstruction": recon,
            "ground_truth": truth, "timings": dict(timings.seconds)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="demo")
def _hydra_main(cfg: DictConfig) -> None:
    result = demo(cfg)
    width = max(len(k) for k in result["timings"])
    for step, seconds in result["timings"].items():
        print(f"  {step:<{width}}  {seconds:6.2f} s")
    print(f"pc3d-demo: open {Path(result['page']).resolve()}")


def main() -> None:
    """Console entry point ``pc3d-demo``."""
    hydra_entry("pc3d-demo", "demo", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())
