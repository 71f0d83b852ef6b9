"""LatentGAN: frozen autoencoder, WGAN-GP in latent space, sampling, checkpoints, configs, pc3d-generate."""

from __future__ import annotations

import shutil

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from pc3d.callbacks import ConfigInCheckpoint, GenerationMetrics, SaveGeneratedSamples
from pc3d.models import LatentGAN, load_model
from pc3d.models.image2cloud import load_frozen_autoencoder
from pc3d.models.treegan import gradient_penalty
from pc3d.nn import LatentCritic, LatentGenerator, PointCritic
from tests.helpers import (
    assert_same_parameter_grads,
    gradient_penalty_reference,
    save_autoencoder_ckpt,
    tiny_autoencoder_config,
)
from tests.models.test_treegan import N, loader, trainer  # the tree-GAN tests' random clouds and Trainer

LATENT, NOISE = 16, 4
DECODERS = {
    "fc": {"_target_": "pc3d.nn.FCDecoder", "latent_dim": LATENT, "n_points": N, "hidden": [16]},
    # tiny tree-GAN generator as the decoder: nodes 1, 2, 4, 16 = N
    "tree": {"_target_": "pc3d.nn.TreeGenerator", "features": [LATENT, 16, 8, 3], "degrees": [2, 2, 4], "support": 2},
}


def lgan_config(ae_ckpt, **kw) -> dict:
    """The model entry of a pc3d-train config for a tiny l-GAN (plain dict, like a checkpoint holds)."""
    cfg = {"_target_": "pc3d.models.LatentGAN", "_convert_": "all", "ae_ckpt_path": str(ae_ckpt), "noise_dim": NOISE,
           "latent_dim": LATENT, "n_critic": 2, "eval_samples": 6, "n_fixed_samples": 3,
           "generator": {"_target_": "pc3d.nn.LatentGenerator", "noise_dim": NOISE, "latent_dim": LATENT,
                         "hidden": [16]},
           "critic": {"_target_": "pc3d.nn.LatentCritic", "latent_dim": LATENT, "hidden": [16]}}
    cfg.update(kw)
    return cfg


def tiny_lgan(ae_ckpt, **kw) -> LatentGAN:
    torch.manual_seed(0)
    return instantiate(lgan_config(ae_ckpt, **kw))


def fit_and_save(config: dict, path) -> tuple[LatentGAN, object]:
    """Build ``config["model"]``, fit it one epoch on 4 random clouds with ``config`` stored in the
    checkpoint (as pc3d-train does), save the checkpoint to ``path``; returns (model, path)."""
    model = instantiate(config["model"])
    t = trainer(callbacks=[ConfigInCheckpoint(config)])
    t.fit(model, train_dataloaders=loader(4, 4))
    t.save_checkpoint(path)
    return model, path


def write_ae_ckpt(tmp_path, decoder: str):
    """A pc3d-train-style autoencoder checkpoint (``DECODERS[decoder]``, N points) with non-trivial BN statistics."""
    cfg = tiny_autoencoder_config(LATENT, DECODERS[decoder], data={"normalize": "none", "n_points": N})
    return save_autoencoder_ckpt(tmp_path / f"ae_{decoder}.ckpt", cfg, n_points=N)


@pytest.fixture(params=sorted(DECODERS))
def ae_ckpt(request, tmp_path):
    """An autoencoder checkpoint with an FC or a tree decoder (:func:`write_ae_ckpt`)."""
    return write_ae_ckpt(tmp_path, request.param)


@pytest.fixture
def fc_ae_ckpt(tmp_path):
    return write_ae_ckpt(tmp_path, "fc")


# ----------------------------------------------------------------------------- gradient penalty
def test_gradient_penalty_on_latents_matches_per_sample_autograd_reference():
    torch.manual_seed(0)
    critic = LatentCritic(6, hidden=(8, 8)).double()
    real, fake = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    alpha = torch.rand(4, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, alpha=alpha)

    # one latent at a time, its own interpolation weight, the norm over its D entries
    ref = gradient_penalty_reference(critic, real, fake, alpha)
    assert torch.allclose(gp, ref, atol=1e-12)
    assert_same_parameter_grads(gp, ref, list(critic.parameters()), atol=1e-10)

    # one alpha per latent when drawn: a linear critic sees interpolations constant within each row
    seen = []

    def linear(x):
        seen.append(x.detach())
        return x.sum(dim=1, keepdim=True)

    gp = gradient_penalty(linear, torch.zeros(5, 7), torch.ones(5, 7))
    assert torch.allclose(seen[0], seen[0][:, :1].expand_as(seen[0])) and len(set(seen[0][:, 0].tolist())) == 5
    assert torch.isclose(gp, torch.tensor((7 ** 0.5 - 1) ** 2))
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(linear, torch.zeros(5, 7), torch.zeros(5, 6))
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(linear, torch.zeros(5), torch.zeros(5))


