"""pc3d-demo with stand-in weights: tiny *untrained* l-GAN and Image2Cloud models built through the
registry and written by :func:`pc3d.pretrained.save_pretrained` (the format of the shipped weights),
passed as ``generator=`` / ``image_model=`` paths. Checks the files, the self-contained page (no
network reference outside plotly.js' own code), the built-in view and the errors naming the key.
The page in a real browser: tests/cli/test_demo_browser.py."""

from __future__ import annotations

import base64
import io
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

N_SAMPLES = 3


def write_standin_weights(folder: Path, *, latent: int = 8, n_points: int = 2048, img_points: int = 1024,
                          seed: int = 0) -> dict[str, Path]:
    """Write ``folder/{lgan,image2cloud}.safetensors`` (+ model cards): untrained tiny models with the
    build data of real ones (the l-GAN holds its autoencoder's spec, as pc3d-train writes it; the
    Image2Cloud its data config: 64 px inputs rendered at 137 px on white). Trains nothing."""
    import torch

    from pc3d import pretrained
    from pc3d.models.registry import build, config_to_build

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    ae = {"_target_": "pc3d.models.Autoencoder", "latent_dim": latent,
          "encoder": {"_target_": "pc3d.nn.PointNetEncoder", "hidden": [16, 32], "latent_dim": latent},
          "decoder": {"_target_": "pc3d.nn.FCDecoder", "latent_dim": latent, "n_points": n_points, "hidden": [16]}}
    lgan = {"_target_": "pc3d.models.LatentGAN", "noise_dim": 8, "latent_dim": latent, "n_fixed_samples": 0,
            "eval_samples": 0,
            "generator": {"_target_": "pc3d.nn.LatentGenerator", "noise_dim": 8, "latent_dim": latent, "hidden": [16]},
            "critic": {"_target_": "pc3d.nn.LatentCritic", "latent_dim": latent, "hidden": [16]}}
    spec = config_to_build({"model": lgan, "data": {"normalize": "none", "n_points": n_points}})
    spec["model"]["args"]["autoencoder"] = config_to_build({"model": ae})["model"]  # as LatentGAN.on_save_checkpoint
    out = {"lgan": folder / "lgan.safetensors", "image2cloud": folder / "image2cloud.safetensors"}
    pretrained.save_pretrained(build(spec["model"]).state_dict(), spec, out["lgan"], name="lgan",
                               card={"note": "stand-in: untrained"})
    i2c = {"_target_": "pc3d.models.Image2Cloud", "latent_dim": latent, "latent_weight": 0.0,
           "encoder": {"_target_": "pc3d.nn.ResNetImageEncoder", "arch": "resnet10", "latent_dim": latent,
                       "input_size": 32},
           "decoder": {"_target_": "pc3d.nn.FCDecoder", "latent_dim": latent, "n_points": img_points, "hidden": [16]}}
    spec = config_to_build({"model": i2c, "data": {"image_size": 64, "background": "white", "n_points": img_points,
                                                   "synthetic": {"image_size": 137}}})
    pretrained.save_pretrained(build(spec["model"]).state_dict(), spec, out["image2cloud"], name="image2cloud",
                               card={"note": "stand-in: untrained"})
    return out


