"""``pc3d-view``: look at point clouds (``.npy``, ``.npz``, ``.ply``, ...).

Usage::

    pc3d-view cloud.npy                      # a window if a display works, else ./cloud.png
    pc3d-view samples.npz --key samples --index 0:8 --out docs/samples.png
    pc3d-view a.ply b.npy --colors index --size 320
    pc3d-view cloud.npy --gif --frames 36    # a turntable GIF instead of a still

With a display (``DISPLAY`` or ``WAYLAND_DISPLAY`` set and an Open3D window opens) the clouds
are shown in an interactive Open3D window, side by side; otherwise (or with ``--out``,
``--gif`` or ``--no-window``) a PNG grid (or a GIF) is rendered headlessly by
:mod:`pc3d.viz.render` and its path printed. Files holding (B, N, 3) show up to ``--max``
clouds in all.

``--index`` is per file: it selects clouds of every file that holds several clouds
((B, N, 3), B > 1), each by its own indices; a file holding one cloud ((N, 3), a ``.ply``) is
always shown whole. ``pc3d-view a.npy b.npy --index 0,1`` with two stacked files shows clouds 0
and 1 of each; with two single-cloud files, both clouds. ``--colors file`` uses the per-point
colours of each file that has them (PLY / PCD); a file without colours is drawn with height
colours and a warning naming it is printed to stderr. Exit status 0 on success, 2 for unreadable
files or wrong shapes (the message names the file and the expected shape).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pc3d-view",
        description="Show point clouds in an Open3D window, or render them to a PNG/GIF when there is no display. "
        ".npy/.npz files are read by pc3d.io.read_clouds (an .npz with several arrays: --key, else the first of "
        "clouds, points, samples, recon, pred, x).",
        epilog="examples:\n"
        "  pc3d-view samples/samples.npy --index 0:8 --out samples.png\n"
        "  pc3d-view cloud.ply --gif --frames 36",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, help=".npy/.npz ((N,3) or (B,N,3)) or .ply/.pcd/.xyz files")
    p.add_argument("--key", help="array to read from .npz files (default: the only one, else the first of "
                   "pc3d.io.NPZ_KEYS: clouds, points, samples, recon, pred, x)")
    p.add_argument("--index", default=None, metavar="I|A:B|I,J",
                   help="which clouds of each (B,N,3) file: 3, 0:8 or 0,2,5, applied to every file holding several "
                        "clouds; single-cloud files are shown whole (default: the first --max)")
    p.add_argument("--max", type=int, default=16, help="at most this many clouds (default 16)")
    p.add_argument("--out", type=Path, default=None,
                   help="write the image here (default: ./<first file stem>.png or .gif); implies no window")
    p.add_argument("--no-window", action="store_true", help="never open a window, always write the image")
    p.add_argument("--gif", action="store_true", help="write a turntable GIF of the first cloud instead of a PNG")
    p.add_argument("--frames", type=int, default=36, help="GIF frames over 360 degrees (default 36)")
    p.add_argument("--fps", type=float, default=12.0, help="GIF frames per second (default 12)")
    p.add_argument("--size", type=int, default=256, help="pixels per cloud (default 256)")
    p.add_argument("--ncols", type=int, default=None, help="grid columns (default: up to 4)")
    p.add_argument("--captions", default=None,
                   help="comma-separated captions, one per cloud (default: file stem and index); '' for none")
    p.add_argument("--row-labels", default=None, help="comma-separated labels drawn left of the grid rows")
    p.add_argument("--colors", default="height", choices=["height", "index", "branch", "file"],
                   help="per-point colours: height (world Y), index ramp, tree-GAN branch blocks, or the file's "
                        "own PLY colours (default height)")
    p.add_argument("--n-branches", type=int, default=None, help="index blocks for --colors branch")
    p.add_argument("--azimuth", type=float, default=35.0, help="camera azimuth in degrees (default 35)")
    p.add_argument("--elevation", type=float, default=25.0, help="camera elevation in degrees (default 25)")
    p.add_argument("--point-size", type=float, default=None, help="dot diameter in pixels (default: from size)")
    p.add_argument("--fit", default="each", choices=["each", "column", "all", "none"],
                   help="scale every cloud to the frame (each), the clouds of a grid column together (column: "
                        "inputs above reconstructions), all by one factor (all), or not at all (none)")
    p.add_argument("--backend", default="auto", choices=["auto", "open3d", "numpy"], help="renderer (default auto)")
    return p


def _select(n: int, spec: str | None, limit: int) -> list[int]:
    if spec is None:
        return list(range(min(n, limit)))
    try:
        if ":" in spec:
            a, b = spec.split(":", 1)
            idx = list(range(n))[slice(int(a) if a else None, int(b) if b else None)]
        else:
            idx = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError as exc:
        raise ValueError(f"--index {spec!r}: expected I, A:B or I,J,K") from exc
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"--index {spec!r}: {bad} out of range for {n} clouds")
    return [i % n for i in idx][:limit]


def _connects(family: int, address) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(address)
        return True
    except OSError:
        return False


def _display_available() -> bool:
    """Is there a display server to talk to? ``DISPLAY``/``WAYLAND_DISPLAY`` being set is not
    enough: with a dead display Open3D falls back to an invisible EGL window and blocks, so
    the server's socket must accept a connection."""
    wl = os.environ.get("WAYLAND_DISPLAY")
    if wl:
        path = wl if os.path.isabs(wl) else os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), wl)
        if _connects(socket.AF_UNIX, path):
            return True
    display = os.environ.get("DISPLAY", "")
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connects(socket.AF_UNIX, path) or _connects(socket.AF_UNIX, "\0" + path)  # file or abstract
    return _connects(socket.AF_INET, (host, 6000 + int(number)))  # e.g. ssh -X: localhost:10