def _gradient_penalty_before(critic, real, fake, alpha=None):
    """tree-GAN's gradient penalty as it was before it took latents (verbatim, clouds only)."""
    b = real.shape[0]
    if alpha is None:
        alpha = torch.rand(b, 1, 1, device=real.device, dtype=real.dtype)
    alpha = alpha.reshape(b, 1, 1).to(real)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.reshape(b, -1).norm(2, dim=1) - 1) ** 2).mean()


def test_gradient_penalty_on_clouds_is_unchanged():
    torch.manual_seed(0)
    critic = PointCritic(conv=(4, 8), head=(8,), mode="fixed")
    real, fake = torch.randn(3, 10, 3), torch.randn(3, 10, 3)
    alpha = torch.rand(3)
    assert torch.equal(gradient_penalty(critic, real, fake, alpha), _gradient_penalty_before(critic, real, fake, alpha))
    torch.manual_seed(5)  # drawn alphas: the same draws, the same value, bit for bit
    new = gradient_penalty(critic, real, fake)
    torch.manual_seed(5)
    assert torch.equal(new, _gradient_penalty_before(critic, real, fake))


# ----------------------------------------------------------------------------- sampling
def test_sample_shapes_and_determinism(ae_ckpt):
    model = tiny_lgan(ae_ckpt)
    model.train()
    a = model.sample(5, seed=3, batch_size=2)
    assert a.shape == (5, N, 3) and a.dtype == torch.float32
    assert torch.equal(a, model.sample(5, seed=3, batch_size=2))          # same seed: bit-identical
    assert torch.allclose(a, model.sample(5, seed=3, batch_size=5), atol=1e-6)  # any batch size
    assert not torch.allclose(a, model.sample(5, seed=4, batch_size=2))
    assert model.training and model.generator.training and not model.autoencoder.training  # modes restored
    # the clouds are the frozen decoder's images of the generated latents
    z = torch.randn(5, NOISE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(a, model.autoencoder.decoder(model.generator.eval()(z)), atol=1e-6)
        assert torch.allclose(model(z), a, atol=1e-6)
    assert model.sample(0).shape == (0, N, 3)
    assert model.sample_fixed().shape == (3, N, 3)
    assert model.sample(2).shape == (2, N, 3)  # global RNG
    with pytest.raises(ValueError, match="n must be"):
        model.sample(-1)
    with pytest.raises(ValueError, match="batch_size"):
        model.sample(2, batch_size=0)
    media = model.media_clouds({"points": torch.randn(4, N, 3)})
    assert set(media) == {"real", "reconstruction", "sample"}
    assert media["reconstruction"].shape == (4, N, 3) and media["sample"].shape == (3, N, 3)


def test_encode_and_decode_check_shapes(fc_ae_ckpt):
    model = tiny_lgan(fc_ae_ckpt)
    assert model.encode(torch.randn(2, N, 3)).shape == (2, LATENT)
    assert model.decode(torch.randn(2, LATENT)).shape == (2, N, 3)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model.encode(torch.randn(2, N, 2))
    with pytest.raises(ValueError, match=rf"\(B, {LATENT}\)"):
        model.decode(torch.randn(2, LATENT + 1))


# ----------------------------------------------------------------------------- training
def test_training_keeps_the_autoencoder_frozen_and_losses_finite(ae_ckpt):
    reference = load_frozen_autoencoder(ae_ckpt).state_dict()
    assert any("running_mean" in k for k in reference)
    model = tiny_lgan(ae_ckpt)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.critic.parameters()]
    model.train()  # as a user (or an older Lightning) would before fitting: must not put the AE in train mode
    t = trainer()
    t.fit(model, train_dataloaders=loader(12, 4))  # 3 iterations of n_critic=2 critic steps + 1 G step
    assert t.global_step == 3 * (2 + 1)
    m = t.callback_metrics
    assert {"train/d_loss", "train/g_loss", "train/gp", "train/wasserstein"} <= set(m)
    assert all(torch.isfinite(m[k]) for k in m)
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    assert {int(s["step"]) for s in opt_d.state.values()} == {3 * 2}
    assert {int(s["step"]) for s in opt_g.state.values()} == {3}
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.9) and opt_g.param_groups[0]["lr"] == 1e-4  # defaults
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    # every critic parameter moves but the output bias: it shifts every score by one constant, which
    # cancels out of the WGAN-GP losses, so its gradient is zero
    names_d = [n for n, _ in model.critic.named_parameters()]
    unchanged = [n for n, a, b in zip(names_d, d0, model.critic.parameters()) if torch.equal(a, b)]
    assert unchanged == ["mlp.2.bias"]

    # the autoencoder: every parameter and buffer (BatchNorm statistics too) bit-identical
    state = model.autoencoder.state_dict()
    assert set(state) == set(reference)
    for k, v in state.items():
        assert torch.equal(v, reference[k]), k
    assert not model.autoencoder.training and all(not p.requires_grad for p in model.autoencoder.parameters())
    ae_ids = {id(p) for p in model.autoencoder.parameters()}
    for opt in t.optimizers:
        assert not ae_ids & {id(p) for g in opt.param_groups for p in g["params"]}
    model.train()  # what Lightning calls: the autoencoder stays in eval mode
    assert model.training and model.critic.training and not any(mod.training for mod in model.autoencoder.modules())


