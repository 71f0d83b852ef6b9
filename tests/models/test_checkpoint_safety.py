"""A checkpoint can never run code (issue 14).

A corpus of hostile checkpoints, written here, is fed to every entry point that reads a checkpoint:
``load_model``, ``pc3d-eval`` (function, and console scripts via subprocess), ``pc3d-generate``,
``pc3d-reconstruct``, the FPD classifier loader, ``model.ae_ckpt_path`` (l-GAN, Image2Cloud) and
``model.warm_start_ckpt_path`` (tree-GAN). Each must fail with an error naming the file and the
offending key, and leave no side effect (sentinel file absent, victim file untouched). Then a
positive round trip: tiny models trained with ``ConfigInCheckpoint`` load through each entry point
with identical outputs.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.callbacks import ConfigInCheckpoint
from pc3d.models.io import CheckpointError, load_classifier, load_frozen_autoencoder, load_model, read_build
from pc3d.models.registry import BUILD_KEY, RECORD_KEY, config_to_spec
from tests.helpers import tiny_autoencoder_config

ROOT = Path(__file__).resolve().parents[2]
LATENT, N = 16, 16
DEC = {"_target_": "pc3d.nn.FCDecoder", "latent_dim": LATENT, "n_points": N, "hidden": [16]}
TREE_DEC = {"_target_": "pc3d.nn.TreeGenerator", "features": [LATENT, 8, 3], "degrees": [4, 4], "support": 2}


class _Evil:
    """A pickle payload: unpickling runs ``os.system(cmd)``."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _ae_spec() -> dict:
    return config_to_spec(tiny_autoencoder_config(LATENT, DEC)["model"], "model")


def _new(model=None, data=None, **extra) -> dict:
    build = {"format": "pc3d-checkpoint", "version": 1, "model": model if model is not None else _ae_spec(),
             "data": data, **extra}
    return {"state_dict": {}, BUILD_KEY: build}


@pytest.fixture
def corpus(tmp_path):
    """``(paths, sentinel, victim, pkl)``: ``paths`` maps a case name to ``(file, key the error must name)``."""
    sentinel = tmp_path / "PWNED"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    pkl = tmp_path / "payload.npy"
    cmd = f"touch {sentinel}"
    text_pickle = pickle.dumps(_Evil(cmd), protocol=0).decode("latin-1")
    chain = {"_target_": "numpy.load", "allow_pickle": True,  # writes a text pickle, then loads it
             "file": {"_target_": "pc3d.io.atomic_write_text", "path": str(pkl), "text": text_pickle}}
    open_w = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    system = {"_target_": "os.system", "_args_": [cmd]}
    ae_cfg = tiny_autoencoder_config(LATENT, DEC)
    ae = _ae_spec()
    cases: dict[str, tuple[dict | object, str]] = {
        "raw_pickle": ({"state_dict": {}, "x": _Evil(cmd)}, "untrusted pickle"),
        "new_model_target": (_new(model=open_w), f"{BUILD_KEY}.model._target_"),
        "new_encoder_target": (_new(model={**ae, "args": {**ae["args"], "encoder": open_w}}),
                               f"{BUILD_KEY}.model.args.encoder._target_"),
        "new_chained_loaders": (_new(model={**ae, "args": {**ae["args"], "encoder": chain}}),
                                f"{BUILD_KEY}.model.args.encoder._target_"),
        "new_data_target": (_new(data=system), f"{BUILD_KEY}.data._target_"),
        "new_probe_callback": (_new(callbacks={"linear_probe": system}),
                               f"{BUILD_KEY}.callbacks.linear_probe._target_"),
        "new_partial_key": (_new(model={**ae, "args": {**ae["args"], "optimizer": {
            "_target_": "os.system", "_partial_": True}}}), f"{BUILD_KEY}.model.args.optimizer._target_"),
        "new_call_key": (_new(model={**ae, "_call_": "os.system"}), f"{BUILD_KEY}.model._call_"),
        "unknown_name": (_new(model={"name": "os_system", "version": 1, "args": {"command": cmd}}),
                         f"{BUILD_KEY}.model.name='os_system' is not a registered"),
        "unknown_nested_name": (_new(model={**ae, "args": {**ae["args"], "encoder": {
            "name": "builtins_open", "version": 1, "args": {"file": str(victim)}}}}),
            f"{BUILD_KEY}.model.args.encoder.name='builtins_open'"),
        "wrong_version": (_new(model={**ae, "version": 99}), f"{BUILD_KEY}.model.version=99"),
        "unknown_argument": (_new(model={**ae, "args": {**ae["args"], "evil": 1}}),
                             f"{BUILD_KEY}.model.args.evil"),
        "legacy_open_target": ({"state_dict": {}, "pc3d_config": {"model": open_w}}, "model._target_='builtins.open'"),
        "legacy_encoder_chain": ({"state_dict": {}, "pc3d_config": {"model": {**ae_cfg["model"], "encoder": chain}}},
                                 "model.encoder._target_='numpy.load'"),
        "legacy_data_target": ({"state_dict": {}, "pc3d_config": {"model": ae_cfg["model"], "data": system}},
                               "data._target_='os.system'"),
    }
    paths = {}
    for name, (obj, key) in cases.items():
        path = tmp_path / f"{name}.ckpt"
        torch.save(obj, path)
        paths[name] = (path, key)
    return paths, sentinel, victim, pkl


