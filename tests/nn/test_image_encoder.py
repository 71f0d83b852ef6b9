"""ResNetImageEncoder: shapes for ResNet-18/50, normalization, resizing, local weights, offline ImageNet."""

from __future__ import annotations

import pytest
import torch

from pc3d.nn import ResNetImageEncoder
from pc3d.nn.image_encoder import IMAGENET_MEAN, IMAGENET_STD


@pytest.mark.parametrize("arch, feat", [("resnet18", 512), ("resnet50", 2048)])
def test_output_shapes(arch, feat):
    enc = ResNetImageEncoder(arch, latent_dim=24, input_size=32).eval()
    x = torch.rand(2, 3, 37, 41)
    assert enc.features(x).shape == (2, feat)
    assert enc(x).shape == (2, 24)
    assert enc.feature_dim == feat


def test_normalization_and_resize_match_a_manual_pipeline():
    torch.manual_seed(0)
    enc = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32).eval()
    x = torch.rand(3, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    # at the input size: only the ImageNet normalization happens
    assert torch.allclose(enc.preprocess(x), (x - mean) / std)
    with torch.no_grad():
        ref = enc.proj(enc.backbone((x - mean) / std))
        assert torch.allclose(enc(x), ref, atol=1e-6)
    # center crop takes the middle square; resize interpolates to the input size
    crop = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32, resize_mode="center_crop")
    big = torch.rand(1, 3, 40, 40)
    assert torch.allclose(crop.preprocess(big), (big[..., 4:36, 4:36] - mean) / std)
    assert enc.preprocess(big).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="at least 32x32"):
        crop.preprocess(torch.rand(1, 3, 20, 40))


def test_bad_inputs_are_refused():
    enc = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        enc(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="arch"):
        ResNetImageEncoder("vgg16")
    with pytest.raises(ValueError, match="input_size"):
        ResNetImageEncoder(input_size=16)


def test_local_weights_file_round_trip(tmp_path):
    torch.manual_seed(1)
    src = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32)
    state = {f"{k}": v for k, v in src.backbone.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # a torchvision file has a classifier head: ignored
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    dst = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32, weights_path=str(path))
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(dst.backbone.state_dict()[k], v)
    assert dst.weights_source == str(path)
    with pytest.raises(ValueError, match="does not fit a torchvision resnet50"):
        ResNetImageEncoder("resnet50", latent_dim=8, input_size=32, weights_path=str(path))
    with pytest.raises(FileNotFoundError):
        ResNetImageEncoder("resnet18", weights_path=str(tmp_path / "nope.pth"))


def test_imagenet_offline_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        from urllib.error import URLError

        raise URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError, match="not cached at .*could not be downloaded"):
        ResNetImageEncoder("resnet18", latent_dim=8, input_size=32, pretrained="imagenet")


def test_imagenet_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(2)
    src = torchvision.models.resnet18(weights=None)
    torch.save(src.state_dict(), cache / url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    enc = ResNetImageEncoder("resnet18", latent_dim=8, input_size=32, pretrained="imagenet")
    assert torch.equal(enc.backbone.conv1.weight, src.conv1.weight)


def test_resnet10_is_torchvision_resnet_with_one_block_per_stage():
    """The shipped image model's encoder: torchvision's ResNet(BasicBlock, [1, 1, 1, 1]), no ImageNet weights."""
    from torchvision.models.resnet import BasicBlock, ResNet

    enc = ResNetImageEncoder("resnet10", latent_dim=16, input_size=32).eval()
    ref = ResNet(BasicBlock, [1, 1, 1, 1])
    ref.fc = torch.nn.Identity()
    assert [n for n, _ in enc.backbone.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [len(getattr(enc.backbone, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    n = sum(p.numel() for p in enc.backbone.parameters())
    assert n == sum(p.numel() for p in ref.parameters()) and 4.8e6 < n < 5.0e6  # vs ResNet-18's 11.2 M
    ref.load_state_dict(enc.backbone.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(enc.features(x), ref.eval()((x - enc.mean) / enc.std), atol=1e-6)
    with pytest.raises(ValueError, match="no ImageNet weights for resnet10"):
        ResNetImageEncoder("resnet10", pretrained="imagenet")
