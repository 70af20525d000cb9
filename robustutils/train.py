"""One loop for standard and adversarial training: the attack is an argument (``None`` = standard).

Madry et al.'s min-max training replaces each batch by ``attack(model, x, y)`` before the
gradient step. ``eps_ramp`` grows the attack's eps linearly from 0 over that fraction of all
steps, which is what lets MNIST at eps 0.3 train from scratch.
"""

import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import batches
from .evaluate import evaluate
from .runtime import set_seed

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "onecycle", "step", "cosine")


def make_optimizer(model: torch.nn.Module, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Return SGD (with momentum) or Adam over the model's parameters."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {OPTIMIZERS}")


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int):
    """Return a per-step LR scheduler: constant, one-cycle (peak = the optimizer's lr),
    step (x0.1 at 50% and 75% of training) or cosine."""
    lr = optimizer.param_groups[0]["lr"]
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "step":
        milestones = [total_steps // 2, (3 * total_steps) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
    raise ValueError(f"unknown schedule {name!r}: choose one of {SCHEDULES}")


def eps_factor(step: int, total_steps: int, ramp: float) -> float:
    """Return the fraction of the full eps used at ``step``: linear from 0 to 1 over ``ramp`` of training."""
    if ramp <= 0:
        return 1.0
    return min(1.0, step / (ramp * total_steps))


def _epoch_batches(train_data, batch_size: int, device: torch.device, generator: torch.Generator):
    if isinstance(train_data, tuple):
        yield from batches(*train_data, batch_size, shuffle=True, generator=generator)
    else:  # a DataLoader (e.g. ImageNet): move each batch to the model's device
        for xb, yb in train_data:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def madry_loss(model, x, y, attack=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Madry et al.'s objective: mean cross-entropy (nats) on ``attack(model, x, y)`` (or ``x``).

    Return (loss, logits of the inputs trained on). Any ``loss(model, x, y, attack)`` with this
    contract can replace it in :func:`fit`, e.g. :class:`robustutils.trades.TradesLoss`.
    """
    if attack is not None:
        x = attack(model, x, y)
    model.train()
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def train_step(model, optimizer, x, y, attack=None, loss=madry_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient step on ``loss(model, x, y, attack)``; return (summed loss, correct count) on the device."""
    value, logits = loss(model, x, y, attack)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value.detach() * len(y), (logits.argmax(1) == y).sum()


def fit(model: torch.nn.Module, train_data, *, epochs: int, batch_size: int = 128, attack=None,
        optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
        schedule: str = "onecycle", eps_ramp: float = 0.0, loss=madry_loss, test_data=None,
        eval_attack=None, seed: int = 0, progress: bool = True) -> list[dict]:
    """Train ``model`` in place; return its history, one dict per epoch.

    ``train_data`` is ``(x, y)`` tensors (moved whole to the model's device) or a DataLoader.
    ``attack(model, x, y)`` makes the training inputs (``None``: standard training); ``eps_ramp``
    needs an attack with ``.scaled(factor)`` such as :class:`robustutils.attacks.PGD`. ``loss``
    is the training objective (default :func:`madry_loss`; TRADES: ``trades.TradesLoss(beta)``).
    With ``test_data=(x, y)`` each epoch also records clean accuracy and robust accuracy under
    ``eval_attack`` (default: ``attack`` at full eps). History keys: epoch, lr, eps, train_loss
    (mean training loss, nats), train_acc (on the inputs the loss scores), time_s, test_clean_acc,
    test_robust_acc (fractions in [0, 1], or None).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1; got {epochs}, {batch_size}")
    if eps_ramp > 0 and not hasattr(attack, "scaled"):
        raise ValueError("eps_ramp needs an attack with .scaled(factor), e.g. attacks.PGD(...)")
    generator = set_seed(seed)
    device = next(model.parameters()).device
    if isinstance(train_data, tuple):
        train_data = tuple(t.to(device) for t in train_data)
        steps_per_epoch = math.ceil(len(train_data[1]) / batch_size)
    else:
        steps_per_epoch = len(train_data)
    if steps_per_epoch == 0:
        raise ValueError("train_data is empty")
    total = epochs * steps_per_epoch
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay)
    sched = make_schedule(opt, schedule, total)
    eval_attack = eval_attack if eval_attack is not None else attack
    history, step = [], 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        bar = tqdm(_epoch_batches(train_data, batch_size, device, generator), total=steps_per_epoch,
                   desc=f"epoch {epoch}/{epochs}", disable=not progress, file=sys.stdout, leave=False)
        loss_sum, correct, seen = _run_epoch(model, opt, sched, bar, attack, loss, eps_ramp, step, total)
        step += steps_per_epoch
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
               "eps": getattr(attack, "eps", 0.0) * eps_factor(step, total, eps_ramp),
               "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "time_s": time.perf_counter() - start, "test_clean_acc": None, "test_robust_acc": None}
        if test_data is not None:
            result = evaluate(model, *test_data, attack=eval_attack)
            row.update(test_clean_acc=result["clean_acc"], test_robust_acc=result["robust_acc"])
        history.append(row)
        if progress:
            print(_summary(row), flush=True)
    return history


def _run_epoch(model, optimizer, scheduler, batch_iter, attack, loss, eps_ramp: float, step: int, total: int):
    """Train on every batch of ``batch_iter``; return (summed loss, correct, seen) read back once."""
    loss_sum = correct = 0
    seen = 0
    for xb, yb in batch_iter:
        step_attack = attack.scaled(eps_factor(step, total, eps_ramp)) if eps_ramp > 0 else attack
        batch_loss, batch_correct = train_step(model, optimizer, xb, yb, step_attack, loss)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(yb)
        scheduler.step()
        step += 1
    return float(loss_sum), int(correct), seen


def _summary(row: dict) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.3f}", f"train acc {row['train_acc']:.3f}"]
    if row["test_clean_acc"] is not None:
        parts.append(f"test clean {row['test_clean_acc']:.3f}")
    if row["test_robust_acc"] is not None:
        parts.append(f"robust {row['test_robust_acc']:.3f}")
    return " | ".join(parts + [f"{row['time_s']:.1f}s"])