def _assert_clean(sentinel: Path, victim: Path, pkl: Path) -> None:
    assert not sentinel.exists(), "a checkpoint ran a shell command"
    assert victim.read_text() == "precious\n", "a checkpoint touched a file"
    assert not pkl.exists(), "a checkpoint wrote a file"


# --------------------------------------------------------------------- the entry points, each fed every case
def _eval(path: Path, tmp: Path) -> None:
    from pc3d.cli.eval import evaluate
    from tests.cli.test_eval import compose_eval

    evaluate(compose_eval([f"ckpt_path={path}", "split=val"], tmp))


def _eval_fpd_stats(path: Path, tmp: Path) -> None:
    from pc3d.cli.eval import evaluate
    from tests.cli.test_eval import compose_eval

    evaluate(compose_eval(["task=fpd_stats", f"fpd.classifier_ckpt_path={path}", f"fpd.stats_out={tmp / 's.npz'}"],
                          tmp))


def _generate(path: Path, tmp: Path) -> None:
    from pc3d.cli.generate import generate
    from tests.cli.test_generate import gen_cfg

    generate(gen_cfg(path, tmp / "gen", n_samples=2, device="cpu"))


def _reconstruct(path: Path, tmp: Path) -> None:
    from PIL import Image

    from pc3d.cli.reconstruct import reconstruct
    from tests.cli.test_reconstruct import compose_reconstruct

    png = tmp / "img.png"
    Image.new("RGB", (32, 32), (200, 100, 50)).save(png)
    reconstruct(compose_reconstruct([f"ckpt_path={path}", f"image={png}", f"out={tmp / 'r.ply'}",
                                     f"paths.output_dir={tmp}"]))


def _lgan_ae(path: Path, tmp: Path) -> None:
    from pc3d.models import LatentGAN
    from pc3d.nn import LatentCritic, LatentGenerator

    LatentGAN(LatentGenerator(4, LATENT), LatentCritic(LATENT), ae_ckpt_path=str(path), noise_dim=4)


def _image2cloud_ae(path: Path, tmp: Path) -> None:
    from pc3d.models import Image2Cloud
    from pc3d.nn import FCDecoder

    class _Enc(torch.nn.Module):
        latent_dim = LATENT

    Image2Cloud(_Enc(), FCDecoder(LATENT, N, hidden=[16]), latent_dim=LATENT, ae_ckpt_path=str(path)).setup("fit")


def _treegan_warm_start(path: Path, tmp: Path) -> None:
    from pc3d.models.treegan import load_generator_weights
    from pc3d.nn import TreeGenerator

    load_generator_weights(TreeGenerator(features=[LATENT, 8, 3], degrees=[4, 4], support=2), path)


