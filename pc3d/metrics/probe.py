"""Linear probe: how linearly separable are frozen features? (representation check)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ProbeResult:
    """Outcome of :func:`linear_probe`: test accuracy, per-class test accuracy, train accuracy."""

    accuracy: float
    per_class: dict[int, float]
    train_accuracy: float


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    weight_decay: float = 1e-3,
    max_iter: int = 500,
) -> ProbeResult:
    """Fit a multinomial logistic regression on frozen train features, score it on test features.

    Features are standardised with the train mean and std, then the weights ``W`` (D, C) and bias
    ``b`` (C,) minimise ``mean_i CE(softmax(x_i W + b), y_i) + weight_decay * ||W||^2`` by
    full-batch L-BFGS in float64 (a convex problem, so the result does not depend on the seed).

    Shapes:
        train_features: (N_train, D); train_labels: (N_train,) int
        test_features: (N_test, D); test_labels: (N_test,) int
    """
    for name, f, y in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        if f.dim() != 2 or y.dim() != 1 or f.shape[0] != y.shape[0] or f.shape[0] == 0:
            raise ValueError(f"linear_probe: {name} features must be (N, D) and labels (N,) with N > 0, "
                             f"got {tuple(f.shape)} and {tuple(y.shape)}")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"linear_probe: feature sizes differ: train D={train_features.shape[1]}, "
                         f"test D={test_features.shape[1]}")
    # Works inside Lightning's test loop too, which runs under torch.inference_mode().
    with torch.inference_mode(False), torch.enable_grad():
        xtr = train_features.detach().to("cpu", torch.float64).clone()
        xte = test_features.detach().to("cpu", torch.float64).clone()
        ytr = train_labels.detach().to("cpu", torch.long).clone()
        yte = test_labels.detach().to("cpu", torch.long).clone()
        mean, std = xtr.mean(0), xtr.std(0, unbiased=False).clamp_min(1e-8)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
        n_classes = int(max(ytr.max(), yte.max())) + 1
        weight = torch.zeros(xtr.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xtr @ weight + bias, ytr) + weight_decay * weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            pred_te = (xte @ weight + bias).argmax(1)
            pred_tr = (xtr @ weight + bias).argmax(1)
    correct = pred_te == yte
    per_class = {int(c): float(correct[yte == c].double().mean()) for c in yte.unique()}
    return ProbeResult(float(correct.double().mean()), per_class, float((pred_tr == ytr).double().mean()))
