"""``pc3d-data``: command line for the built-in procedural data set and for inspecting data folders.

Usage::

    pc3d-data generate --root DIR [--per-category N] [--points N] [--views K]
                       [--image-size P] [--seed S] [--categories chair,table]
                       [--overwrite] [--workers W]
    python -m pc3d.cli.data generate --root data/pc3d_synthetic
    pc3d-data inspect PATH [--layout auto] [--n-points 2048] [--no-check] [--json]
    pc3d-data partial --root DIR [--kinds scan,hole] [--splits test] [--noise 0,0.01]
                      [--points 2048] [--seed S] [--quiet]

``generate`` builds (only what is missing of) the data set described in
:mod:`pc3d.data.synthetic` and prints where it wrote, a table of shapes per category and
split, the disk size and the time taken. ``inspect`` prints the layout it detects (see
:mod:`pc3d.data.layouts`), a table of usable shapes per category and split, and every problem
found (bad files with the reason, clouds with fewer rows than ``--n-points``, broken renderings,
missing splits); it exits with 1 when it found problems, 2 when
the folder is no known layout. ``partial`` writes single-view depth scans and ball holes of a
built-in root's shapes beside its complete clouds (:mod:`pc3d.data.partial`) and prints what it
wrote and the time taken. Subcommands are argparse subparsers, each with a
``_cmd_<name>(args) -> int`` handler.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate the built-in procedural data set (PC15k + ShapeNetRendering layouts)",
        description="Generate the built-in procedural data set under --root, in the "
        "ShapeNetCore.v2.PC15k and ShapeNetRendering layouts. Only what is missing is built; "
        "a root that is already complete with the same parameters is left untouched.",
    )
    p.add_argument("--root", required=True, type=Path, help="dataset root folder")
    p.add_argument("--per-category", type=int, default=100, metavar="N", help="shapes per category (default 100)")
    p.add_argument("--points", type=int, default=15000, metavar="N", help="points per cloud (default 15000)")
    p.add_argument("--views", type=int, default=4, metavar="K", help="rendered views per shape, 0 for none (default 4)")
    p.add_argument("--image-size", type=int, default=137, metavar="P", help="rendering side in pixels (default 137)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--categories", default=None, metavar="LIST", help="comma-separated names or synset ids (default: all)"
    )
    p.add_argument(
        "--splits",
        default="0.8,0.1,0.1",
        metavar="TR,VA,TE",
        help="train,val,test fractions per category (default 0.8,0.1,0.1)",
    )
    p.add_argument(
        "--substyles",
        action="store_true",
        help="the variant set with interior sub-styles and 18 fine classes, where a linear probe can rank encoders "
        "(pc3d.data.synthetic.SUBSTYLES; use its own --root)",
    )
    p.add_argument("--overwrite", action="store_true", help="delete the built-in categories under --root and rebuild")
    p.add_argument("--workers", type=int, default=2, metavar="W", help="worker processes (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_generate)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    from pc3d.data.layouts import LAYOUTS

    p = sub.add_parser(
        "inspect",
        help="report a data folder's layout, shapes per split and category, and bad files",
        description="Detect the layout of PATH (or use --layout), count the usable shapes per category and "
        "split, and list every problem found: files that cannot be read or are invalid (each read as "
        "training reads it) and missing splits. Exit status 1 when problems were found.",
    )
    p.add_argument("path", type=Path, help="data set root folder")
    p.add_argument(
        "--layout", default="auto", choices=["auto", *LAYOUTS, "renderings"], help="layout (default: detect)"
    )
    p.add_argument(
        "--n-points", type=int, default=2048, metavar="N",
        help="points per item training will draw (the data config's n_points, default 2048): clouds with "
        "fewer rows are reported",
    )
    p.add_argument("--no-check", action="store_true", help="only list files, do not read them")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_inspect)


def _add_partial(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "partial",
        help="write partial clouds (depth scans, ball holes) of the built-in data set beside the complete ones",
        description="Write single-view depth scans and/or ball holes of every shape of the chosen splits of "
        "a built-in root (its meshes are rebuilt from their seeds) to "
        "<root>/ShapeNetCore.v2.PC15k.partial/<kind>[_noise<sigma>]/<synset>/<split>/<model_id>.npy with a "
        "meta.json per folder (see pc3d.data.partial). The complete set is only read.",
    )
    p.add_argument("--root", required=True, type=Path, help="root of a built-in data set (pc3d-data generate)")
    p.add_argument("--kinds", default="scan,hole", metavar="LIST", help="comma-separated: scan, hole (default both)")
    p.add_argument("--splits", default="test", metavar="LIST", help="comma-separated splits (default test)")
    p.add_argument(
        "--noise", default="0", metavar="LIST",
        help="comma-separated Gaussian sigmas, one folder each (default 0: noise-free)",
    )
    p.add_argument("--points", type=int, default=2048, metavar="N", help="points per partial cloud (default 2048)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the cameras, holes and noise (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_partial)


def build_parser() -> argparse.ArgumentParser:
    """The ``pc3d-data`` argument parser (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="pc3d-data", description="pc3d data tools (built-in procedural data set, data folder inspection).",
        epilog="example: pc3d-data generate --root data/pc3d_synthetic",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_generate(sub)
    _add_inspect(sub)
    _add_partial(sub)
    return parser


def _disk_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _format_table(counts: dict[str, dict[str, int]], synsets: dict[str, str], id_header: str = "synset") -> str:
    from pc3d.data.splits import SPLITS

    header = ["category", id_header, *SPLITS, "total"]
    rows = [[name, synsets[name], *(str(c[s]) for s in SPLITS), str(sum(c.values()))] for name, c in counts.items()]
    totals = [sum(c[s] for c in counts.values()) for s in SPLITS]
    rows.append(["total", "", *(str(t) for t in totals), str(sum(totals))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))

    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows[:-1]), rule, fmt(rows[-1])])


