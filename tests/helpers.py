"""Helpers shared by tests (importable as tests.helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The tiny built-in dataset every end-to-end test reads (the real generator and reader are used).
TINY_SYNTHETIC = {"n_per_category": 5, "n_points": 2500, "n_views": 1, "image_size": 32, "seed": 0}


def compose_train(overrides: list[str], output_dir: Path, builtin_root: Path | None = None):
    """Compose ``conf/train.yaml`` like the CLI does, with outputs in ``output_dir``.

    If ``builtin_root`` is given, the data config is pointed at it: the built-in data config
    gets the tiny generation parameters, a real-data config gets its PC15k folder as root.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from pc3d.cli._common import CONFIG_DIR
    from pc3d.data.taxonomy import PC15K_DIRNAME

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])
    if builtin_root is not None:
        with open_dict(cfg):
            if cfg.data.get("synthetic") is not None:
                cfg.data.synthetic.root = str(builtin_root)
                cfg.data.synthetic.update(TINY_SYNTHETIC)
            else:
                cfg.data.root = str(builtin_root / PC15K_DIRNAME)
                cfg.data.pointflow_split = False
            cfg.data.num_workers = 0
            cfg.data.batch_size = 4
    return cfg


def train_tiny_img2cloud(builtin_root: Path, output_dir: Path) -> Path:
    """Train a tiny :class:`pc3d.models.Image2Cloud` (no autoencoder, latent 8, 64 points, 32 px
    views) for one step on the tiny built-in data at ``builtin_root``, with ``pc3d-train``; returns
    its last checkpoint (which stores the data config, so eval-style code rebuilds the data)."""
    from pc3d.cli.train import train

    cfg = compose_train(["experiment=img2cloud", "model.ae_ckpt_path=null", "model.latent_weight=0",
                         "model.latent_dim=8",
                         "model.decoder.features=[8,16,3]", "model.decoder.degrees=[4,16]", "model.decoder.support=2",
                         "data.n_points=64", "data.image_size=32", "model.encoder.input_size=32",
                         "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                         "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null"], output_dir, builtin_root)
    return Path(train(cfg)["last_ckpt"])


def write_pc15k(root, spec, n_rows=64, name_map=None, seed=0):
    """Write ``root/<synset>/<split>/<model_id>.npy`` clouds; return ``{path: array}``.

    ``spec`` is ``{synset: {split: n_files}}``. Every cloud is an anisotropic Gaussian with its
    own offset, so every normalization mode has something to do.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for synset, splits in spec.items():
        for split, n in splits.items():
            d = root / synset / split
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pts = rng.normal(size=(n_rows, 3)) * [1.0, 2.0, 0.5] + rng.uniform(-3, 3, size=3)
                path = d / f"{synset}_{split}_{i:03d}.npy"
                np.save(path, pts.astype(np.float32))
                out[path] = pts.astype(np.float32)
    if name_map is not None:
        (root / "synsetoffset2category.txt").write_text("".join(f"{n}\t{s}\n" for n, s in name_map.items()))
    return out


def tiny_autoencoder_config(latent_dim: int, decoder: dict, hidden=(16, 32), data: dict | None = None) -> dict:
    """A ``pc3d_config``-style dict of a tiny :class:`pc3d.models.Autoencoder` (PointNet encoder
    with BatchNorm, the given ``decoder`` config); ``data`` is stored beside it when given."""
    cfg = {"model": {"_target_": "pc3d.models.Autoencoder", "latent_dim": latent_dim,
                     "encoder": {"_target_": "pc3d.nn.PointNetEncoder", "in_dim": 3, "hidden": list(hidden),
                                 "latent_dim": latent_dim},
                     "decoder": decoder}}
    if data is not None:
        cfg["data"] = data
    return cfg


def save_autoencoder_ckpt(path: Path, config: dict, n_points: int, seed: int = 0) -> Path:
    """Write a pc3d-train-style autoencoder checkpoint (weights + the plain ``config``) to ``path``.

    The model is built from ``config["model"]`` under ``torch.manual_seed(seed)`` and its
    BatchNorm running statistics are moved away from their init by three train-mode forward
    passes on random clouds of ``n_points`` points, so that a frozen copy can be told apart from
    a re-initialised or re-normalised one. Returns ``path``.
    """
    import torch
    from hydra.utils import instantiate

    torch.manual_seed(seed)
    ae = instantiate(config["model"])
    ae.train()
    with torch.no_grad():
        for _ in range(3):
            ae.encode(torch.randn(8, n_points, 3) * 0.3)
    torch.save({"state_dict": ae.state_dict(), "pc3d_config": config}, path)
    return path


def tiny_lgan_overrides(tmp_path: Path, latent_dim: int = 8, n_points: int = 64) -> list[str]:
    """Overrides that let ``model=lgan`` (e.g. ``experiment=lgan_synthetic``) run on the tiny data:
    a tiny FC-decoder autoencoder checkpoint written to ``tmp_path/lgan_ae.ckpt`` (trained on
    nothing, ``normalize=none`` like the built-in data) and the sizes that match it."""
    decoder = {"_target_": "pc3d.nn.FCDecoder", "latent_dim": latent_dim, "n_points": n_points, "hidden": [16]}
    config = tiny_autoencoder_config(latent_dim, decoder, data={"normalize": "none", "n_points": n_points})
    path = save_autoencoder_ckpt(Path(tmp_path) / "lgan_ae.ckpt", config, n_points=n_points)
    return [f"model.ae_ckpt_path={path}", f"model.latent_dim={latent_dim}", f"data.n_points={n_points}"]


# ---------------------------------------------------------------------------- references shared by the model tests
def gradient_penalty_reference(critic, real, fake, alpha):
    """WGAN-GP penalty computed one sample at a time: its own weight ``alpha[b]``, the norm over all
    its entries (clouds (B, N, 3) or latents (B, D)); the reference for ``gradient_penalty``."""
    import torch

    terms = []
    for b in range(len(real)):
        x = (alpha[b] * real[b] + (1 - alpha[b]) * fake[b]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        terms.append((torch.sqrt((g ** 2).sum()) - 1) ** 2)
    return torch.stack(terms).mean()


def assert_same_parameter_grads(loss, ref, params, atol: float):
    """Gradients of ``loss`` and ``ref`` w.r.t. ``params`` agree (both ``None`` for an unused one);
    returns those of ``loss``."""
    import torch

    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(grads, grads_ref):
        assert (a is None and b is None) or torch.allclose(a, b, atol=atol)
    return grads


def uniformity_reference(clouds, k: int):
    """Batch mean of Var(r) / mean(r)^2, r_i = mean distance to the k nearest other points (float64)."""
    import torch

    x = clouds.detach().double()
    d = torch.cdist(x, x)
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    r = d.topk(k, dim=2, largest=False).values.mean(dim=2)
    return (r.var(dim=1, unbiased=False) / r.mean(dim=1) ** 2).mean()


def fit_spying(model, loss_name: str, train_loader, seed: int = 1):
    """Fit ``model`` on the first batch of ``train_loader`` (one training step; CPU, no logger) after
    ``torch.manual_seed(seed)``, with its method ``loss_name`` wrapped by a spy. Returns the logged
    metrics and the first arguments the loss saw (detached copies)."""
    import lightning as L
    import torch

    seen = []
    loss = getattr(model, loss_name)

    def spy(x, *rest):
        seen.append(x.detach().clone())
        return loss(x, *rest)

    setattr(model, loss_name, spy)
    torch.manual_seed(seed)
    t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, max_epochs=1, limit_train_batches=1,
                  limit_val_batches=0)
    t.fit(model, train_dataloaders=train_loader)
    return dict(t.callback_metrics), seen


def assert_same_fit(model_a, run_a, model_b, run_b) -> None:
    """Two models fitted by :func:`fit_spying` (``run = (metrics, seen)``) are bit-identical: the
    same logged keys and values, the same first loss input, the same state dicts."""
    import torch

    (m_a, seen_a), (m_b, seen_b) = run_a, run_b
    assert set(m_a) == set(m_b)
    for key in m_a:
        assert torch.equal(m_a[key], m_b[key]), key
    assert torch.equal(seen_a[0], seen_b[0])
    for (name, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(x, y), name


def generation_metrics_reference(samples, refs) -> dict[str, float]:
    """MMD-CD, COV-CD and 1-NNA-CD of ``samples`` (S, N, 3) against ``refs`` (R, N, 3) by brute force in
    float64 (Chamfer squared, the sum of the two means; no normalization; no ties expected)."""
    import torch

    def cd(a, b):
        d = torch.cdist(a.double(), b.double()) ** 2
        return float(d.min(1).values.mean() + d.min(0).values.mean())

    S, R = len(samples), len(refs)
    d_sr = [[cd(s, r) for r in refs] for s in samples]
    mmd = sum(min(d_sr[i][j] for i in range(S)) for j in range(R)) / R
    cov = len({min(range(R), key=lambda j: d_sr[i][j]) for i in range(S)}) / R
    both = [*samples, *refs]
    labels = [0] * S + [1] * R
    hits = 0
    for i, x in enumerate(both):
        nearest = min((j for j in range(S + R) if j != i), key=lambda j: cd(x, both[j]))
        hits += labels[nearest] == labels[i]
    return {"mmd_cd": mmd, "cov_cd": cov, "1nna_cd": hits / (S + R)}
