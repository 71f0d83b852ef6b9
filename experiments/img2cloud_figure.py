"""Figure of an image -> cloud model's test reconstructions, one column per category.

    python experiments/img2cloud_figure.py --ckpt <run>/checkpoints/last.ckpt --out docs/img2cloud_results.png
    python experiments/img2cloud_figure.py --ckpt ... --out ... --retrieval --per-category 2 --size 150

The checkpoint (a :class:`pc3d.models.Image2Cloud` written by ``pc3d-train``) is loaded and its data
rebuilt exactly as ``pc3d-eval`` does (:func:`pc3d.cli.eval._load_ckpt_model` /
:func:`pc3d.cli.eval._datamodule`: the checkpoint's stored data config, ``--data key=value``
overrides merged over it). The first ``--per-category`` items of every category of ``--split``
(default test) are taken in the order of its probe loader, with the fixed view ``pc3d-eval`` scores
them on.

Rows (:func:`pc3d.viz.render.render_grid`, written atomically by :func:`pc3d.viz.render.save_png`):

1. the input view (the RGB image the model reads, scaled to the tile), captioned with the category;
2. the prediction, captioned with its CD to the ground truth (squared, sum of both directions,
   :func:`pc3d.ops.chamfer_distance`: the ``test/cd`` of ``pc3d-eval``);
3. the ground truth;
4. with ``--retrieval``: the pixel-retrieval baseline (the training cloud of the nearest training
   image by 16x16 pixels, gallery = every view of every training model:
   :func:`pc3d.models.image2cloud.retrieval_gallery` with :func:`~pc3d.models.image2cloud.pixel_features`),
   captioned with its CD.

Clouds of one column share one transform (``fit="column"``), so sizes compare within a column.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROW_LABELS = ("input", "prediction", "truth", "retrieval")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, type=Path, help="an Image2Cloud checkpoint written by pc3d-train")
    p.add_argument("--out", required=True, type=Path, help="the PNG to write")
    p.add_argument("--per-category", type=int, default=1, help="columns per category (default 1)")
    p.add_argument("--size", type=int, default=150, help="pixels per tile (default 150)")
    p.add_argument("--retrieval", action="store_true", help="add a row: the 16x16-pixel retrieval baseline")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="data split (default test)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the checkpoint's data config, as pc3d-eval's data.KEY=VALUE "
                        "(e.g. --data synthetic.root=data/pc3d_synthetic); repeatable")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--backend", default="auto", choices=["auto", "open3d", "numpy"], help="cloud renderer")
    return p


def first_per_category(dm, split: str, k: int) -> dict[str, Any]:
    """The first ``k`` items of every category of ``split`` (the probe loader's fixed order and views).

    Returns ``{"image": (M, 3, H, W), "points": (M, N, 3), "category": (M,), "names": [M names]}``,
    sorted by category, M = k * categories present.
    """
    import torch

    picked: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    n_cats = None
    for batch in dm.probe_dataloader(split):
        n_cats = n_cats or len(dm.names)
        for img, pts, c in zip(batch["image"], batch["points"], batch["category"].tolist()):
            if len(picked.setdefault(c, [])) < k:
                picked[c].append((img, pts))
        if len(picked) == n_cats and all(len(v) == k for v in picked.values()):
            break
    cats = [c for c in sorted(picked) for _ in picked[c]]
    items = [it for c in sorted(picked) for it in picked[c]]
    return {"image": torch.stack([i for i, _ in items]), "points": torch.stack([p for _, p in items]),
            "category": torch.tensor(cats), "names": [dm.names[c] for c in cats]}


def figure(ckpt: Path, *, per_category: int = 1, size: int = 150, retrieval: bool = False, split: str = "test",
           data: Sequence[str] = (), device: str = "auto", backend: str = "auto") -> dict[str, Any]:
    """Build the figure; returns ``{"image": (H, W, 3) uint8, "names", "cd", "cd_retrieval"?}``
    (per column: category name, prediction CD, retrieval CD)."""
    from omegaconf import OmegaConf

    from pc3d.cli.eval import _datamodule, _device, _load_ckpt_model
    from pc3d.ops import chamfer_distance
    from pc3d.viz.render import render_grid

    model, ckpt_cfg = _load_ckpt_model(str(ckpt), _device(device))
    if getattr(model, "input_key", None) != "image":
        raise SystemExit(f"{ckpt}: the model ({type(model).__name__}) does not take images")
    dm = _datamodule(OmegaConf.create({"data": OmegaConf.from_dotlist(list(data))}), ckpt_cfg)
    items = first_per_category(dm, split, per_category)
    gt = items["points"].float()
    pred = model.predict_clouds(items["image"]).cpu().float()
    cd = chamfer_distance(pred, gt, reduction="none")
    rows = [items["image"], pred, gt]
    captions = [items["names"], [f"CD {v:.3g}" for v in cd.tolist()], [""] * len(gt)]
    result: dict[str, Any] = {"names": items["names"], "cd": cd.tolist()}
    if retrieval:
        from pc3d.models.image2cloud import pixel_features, retrieval_gallery

        gallery = retrieval_gallery(dm.train_set, pixel_features)
        nearest = gallery.clouds[gallery.retrieve(pixel_features(items["image"]))].float()
        cd_r = chamfer_distance(nearest, gt, reduction="none")
        rows.append(nearest)
        captions.append([f"CD {v:.3g}" for v in cd_r.tolist()])
        result["cd_retrieval"] = cd_r.tolist()
    result["image"] = render_grid(rows, captions=captions, row_labels=list(ROW_LABELS[:len(rows)]),
                                  image_size=size, fit="column", backend=backend)
    return result


def main(argv: Sequence[str] | None = None) -> Path:
    from pc3d.viz.render import save_png

    args = build_parser().parse_args(argv)
    res = figure(args.ckpt, per_category=args.per_category, size=args.size, retrieval=args.retrieval,
                 split=args.split, data=args.data, device=args.device, backend=args.backend)
    path = save_png(res["image"], args.out)
    h, w, _ = res["image"].shape
    mean = sum(res["cd"]) / len(res["cd"])
    extra = (f", retrieval mean CD {sum(res['cd_retrieval']) / len(res['cd_retrieval']):.4g}"
             if "cd_retrieval" in res else "")
    print(f"wrote {path} ({w}x{h} px, {len(res['cd'])} columns, model mean CD {mean:.4g}{extra})")
    return path


if __name__ == "__main__":
    main()
