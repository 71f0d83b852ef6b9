"""Multi-view Image2Cloud (issue 16): view fusion (mean / attention), masks, gradients, the unchanged
single-view path, view sampling in training, multi-view data items and a multi-view fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pc3d.models import Image2Cloud
from pc3d.nn import AttentionViewPooling, FCDecoder, ResNetImageEncoder, mean_view_pooling


def tiny_model(fusion: str = "mean", seed: int = 0, **kw) -> Image2Cloud:
    torch.manual_seed(seed)
    enc = ResNetImageEncoder(latent_dim=8, arch="resnet10", input_size=32)
    return Image2Cloud(enc, FCDecoder(8, 16, hidden=(16,)), latent_dim=8, latent_weight=0.0, fusion=fusion, **kw)


def images(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def make_scores_nontrivial(pool: AttentionViewPooling) -> None:
    """The scoring head starts at zero (= the mean); give it weights so that views get different weights."""
    torch.manual_seed(3)
    nn.init.normal_(pool.score[2].weight, std=1.0)


@pytest.mark.parametrize("fusion", ["mean", "attention"])
def test_identical_views_equal_the_single_view(fusion):
    model = tiny_model(fusion).eval()
    if model.view_pooling is not None:
        make_scores_nontrivial(model.view_pooling)
    x = images(2)
    with torch.no_grad():
        single = model(x)
        for v in (1, 2, 3, 5):
            multi = model(x[:, None].expand(2, v, 3, 32, 32).contiguous())
            torch.testing.assert_close(multi, single, rtol=1e-5, atol=1e-6)
        # one view: bit-identical (a mean of one, a softmax weight of exactly 1)
        assert torch.equal(model(x[:, None]), single)


def test_attention_weights_sum_to_one_and_respect_the_mask():
    pool = AttentionViewPooling(latent_dim=6, hidden=5)
    make_scores_nontrivial(pool)
    z = torch.randn(3, 4, 6)
    mask = torch.tensor([[True, True, True, True], [True, False, True, False], [False, False, True, False]])
    w = pool.weights(z, mask)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    assert w[2, 2] == 1.0
    assert not torch.allclose(w[0], torch.full((4,), 0.25))  # learned scores: not uniform
    # masked views do not matter, whatever they hold
    z2 = z.clone()
    z2[~mask] = 1e3
    torch.testing.assert_close(pool(z2, mask), pool(z, mask))
    torch.testing.assert_close(pool(z[2:, 2:3]), z[2, 2][None])
    # the masked mean
    torch.testing.assert_close(mean_view_pooling(z, mask)[1], (z[1, 0] + z[1, 2]) / 2)
    torch.testing.assert_close(mean_view_pooling(z), z.mean(1))
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        pool(z, mask[:, :2])
    with pytest.raises(ValueError, match="at least one valid view"):
        pool(z, torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, V, D\)"):
        mean_view_pooling(z[0])


def test_fresh_attention_starts_as_the_mean():
    pool = AttentionViewPooling(latent_dim=6)
    z = torch.randn(2, 3, 6)
    torch.testing.assert_close(pool(z), z.mean(1))


def test_gradient_flows_through_the_fusion():
    model = tiny_model("attention").train()
    make_scores_nontrivial(model.view_pooling)
    x = images(2, 3)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    model(x, mask).square().mean().backward()
    for name, module in (("encoder", model.encoder), ("decoder", model.decoder), ("pooling", model.view_pooling)):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    first_conv = next(p for p in model.encoder.parameters())
    assert torch.isfinite(first_conv.grad).all()


def test_single_view_default_is_unchanged():
    """Default (fusion=mean): no new parameters, the same state_dict keys and the same outputs as the
    single-view path ``decoder(encoder(x))`` of pc3d before issue 16."""
    model = tiny_model()
    assert model.view_pooling is None and model.fusion == "mean" and model.views_per_step is None
    assert {k.split(".")[0] for k in model.state_dict()} == {"encoder", "decoder"}
    # a state_dict of the same networks without any fusion loads strictly
    ref_enc, ref_dec = model.encoder, model.decoder
    other = tiny_model(seed=5)
    other.load_state_dict({**{f"encoder.{k}": v for k, v in ref_enc.state_dict().items()},
                           **{f"decoder.{k}": v for k, v in ref_dec.state_dict().items()}}, strict=True)
    x = images(4)
    model.eval()
    other.eval()
    with torch.no_grad():
        expect = ref_dec(ref_enc(x))
        assert torch.equal(model(x), expect)
        assert torch.equal(other(x), expect)
        assert torch.equal(model.predict_clouds(x), expect)
    # the optimizer sees the same parameters as before (encoder then decoder)
    opt = model.configure_optimizers()[0]
    assert [p for g in opt.param_groups for p in g["params"]] == [*ref_enc.parameters(), *ref_dec.parameters()]
    # attention adds its parameters only when asked for
    att = tiny_model("attention")
    assert {k for k in att.state_dict() if k.startswith("view_pooling.")} == {
        "view_pooling.score.0.weight", "view_pooling.score.0.bias", "view_pooling.score.2.weight",
        "view_pooling.score.2.bias"}


def test_predict_cloud_from_views_shapes_and_mask():
    model = tiny_model("attention")
    make_scores_nontrivial(model.view_pooling)
    x = images(2, 4)
    one = model.predict_cloud_from_views(x[0], batch_size=3)
    assert one.shape == (16, 3)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    both = model.predict_cloud_from_views(x, mask, batch_size=3)
    assert both.shape == (2, 16, 3)
    torch.testing.assert_close(both[0], one, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both[1], model.predict_cloud_from_views(x[1, :2]), rtol=1e-5, atol=1e-6)
    assert model.training  # the mode is restored
    with pytest.raises(ValueError, match=r"\(V, 3, H, W\)"):
        model.predict_cloud_from_views(torch.rand(3, 32, 32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="fusion"):
        tiny_model("max")
    with pytest.raises(ValueError, match="views_per_step"):
        tiny_model(views_per_step=[3, 2])
    with pytest.raises(ValueError, match="views_per_step"):
        tiny_model(views_per_step=[0, 2])


def test_training_draws_a_random_number_of_valid_views():
    model = tiny_model("attention", views_per_step=[1, 8])
    x = images(3, 4)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    seen = set()
    torch.manual_seed(0)
    for _ in range(40):
        sel, m = model._draw_views(x, mask)
        k = sel.shape[1]
        seen.add(k)
        assert 1 <= k <= 4 and m.shape == (3, k)
        assert m[:, 0].all()  # every object keeps a valid view
        assert int(m[1].sum()) == min(k, 2) and int(m[2].sum()) == 1
        for b in range(3):  # the selected valid views are views of that object
            for j in range(k):
                if m[b, j]:
                    assert any(torch.equal(sel[b, j], x[b, v]) for v in range(4) if mask[b, v])
    assert seen == {1, 2, 3, 4}
    model.views_per_step = None
    sel, m = model._draw_views(x, mask)
    assert torch.equal(sel, x) and torch.equal(m, mask)


def test_multiview_items(tiny_builtin):
    """views=k items: (k, 3, H, W) + mask; the first view is the single-view choice; padding is masked."""
    from pc3d.data import PC15kDataset
    from pc3d.data.datamodule import collate
    from pc3d.data.renderings import ImageCloudDataset

    clouds = PC15kDataset(tiny_builtin / "ShapeNetCore.v2.PC15k", split="val", n_points=32, sampling="fixed")
    single = ImageCloudDataset(clouds, tiny_builtin / "ShapeNetRendering", view="seeded", image_size=32)
    multi = single.variant(views=3)
    a, b = single[0], multi[0]
    assert a["image"].shape == (3, 32, 32) and "view_mask" not in a
    assert b["image"].shape == (3, 3, 32, 32)
    assert torch.equal(b["image"][0], a["image"])  # tiny data: one view per shape, then padding
    assert b["view_mask"].tolist() == [True, False, False] and b["view"].tolist() == [a["view"], -1, -1]
    assert (b["image"][1:] == 0).all()
    batch = collate([multi[i] for i in range(2)])
    assert batch["image"].shape == (2, 3, 3, 32, 32) and batch["view_mask"].shape == (2, 3)
    with pytest.raises(ValueError, match="views"):
        single.variant(views=0)


def test_multiview_fit_and_checkpoint_round_trip(tiny_builtin, tmp_path):
    """pc3d-train with several views per item and attention fusion; the checkpoint rebuilds the pooling."""
    from pc3d.cli.train import train
    from pc3d.models import load_model
    from tests.helpers import compose_train

    cfg = compose_train(["experiment=img2cloud", "model.ae_ckpt_path=null", "model.latent_weight=0",
                         "model.latent_dim=8", "model.decoder.features=[8,16,3]", "model.decoder.degrees=[4,16]",
                         "model.decoder.support=2", "data.n_points=64", "data.image_size=32",
                         "model.encoder.input_size=32", "data.train_views=2", "data.eval_views=2",
                         "model.fusion=attention", "model.views_per_step=[1,2]", "trainer.accelerator=cpu",
                         "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                         "trainer.num_sanity_val_steps=0", "test=false", "callbacks.progress_bar=null",
                         "callbacks.model_summary=null"], tmp_path, tiny_builtin)
    res = train(cfg)
    batch = next(iter(res["datamodule"].val_dataloader()))
    assert batch["image"].dim() == 5 and batch["view_mask"].shape[1] == 2
    model = load_model(res["last_ckpt"])
    assert model.fusion == "attention" and isinstance(model.view_pooling, AttentionViewPooling)
    assert model.views_per_step == [1, 2]
    trained = res["model"].to("cpu").eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(batch["image"], batch["view_mask"]),
                                   trained(batch["image"], batch["view_mask"]))