ENTRY_POINTS = {
    "load_model": lambda p, t: load_model(p),
    "read_build": lambda p, t: read_build(p),
    "pc3d-eval": _eval,
    "pc3d-eval fpd_stats": _eval_fpd_stats,
    "pc3d-generate": _generate,
    "pc3d-reconstruct": _reconstruct,
    "fpd classifier": lambda p, t: load_classifier(p),
    "load_frozen_autoencoder": lambda p, t: load_frozen_autoencoder(p),
    "lgan model.ae_ckpt_path": _lgan_ae,
    "image2cloud model.ae_ckpt_path": _image2cloud_ae,
    "treegan model.warm_start_ckpt_path": _treegan_warm_start,
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_hostile_checkpoint_is_refused_cleanly(entry, corpus, tmp_path):
    paths, sentinel, victim, pkl = corpus
    fn = ENTRY_POINTS[entry]
    for name, (path, key) in paths.items():
        (tmp_path / name).mkdir()
        with pytest.raises(ValueError) as info:
            fn(path, tmp_path / name)
        msg = str(info.value)
        assert str(path) in msg, f"{entry} / {name}: the error does not name the file: {msg}"
        assert key in msg, f"{entry} / {name}: the error does not name {key!r}: {msg}"
        _assert_clean(sentinel, victim, pkl)
    assert not any((tmp_path / n / "gen").exists() for n in paths)  # pc3d-generate wrote nothing


def test_errors_name_the_known_registry_names(corpus):
    paths = corpus[0]
    for case in ("unknown_name", "wrong_version", "legacy_open_target"):
        with pytest.raises(CheckpointError, match=r"known: autoencoder \(v1\), treegan \(v1\)"):
            load_model(paths[case][0])
    with pytest.raises(CheckpointError, match="re-save"):
        load_model(paths["legacy_open_target"][0])


def test_old_format_callbacks_are_a_record_never_built(tmp_path):
    """An old checkpoint's ``pc3d_config`` converts when its model and data name registered classes only;
    everything else in it (callbacks, trainer, loggers) is never read, whatever it names."""
    from tests.helpers import save_autoencoder_ckpt

    sentinel = tmp_path / "PWNED"
    cfg = tiny_autoencoder_config(LATENT, DEC)
    cfg["callbacks"] = {"linear_probe": {"_target_": "os.system", "_args_": [f"touch {sentinel}"]}}
    cfg["trainer"] = {"_target_": "builtins.open", "file": str(tmp_path / "x"), "mode": "w"}
    path = save_autoencoder_ckpt(tmp_path / "old.ckpt", cfg, n_points=N)
    model = load_model(path)
    assert type(model).__name__ == "Autoencoder" and not sentinel.exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("script, extra, case", [("pc3d.cli.eval", [], "raw_pickle"),
                                                 ("pc3d.cli.generate", ["n_samples=2"], "new_chained_loaders"),
                                                 ("pc3d.cli.reconstruct", ["image={png}"], "legacy_encoder_chain")])
def test_console_scripts_exit_non_zero(script, extra, case, corpus, tmp_path):
    from PIL import Image

    paths, sentinel, victim, pkl = corpus
    path, key = paths[case]
    png = tmp_path / "img.png"
    Image.new("RGB", (32, 32)).save(png)
    proc = subprocess.run([sys.executable, "-m", script, f"ckpt_path={path}", f"out={tmp_path / 'out'}",
                           *(e.format(png=png) for e in extra)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert str(path) in proc.stderr and key in proc.stderr, proc.stderr[-2000:]
    _assert_clean(sentinel, victim, pkl)


# --------------------------------------------------------------------- positive round trip
def _fit_and_save(config: dict, path: Path, n: int = N):
    import lightning as L
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    model = instantiate(config["model"])
    g = torch.Generator().manual_seed(0)
    items = [{"points": torch.randn(n, 3, generator=g), "category": i % 2} for i in range(8)]
    t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                  callbacks=[ConfigInCheckpoint(config)])
    t.fit(model, train_dataloaders=DataLoader(items, batch_size=4))
    t.save_checkpoint(path)
    return model.eval(), path


def test_round_trip_through_every_entry_point(tmp_path):
    from pc3d.models import LatentGAN
    from pc3d.models.treegan import load_generator_weights
    from pc3d.nn import LatentCritic, LatentGenerator, TreeGenerator

    x = torch.randn(3, N, 3)
    # autoencoder (tree decoder): load_model, the frozen loader, the warm start
    cfg = tiny_autoencoder_config(LATENT, TREE_DEC)
    ae, path = _fit_and_save(cfg, tmp_path / "ae.ckpt")
    ckpt = torch.load(path, weights_only=True)
    assert "pc3d_config" not in ckpt and isinstance(ckpt[RECORD_KEY], str) and "_target_" in ckpt[RECORD_KEY]
    assert ckpt[BUILD_KEY]["model"]["args"]["decoder"]["name"] == "tree_generator"
    assert "_target_" not in repr(ckpt[BUILD_KEY])
    with torch.no_grad():
        assert torch.equal(load_model(path)(x), ae(x))
        assert torch.equal(load_frozen_autoencoder(path)(x), ae(x))
        gen = TreeGenerator(features=[LATENT, 8, 3], degrees=[4, 4], support=2)
        assert load_generator_weights(gen, path) == "decoder."
        z = torch.randn(2, LATENT)
        assert torch.equal(gen(z), ae.decoder(z))
    # an autoencoder is not an FPD classifier: a clear error naming the file, not an AttributeError
    with pytest.raises(ValueError, match=r"ae\.ckpt: not a point-cloud classifier checkpoint \(it holds a Autoencoder"):
        load_classifier(path)
    # l-GAN on it: model.ae_ckpt_path, then load_model without the AE file
    lg = LatentGAN(LatentGenerator(4, LATENT, hidden=[16]), LatentCritic(LATENT, hidden=[16]), ae_ckpt_path=str(path),
                   noise_dim=4)
    assert torch.equal(lg.autoencoder.encode(x), ae.encode(x))
    # classifier: the FPD loader
    cls_cfg = {"model": {"_target_": "pc3d.models.PointCloudClassifier",
                         "net": {"_target_": "pc3d.nn.PointNetClassifier", "k": 4},
                         "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}}}
    cls, cpath = _fit_and_save(cls_cfg, tmp_path / "cls.ckpt")
    assert read_build(cpath)["model"]["args"]["optimizer"] == {"name": "adam", "version": 1, "args": {"lr": 1e-3}}
    with torch.no_grad():
        a, b = load_classifier(cpath)(x), cls.net(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b)) if isinstance(a, tuple) else torch.equal(a, b)


def test_round_trip_through_generate_and_eval(tmp_path, tiny_builtin):
    from pc3d.cli.eval import evaluate
    from pc3d.cli.generate import generate
    from tests.cli.test_eval import _tiny_data_cfg, compose_eval
    from tests.cli.test_generate import gen_cfg
    from tests.models.test_lgan import N as LN
    from tests.models.test_lgan import lgan_config, write_ae_ckpt

    ae_path = write_ae_ckpt(tmp_path, "fc")
    config = {"model": lgan_config(ae_path), "data": {**_tiny_data_cfg(tiny_builtin), "n_points": LN}}
    model, path = _fit_and_save(config, tmp_path / "lgan.ckpt", n=LN)
    build = read_build(path)
    assert build["data"]["name"] == "point_cloud_datamodule" and build["model"]["name"] == "lgan"
    out = generate(gen_cfg(path, tmp_path / "out", n_samples=3, seed=5, ply=False, device="cpu"))
    assert np.array_equal(out["samples"], model.sample(3, seed=5).numpy())
    res = evaluate(compose_eval([f"ckpt_path={path}", "n_samples=3", "split=val"], tmp_path))
    assert res["task"] == "generation" and res["n_refs"] > 0
