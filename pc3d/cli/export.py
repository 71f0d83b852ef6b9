"""``pc3d-export``: turn a cloud into a mesh (or a coloured point cloud) for Blender and game engines.

Usage::

    pc3d-export cloud.npy chair.glb                          # alpha-shape mesh, binary glTF (Y up)
    pc3d-export cloud.npy chair.ply --z-up                   # stands upright in Blender (see --help)
    pc3d-export samples.npz chair.ply --index 3 --method ball-pivoting
    pc3d-export cloud.npy chair.ply --method poisson --depth 8 --trim 0.1 --colors height
    pc3d-export cloud.npy cloud_colored.ply --method points  # the cloud itself, with RGB colours
    pc3d-export cloud.npy chair.ply --preview chair.png      # also render the mesh to a PNG

Methods and formats are described in :mod:`pc3d.export`. The input is anything
``pc3d-view`` reads (:func:`pc3d.viz.io.load_clouds`); from a (B, N, 3) file one cloud is
exported (``--index``, default 0). Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pc3d-export",
                                description="Mesh a point cloud (Poisson, ball pivoting, alpha shape) and write "
                                            "PLY/OBJ/GLB, or write the cloud as a coloured PLY.",
                                epilog="example: pc3d-export samples.npy chair.glb --index 3")
    p.add_argument("input", type=Path, help=".npy/.npz ((N,3) or (B,N,3)) or .ply/.pcd/.xyz cloud")
    p.add_argument("output", type=Path, help="output file: .ply, .obj or .glb (mesh), .ply/.pcd with --method points")
    p.add_argument("--method", default="alpha", choices=["alpha", "poisson", "ball-pivoting", "points"],
                   help="meshing method, or 'points' to write the cloud itself (default alpha)")
    p.add_argument("--key", help="array to read from an .npz")
    p.add_argument("--index", type=int, default=None, help="which cloud of a (B,N,3) file (default 0)")
    p.add_argument("--max-points", type=int, default=None,
                   help="mesh a random subset of this many points (seed 0), e.g. 2048 of a 15000-point PC15k file")
    p.add_argument("--depth", type=int, default=8, help="Poisson octree depth (default 8)")
    p.add_argument("--trim", type=float, default=0.1,
                   help="Poisson: drop vertices below this density quantile (default 0.1; 0 keeps the closed surface)")
    p.add_argument("--radii", default=None, help="ball pivoting radii, comma separated (default: 1,2,4 x spacing)")
    p.add_argument("--alpha", type=float, default=None, help="alpha shape parameter (default: 8 x spacing)")
    p.add_argument("--k", type=int, default=15, help="neighbours for normal estimation (default 15)")
    p.add_argument("--z-up", action="store_true",
                   help="write what Blender's default importer of the format needs to stand the object on +Z: "
                        ".ply/.pcd are rotated to Z up, (x,y,z) -> (x,-z,y), as Blender's PLY importer keeps the "
                        "file's axes; .obj and .glb stay Y-up, as Blender's OBJ importer (forward -Z, up Y) and "
                        "glTF importer rotate Y-up files to Z-up themselves")
    p.add_argument("--colors", default=None, choices=["height", "index", "branch", "none"],
                   help="vertex/point colours (default: height for --method points, none for meshes)")
    p.add_argument("--n-branches", type=int, default=None, help="index blocks for --colors branch")
    p.add_argument("--preview", type=Path, default=None, help="also render the result to this PNG")
    p.add_argument("--preview-size", type=int, default=320, help="preview side in pixels (default 320)")
    return p


def render_mesh_preview(mesh, path: Path, size: int = 320, azimuth: float = 35.0, elevation: float = 25.0) -> Path:
    """Render an Open3D mesh with the data set's ray-cast renderer (fitted like clouds) to a PNG."""
    import open3d as o3d

    from pc3d.data.synthetic import render_view
    from pc3d.viz.render import FIT_RADIUS, save_png

    v = np.asarray(mesh.vertices)
    centre = (v.min(0) + v.max(0)) / 2
    r = float(np.linalg.norm(v - centre, axis=1).max()) or 1.0
    fitted = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector((v - centre) * (FIT_RADIUS / r)), mesh.triangles)
    rgba = render_view(fitted, azimuth, elevation, 0.8, image_size=size, color=(0.62, 0.70, 0.82))
    a = rgba[..., 3:].astype(np.float64) / 255
    rgb = np.round(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    return save_png(rgb, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from pc3d import export as E
    from pc3d.viz.io import load_clouds

    try:
        clouds, _ = load_clouds(args.input, key=args.key)
        index = 0 if args.index is None else args.index
        if not -len(clouds) <= index < len(clouds):
            raise ValueError(f"--index {index} out of range: {args.input} holds {len(clouds)} clouds")
        if args.index is None and len(clouds) > 1:
            print(f"pc3d-export: {args.input} holds {len(clouds)} clouds; exporting cloud 0 (use --index)")
        points = clouds[index].astype(np.float64)
        if args.max_points is not None and len(points) > args.max_points:
            if args.max_points < 4:
                raise ValueError(f"--max-points {args.max_points}: need at least 4")
            keep = np.sort(np.random.default_rng(0).choice(len(points), args.max_points, replace=False))
            points = points[keep]
        # --z-up: upright in Blender; only the formats Blender imports with the file's own axes are rotated
        z_up = args.z_up and E.blender_needs_z_up(args.output)
        up_note = "" if not args.z_up else ", Z up" if z_up else ", Y up (Blender's importer turns it Z up)"
        colors = args.colors or ("height" if args.method == "points" else "none")
        colors = None if colors == "none" else colors
        if colors == "branch" and not args.n_branches:
            raise ValueError("--colors branch needs --n-branches")
        if args.method == "points":
            path = E.write_cloud(points, args.output, colors=colors, n_branches=args.n_branches, z_up=z_up)
            print(f"pc3d-export: wrote {path.resolve()}: {len(points)} points"
                  f"{', colours by ' + colors if colors else ''}{up_note}")
            if args.preview:
                from pc3d.viz.render import render_cloud, save_png

                pv = save_png(render_cloud(points, image_size=args.preview_size, colors=colors or "height",
                                           n_branches=args.n_branches), args.preview)
                print(f"pc3d-export: preview {pv.resolve()}")
            return 0
        suffix = args.output.suffix.lower()
        if suffix not in E.MESH_FORMATS:
            raise ValueError(f"{args.output}: mesh format must be one of {', '.join(E.MESH_FORMATS)}")
        kw: dict = {}
        if args.method == "poisson":
            kw = {"depth": args.depth, "trim": args.trim, "k": args.k}
        elif args.method == "ball-pivoting":
            kw = {"k": args.k}
            if args.radii:
                kw["radii"] = [float(r) for r in args.radii.split(",")]
        else:
            kw = {"alpha": args.alpha}
        try:
            mesh = E.cloud_to_mesh(points, args.method, **kw)
        except ValueError as exc:  # degenerate cloud (identical / coplanar points, Qhull): name the input
            raise ValueError(f"{args.input} (cloud {index}): {exc}") from exc
        path = E.write_mesh(mesh, args.output, z_up=z_up, colors=colors)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"pc3d-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"pc3d-export: wrote {path.resolve()}: {len(mesh.vertices)} vertices, {len(mesh.triangles)} triangles "
          f"({args.method}; watertight: {'yes' if mesh.is_watertight() else 'no'}{up_note.replace(',', ';', 1)})")
    if args.preview:
        pv = render_mesh_preview(mesh, args.preview, args.preview_size)
        print(f"pc3d-export: preview {pv.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