def compose_demo(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("demo", overrides=overrides)


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> dict[str, Path]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Image2Cloud without an autoencoder warns about its latent loss
        return write_standin_weights(tmp_path_factory.mktemp("standin"))


def run_demo(weights: dict[str, Path], out: Path, *extra: str) -> dict:
    from pc3d.cli.demo import demo

    cfg = compose_demo([f"generator={weights['lgan']}", f"image_model={weights['image2cloud']}",
                        f"n_samples={N_SAMPLES}", f"out={out}", *extra])
    return demo(cfg)


@pytest.fixture(scope="module")
def demo_run(standin, tmp_path_factory) -> dict:
    """One demo run (n_samples=3) shared by the tests of this module and of test_demo_browser.py."""
    return run_demo(standin, tmp_path_factory.mktemp("demo") / "out")


class _Refs(HTMLParser):
    """Every tag with its attributes (script bodies are data to HTMLParser, not tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _is_network(url: str | None) -> bool:
    u = (url or "").strip().lower()
    return u.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:"))


def test_demo_writes_page_pngs_mesh_and_arrays(demo_run):
    from PIL import Image

    from pc3d.export import read_glb
    from pc3d.io import stale_temp_files

    out = Path(demo_run["page"]).parent
    names = {"index.html", "samples.png", "samples.npy", "view.png", "reconstruction.png", "reconstruction.npy",
             "ground_truth.npy", "mesh.glb", "mesh.png"}
    assert {p.name for p in out.iterdir()} == names
    assert not stale_temp_files(out, own_pid_is_stale=True)  # every file was renamed into place
    for png in ("samples.png", "reconstruction.png", "mesh.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and min(im.size) >= 64
            assert np.asarray(im.convert("L")).std() > 5, png  # not a blank picture
    with Image.open(out / "view.png") as im:  # the built-in renderer's RGBA view, at the data's 137 px
        assert im.mode == "RGBA" and im.size == (137, 137)
        alpha = np.asarray(im)[..., 3]
        assert 0.02 < (alpha == 255).mean() < 0.9 and set(np.unique(alpha)) <= {0, 255}
    samples = np.load(out / "samples.npy")
    assert samples.shape == (N_SAMPLES, 2048, 3) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, demo_run["samples"])
    assert np.load(out / "reconstruction.npy").shape == np.load(out / "ground_truth.npy").shape == (1024, 3)
    v, f = read_glb(out / "mesh.glb")
    assert len(v) >= 4 and len(f) >= 1 and f.max() < len(v)
    t = demo_run["timings"]
    assert {"sample clouds", "reconstruct", "PNG renders", "HTML page (plotly)", "total"} <= set(t)
    assert t["total"] >= max(v for k, v in t.items() if k != "total")


def test_page_is_self_contained(demo_run):
    from plotly.offline import get_plotlyjs

    text = Path(demo_run["page"]).read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    tags = parser.tags
    assert not [a for t, a in tags if t == "script" and "src" in a], "a <script src=...>"
    assert not [t for t, _ in tags if t in ("link", "iframe", "object", "embed")]
    network = [(t, a) for t, a in tags for k in ("src", "href", "data", "poster") if _is_network(a.get(k))]
    assert not network, network
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert len(imgs) == 4  # samples, view, reconstruction grid, mesh preview
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1])
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            assert im.format == "PNG"
    links = [a["href"] for t, a in tags if t == "a"]
    assert links and all(not _is_network(h) and (Path(demo_run["page"]).parent / h).is_file() for h in links)
    # plotly.js inlined exactly once (no CDN), one scatter3d trace per cloud: the samples, reconstruction, truth
    js = get_plotlyjs()
    assert js in text and text.count(js[:300]) == 1
    page = text.replace(js, "")  # the page without plotly.js
    assert "cdn.plot.ly" not in page
    assert page.count('"type":"scatter3d"') == N_SAMPLES + 2
    assert len([a for t, a in tags if t == "div" and a.get("class") == "plot"]) == 2


def test_builtin_view_is_rendered_like_the_data(tmp_path):
    from pc3d.cli.demo import render_builtin_view
    from pc3d.data.synthetic.rendering import DISTANCE_RATIO_RANGE, ELEVATION_RANGE

    a = render_builtin_view("chair", 0, 64)
    b = render_builtin_view("chair", 0, 64)
    c = render_builtin_view("airplane", 0, 64)
    assert a["rgba"].shape == (64, 64, 4) and a["rgba"].dtype == np.uint8
    np.testing.assert_array_equal(a["rgba"], b["rgba"])  # seeded
    assert not np.array_equal(a["rgba"], c["rgba"])
    bg = a["rgba"][..., 3] == 0
    assert bg.any() and (a["rgba"][bg][:, :3] == 255).all()  # transparent white, like the data's PNGs
    cam = a["camera"]
    assert ELEVATION_RANGE[0] <= cam["elevation"] <= ELEVATION_RANGE[1]
    assert DISTANCE_RATIO_RANGE[0] <= cam["distance_ratio"] <= DISTANCE_RATIO_RANGE[1]
    with pytest.raises(ValueError, match="category='teapot': expected one of"):
        render_builtin_view("teapot", 0)


def test_bad_checkpoints_are_named(standin, tmp_path):
    from pc3d.cli.demo import demo

    missing = tmp_path / "nope.ckpt"
    base = [f"image_model={standin['image2cloud']}", "n_samples=1", f"out={tmp_path / 'o'}"]
    with pytest.raises(FileNotFoundError, match=rf"generator={missing}: no such checkpoint file"):
        demo(compose_demo([f"generator={missing}", *base]))
    with pytest.raises(ValueError, match=r"generator=pretrained:nope: pretrained:nope: no such shipped model"):
        demo(compose_demo(["generator=pretrained:nope", *base]))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=rf"generator={junk}: .*junk\.ckpt"):
        demo(compose_demo([f"generator={junk}", *base]))
    with pytest.raises(ValueError, match="is not a generator"):
        demo(compose_demo([f"generator={standin['image2cloud']}", *base]))
    with pytest.raises(ValueError, match=r"image_model=.*lgan\.safetensors: the model \(LatentGAN\) does not take"):
        demo(compose_demo([f"generator={standin['lgan']}", f"image_model={standin['lgan']}", "n_samples=1",
                           f"out={tmp_path / 'o'}"]))
    with pytest.raises(ValueError, match="mesh_format must be one of glb, ply, obj"):
        demo(compose_demo([f"generator={standin['lgan']}", *base, "mesh_format=stl"]))
    assert not (tmp_path / "o" / "index.html").exists()


def test_cli_prints_page_and_timings_and_writes_only_under_out(standin, tmp_path, monkeypatch, capsys):
    """`pc3d-demo generator=... image_model=... out=...` (the @hydra.main wrapper, in-process)."""
    from pc3d.cli.demo import main

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "cli"
    monkeypatch.setattr(sys, "argv", ["pc3d-demo", f"generator={standin['lgan']}",
                                      f"image_model={standin['image2cloud']}", "n_samples=1", "seed=3",
                                      "mesh_format=ply", "category=airplane", f"out={out}"])
    main()
    printed = capsys.readouterr().out
    assert f"pc3d-demo: open {(out / 'index.html').resolve()}" in printed
    assert "total" in printed and "PNG renders" in printed
    assert (out / "index.html").is_file() and (out / "mesh.ply").is_file() and not (out / "mesh.glb").exists()
    assert np.load(out / "samples.npy").shape == (1, 2048, 3)
    assert list(cwd.iterdir()) == []  # no run folder, no .hydra, no log file


def test_cli_bad_generator_exits_with_the_key(standin, tmp_path, monkeypatch, capsys):
    from pc3d.cli.demo import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pc3d-demo", f"generator={tmp_path / 'missing.ckpt'}",
                                      f"image_model={standin['image2cloud']}", f"out={tmp_path / 'o'}"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code != 0
    assert f"generator={tmp_path / 'missing.ckpt'}: no such checkpoint file" in capsys.readouterr().err


def test_html_helpers():
    from pc3d.viz.html import clouds_figure, height_colorscale, subsample
    from pc3d.viz.render import point_colors

    pts = np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
    sub = subsample(pts, 2048)
    assert sub.shape == (2048, 3) and np.array_equal(sub, subsample(pts, 2048))
    assert subsample(pts[:10], 2048).shape == (10, 3)
    with pytest.raises(ValueError):
        subsample(np.zeros((4, 2)), 16)
    scale = height_colorscale()
    lo_hi = point_colors(np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "height")
    assert scale[0][1] == "rgb({},{},{})".format(*np.round(lo_hi[0] * 255).astype(int))
    assert scale[-1][1] == "rgb({},{},{})".format(*np.round(lo_hi[1] * 255).astype(int))
    fig = clouds_figure({"a": pts, "b": pts[:100]}, max_points=512)
    assert [t.type for t in fig.data] == ["scatter3d", "scatter3d"] and len(fig.data[0].x) == 512
    assert fig.layout.scene.camera.up.y == 1 and fig.layout.scene2.aspectmode == "data"
    with pytest.raises(ValueError, match="no clouds"):
        clouds_figure({})
