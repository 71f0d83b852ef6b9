"""LightningModules ("systems"): they own losses, optimizers and the training loop."""

from pc3d.models.autoencoder import Autoencoder
from pc3d.models.io import load_model

__all__ = ["Autoencoder", "load_model"]