def test_points_must_match_the_decoder(fc_ae_ckpt):
    model = tiny_lgan(fc_ae_ckpt)
    items = [{"points": torch.randn(N + 1, 3), "category": 0} for _ in range(4)]
    with pytest.raises(ValueError, match=f"set data.n_points={N}"):
        trainer().fit(model, train_dataloaders=DataLoader(items, batch_size=4))

    class DM(L.LightningDataModule):
        def __init__(self, n_points, normalize="none"):
            super().__init__()
            self.n_points, self.normalize = n_points, normalize

        def train_dataloader(self):
            return loader(4, 4)

    with pytest.raises(ValueError, match=f"data.n_points=32 but .* makes {N} points"):
        trainer().fit(tiny_lgan(fc_ae_ckpt), datamodule=DM(32))
    with pytest.raises(ValueError, match="data.normalize=unit_sphere but .* data.normalize=none"):
        trainer().fit(tiny_lgan(fc_ae_ckpt), datamodule=DM(N, "unit_sphere"))
    trainer(limit_train_batches=1).fit(tiny_lgan(fc_ae_ckpt), datamodule=DM(N))  # matching: fine


def test_validation_logs_generation_metrics_and_saves_fixed_samples(fc_ae_ckpt, tmp_path):
    model = tiny_lgan(fc_ae_ckpt, n_critic=1)
    saver = SaveGeneratedSamples(tmp_path / "samples")
    metrics = GenerationMetrics(max_refs=model.eval_samples, seed=model.eval_seed)
    t = trainer(limit_train_batches=1, limit_val_batches=1.0, callbacks=[saver, metrics])
    t.fit(model, train_dataloaders=loader(4, 4), val_dataloaders=loader(8, 4, seed=1))
    m = t.callback_metrics
    assert {"val/mmd_cd", "val/cov_cd", "val/1nna_cd", "val/wasserstein"} <= set(m)
    assert all(torch.isfinite(m[k]) for k in m)
    files = sorted((tmp_path / "samples").glob("epoch_*.npy"))
    assert len(files) == 1 and saver.last_path == files[0]
    assert np.allclose(np.load(files[0]), model.sample_fixed().numpy(), atol=1e-6)
    # the first eval_samples references vs as many samples of eval_seed, against a brute-force reference
    from tests.helpers import generation_metrics_reference

    refs = torch.cat([b["points"] for b in loader(8, 4, seed=1)])[:model.eval_samples]
    want = generation_metrics_reference(model.sample(len(refs), seed=model.eval_seed), refs)
    assert float(m["val/mmd_cd"]) == pytest.approx(want["mmd_cd"], rel=1e-4)
    assert float(m["val/cov_cd"]) == pytest.approx(want["cov_cd"]) and float(m["val/1nna_cd"]) == pytest.approx(
        want["1nna_cd"])


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_needs_no_autoencoder_file(ae_ckpt, tmp_path):
    config = {"model": lgan_config(ae_ckpt)}  # what pc3d-train stores (plain containers)
    model, path = fit_and_save(config, tmp_path / "lgan.ckpt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["pc3d_build"]["model"]["args"]["autoencoder"]["name"] == "autoencoder"  # build data, no _target_
    assert "autoencoder" not in config["model"]  # the callback's config is not modified
    assert any(k.startswith("autoencoder.") and "running_var" in k for k in ckpt["state_dict"])

    shutil.move(ae_ckpt, tmp_path / "elsewhere.ckpt")  # the AE file is gone: the l-GAN checkpoint suffices
    back = load_model(path)
    assert isinstance(back, LatentGAN) and not back.training and not back.autoencoder.training
    assert all(not p.requires_grad for p in back.autoencoder.parameters())
    assert torch.equal(back.sample(4, seed=11), model.sample(4, seed=11))
    assert torch.equal(back.sample_fixed(), model.sample_fixed())
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in back.state_dict().items())


