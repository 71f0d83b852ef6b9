"""pc3d: learning 3D point clouds from images and from data alone (PyTorch Lightning)."""

__version__ = "0.1.0"