def _cmd_generate(args: argparse.Namespace) -> int:
    from pc3d.data.synthetic import generate, read_manifest
    from pc3d.data.taxonomy import PC15K_DIRNAME

    try:
        splits = tuple(float(x) for x in args.splits.split(","))
    except ValueError:
        print(f"pc3d-data: error: --splits must be three comma-separated numbers, got {args.splits!r}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        root = generate(
            args.root,
            n_per_category=args.per_category,
            n_points=args.points,
            n_views=args.views,
            image_size=args.image_size,
            seed=args.seed,
            categories=args.categories,
            splits=splits,
            overwrite=args.overwrite,
            progress=not args.quiet,
            workers=args.workers,
            substyles=args.substyles,
        )
    except ValueError as err:
        print(f"pc3d-data: error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    manifest = read_manifest(root) or {}
    counts = manifest.get("counts", {})
    print(f"pc3d synthetic data set in {root.resolve()}")
    print(f"  point clouds: {root.resolve() / PC15K_DIRNAME}")
    if manifest.get("params", {}).get("n_views"):
        print(f"  renderings:   {root.resolve() / 'ShapeNetRendering'}")
    print(_format_table(counts, manifest.get("categories", {})))
    print(f"disk: {_disk_size(root) / 2**20:.1f} MiB; time: {seconds:.1f} s")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from pc3d.data.inspect import inspect_root

    try:
        if args.n_points < 1:
            raise ValueError(f"--n-points must be >= 1, got {args.n_points}")
        report = inspect_root(args.path, layout=args.layout, check=not args.no_check, n_points=args.n_points)
    except (ValueError, FileNotFoundError) as err:
        print(f"pc3d-data: error: {err}", file=sys.stderr)
        return 2
    problems = [*report["problems"], *report["bad_files"]]
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if problems else 0
    how = "detected" if report["detected"] else "given"
    print(f"{report['root']}: layout {report['layout']} ({how})")
    names = report["categories"]
    if report["layout"] == "renderings":
        for c, n in report["counts"].items():
            print(f"  {names[c]:<16} {c:<10} {n['all']:>6} rendering folders")
    elif report["counts"]:
        counts = {names[c]: n for c, n in report["counts"].items()}
        print(_format_table(counts, {names[c]: c for c in report["counts"]}, id_header="id"))
    if report.get("min_rows") is not None:
        print(f"fewest rows in a usable cloud: {report['min_rows']} (checked against n_points={report['n_points']})")
    if report.get("renderings") and report["layout"] != "renderings":
        r = report["renderings"]
        print(f"renderings: {r['root']}: {sum(r['counts'].values())} usable rendering folders")
    checked = "" if not args.no_check else " (files not read: --no-check)"
    print(f"problems: {len(problems)}{checked}")
    for line in problems:
        print(f"  {line}")
    return 1 if problems else 0


def _cmd_partial(args: argparse.Namespace) -> int:
    import json

    from pc3d.data.partial import META_NAME, write_partial_set

    t0 = time.perf_counter()
    try:
        out = write_partial_set(
            args.root, kinds=args.kinds, splits=args.splits, noise=args.noise, n_points=args.points,
            seed=args.seed, progress=not args.quiet,
        )
    except ValueError as err:
        print(f"pc3d-data: error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    print(f"partial clouds of {args.points} points in {out.resolve()}")
    rows = []
    for meta in sorted(out.glob(f"*/{META_NAME}")):
        doc = json.loads(meta.read_text())
        counts = doc.get("splits", {})
        rows.append([meta.parent.name, str(doc.get("noise")), *(str(counts.get(s, 0)) for s in splits)])
    header = ["folder", "noise", *splits]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    print(f"disk: {_disk_size(out) / 2**20:.1f} MiB; time: {seconds:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-data``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
