"""Image encoder: a torchvision ResNet whose pooled features are projected to a latent code."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RESNET_ARCHS", "ResNetImageEncoder"]

#: Supported backbones and the width of their pooled feature.
#: ``resnet10``: torchvision's ``ResNet`` with one BasicBlock per stage (4.9 M parameters against
#: ResNet-18's 11.2 M; no ImageNet weights exist for it), the image encoder of the shipped weights.
RESNET_ARCHS = {"resnet10": 512, "resnet18": 512, "resnet34": 512, "resnet50": 2048}
#: Normalization of torchvision's ImageNet weights (applied inside :class:`ResNetImageEncoder`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("resize", "center_crop")
#: Smallest input side accepted (ResNet halves the resolution five times).
MIN_SIZE = 32
_WEIGHTS_ENUMS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights"}


class ResNetImageEncoder(nn.Module):
    """ResNet image encoder (He et al., CVPR 2016) projected to a latent code, as in 3D-LMNet.

    ``images`` in [0, 1] are brought to ``input_size x input_size`` (``resize_mode="resize"``:
    bilinear, antialiased; ``"center_crop"``: the central square, so the input must be at
    least that large), normalized with the ImageNet mean/std, passed through the torchvision
    ResNet up to its global average pool (``f``, ``feature_dim`` = 512 for ResNet-18/34,
    2048 for ResNet-50) and projected::

        z = W f + b                                                      (B, latent_dim)

    Weights: none are downloaded by default (``pretrained=None``: random init,
    ``reset_parameters``). ``weights_path`` loads a local file with
    ``torch.load(weights_only=True)``: a torchvision ResNet state dict (its ``fc.*`` are
    ignored), optionally under ``"state_dict"`` and/or a ``"backbone."`` prefix.
    ``pretrained="imagenet"`` uses torchvision's ImageNet-1k weights: from the torch hub
    cache (``torch.hub.get_dir()/checkpoints``) when the file is there, else downloaded with
    a socket timeout; offline this raises ``RuntimeError`` saying where to put the file.

    The default ``resize_mode="resize"`` keeps the whole 137 px 3D-R2N2 view (a crop to 128
    would cut objects that fill the frame, as the built-in renderings at distance ratio 0.8
    do).

    Args:
        arch: ``"resnet10"`` (one BasicBlock per stage; random init only), ``"resnet18"``,
            ``"resnet34"`` or ``"resnet50"``.
        latent_dim: size of the output code.
        input_size: side the images are brought to (>= 32).
        resize_mode: ``"resize"`` or ``"center_crop"``.
        pretrained: ``None`` or ``"imagenet"``.
        weights_path: a local backbone weights file (overrides ``pretrained``).
        download_timeout: seconds before a blocked ImageNet download gives up.

    Shapes:
        images: (B, 3, H, W) float in [0, 1]
        returns: (B, latent_dim); :meth:`features`: (B, feature_dim)
    """

    def __init__(
        self,
        arch: str = "resnet18",
        latent_dim: int = 128,
        input_size: int = 128,
        resize_mode: str = "resize",
        pretrained: str | None = None,
        weights_path: str | os.PathLike | None = None,
        download_timeout: float = 20.0,
    ) -> None:
        super().__init__()
        import torchvision

        if arch not in RESNET_ARCHS:
            raise ValueError(f"ResNetImageEncoder: arch must be one of {sorted(RESNET_ARCHS)}, got {arch!r}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"ResNetImageEncoder: resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        if isinstance(latent_dim, bool) or int(latent_dim) != latent_dim or latent_dim < 1:
            raise ValueError(f"ResNetImageEncoder: latent_dim must be a positive int, got {latent_dim!r}")
        if isinstance(input_size, bool) or int(input_size) != input_size or input_size < MIN_SIZE:
            raise ValueError(f"ResNetImageEncoder: input_size must be an int >= {MIN_SIZE}, got {input_size!r}")
        if pretrained not in (None, "imagenet"):
            raise ValueError(f"ResNetImageEncoder: pretrained must be null or 'imagenet', got {pretrained!r}")
        self.arch = arch
        self.latent_dim = int(latent_dim)
        self.input_size = int(input_size)
        self.resize_mode = resize_mode
        self.feature_dim = RESNET_ARCHS[arch]
        if arch == "resnet10":
            from torchvision.models.resnet import BasicBlock, ResNet

            if pretrained == "imagenet":
                raise ValueError("ResNetImageEncoder: there are no ImageNet weights for resnet10; use resnet18/34/50")
            self.backbone = ResNet(BasicBlock, [1, 1, 1, 1])
        else:
            self.backbone = getattr(torchvision.models, arch)(weights=None)
        self.backbone.fc = nn.Identity()
        self.proj = nn.Linear(self.feature_dim, self.latent_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_source = "random"
        if weights_path is not None:
            self.load_backbone_weights(weights_path)
        elif pretrained == "imagenet":
            self._load_imagenet(float(download_timeout))

    # ------------------------------------------------------------------ weights
    def reset_parameters(self) -> None:
        for m in self.backbone.modules():
            if m is not self.backbone and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.proj.reset_parameters()
        self.weights_source = "random"

    def load_backbone_weights(self, path: str | os.PathLike) -> None:
        """Load a torchvision ResNet state dict from a local file (``weights_only=True``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ResNetImageEncoder: weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self._load_state(state, str(path))
        self.weights_source = str(path)

    def _load_state(self, state, source: str) -> None:
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"ResNetImageEncoder: {source} holds no state dict (got {type(state).__name__})")
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.backbone.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        bad = [f"{k}: file {tuple(state[k].shape)} vs {self.arch} {tuple(v.shape)}" for k, v in own.items()
               if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or unexpected or bad:
            raise ValueError(f"ResNetImageEncoder: {source} does not fit a torchvision {self.arch}: "
                             f"missing={missing[:5]}, unexpected={unexpected[:5]}, shape mismatches={bad[:5]}")
        self.backbone.load_state_dict(state, strict=True)

    def _load_imagenet(self, timeout: float) -> None:
        import torchvision

        weights = getattr(torchvision.models, _WEIGHTS_ENUMS[self.arch]).IMAGENET1K_V1
        url = weights.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if cached.is_file():
            self._load_state(torch.load(cached, map_location="cpu", weights_only=True), str(cached))
            self.weights_source = str(cached)
            return
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
        except Exception as exc:  # URLError, socket timeout, DNS failure, HTTP errors ...
            raise RuntimeError(
                f"ResNetImageEncoder: pretrained='imagenet' needs the {self.arch} ImageNet weights, which are not "
                f"cached at {cached} and could not be downloaded from {url} ({type(exc).__name__}: {exc}). "
                f"Copy the file there, or pass weights_path=<local file>, or use pretrained=null."
            ) from exc
        finally:
            socket.setdefaulttimeout(old)
        self._load_state(state, url)
        self.weights_source = url

    # ------------------------------------------------------------------ forward
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Check, bring to ``input_size`` and normalize: (B, 3, H, W) in [0, 1] -> (B, 3, S, S)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"ResNetImageEncoder: expected images of shape (B, 3, H, W), got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"ResNetImageEncoder: expected float images in [0, 1], got dtype {images.dtype}")
        h, w = images.shape[-2:]
        s = self.input_size
        if (h, w) != (s, s):
            if self.resize_mode == "center_crop":
                if h < s or w < s:
                    raise ValueError(f"ResNetImageEncoder: center_crop to {s} px needs images of at least {s}x{s}, "
                                     f"got {h}x{w}")
                top, left = (h - s) // 2, (w - s) // 2
                images = images[..., top:top + s, left:left + s]
            else:
                if min(h, w) < MIN_SIZE // 2:
                    raise ValueError(f"ResNetImageEncoder: images of {h}x{w} px are too small (min side "
                                     f"{MIN_SIZE // 2})")
                images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False,
                                       antialias=h > s or w > s)
        return (images - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, (B, 3, H, W) -> (B, feature_dim)."""
        return self.backbone(self.preprocess(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(images))

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, input={self.input_size}px ({self.resize_mode}), feature_dim={self.feature_dim}, "
                f"latent_dim={self.latent_dim}, weights={self.weights_source}")
