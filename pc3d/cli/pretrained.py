"""Make and check the shipped weights (:mod:`pc3d.pretrained`).

::

    python -m pc3d.cli.pretrained export <system run dir> [--out pc3d/pretrained/weights] [--data-root DIR]
                                         [--only NAME ...]
    python -m pc3d.cli.pretrained verify [NAME ...] [--data-root DIR] [--atol 1e-4]

``export`` takes a whole-system run of ``pc3d-train`` (``<run>/{ae,gan,img}/checkpoints``: the best
checkpoint of each stage, else its ``last.ckpt``), writes each model as ``<name>.safetensors``
(float16) with its model card, and puts into the card the metrics of the *stored* weights on the
built-in test split, computed by ``pc3d-eval`` (:func:`card_metrics`). Paths of the built-in data in
the build data are made relative (``data/pc3d_synthetic``, where ``pc3d-train`` and ``pc3d-eval`` put
it), so that the files work on any machine.

``verify`` checks each shipped file's sha256 against its card and recomputes the card's metrics
(exit status 1 on any mismatch larger than ``--atol``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: stage of the whole-system run -> shipped name
STAGE_TO_NAME = {"ae": "autoencoder", "gan": "lgan", "img": "image2cloud"}
#: pc3d-eval overrides of each shipped model's card metrics (on the built-in test split)
EVAL_OVERRIDES = {
    "autoencoder": ["metrics.reconstruction=[cd,fscore]"],
    "image2cloud": ["metrics.reconstruction=[cd,fscore]"],
    "lgan": ["metrics.distances=[cd]", "metrics.jsd=true"],
}
#: the built-in data's folder, relative to where pc3d commands run (conf/paths/default.yaml: data/)
BUILTIN_ROOT = "data/pc3d_synthetic"


def _stage_ckpt(run: Path, stage: str) -> Path:
    ckpts = run / stage / "checkpoints"
    best = sorted(ckpts.glob("best-*.ckpt"))
    path = best[-1] if best else ckpts / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: stage {stage!r} has no checkpoint in {ckpts} (a whole-system run of "
                                f"pc3d-train is expected: <run>/ae, <run>/gan, <run>/img)")
    return path


def portable_build(build: Mapping[str, Any], builtin_root: str | Path) -> dict[str, Any]:
    """``build`` with every path under ``builtin_root`` made relative (``data/pc3d_synthetic/...``) and every
    other absolute path of the data arguments (reports of the training run) dropped."""
    root = str(Path(builtin_root).absolute())

    def fix(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str) and v.startswith(root):
            return BUILTIN_ROOT + v[len(root):]
        if isinstance(v, str) and v.startswith("/"):
            return None
        return v

    out = json.loads(json.dumps(build))
    if out.get("data") is not None:
        out["data"] = fix(out["data"])
    return out


def card_metrics(ckpt: str | Path, name: str, data_root: str | Path, workdir: str | Path | None = None
                 ) -> dict[str, float]:
    """``pc3d-eval``'s metrics of ``ckpt`` (a checkpoint, a ``.safetensors`` file or ``pretrained:<name>``) on
    the built-in data's test split in ``data_root`` (seed 0, CPU), with the overrides of :data:`EVAL_OVERRIDES`."""
    from pc3d.cli.eval import evaluate
    from pc3d.cli.system import compose_config
    from pc3d.models.io import read_build

    root = Path(data_root).absolute()
    data = (read_build(ckpt) or {}).get("data") or {}
    extra = []
    if (data.get("args") or {}).get("render_root"):
        extra.append(f"+data.render_root={root / 'ShapeNetRendering'}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        overrides = [f"ckpt_path={ckpt}", "split=test", "seed=0", "device=cpu", f"out={tmp}/metrics.json",
                     f"data.synthetic.root={root}", f"data.root={root / 'ShapeNetCore.v2.PC15k'}", "data.num_workers=0",
                     *EVAL_OVERRIDES.get(name, []), *extra]
        result = evaluate(compose_config("eval", [*overrides, f"paths.output_dir={tmp}"]))
    return {k: float(v) for k, v in result["metrics"].items() if isinstance(v, int | float)}


