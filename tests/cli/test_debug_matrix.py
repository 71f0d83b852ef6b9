"""Every ``conf/debug`` config works with every model and the data configs that suit it (issue 13).

Compose (all combinations, fast): the config resolves and every key under ``model``, ``data`` and
``trainer`` is an argument of the class its ``_target_`` names, so a debug file that sets a key
only one model takes (``debug=overfit`` used to set ``model.linear_probe``) fails here.

Run (each model x debug on the built-in data, a fast_dev_run-sized run each): ``pc3d-train`` with
the debug config and tiny network sizes. The real-data configs (pc15k, renderings_r2n2, latent3d,
meshes, modelnet40, modelnet40_normal, shapenet_part) need their datasets on disk: compose only.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pc3d.cli._common import CONFIG_DIR
from tests.helpers import compose_train, save_autoencoder_ckpt, tiny_autoencoder_config

CONF = Path(CONFIG_DIR)
DEBUGS = sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATAS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
IMAGE_DATA = {"renderings", "renderings_r2n2"}        # clouds + rendered views
IMAGE_MODELS = {"image2cloud"}                        # need a batch["image"]
AE_MODELS = {"lgan", "image2cloud"}                   # take a pretrained autoencoder checkpoint
BUILTIN = {False: "synthetic", True: "renderings"}    # the built-in data, by "needs images"


def _data_for(model: str) -> list[str]:
    # the image models need renderings; the cloud models read the clouds of any data config
    return sorted(IMAGE_DATA) if model in IMAGE_MODELS else DATAS


COMBOS = [(d, m, g) for m in MODELS for d in _data_for(m) for g in DEBUGS]

# A tiny autoencoder shared by the l-GAN (any decoder) and Image2Cloud (its warm start needs the same
# decoder class and sizes): latent 8, TreeGCN decoder 1 -> 4 -> 64 points.
LATENT, N_POINTS = 8, 64
TREE = {"features": [LATENT, 16, 3], "degrees": [4, 16], "support": 2}
TREE_OVERRIDES = [f"model.decoder.{k}={v}".replace(" ", "") for k, v in TREE.items()]

# per model: network sizes small enough for a one-core test (the debug settings are what is under test)
TINY = {
    "autoencoder": ["model.encoder.hidden=[16,32]", "model.decoder.hidden=[16]"],
    "treegan": ["model.n_critic=1", "model.eval_samples=4", "model.n_fixed_samples=2", "model.sample_batch_size=4",
                "model.critic.conv=[16,32]", "model.critic.head=[32,16,16]",
                *[o.replace("model.decoder.", "model.generator.") for o in TREE_OVERRIDES]],
    "lgan": ["model.n_critic=1", "model.eval_samples=4", "model.n_fixed_samples=2", "model.sample_batch_size=4",
             "model.generator.hidden=[16]", "model.critic.hidden=[16]", f"model.noise_dim={LATENT}"],
    "image2cloud": ["model.encoder.input_size=32", "data.image_size=32", *TREE_OVERRIDES],
    "pointnet_cls": [],
}


@pytest.fixture(scope="session")
def tiny_ae_ckpt(tmp_path_factory) -> Path:
    """One tiny autoencoder checkpoint (untrained) for the whole session."""
    decoder = {"_target_": "pc3d.nn.TreeGenerator", "n_points": N_POINTS, "init": "node", "ancestor_scale": "mean",
               **TREE}
    config = tiny_autoencoder_config(LATENT, decoder, data={"normalize": "none", "n_points": N_POINTS})
    return save_autoencoder_ckpt(tmp_path_factory.mktemp("debug_ae") / "ae.ckpt", config, n_points=N_POINTS)


def _overrides(data: str, model: str, debug: str, ae_ckpt: Path | str) -> list[str]:
    extra = [f"model.ae_ckpt_path={ae_ckpt}"] if model in AE_MODELS else []
    if "latent_dim" in OmegaConf.load(CONF / "model" / f"{model}.yaml"):  # not the classifier
        extra.append(f"model.latent_dim={LATENT}")
    return [f"data={data}", f"model={model}", f"debug={debug}", f"data.n_points={N_POINTS}", *extra]


def _accepted(target: str) -> set[str] | None:
    """Keyword arguments the class ``target`` takes (following ``**kwargs`` up the MRO); None: any."""
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not inspect.isclass(cls):  # a factory function (e.g. conf/data/meshes.yaml's mesh_datamodule)
        params = inspect.signature(cls).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params if p.kind is not p.VAR_POSITIONAL}
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def test_matrix_is_not_empty():
    assert {"fdr", "overfit"} <= set(DEBUGS)
    assert {"autoencoder", "treegan", "lgan", "image2cloud", "pointnet_cls"} <= set(MODELS)
    assert ("renderings", "image2cloud", "overfit") in COMBOS and ("synthetic", "image2cloud", "fdr") not in COMBOS


@pytest.mark.parametrize(("data", "model", "debug"), COMBOS, ids=["-".join(c) for c in COMBOS])
def test_debug_config_composes(data, model, debug, tmp_path):
    cfg = compose_train(_overrides(data, model, debug, tmp_path / "ae.ckpt"), tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every interpolation resolves
    for group in ("model", "data", "trainer"):
        keys = {k for k in cfg[group] if not k.startswith("_")}
        accepted = _accepted(cfg[group]._target_)
        if accepted is not None:
            assert keys <= accepted, f"{group}: {sorted(keys - accepted)} not arguments of {cfg[group]._target_}"
    debug_cfg = OmegaConf.load(CONF / "debug" / f"{debug}.yaml")
    for key, value in debug_cfg.trainer.items():
        assert cfg.trainer[key] == value, key  # the debug file wins over the trainer defaults


@pytest.mark.parametrize("debug", DEBUGS)
@pytest.mark.parametrize("model", MODELS)
def test_debug_config_runs(model, debug, tiny_builtin, tiny_ae_ckpt, tmp_path):
    from pc3d.cli.train import train

    data = BUILTIN[model in IMAGE_MODELS]
    # overfit trains for hundreds of epochs: one epoch here, validated once
    short = ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"] if debug == "overfit" else []
    cfg = compose_train([*_overrides(data, model, debug, tiny_ae_ckpt), *TINY[model], *short, "trainer.accelerator=cpu",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null"], tmp_path, tiny_builtin)
    result = train(cfg)
    assert result["trainer"].global_step > 0
    assert any(k.startswith("train/") for k in result["metrics"]), result["metrics"]
