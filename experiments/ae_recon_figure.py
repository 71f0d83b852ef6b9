"""Figure of autoencoder reconstructions by decoder variant: the inputs, then one row per variant.

    python experiments/ablation_tree_decoder.py --seconds 150 --variants fc,faithful,node_mean --save-recon recons/
    python experiments/ae_recon_figure.py recons/ --variants fc,faithful,node_mean \\
        --labels "FC,tree (official),tree (fixed)" --out docs/tree_decoder_recons.png

``<folder>/<variant>/{input.npy,recon.npy}`` are (C, N, 3): the first test shape of each category and
its reconstruction, as :func:`experiments.ablation_tree_decoder.evaluate` writes them (categories in
label order, i.e. the built-in synsets 90000001-90000008). The inputs are taken from the first
variant (every variant saw the same test shapes; a mismatch is an error). Columns are captioned with
the built-in category names (:data:`pc3d.data.synthetic.SYNSET_TO_NAME`) under the inputs; under
each reconstruction, its CD to the input (squared, :func:`pc3d.ops.chamfer_distance`, as the ablation's
test CD). Row labels come from ``--labels`` (default: the variant names). Clouds of one column share one transform
(``fit="column"``), so a reconstruction is drawn at the scale of its input. Rendered by
:func:`pc3d.viz.render.render_grid`, written atomically by :func:`pc3d.viz.render.save_png`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def builtin_names() -> list[str]:
    """Names of the built-in categories in label order (sorted synset ids 90000001, 90000002, ...)."""
    from pc3d.data.synthetic import SYNSET_TO_NAME

    return [SYNSET_TO_NAME[s] for s in sorted(SYNSET_TO_NAME)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the --save-recon folder of experiments/ablation_tree_decoder.py")
    p.add_argument("--variants", required=True, help="comma-separated sub-folders, one row each (in this order)")
    p.add_argument("--labels", default=None, help="comma-separated row labels, one per variant (default: the names)")
    p.add_argument("--out", required=True, type=Path, help="the PNG to write")
    p.add_argument("--size", type=int, default=150, help="pixels per tile (default 150)")
    p.add_argument("--backend", default="auto", choices=["auto", "open3d", "numpy"], help="cloud renderer")
    return p


def load(folder: Path, variants: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The inputs (C, N, 3) and each variant's reconstructions (C, M, 3); ``ValueError`` on a mismatch."""
    inputs, recons = None, {}
    for v in variants:
        d = folder / v
        inp, rec = (np.load(d / f"{k}.npy", allow_pickle=False) for k in ("input", "recon"))
        for name, a in (("input", inp), ("recon", rec)):
            if a.ndim != 3 or a.shape[-1] != 3:
                raise ValueError(f"{d / name}.npy: expected shape (C, N, 3), got {a.shape}")
        if len(rec) != len(inp):
            raise ValueError(f"{d}: {len(inp)} inputs but {len(rec)} reconstructions")
        if inputs is None:
            inputs = inp
        elif inp.shape != inputs.shape or not np.allclose(inp, inputs):
            raise ValueError(f"{d / 'input.npy'} differs from {folder / variants[0] / 'input.npy'}: the variants "
                             f"were not scored on the same test shapes")
        recons[v] = rec
    return inputs, recons


def figure(folder: Path, variants: Sequence[str], labels: Sequence[str] | None = None, *, size: int = 150,
           backend: str = "auto") -> np.ndarray:
    """The grid as a uint8 (H, W, 3) image: row 0 the inputs, then a row per variant."""
    from pc3d.viz.render import render_grid

    labels = list(labels or variants)
    if len(labels) != len(variants):
        raise ValueError(f"--labels: {len(labels)} labels for {len(variants)} variants")
    inputs, recons = load(folder, variants)
    names = builtin_names()
    if len(inputs) > len(names):
        raise ValueError(f"{len(inputs)} shapes but only {len(names)} built-in categories to name them")
    rows = [inputs, *(recons[v] for v in variants)]
    captions = [names[:len(inputs)], *([f"CD {d:.3g}" for d in chamfer(recons[v], inputs)] for v in variants)]
    return render_grid(rows, captions=captions, row_labels=["input", *labels], image_size=size, fit="column",
                       backend=backend)


def chamfer(recon: np.ndarray, inputs: np.ndarray) -> list[float]:
    """Per-shape CD (squared, sum of both directions: :func:`pc3d.ops.chamfer_distance`) of (C, M, 3) to (C, N, 3)."""
    import torch

    from pc3d.ops import chamfer_distance

    return chamfer_distance(torch.from_numpy(recon).double(), torch.from_numpy(inputs).double(),
                            reduction="none").tolist()


def main(argv: Sequence[str] | None = None) -> Path:
    from pc3d.viz.render import save_png

    args = build_parser().parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    labels = args.labels.split(",") if args.labels else None
    try:
        img = figure(args.folder, variants, labels, size=args.size, backend=args.backend)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"ae_recon_figure: error: {exc}") from exc
    path = save_png(img, args.out)
    print(f"wrote {path} ({img.shape[1]}x{img.shape[0]} px, {len(variants)} variant rows)")
    return path


if __name__ == "__main__":
    main()
