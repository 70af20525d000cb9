"""Clean and robust accuracy, with the attack settings recorded beside the numbers."""

import torch

from .data import batches


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Return the predicted labels [N] (int64, on the model's device) of inputs in [0, 1]."""
    was_training = model.training
    model.eval()
    device = _model_device(model)
    try:
        return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack=None,
             batch_size: int = 500) -> dict:
    """Return ``{"n", "clean_acc", "robust_acc", "attack"}``: accuracies as fractions in [0, 1].

    An example counts as robust when it is classified correctly both clean and after ``attack``
    (the clean input is itself in the threat model's ball), so ``robust_acc <= clean_acc``.
    ``attack`` is any ``attack(model, x, y) -> x_adv``; with ``None`` only clean accuracy is measured.
    Counts accumulate on the device and are read back at the end, not per batch.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch size mismatch: {x.shape[0]} inputs but {y.shape[0]} labels")
    device = _model_device(model)
    clean = torch.zeros((), dtype=torch.long, device=device)
    robust = torch.zeros((), dtype=torch.long, device=device)
    for xb, yb in batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        ok = predict(model, xb, batch_size) == yb
        clean += ok.sum()
        if attack is not None:
            robust += (ok & (predict(model, attack(model, xb, yb), batch_size) == yb)).sum()
    n = len(y)
    result = {"n": n, "clean_acc": clean.item() / n, "robust_acc": None, "attack": None}
    if attack is not None:
        result["robust_acc"] = robust.item() / n
        result["attack"] = attack.settings() if hasattr(attack, "settings") else repr(attack)
    return result