def export_run(run: str | Path, out_dir: str | Path, data_root: str | Path, only: Sequence[str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """Write the shipped files of a whole-system run (see the module docstring); returns the cards.

    ``only``: write just these names (e.g. ``["lgan"]``: a new generator for the shipped autoencoder; the
    other files stay as they are). Raises ``ValueError`` on an unknown name."""
    import torch

    from pc3d.models.io import read_build, torch_load
    from pc3d.pretrained import save_pretrained

    run, out_dir = Path(run).absolute(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_file = run / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {"stages": {}}
    unknown = sorted(set(only or ()) - set(STAGE_TO_NAME.values()))
    if unknown:
        raise ValueError(f"--only: unknown names {unknown} (known: {', '.join(STAGE_TO_NAME.values())})")
    cards = {}
    for stage, name in STAGE_TO_NAME.items():
        if only and name not in only:
            continue
        ckpt = _stage_ckpt(run, stage)
        raw = torch_load(ckpt)
        build = portable_build(read_build(ckpt), data_root)
        st = summary["stages"].get(stage, {})
        record = str(raw.get("pc3d_config_record", ""))
        card = {
            "model": build["model"]["name"],
            "trained_on": "the built-in procedural data (pc3d-data generate; 8 categories, 100 shapes each, seed 0)",
            "command": st.get("command") or ("pc3d-train   (the whole-system main job; this file: its stage "
                                             + repr(stage) + ")"),
            "stage_overrides": st.get("overrides"),
            "training_seconds": st.get("seconds"),
            "training_metrics": st.get("metrics"),
            "source_checkpoint": str(ckpt.relative_to(run)),
            "step": int(raw.get("global_step", -1)),
            "config_record": record,
            "evaluation": "pc3d-eval ckpt_path=pretrained:" + name + " split=test seed=0 device=cpu "
                          + " ".join(EVAL_OVERRIDES.get(name, [])),
        }
        path = out_dir / f"{name}.safetensors"
        save_pretrained(raw["state_dict"], build, path, name=name, card=card, dtype=torch.float16)
        t0 = time.perf_counter()
        card["metrics"] = card_metrics(path, name, data_root)
        card["evaluation_seconds"] = round(time.perf_counter() - t0, 1)
        cards[name] = save_pretrained(raw["state_dict"], build, path, name=name, card=card, dtype=torch.float16)
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.2f} MB) metrics {card['metrics']}")
    total = sum(c["bytes"] for c in cards.values())
    print(f"total {total / 1e6:.2f} MB in {out_dir}")
    return cards


def verify(names: Sequence[str] | None = None, data_root: str | Path = BUILTIN_ROOT, atol: float = 1e-4
           ) -> list[tuple[str, str, float, float, bool]]:
    """sha256 and card metrics of the shipped files: rows ``(name, what, card value, now, ok)``."""
    from pc3d import pretrained

    rows = []
    for name in names or pretrained.names():
        card = pretrained.card(name)
        digest = pretrained.sha256(pretrained.path(name))
        rows.append((name, "sha256", 0.0, 0.0, digest == card["sha256"]))
        now = card_metrics(f"pretrained:{name}", name, data_root)
        for k, v in card["metrics"].items():
            rows.append((name, k, float(v), now.get(k, float("nan")), abs(now.get(k, float("inf")) - float(v)) <= atol))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pc3d.cli.pretrained", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write the shipped files from a whole-system run")
    ex.add_argument("run")
    ex.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "pretrained" / "weights"))
    ex.add_argument("--data-root", default=BUILTIN_ROOT)
    ex.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help=f"write only these files ({', '.join(STAGE_TO_NAME.values())}); the others stay")
    ve = sub.add_parser("verify", help="check sha256 and reproduce the cards' metrics")
    ve.add_argument("names", nargs="*")
    ve.add_argument("--data-root", default=BUILTIN_ROOT)
    ve.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if args.cmd == "export":
        export_run(args.run, args.out, args.data_root, only=args.only)
        return 0
    ok = True
    for name, what, card, now, good in verify(args.names, args.data_root, args.atol):
        ok &= good
        detail = "" if what == "sha256" else f" card {card:.6g} now {now:.6g}"
        print(f"{'ok  ' if good else 'FAIL'} {name} {what}{detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
