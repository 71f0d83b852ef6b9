"""LightningModules ("systems"): they own losses, optimizers and the training loop."""

from pc3d.models.autoencoder import Autoencoder
from pc3d.models.classifier import PointCloudClassifier
from pc3d.models.image2cloud import Image2Cloud
from pc3d.models.io import load_model
from pc3d.models.lgan import LatentGAN
from pc3d.models.treegan import TreeGAN

__all__ = [
    "Autoencoder",
    "Image2Cloud",
    "LatentGAN",
    "PointCloudClassifier",
    "TreeGAN",
    "load_model",
]
