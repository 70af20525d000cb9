"""One loop for standard and adversarial training: the attack is an argument (``None`` = standard).

Madry et al.'s min-max training replaces each batch by ``attack(model, x, y)`` before the
gradient step. ``eps_ramp`` grows the attack's eps linearly from 0 over that fraction of all
steps, which is what lets MNIST at eps 0.3 train from scratch.

:func:`fit` resumes from a per-epoch checkpoint (:mod:`robustutils.resume`) and, started by
``torchrun``, trains data-parallel (:mod:`robustutils.distributed`). ``python -m robustutils.train
--config FILE`` trains a recipe from a config file, in one process or under ``torchrun``
(:mod:`robustutils.launch`).
"""

import math
import numbers
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed, resume
from .attacks import check_count, check_inputs
from .data import AUGMENTATIONS, batches
from .evaluate import evaluate
from .runtime import set_seed

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "onecycle", "step", "cosine")


def make_optimizer(model: torch.nn.Module, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Return SGD (with ``momentum``) or Adam over the model's parameters, at learning rate ``lr``."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {OPTIMIZERS}")


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int):
    """Return a per-step LR scheduler: constant, one-cycle (peak = the optimizer's lr),
    step (x0.1 at 50% and 75% of training) or cosine (annealed to 0 over ``total_steps``)."""
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


def _epoch_batches(train_data, batch_size: int, device: torch.device, generator: torch.Generator,
                   augment: str | None = None):
    if isinstance(train_data, tuple):
        if augment is None:
            yield from batches(*train_data, batch_size, shuffle=True, generator=generator)
            return
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r}: choose None or one of {sorted(AUGMENTATIONS)}")
        for xb, yb in batches(*train_data, batch_size, shuffle=True, generator=generator):
            yield AUGMENTATIONS[augment](xb, generator), yb
    elif augment is not None:
        raise ValueError(f"augment={augment!r} applies to (x, y) tensors; a DataLoader augments in its own "
                         "transform (e.g. data.imagenet_transform)")
    else:  # a DataLoader (e.g. ImageNet): move each batch to the model's device, checked as it comes
        for xb, yb in train_data:
            check_inputs(xb, yb)
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