def test_generate_cli_on_a_saved_lgan_checkpoint(fc_ae_ckpt, tmp_path):
    from pc3d.cli.generate import generate
    from tests.cli.test_generate import gen_cfg

    model, path = fit_and_save({"model": lgan_config(fc_ae_ckpt)}, tmp_path / "lgan.ckpt")
    out = generate(gen_cfg(path, tmp_path / "out", n_samples=5, seed=7, batch_size=2, ply=False, device="cpu"))
    clouds = np.load(tmp_path / "out" / "samples.npy")
    assert clouds.shape == (5, N, 3) and clouds.dtype == np.float32 and np.array_equal(clouds, out["samples"])
    assert np.array_equal(clouds, model.sample(5, seed=7, batch_size=2).numpy())
    other = generate(gen_cfg(path, tmp_path / "other", n_samples=5, seed=8, ply=False, device="cpu"))
    assert not np.allclose(other["samples"], clouds)


def test_eval_cli_scores_a_saved_lgan_checkpoint(fc_ae_ckpt, tiny_builtin, tmp_path):
    from pc3d.cli.eval import evaluate
    from tests.cli.test_eval import _tiny_data_cfg, compose_eval

    config = {"model": lgan_config(fc_ae_ckpt), "data": {**_tiny_data_cfg(tiny_builtin), "n_points": N}}
    _, path = fit_and_save(config, tmp_path / "lgan.ckpt")
    result = evaluate(compose_eval([f"ckpt_path={path}", "n_samples=4", "split=val"], tmp_path))
    assert result["task"] == "generation" and result["n_samples"] == 4 and result["n_refs"] > 0
    assert {"mmd_cd", "cov_cd", "1nna_cd"} <= set(result["metrics"])
    assert all(np.isfinite(v) for v in result["metrics"].values())


# ----------------------------------------------------------------------------- arguments and configs
def test_bad_arguments(fc_ae_ckpt, tmp_path):
    with pytest.raises(ValueError, match="model.ae_ckpt_path is required"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(LATENT), ae_ckpt_path=None, noise_dim=NOISE)
    with pytest.raises(FileNotFoundError, match="model.ae_ckpt_path=.*missing.ckpt"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(LATENT), ae_ckpt_path=str(tmp_path / "missing.ckpt"),
                  noise_dim=NOISE)
    with pytest.raises(ValueError, match=f"latent size is {LATENT} .*generator.latent_dim=8.*latent_dim={LATENT}"):
        LatentGAN(LatentGenerator(NOISE, 8), LatentCritic(LATENT), ae_ckpt_path=str(fc_ae_ckpt), noise_dim=NOISE)
    with pytest.raises(ValueError, match="critic.latent_dim=8"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(8), ae_ckpt_path=str(fc_ae_ckpt), noise_dim=NOISE)
    with pytest.raises(ValueError, match="noise_dim=5 but generator.noise_dim=4"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(LATENT), ae_ckpt_path=str(fc_ae_ckpt), noise_dim=5)
    with pytest.raises(ValueError, match="n_critic"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(LATENT), ae_ckpt_path=str(fc_ae_ckpt), noise_dim=NOISE,
                  n_critic=0)
    not_an_ae = tmp_path / "gan.ckpt"
    torch.save({"state_dict": LatentCritic(3).state_dict(),
                "pc3d_config": {"model": {"_target_": "pc3d.nn.LatentCritic", "latent_dim": 3}}}, not_an_ae)
    with pytest.raises(ValueError, match="model.ae_ckpt_path=.*not an autoencoder"):
        LatentGAN(LatentGenerator(NOISE, LATENT), LatentCritic(LATENT), ae_ckpt_path=str(not_an_ae), noise_dim=NOISE)


