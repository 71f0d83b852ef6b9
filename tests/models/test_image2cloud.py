"""Image2Cloud: frozen autoencoder, warm start, latent regression, adversarial term, test metrics, baseline."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from pc3d.models import Image2Cloud
from pc3d.models.image2cloud import load_frozen_autoencoder, pixel_features
from pc3d.nn import FCDecoder, PointCritic, ResNetImageEncoder, TreeGenerator
from tests.helpers import save_autoencoder_ckpt, tiny_autoencoder_config

LATENT, N, S = 8, 64, 32
TREE = {"_target_": "pc3d.nn.TreeGenerator", "features": [LATENT, 16, 3], "degrees": [4, 16], "support": 2}


def ae_config(decoder=None) -> dict:
    return tiny_autoencoder_config(LATENT, decoder or TREE)


@pytest.fixture
def ae_ckpt(tmp_path):
    """A pc3d-train-style autoencoder checkpoint (weights + plain config), with non-trivial BN statistics."""
    return save_autoencoder_ckpt(tmp_path / "ae.ckpt", ae_config(), n_points=N)


def make_model(ae_ckpt=None, decoder=None, **kw) -> Image2Cloud:
    torch.manual_seed(1)
    enc = ResNetImageEncoder("resnet18", latent_dim=LATENT, input_size=S)
    dec = decoder if decoder is not None else instantiate(TREE)
    kw.setdefault("latent_weight", 1.0 if ae_ckpt else 0.0)
    kw.setdefault("optimizer", lambda p: torch.optim.Adam(p, lr=1e-3))
    return Image2Cloud(enc, dec, latent_dim=LATENT, ae_ckpt_path=None if ae_ckpt is None else str(ae_ckpt), **kw)


def batches(n: int = 8, batch_size: int = 4, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = [{"image": torch.rand(3, S, S, generator=g), "points": torch.randn(N, 3, generator=g) * 0.3,
              "category": i % 2} for i in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def trainer(**kw) -> L.Trainer:
    kw.setdefault("max_epochs", 1)
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **kw)


def test_frozen_autoencoder_does_not_change_and_is_not_trained(ae_ckpt):
    model = make_model(ae_ckpt)
    reference = load_frozen_autoencoder(ae_ckpt)
    trainer(max_steps=3, max_epochs=5).fit(model, batches())
    ae = model.frozen_autoencoder
    assert ae is not None and not ae.training
    ref_state = reference.state_dict()
    for k, v in ae.state_dict().items():  # parameters and BatchNorm statistics
        assert torch.equal(v, ref_state[k]), k
    assert all(not p.requires_grad for p in ae.parameters())
    # not in the optimizer, the module tree or the checkpointed state
    opt_params = {id(p) for g in model.trainer.optimizers[0].param_groups for p in g["params"]}
    assert not opt_params & {id(p) for p in ae.parameters()}
    assert not any(k.startswith(("ae.", "_ae")) for k in model.state_dict())
    assert all(m is not ae for m in model.modules())
    # while the image encoder did train
    assert model.trainer.global_step == 3


def test_decoder_warm_start_from_the_autoencoder(ae_ckpt):
    model = make_model(ae_ckpt)
    model.setup("fit")
    ae_dec = load_frozen_autoencoder(ae_ckpt).decoder.state_dict()
    for k, v in model.decoder.state_dict().items():
        assert torch.equal(v, ae_dec[k])
    # without the warm start the decoder keeps its own init
    cold = make_model(ae_ckpt, init_decoder_from_ae=False)
    cold.setup("fit")
    assert not torch.equal(cold.decoder.layers[0].W_branch, torch.as_tensor(ae_dec["layers.0.W_branch"]))


def test_warm_start_needs_the_same_decoder(ae_ckpt):
    other = TreeGenerator([LATENT, 32, 3], [4, 16], support=2)
    with pytest.raises(ValueError, match="does not have the shape"):
        make_model(ae_ckpt, decoder=other).setup("fit")
    with pytest.raises(ValueError, match="cannot initialize the decoder .FCDecoder. from the autoencoder's TreeGen"):
        make_model(ae_ckpt, decoder=FCDecoder(LATENT, N, hidden=(16,))).setup("fit")
    with pytest.warns(UserWarning, match="no ae_ckpt_path given, so no latent loss"):
        assert make_model(None, latent_weight=1.0).latent_weight == 0.0
    with pytest.raises(ValueError, match="needs a critic"):
        make_model(None, adv_weight=0.1)


def test_latent_loss_falls_when_overfitting_one_batch(ae_ckpt):
    model = make_model(ae_ckpt, cd_weight=0.0, latent_weight=1.0)
    seen: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(float(trainer.callback_metrics["train/latent_l1_step"]))

    one = batches(n=4, batch_size=4)
    L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, max_epochs=40, limit_val_batches=0, callbacks=[Record()]).fit(model, one)
    assert len(seen) == 40
    assert seen[-1] < 0.3 * seen[0], seen[::5]
    assert min(seen[-5:]) < min(seen[:5])


def test_adversarial_term_trains_an_unconditional_critic(ae_ckpt):
    critic = PointCritic(conv=(8, 16), head=(16, 8))
    model = make_model(ae_ckpt, adv_weight=0.1, critic=critic, n_critic=2)
    before = [p.detach().clone() for p in critic.parameters()]
    tr = trainer(max_epochs=1)
    tr.fit(model, batches(n=8, batch_size=4))
    assert tr.global_step == 2 * (2 + 1)  # n_critic + 1 optimizer steps per batch
    changed = [not torch.equal(a, b) for a, b in zip(before, critic.parameters())]
    assert sum(changed) >= len(changed) - 4  # the faithful head's biases get no gradient
    for key in ("train/d_loss", "train/gp", "train/wasserstein", "train/adv_g", "train/latent_l1", "train/cd"):
        assert key in tr.callback_metrics
    assert any(k.startswith("critic.") for k in model.state_dict())


def test_no_critic_without_adversarial_weight():
    model = make_model(None, critic=PointCritic(conv=(8,), head=(8,)))
    assert model.critic is None and not any(k.startswith("critic.") for k in model.state_dict())


def test_test_metrics_per_category_match_the_metrics_module():
    from pc3d.callbacks import ReconstructionMetrics
    from pc3d.metrics.reconstruction import reconstruction_metrics

    model = make_model(None)
    metrics = ReconstructionMetrics(metrics=("cd", "emd", "fscore"), tau=0.2)
    tr = trainer(callbacks=[metrics])
    tr.test(model, batches(n=6, batch_size=4), verbose=False)
    table = metrics.results
    assert set(table) == {"0", "1", "all"} and table["all"]["count"] == 6
    model.eval()
    items = list(batches(n=6, batch_size=6))[0]
    with torch.no_grad():
        ref = reconstruction_metrics(model(items["image"]), items["points"], metrics=("cd", "emd", "fscore"), tau=0.2)
    for k in ("cd", "emd", "fscore"):
        assert tr.callback_metrics[f"test/{k}"].item() == pytest.approx(float(ref[k].mean()), rel=1e-5)
        mask = items["category"] == 1
        assert tr.callback_metrics[f"test/{k}_1"].item() == pytest.approx(float(ref[k][mask].mean()), rel=1e-5)


def test_pixel_features_are_area_means():
    img = torch.rand(2, 3, 32, 32)
    f = pixel_features(img, size=4)
    assert f.shape == (2, 48)
    assert torch.allclose(f.view(2, 3, 4, 4)[:, :, 1, 2], img[:, :, 8:16, 16:24].mean((-1, -2)))


def test_emd_term_on_subsets_matches_emd_and_evens_out_density():
    from pc3d.ops.emd import emd

    model = make_model(emd_weight=0.5, emd_points=None)
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(2, N, 3, generator=g)
    pred = torch.rand(2, N, 3, generator=g).requires_grad_(True)
    # the whole cloud: exactly the auction EMD
    assert torch.allclose(model.emd_loss(pred, truth), emd(pred, truth, method="auction"))
    # subsets: N/2 points of each, a different draw every call, gradient on the drawn points only
    model.emd_points = N // 2
    torch.manual_seed(0)
    val = model.emd_loss(pred, truth)
    (grad,) = torch.autograd.grad(val, pred)
    touched = grad.abs().sum(-1) > 0
    assert touched.sum(1).tolist() == [N // 2, N // 2]
    # a clumped prediction (every point on 4 true points) costs more than an even one, under EMD
    clump = truth[:, :4].repeat(1, N // 4, 1)
    model.emd_points = None
    assert model.emd_loss(clump, truth) > 2 * model.emd_loss(truth + 0.01, truth)
    with pytest.raises(ValueError, match="emd_points"):
        make_model(emd_points=0)


def test_emd_weight_adds_the_logged_term(ae_ckpt):
    model = make_model(ae_ckpt, emd_weight=0.25, emd_points=8)
    tr = trainer(max_epochs=1)
    tr.fit(model, batches(n=4, batch_size=4))
    m = tr.callback_metrics
    expected = m["train/cd"] + m["train/latent_l1"] + 0.25 * m["train/emd_subset"]
    assert torch.allclose(m["train/loss"], expected, rtol=1e-5)


def test_decoder_warm_start_refuses_another_forward_rule():
    """Same shapes, other ancestor_scale: copying the AE's decoder would silently change its function."""
    model = make_model(decoder=instantiate({**TREE, "ancestor_scale": "mean"}))
    src = instantiate({**TREE, "ancestor_scale": "sum"})
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    with pytest.raises(ValueError, match="ancestor_scale"):
        model._copy_decoder(src)
    assert all(torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())
    model._copy_decoder(instantiate({**TREE, "ancestor_scale": "mean"}))  # same rule: copied