def _show_window(clouds: list[np.ndarray], colors: list[np.ndarray], title: str) -> bool:
    """Open an interactive Open3D window; False if no window could be created."""
    import open3d as o3d

    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name=title, width=1024, height=768):
        return False
    step = 1.1  # clouds are fitted to radius 0.46: side by side along +X
    for i, (c, rgb) in enumerate(zip(clouds, colors)):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c + np.array([i * step, 0.0, 0.0])))
        pcd.colors = o3d.utility.Vector3dVector(rgb)
        vis.add_geometry(pcd)
    vis.run()
    vis.destroy_window()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-view``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pc3d.viz.io import load_clouds
    from pc3d.viz.render import (
        Camera,
        fit_clouds,
        point_colors,
        render_backend,
        render_grid,
        save_gif,
        save_png,
        turntable,
    )

    clouds, file_colors, captions = [], [], []
    try:
        for path in args.paths:
            pts, cols = load_clouds(path, key=args.key)
            if args.colors == "file" and cols is None:
                print(f"pc3d-view: warning: {path} has no per-point colours; --colors file draws it with "
                      "height colours", file=sys.stderr)
            spec = args.index if len(pts) > 1 else None  # --index selects within stacked files only
            for i in _select(len(pts), spec, args.max - len(clouds)):
                clouds.append(pts[i].astype(np.float64))
                file_colors.append(None if cols is None else cols[i])
                captions.append(path.stem if len(pts) == 1 else f"{path.stem}[{i}]")
            if len(clouds) >= args.max:
                break
        if args.colors == "branch" and not args.n_branches:
            raise ValueError("--colors branch needs --n-branches")
        if args.captions is not None:
            given = args.captions.split(",") if args.captions else []
            if given and len(given) != len(clouds):
                raise ValueError(f"--captions: {len(given)} captions for {len(clouds)} clouds")
            captions = given or [""] * len(clouds)
    except (FileNotFoundError, ValueError) as exc:
        print(f"pc3d-view: error: {exc}", file=sys.stderr)
        return 2
    if not clouds:
        print("pc3d-view: error: no clouds selected", file=sys.stderr)
        return 2

    def colors_of(i: int):
        if args.colors == "file":
            return file_colors[i] if file_colors[i] is not None else "height"
        return args.colors

    headless = args.out is not None or args.gif or args.no_window or not _display_available()
    if not headless:
        fitted = [fit_clouds([c])[0] for c in clouds]
        rgbs = [point_colors(c, colors_of(i), args.n_branches) for i, c in enumerate(fitted)]
        if _show_window(fitted, rgbs, " | ".join(captions)):
            return 0
        print("pc3d-view: could not open a window on this display; rendering headlessly", file=sys.stderr)

    out = args.out or Path.cwd() / (args.paths[0].stem + (".gif" if args.gif else ".png"))
    backend = render_backend(args.backend)
    common = dict(point_size=args.point_size, n_branches=args.n_branches, backend=backend)
    if args.gif:
        frames = turntable(clouds[0], n_frames=args.frames, elevation=args.elevation, start_azimuth=args.azimuth,
                           image_size=args.size, colors=colors_of(0), fit="each" if args.fit == "column" else args.fit,
                           **common)
        path = save_gif(frames, out, fps=args.fps)
    else:
        ncols = args.ncols or min(len(clouds), 4)
        rows = [list(range(i, min(i + ncols, len(clouds)))) for i in range(0, len(clouds), ncols)]
        same_colors = args.colors != "file" or all(c is None for c in file_colors)
        camera = Camera(args.azimuth, args.elevation)
        caps = [[captions[i] for i in r] for r in rows] if any(captions) else None
        labels = args.row_labels.split(",") if args.row_labels else None
        if same_colors:
            img = render_grid([[clouds[i] for i in r] for r in rows], captions=caps, row_labels=labels,
                              image_size=args.size, fit=args.fit, camera=camera, colors=colors_of(0), **common)
        else:  # per-cloud file colours: render cell by cell
            img = _grid_with_own_colors(clouds, [colors_of(i) for i in range(len(clouds))], captions, rows, args,
                                        camera, common)
        path = save_png(img, out)
    print(f"pc3d-view: no display, wrote {path.resolve()} ({len(clouds) if not args.gif else 1} cloud(s), "
          f"{backend} renderer)" if not _display_available() else
          f"pc3d-view: wrote {path.resolve()} ({backend} renderer)")
    return 0


def _grid_with_own_colors(clouds, colors, captions, rows, args, camera, common) -> np.ndarray:
    from PIL import Image

    from pc3d.viz.render import render_grid

    tiles = [render_grid([[clouds[i]]], captions=[[captions[i]]], image_size=args.size, fit=args.fit, camera=camera,
                         colors=colors[i], **common) for i in range(len(clouds))]
    h, w, _ = tiles[0].shape
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (ncols * w, len(rows) * h), (255, 255, 255))
    for ri, r in enumerate(rows):
        for ci, i in enumerate(r):
            canvas.paste(Image.fromarray(tiles[i]), (ci * w, ri * h))
    return np.asarray(canvas)


if __name__ == "__main__":
    sys.exit(main())