def test_model_config_requires_ae_ckpt_and_builds_the_documented_nets(fc_ae_ckpt, tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    from tests.helpers import compose_train

    cfg = compose_train(["model=lgan"], tmp_path)
    with pytest.raises(MissingMandatoryValue, match="model.ae_ckpt_path"):
        instantiate(cfg.model)
    cfg = compose_train(["experiment=lgan_synthetic", f"model.ae_ckpt_path={fc_ae_ckpt}", f"model.latent_dim={LATENT}",
                         f"data.n_points={N}"], tmp_path)
    assert cfg.data.categories == "chair" and cfg.model.ae_ckpt_path == str(fc_ae_ckpt)
    assert cfg.callbacks.save_samples._target_ == "pc3d.callbacks.SaveGeneratedSamples"
    assert cfg.callbacks.generation_metrics._target_ == "pc3d.callbacks.GenerationMetrics"
    model = instantiate(cfg.model)
    assert isinstance(model, LatentGAN) and model.latent_dim == LATENT and model.n_points == N
    assert (model.generator.noise_dim, model.generator.hidden, model.generator.latent_dim) == (128, (256, 512), LATENT)
    assert (model.critic.latent_dim, model.critic.hidden, model.critic.negative_slope) == (LATENT, (512, 256), 0.2)
    opt_g, opt_d = model.configure_optimizers()
    for opt in (opt_g, opt_d):
        assert opt.param_groups[0]["lr"] == 1e-4 and tuple(opt.param_groups[0]["betas"]) == (0.5, 0.9)
    assert model.n_critic == 5 and model.gp_lambda == 10.0


# ----------------------------------------------------------------------------- latent cache
def indexed_loader(n: int, batch_size: int, resample: bool, seed: int = 0) -> DataLoader:
    """Items with a dataset ``index``; ``resample``: new random points every time an item is read."""
    g = torch.Generator().manual_seed(seed)
    fixed = [torch.randn(N, 3, generator=g) for _ in range(n)]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            pts = torch.randn(N, 3) if resample else fixed[i]
            return {"points": pts, "category": 0, "index": i}

    return DataLoader(Items(), batch_size=batch_size, shuffle=False)


def test_latent_cache_encodes_each_item_once_and_trains_as_without_it(fc_ae_ckpt):
    # points fixed per item: the cache changes nothing about what is learned (bit-identical weights)
    # but encodes every item once instead of once per epoch
    runs = {}
    for cache in (False, True):
        model = tiny_lgan(fc_ae_ckpt, latent_cache=cache)
        calls = []
        encode = model.autoencoder.encode
        model.autoencoder.encode = lambda x, _e=encode, _c=calls: (_c.append(x.shape[0]), _e(x))[1]
        torch.manual_seed(1)
        trainer(max_epochs=3).fit(model, train_dataloaders=indexed_loader(8, 4, resample=False))
        runs[cache] = ([p.detach().clone() for p in model.generator.parameters()], sum(calls))
    (g_plain, n_plain), (g_cache, n_cache) = runs[False], runs[True]
    assert n_plain == 3 * 8 and n_cache == 8
    for a, b in zip(g_plain, g_cache):
        assert torch.equal(a, b)
    # a new fit forgets the cache (its data may differ): the same model encodes its 8 items again
    calls.clear()
    trainer(max_epochs=1).fit(model, train_dataloaders=indexed_loader(8, 4, resample=False, seed=1))
    assert sum(calls) == 8


def test_latent_cache_keeps_the_first_latent_of_each_item(fc_ae_ckpt):
    # points resampled on every read: the cache keeps the latent of the first read (reference: encode it)
    model = tiny_lgan(fc_ae_ckpt, latent_cache=True)
    dl = indexed_loader(6, 3, resample=True)
    first = [dict(b) for b in dl]
    for b in first:
        model._real_latents(b)
    second = next(iter(dl))
    assert not torch.equal(second["points"], first[0]["points"])
    got = model._real_latents(second)
    assert torch.equal(got, model.encode(first[0]["points"]))
    # a batch whose items were never seen grows the cache (indices beyond the first epoch's)
    extra = {"points": torch.randn(2, N, 3), "index": torch.tensor([9, 2])}
    w = model._real_latents(extra)
    assert torch.equal(w[0], model.encode(extra["points"][:1])[0])  # new: encoded from these points
    assert torch.allclose(w[1], model.encode(first[0]["points"][2:3])[0], atol=1e-6)  # seen: its first latent
    assert not torch.allclose(w[1], model.encode(extra["points"][1:2])[0], atol=1e-3)


def test_latent_cache_needs_the_item_index(fc_ae_ckpt):
    model = tiny_lgan(fc_ae_ckpt, latent_cache=True)
    with pytest.raises(ValueError, match=r"latent_cache=true needs .*batch\['index'\].*model.latent_cache=false"):
        model._real_latents({"points": torch.randn(2, N, 3), "category": torch.zeros(2)})