def train_step(model, optimizer, x, y, attack=None, loss=madry_loss, amp: bool = False,
               weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Take one gradient step on ``loss(model, x, y, attack)``; return (summed loss in nats, correct
    count), both 0-d tensors left on the device (the summed loss is the batch's mean loss times its size).

    ``amp`` computes the loss under bf16 autocast (weights and their updates stay float32; the
    attack keeps its own ``amp`` setting). ``weight`` multiplies the loss before the backward
    pass only (a data-parallel shard's share, see :func:`robustutils.distributed.shards`).

    ``x`` [N, ...] holds images in [0, 1] (pixel units, float), ``y`` [N] integer class indices.
    Raises ``ValueError`` naming the fix otherwise (:func:`robustutils.attacks.check_inputs` with the
    model: values in 0..255, NaN, uint8, labels shaped [N, 1], a dtype or shape the model cannot read,
    labels at or above its number of classes), and for a
    ``weight`` that is not a finite number > 0; the checks read back once per call (:func:`fit`
    checks its data once, before training, instead)."""
    check_inputs(x, y, model=model)
    if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight > 0):
        raise ValueError(f"weight scales the loss before the backward pass and must be a finite number > 0; "
                         f"got {weight!r}")
    return _step(model, optimizer, x, y, attack, loss, amp, weight)


def _step(model, optimizer, x, y, attack=None, loss=madry_loss, amp: bool = False, weight: float = 1.0):
    """:func:`train_step` without the input check (for batches of data checked once by :func:`fit`)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        value, logits = loss(model, x, y, attack)
    optimizer.zero_grad(set_to_none=True)
    (value if weight == 1.0 else value * weight).backward()
    optimizer.step()
    return value.detach() * len(y), (logits.argmax(1) == y).sum()


def fit(model: torch.nn.Module, train_data, *, epochs: int, batch_size: int = 128, attack=None,
        optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
        schedule: str = "onecycle", eps_ramp: float = 0.0, loss=madry_loss, test_data=None,
        eval_attack=None, amp: bool = False, seed: int = 0, progress: bool = True,
        checkpoint=None, augment: str | None = None) -> list[dict]:
    """Train ``model`` in place; return its history, one dict per epoch.

    ``train_data`` is ``(x, y)`` tensors (moved whole to the model's device) or a DataLoader.
    ``attack(model, x, y)`` makes the training inputs (``None``: standard training); ``eps_ramp``
    needs an attack with ``.scaled(factor)`` such as :class:`robustutils.attacks.PGD`. ``loss``
    is the training objective (default :func:`madry_loss`; TRADES: ``trades.TradesLoss(beta)``);
    ``amp`` computes it under bf16 autocast (see :func:`train_step`).
    ``augment`` names a training-set augmentation of :data:`robustutils.data.AUGMENTATIONS` (e.g.
    ``"crop-flip"``, :func:`robustutils.data.crop_flip`) applied to every shuffled batch of ``(x, y)``
    tensors before the attack, which then perturbs the augmented images (as in Madry et al. 2018 and
    Wong et al. 2020); its draws come from the shuffling generator, so a seeded run repeats and a
    resumed run continues them. ``None`` (default): no augmentation. An unknown name, or one given
    with a DataLoader (which augments in its own transform), raises ``ValueError``.
    With ``test_data=(x, y)`` each epoch also records clean accuracy and robust accuracy under
    ``eval_attack`` (default: ``attack`` at full eps). History keys: epoch (1-based), lr (at the
    epoch's end), eps (the training attack's eps at the epoch's end, pixel units; 0.0 without an
    attack), train_loss (mean training loss, nats), train_acc (a fraction, on the inputs the loss
    scores), time_s (the epoch's wall-clock seconds), test_clean_acc, test_robust_acc (fractions in
    [0, 1], or None). A ``RuntimeWarning`` reports :func:`catastrophic_overfitting` when it occurs.

    ``checkpoint`` (a file path) makes the run resumable: after every epoch the complete training
    state is written there atomically (:mod:`robustutils.resume`), and a call that finds the file
    continues after its last epoch, with the random states of that moment, and returns the full
    history; the weights end bit-identical to an uninterrupted run's. A file that covers all
    epochs only loads the weights. A checkpoint of other settings is refused
    (:class:`robustutils.io.CheckpointError`).

    Inside a process group (``torchrun``; :mod:`robustutils.distributed`), ``(x, y)`` is shared out
    per global batch of ``batch_size``, the model trains wrapped in DistributedDataParallel, the
    attack runs on each rank's shard with a per-rank random stream, the history counts all ranks,
    and only rank 0 prints and writes the checkpoint. Without a process group nothing changes.

    Images are in [0, 1] (pixel units, float; normalisation belongs inside the model), labels a
    1-D integer tensor [N] of class indices. Raises ``ValueError`` naming the fix for bad settings
    and for ``(x, y)`` tensors (training or test) outside [0, 1], NaN, uint8 (use
    ``x.float() / 255``) or with labels not shaped [N] (e.g. [N, 1]: use ``y.view(-1)``), before
    any training; a DataLoader's batches are checked as they come (one read-back per batch).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        check_count(name, value)
    if not (isinstance(eps_ramp, numbers.Real) and 0 <= eps_ramp <= 1):
        raise ValueError(f"eps_ramp is the fraction of training over which eps grows from 0, in [0, 1]; "
                         f"got {eps_ramp!r}")
    if eps_ramp > 0 and not hasattr(attack, "scaled"):
        raise ValueError("eps_ramp needs an attack with .scaled(factor), e.g. attacks.PGD(...)")
    if isinstance(train_data, list):
        raise ValueError("train_data must be a tuple (x, y) or a DataLoader; got a list: use tuple(train_data)")
    for name, pair in (("train_data", train_data), ("test_data", test_data)):
        if name == "test_data" and pair is not None and not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"test_data must be a pair (x, y) of tensors; got {type(pair).__name__}")
        if isinstance(pair, (tuple, list)):
            if len(pair) != 2:
                raise ValueError(f"{name} must be a pair (x, y) of tensors; got {len(pair)} items")
            check_inputs(*pair, model=distributed.unwrap(model))
    model, group = distributed.unwrap(model), distributed.current()
    generator = set_seed(seed)
    if group.parallel:  # the same shuffling generator everywhere, but each rank its own random starts
        torch.manual_seed(distributed.rank_seed(seed, group.rank))
    progress = progress and group.is_main
    device = next(model.parameters()).device
    train_data, steps_per_epoch = _prepare_data(train_data, batch_size, device, group)
    total = epochs * steps_per_epoch
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay)
    sched = make_schedule(opt, schedule, total)
    eval_attack = eval_attack if eval_attack is not None else attack
    generators = [generator] + _loader_generators(train_data)
    history, step, fingerprint = [], 0, None
    if checkpoint is not None:
        fingerprint = _fingerprint(
            train_data, test_data, epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
            optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
            eps_ramp=eps_ramp, attack=attack, loss=loss, amp=amp, seed=seed, world_size=group.world_size,
            eval_attack=eval_attack if test_data is not None else None, augment=augment)
        restored = resume.restore(checkpoint, fingerprint=fingerprint, model=model, optimizer=opt, scheduler=sched,
                                  generators=generators, group=group)
        if restored is not None:
            history, step = restored
            if progress:
                print(f"resuming from {checkpoint} after epoch {len(history)}/{epochs}", flush=True)
    net, attack = distributed.wrap(model, attack, group)
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        bar = tqdm(_epoch_batches(train_data, batch_size, device, generator, augment), total=steps_per_epoch,
                   desc=f"epoch {epoch}/{epochs}", disable=not progress, file=sys.stdout, leave=False)
        loss_sum, correct, seen = _run_epoch(net, opt, sched, distributed.shards(bar, group), attack, loss,
                                             eps_ramp, step, total, amp, group)
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
        if catastrophic_overfitting(history) == epoch:
            warnings.warn(f"catastrophic overfitting at epoch {epoch}: robust accuracy under the evaluation attack "
                          f"fell to {row['test_robust_acc']:.3f}; train with a multi-step attack, a smaller step "
                          "or fewer epochs, or keep the previous epoch's weights", RuntimeWarning, stacklevel=2)
        if checkpoint is not None:
            _write_checkpoint(checkpoint, group, generators, fingerprint=fingerprint, epoch=epoch, step=step,
                              history=history, model=model, optimizer=opt, scheduler=sched)
    return history


def catastrophic_overfitting(history: list[dict], drop: float = 0.2) -> int | None:
    """Return the first epoch whose ``test_robust_acc`` fell more than ``drop`` (a fraction, e.g.
    0.2 = 20 points) below the best earlier epoch, or ``None`` when robustness never collapsed.

    Single-step training (FGSM) can overfit catastrophically (Wong et al. 2020): within an epoch,
    accuracy against multi-step PGD drops to near zero while accuracy against the training attack
    rises. Detect it from a history that :func:`fit` recorded with a *multi-step* ``eval_attack``.
    """
    best = None
    for row in history:
        acc = row.get("test_robust_acc")
        if acc is None:
            continue
        if best is not None and acc < best - drop:
            return row["epoch"]
        best = acc if best is None else max(best, acc)
    return None


def _prepare_data(train_data, batch_size: int, device: torch.device, group: distributed.Group):
    """Return ``(train_data, steps per epoch)``: tensors moved to ``device``, or the DataLoader."""
    if isinstance(train_data, tuple):
        train_data = tuple(t.to(device) for t in train_data)
        steps_per_epoch = math.ceil(len(train_data[1]) / batch_size)
        if group.parallel and steps_per_epoch:
            distributed.check_batches(len(train_data[1]), batch_size, group)
    elif group.parallel:
        raise ValueError("data-parallel training shares out (x, y) tensors only; train from a DataLoader "
                         "(e.g. Restricted ImageNet) in one process, without torchrun")
    else:
        steps_per_epoch = len(train_data)
    if steps_per_epoch == 0:
        raise ValueError("train_data is empty")
    return train_data, steps_per_epoch


def _loader_generators(train_data) -> list:
    """The generator a DataLoader shuffles with (its order, and its workers' seeds), if it has one."""
    generator = getattr(train_data, "generator", None)
    return [generator] if isinstance(generator, torch.Generator) else []


def _fingerprint(train_data, test_data, **settings) -> dict:
    """Return what a checkpoint must match: ``settings`` (attacks and loss described as plain data,
    the augmentation by its name) and which examples are trained and tested on."""
    settings.update({name: resume.describe(settings[name]) for name in ("attack", "loss", "eval_attack")})
    if isinstance(train_data, tuple):
        settings.update(examples=len(train_data[1]), labels=resume.labels_digest(train_data[1]))
    else:
        settings.update(examples=len(train_data.dataset), labels=None)
    settings["test_examples"] = None if test_data is None else len(test_data[1])
    return resume.fingerprint(**settings)


def _write_checkpoint(path, group: distributed.Group, generators, **state) -> None:
    """Gather every rank's random states; rank 0 writes the checkpoint; all ranks wait for it."""
    device = next(state["model"].parameters()).device
    rng = distributed.gather(resume.rng_state(generators, device), group)
    if group.is_main:
        resume.save(path, rng=rng, **state)
    distributed.barrier(group)


def _run_epoch(model, optimizer, scheduler, batch_iter, attack, loss, eps_ramp: float, step: int, total: int,
               amp: bool = False, group: distributed.Group = distributed.Group()):
    """Train on every ``(x, y, weight)`` of ``batch_iter``; return (summed loss, correct, seen),
    summed over all ranks, read back once."""
    loss_sum = correct = 0
    seen = 0
    for xb, yb, weight in batch_iter:
        step_attack = attack.scaled(eps_factor(step, total, eps_ramp)) if eps_ramp > 0 else attack
        batch_loss, batch_correct = _step(model, optimizer, xb, yb, step_attack, loss, amp, weight)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(yb)
        scheduler.step()
        step += 1
    device = next(model.parameters()).device
    loss_sum, correct, seen = distributed.sum_over_ranks(loss_sum, correct, seen, group=group, device=device)
    return float(loss_sum), int(correct), int(seen)


def _summary(row: dict) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.3f}", f"train acc {row['train_acc']:.3f}"]
    if row["test_clean_acc"] is not None:
        parts.append(f"test clean {row['test_clean_acc']:.3f}")
    if row["test_robust_acc"] is not None:
        parts.append(f"robust {row['test_robust_acc']:.3f}")
    return " | ".join(parts + [f"{row['time_s']:.1f}s"])


def main(argv=None) -> int:
    """Run ``python -m robustutils.train --config FILE``; return the exit status (see
    :func:`robustutils.launch.main`)."""
    from . import launch  # not at the top: launch imports zoo, which imports this module

    return launch.main(argv)


if __name__ == "__main__":
    sys.exit(main())
