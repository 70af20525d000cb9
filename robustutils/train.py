"""One loop for standard and adversarial training: the attack is an argument (``None`` = standard).

Madry et al.'s min-max training replaces each batch by ``attack(model, x, y)`` before the
gradient step (:func:`madry_loss`, :func:`train_step`). ``eps_ramp`` grows the attack's eps
linearly from 0 over that fraction of all steps, which is what lets MNIST at eps 0.3 train from
scratch.

:func:`fit` runs the epochs; what happens around them is a callback (:class:`Callback`):
:class:`Monitor` measures test accuracy after every epoch and warns of catastrophic overfitting,
:class:`Checkpoint` makes the run resumable (:mod:`robustutils.resume`), :class:`Progress` shows a
bar and a line per epoch. Started by ``torchrun``, :func:`fit` trains data-parallel
(:mod:`robustutils.distributed`). The command line ``python -m robustutils train CONFIG`` trains a
recipe from a config file (:mod:`robustutils.launch`).
"""

import dataclasses
import math
import numbers
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed, resume
from .attacks import Attack, ScalableAttack, check_count, check_inputs
from .data import AUGMENTATIONS, batches
from .evaluate import evaluate
from .runtime import set_seed

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "onecycle", "cyclic", "step", "cosine")


def make_optimizer(
    model: torch.nn.Module, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Return SGD (with ``momentum``) or Adam over the model's parameters, at learning rate ``lr``."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {OPTIMIZERS}")


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int):
    """Return a per-step LR scheduler: constant, one-cycle (peak = the optimizer's lr), cyclic (Wong
    et al. 2020's triangle, arXiv 2001.03994: linear from 0 to the optimizer's lr at 40% of
    ``total_steps``, then linear back to 0), step (x0.1 at 50% and 75% of training) or cosine
    (annealed to 0 over ``total_steps``)."""
    lr = optimizer.param_groups[0]["lr"]
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "cyclic":
        peak = max(1, round(0.4 * total_steps))

        def triangle(step: int) -> float:
            return step / peak if step <= peak else max(0.0, (total_steps - step) / max(1, total_steps - peak))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, triangle)
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


def _epoch_batches(
    train_data, batch_size: int, device: torch.device, generator: torch.Generator, augment: str | None = None
):
    if isinstance(train_data, tuple):
        if augment is None:
            yield from batches(*train_data, batch_size, shuffle=True, generator=generator)
            return
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r}: choose None or one of {sorted(AUGMENTATIONS)}")
        for xb, yb in batches(*train_data, batch_size, shuffle=True, generator=generator):
            yield AUGMENTATIONS[augment](xb, generator), yb
    elif augment is not None:
        raise ValueError(
            f"augment={augment!r} applies to (x, y) tensors; a DataLoader augments in its own "
            "transform (e.g. data.imagenet_transform)"
        )
    else:  # a DataLoader (e.g. ImageNet): move each batch to the model's device, checked as it comes
        for xb, yb in train_data:
            check_inputs(xb, yb)
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def madry_loss(model, x, y, attack=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Madry et al.'s objective: mean cross-entropy (nats) on ``attack(model, x, y)`` (or ``x``).

    Return (loss, logits of the inputs trained on). Any ``loss(model, x, y, attack)`` with this
    contract can replace it in :func:`fit`, e.g. :class:`robustutils.trades.TradesLoss`. ``model``
    may be wrapped in DistributedDataParallel; the attack runs on the module inside
    (:func:`robustutils.distributed.unwrap`), so that each rank attacks its own shard without
    collectives, and a replacement loss should do the same.
    """
    if attack is not None:
        x = attack(distributed.unwrap(model), x, y)
    model.train()
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def train_step(
    model, optimizer, x, y, attack=None, loss=madry_loss, amp: bool = False, weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
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
        raise ValueError(
            f"weight scales the loss before the backward pass and must be a finite number > 0; got {weight!r}"
        )
    return _step(model, optimizer, x, y, attack, loss, amp, weight)


def _step(model, optimizer, x, y, attack=None, loss=madry_loss, amp: bool = False, weight: float = 1.0):
    """:func:`train_step` without the input check (for batches of data checked once by :func:`fit`)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        value, logits = loss(model, x, y, attack)
    optimizer.zero_grad(set_to_none=True)
    (value if weight == 1.0 else value * weight).backward()
    optimizer.step()
    return value.detach() * len(y), (logits.argmax(1) == y).sum()


@dataclasses.dataclass
class FitState:
    """What :func:`fit` shares with its callbacks while it trains.

    ``model`` is the module trained (never a DistributedDataParallel wrapper), ``attack`` the
    training attack at full eps (``None``: standard training), ``settings`` the settings that
    decide the weights (:func:`fit`'s arguments but the model, the data and the callbacks, plus
    ``steps_per_epoch`` and ``world_size``), ``train_data`` the data as trained on (tensors on
    the model's device, or the DataLoader), ``generators`` the random generators that shuffle
    and augment it, ``group`` this process's place among the training processes. ``epoch`` is
    the epoch under way or just ended (1-based; 0 before the first), ``step`` the optimizer steps
    taken so far, ``history`` the rows of the epochs ended, the latest last.
    """

    model: torch.nn.Module
    attack: object
    settings: dict
    train_data: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    generators: list
    group: distributed.Group
    callbacks: list
    history: list = dataclasses.field(default_factory=list)
    step: int = 0
    epoch: int = 0

    @property
    def epochs(self) -> int:
        """The number of epochs the run trains in all (a resumed run included)."""
        return self.settings["epochs"]

    @property
    def steps_per_epoch(self) -> int:
        """The number of optimizer steps (global batches) per epoch."""
        return self.settings["steps_per_epoch"]


class Callback:
    """A hook into :func:`fit`: subclass it and override the methods you need (each does nothing here).

    :func:`fit` calls its callbacks in the order of their ``order`` (lower first, equal ones as
    given): :class:`Monitor` (-1) fills an epoch's row before the others read it, and
    :class:`Checkpoint` (1) restores the run after the others started and writes each epoch last.
    Every rank of a data-parallel run calls them; printing belongs on ``state.group.is_main``.
    """

    order = 0

    def on_fit_start(self, state: FitState) -> None:
        """Called once, before the first epoch: the optimizer and schedule exist, nothing is trained."""

    def on_epoch_start(self, state: FitState) -> None:
        """Called before each epoch's first batch; ``state.epoch`` is the epoch starting (1-based)."""

    def on_batch_end(self, state: FitState) -> None:
        """Called after each optimizer step (``state.step`` counts them). Keep it cheap: no host sync."""

    def on_epoch_end(self, state: FitState, row: dict) -> None:
        """Called after each epoch with its history ``row`` (already the last of ``state.history``),
        which a callback may complete."""


class Monitor(Callback):
    """Measure clean and robust accuracy on the test set ``(x, y)`` after every epoch.

    Fills the row's ``test_clean_acc`` and ``test_robust_acc`` (fractions in [0, 1]; robust None
    without any attack) with :func:`robustutils.evaluate.evaluate` under ``attack``, by default
    the training attack at full eps; a multi-step attack is the one that reveals catastrophic
    overfitting (Wong et al. 2020), reported as a ``RuntimeWarning`` when the robust accuracy
    falls more than ``drop`` below its best (:func:`catastrophic_overfitting`). ``x`` [N, ...]
    holds images in [0, 1] (pixel units), ``y`` [N] integer class indices; both are checked when
    :func:`fit` starts, before any training (``ValueError`` naming the fix, as :func:`fit`). The
    evaluation runs after the epoch, so its random starts follow the epoch's in the random stream.
    """

    order = -1

    def __init__(self, x: torch.Tensor, y: torch.Tensor, attack=None, drop: float = 0.2):
        self.x, self.y, self.attack, self.drop = x, y, attack, drop

    def eval_attack(self, state: FitState):
        """Return the attack this monitor evaluates with: its own, else the training attack at full eps."""
        return self.attack if self.attack is not None else state.attack

    def on_fit_start(self, state: FitState) -> None:
        """Check the test set against the model (:func:`robustutils.attacks.check_inputs`)."""
        check_inputs(self.x, self.y, model=state.model)

    def on_epoch_end(self, state: FitState, row: dict) -> None:
        """Evaluate the model and add the accuracies to ``row``; warn of catastrophic overfitting."""
        result = evaluate(state.model, self.x, self.y, attack=self.eval_attack(state))
        row.update(test_clean_acc=result["clean_acc"], test_robust_acc=result["robust_acc"])
        if catastrophic_overfitting(state.history, self.drop) == row["epoch"]:
            warnings.warn(
                f"catastrophic overfitting at epoch {row['epoch']}: robust accuracy under the evaluation "
                f"attack fell to {row['test_robust_acc']:.3f}; train with a multi-step attack, a smaller "
                "step or fewer epochs, or keep the previous epoch's weights",
                RuntimeWarning,
                stacklevel=3,
            )


class Checkpoint(Callback):
    """Make the run resumable from the file at ``path``.

    After every epoch the complete training state is written there atomically
    (:mod:`robustutils.resume`): weights, optimizer and schedule, the step, the history and every
    random state of every rank (gathered; rank 0 writes). A :func:`fit` that finds the file
    continues after its last epoch with the random states of that moment and returns the full
    history; the weights end bit-identical to an uninterrupted run's. A file that covers all
    epochs only loads the weights. A checkpoint of other settings (the fit's, the
    :class:`Monitor`'s test set and attack, the training examples) is refused with
    :class:`robustutils.io.CheckpointError` naming what differs; so is a file that is not a
    training checkpoint.
    """

    order = 1

    def __init__(self, path):
        self.path = path
        self.fingerprint = None

    def on_fit_start(self, state: FitState) -> None:
        """Restore the state of the checkpoint file, if there is one (with :class:`Progress`, say so);
        a path that cannot be written raises ``ValueError`` now, not after the first epoch."""
        target = Path(self.path)
        if target.is_dir():
            raise ValueError(f"Checkpoint path {target} is a folder: give a file, e.g. {target / 'checkpoint.pt'}")
        if state.group.is_main and not target.is_file():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                probe = target.with_name(target.name + ".probe")
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as err:
                raise ValueError(
                    f"cannot write the checkpoint {target} ({err.strerror}): give a writable path"
                ) from err
        monitor = next((c for c in state.callbacks if isinstance(c, Monitor)), None)
        self.fingerprint = _fingerprint(state.train_data, monitor, state)
        restored = resume.restore(
            self.path,
            fingerprint=self.fingerprint,
            model=state.model,
            optimizer=state.optimizer,
            scheduler=state.scheduler,
            generators=state.generators,
            group=state.group,
        )
        if restored is None:
            return
        state.history, state.step = restored
        state.epoch = len(state.history)
        if state.group.is_main and any(isinstance(c, Progress) for c in state.callbacks):
            print(f"resuming from {self.path} after epoch {state.epoch}/{state.epochs}", flush=True)

    def on_epoch_end(self, state: FitState, row: dict) -> None:
        """Write the state after this epoch (all ranks' random states; rank 0 writes, all wait)."""
        _write_checkpoint(
            self.path,
            state.group,
            state.generators,
            fingerprint=self.fingerprint,
            epoch=row["epoch"],
            step=state.step,
            history=state.history,
            model=state.model,
            optimizer=state.optimizer,
            scheduler=state.scheduler,
        )


class Progress(Callback):
    """Show a progress bar per epoch and print one summary line after it (loss, accuracies, seconds),
    on rank 0 only; the line reads e.g. ``epoch 3 | loss 0.412 | train acc 0.871 | ... | 4.2s``."""

    def __init__(self):
        self._bar = None

    def on_epoch_start(self, state: FitState) -> None:
        """Open the epoch's bar."""
        # Only rank 0 shows a bar; elsewhere tqdm's own default applies, so TQDM_DISABLE=1 turns it off.
        off = {} if state.group.is_main else {"disable": True}
        self._bar = tqdm(
            total=state.steps_per_epoch, desc=f"epoch {state.epoch}/{state.epochs}", file=sys.stdout, leave=False, **off
        )

    def on_batch_end(self, state: FitState) -> None:
        """Advance the bar; close it after the epoch's last batch."""
        self._bar.update()
        if self._bar.n >= state.steps_per_epoch:
            self._bar.close()

    def on_epoch_end(self, state: FitState, row: dict) -> None:
        """Print the epoch's summary line."""
        self._bar.close()
        if state.group.is_main:
            print(_summary(row), flush=True)


def fit(
    model: torch.nn.Module,
    train_data,
    *,
    epochs: int,
    batch_size: int = 128,
    attack=None,
    loss=madry_loss,
    optimizer: str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "onecycle",
    eps_ramp: float = 0.0,
    augment: str | None = None,
    amp: bool = False,
    seed: int = 0,
    callbacks=(),
) -> list[dict]:
    """Train ``model`` in place; return its history, one dict per epoch.

    Each epoch shuffles the training data with a generator seeded by ``seed`` and takes one
    gradient step per batch on ``loss(model, x, y, attack)`` (:func:`train_step`). What happens
    around the epochs is in ``callbacks``: :class:`Monitor` (test accuracy, the catastrophic-
    overfitting warning), :class:`Checkpoint` (resume after a crash), :class:`Progress` (a bar
    and a line per epoch), or your own :class:`Callback`.

    Inside a process group (``torchrun``; :mod:`robustutils.distributed`), ``(x, y)`` is shared out
    per global batch of ``batch_size``, the model trains wrapped in DistributedDataParallel, the
    attack runs on each rank's shard with a per-rank random stream, the history counts all ranks,
    and only rank 0 prints and writes the checkpoint. Without a process group nothing changes.

    Args:
        model: The classifier to train, in place (normalisation inside it; images in [0, 1]).
        train_data: ``(x, y)`` tensors, images [N, ...] in [0, 1] (pixel units, float) and class
            indices [N] (int64), moved whole to the model's device; or a DataLoader of such
            batches (e.g. Restricted ImageNet), whose batches are checked as they come.
        epochs: The number of epochs, an integer >= 1.
        batch_size: Examples per gradient step (the global batch under ``torchrun``).
        attack: Makes the training inputs, ``attack(model, x, y) -> x_adv``: an
            :class:`~robustutils.attacks.Attack` such as :class:`~robustutils.attacks.PGD`, or a
            plain function; ``None``: standard training.
        loss: The training objective ``loss(model, x, y, attack) -> (mean loss, logits)``:
            :func:`madry_loss` (default), or e.g. :class:`robustutils.trades.TradesLoss`.
        optimizer: ``"adam"`` or ``"sgd"`` (:func:`make_optimizer`).
        lr: The learning rate (the peak of the one-cycle schedule).
        momentum: SGD's momentum.
        weight_decay: The optimizer's weight decay.
        schedule: The per-step learning-rate schedule: ``"onecycle"``, ``"cyclic"``, ``"constant"``,
            ``"step"`` or ``"cosine"`` (:func:`make_schedule`).
        eps_ramp: The fraction of all steps over which the attack's eps grows linearly from 0
            (:func:`eps_factor`), in [0, 1]; above 0 it needs an
            :class:`~robustutils.attacks.ScalableAttack` (``.scaled(factor)``, as PGD has).
        augment: A training-set augmentation of :data:`robustutils.data.AUGMENTATIONS` (e.g.
            ``"crop-flip"``) applied to every shuffled batch of ``(x, y)`` tensors before the
            attack, which then perturbs the augmented images (as in Madry et al. 2018); its draws
            come from the shuffling generator, so a seeded run repeats and a resumed one continues
            them. ``None``: no augmentation.
        amp: Compute the loss under bf16 autocast (see :func:`train_step`).
        seed: Seeds the shuffling, the augmentation and the attacks' random starts.
        callbacks: :class:`Callback` objects, called in the order of their ``order``.

    Returns:
        The history, one dict per epoch with the keys ``epoch`` (1-based), ``lr`` (at the epoch's end),
        ``eps`` (the training attack's eps at the epoch's end, pixel units; 0.0 without an
        :class:`~robustutils.attacks.Attack`), ``train_loss`` (mean training loss, nats),
        ``train_acc`` (a fraction, on the inputs the loss scores), ``time_s`` (the epoch's
        wall-clock seconds), ``test_clean_acc`` and ``test_robust_acc`` (fractions in [0, 1] from a
        :class:`Monitor`, else None).

    Raises:
        ValueError: Naming the fix, before any training, for bad settings (an unknown optimizer,
            schedule or augmentation, ``eps_ramp`` without a scalable attack, ``epochs`` or
            ``batch_size`` not integers >= 1, callbacks that are not :class:`Callback` objects),
            and for ``(x, y)`` tensors (training or a :class:`Monitor`'s) outside [0, 1], NaN,
            uint8 (use ``x.float() / 255``), with labels not shaped [N] (e.g. [N, 1]: use
            ``y.view(-1)``) or that the model cannot read.
        robustutils.io.CheckpointError: A :class:`Checkpoint` file of another run.

    Examples::

        history = fit(model, (x, y), epochs=10, attack=attacks.PGD(eps=0.3, steps=40), eps_ramp=0.3,
                      callbacks=[Monitor(x_test, y_test), Checkpoint("run.pt"), Progress()])
        history[-1]["test_robust_acc"]
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        check_count(name, value)
    if not (isinstance(eps_ramp, numbers.Real) and 0 <= eps_ramp <= 1):
        raise ValueError(
            f"eps_ramp is the fraction of training over which eps grows from 0, in [0, 1]; got {eps_ramp!r}"
        )
    if eps_ramp > 0 and not isinstance(attack, ScalableAttack):
        raise ValueError("eps_ramp needs an attack with .scaled(factor), e.g. attacks.PGD(...)")
    callbacks = _check_callbacks(callbacks)
    if isinstance(train_data, list):
        raise ValueError("train_data must be a tuple (x, y) or a DataLoader; got a list: use tuple(train_data)")
    if isinstance(train_data, tuple):
        if len(train_data) != 2:
            raise ValueError(f"train_data must be a pair (x, y) of tensors; got {len(train_data)} items")
        check_inputs(*train_data, model=distributed.unwrap(model))
    model, group = distributed.unwrap(model), distributed.current()
    generator = set_seed(seed)
    if group.parallel:  # the same shuffling generator everywhere, but each rank its own random starts
        torch.manual_seed(distributed.rank_seed(seed, group.rank))
    device = next(model.parameters()).device
    train_data, steps_per_epoch = _prepare_data(train_data, batch_size, device, group)
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay)
    sched = make_schedule(opt, schedule, epochs * steps_per_epoch)
    settings = dict(
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        eps_ramp=eps_ramp,
        attack=attack,
        loss=loss,
        amp=amp,
        seed=seed,
        world_size=group.world_size,
        augment=augment,
    )
    state = FitState(
        model, attack, settings, train_data, opt, sched, [generator] + _loader_generators(train_data), group, callbacks
    )
    for callback in callbacks:
        callback.on_fit_start(state)
    net = distributed.wrap(model, group)
    full_eps = attack.settings()["eps"] if isinstance(attack, Attack) else 0.0
    for epoch in range(len(state.history) + 1, epochs + 1):
        start, state.epoch = time.perf_counter(), epoch
        for callback in callbacks:
            callback.on_epoch_start(state)
        batch_iter = distributed.shards(_epoch_batches(train_data, batch_size, device, generator, augment), group)
        loss_sum, correct, seen = _run_epoch(net, state, batch_iter, loss, eps_ramp, amp)
        row = {
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            "eps": full_eps * eps_factor(state.step, epochs * steps_per_epoch, eps_ramp),
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "time_s": time.perf_counter() - start,
            "test_clean_acc": None,
            "test_robust_acc": None,
        }
        state.history.append(row)
        for callback in callbacks:
            callback.on_epoch_end(state, row)
    return state.history


def _check_callbacks(callbacks) -> list:
    """Return ``callbacks`` as a list in calling order; raise ``ValueError`` for anything else than Callbacks."""
    if isinstance(callbacks, Callback):
        raise ValueError(
            f"callbacks is a list of callbacks; got one {type(callbacks).__name__}: "
            f"use callbacks=[{type(callbacks).__name__}(...)]"
        )
    callbacks = list(callbacks)
    wrong = [c for c in callbacks if not isinstance(c, Callback)]
    if wrong:
        raise ValueError(
            f"callbacks must be train.Callback objects (Monitor, Checkpoint, Progress or a subclass of "
            f"Callback); got {type(wrong[0]).__name__}"
        )
    return sorted(callbacks, key=lambda c: c.order)


def catastrophic_overfitting(history: list[dict], drop: float = 0.2) -> int | None:
    """Return the first epoch whose ``test_robust_acc`` fell more than ``drop`` (a fraction, e.g.
    0.2 = 20 points) below the best earlier epoch, or ``None`` when robustness never collapsed.

    Single-step training (FGSM) can overfit catastrophically (Wong et al. 2020): within an epoch,
    accuracy against multi-step PGD drops to near zero while accuracy against the training attack
    rises. Detect it from a history that :func:`fit` recorded with a :class:`Monitor` whose attack is
    *multi-step*.
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
        raise ValueError(
            "data-parallel training shares out (x, y) tensors only; train from a DataLoader "
            "(e.g. Restricted ImageNet) in one process, without torchrun"
        )
    else:
        steps_per_epoch = len(train_data)
    if steps_per_epoch == 0:
        raise ValueError("train_data is empty")
    return train_data, steps_per_epoch


def _loader_generators(train_data) -> list:
    """The generator a DataLoader shuffles with (its order, and its workers' seeds), if it has one."""
    generator = getattr(train_data, "generator", None)
    return [generator] if isinstance(generator, torch.Generator) else []


def _fingerprint(train_data, monitor: "Monitor | None", state: "FitState") -> dict:
    """Return what a checkpoint must match: the settings that decide the weights (attacks and loss
    described as plain data, the augmentation by its name), the monitor's attack and the examples
    trained and tested on."""
    settings = dict(state.settings, eval_attack=None if monitor is None else monitor.eval_attack(state))
    settings.update({name: resume.describe(settings[name]) for name in ("attack", "loss", "eval_attack")})
    if isinstance(train_data, tuple):
        settings.update(examples=len(train_data[1]), labels=resume.labels_digest(train_data[1]))
    else:
        settings.update(examples=len(train_data.dataset), labels=None)
    settings["test_examples"] = None if monitor is None else len(monitor.y)
    return resume.fingerprint(**settings)


def _write_checkpoint(path, group: distributed.Group, generators, **state) -> None:
    """Gather every rank's random states; rank 0 writes the checkpoint; all ranks wait for it."""
    device = next(state["model"].parameters()).device
    rng = distributed.gather(resume.rng_state(generators, device), group)
    if group.is_main:
        resume.save(path, rng=rng, **state)
    distributed.barrier(group)


def _run_epoch(net, state: "FitState", batch_iter, loss, eps_ramp: float, amp: bool = False):
    """Train ``net`` on every ``(x, y, weight)`` of ``batch_iter``, advancing ``state.step``; return
    (summed loss, correct, seen), summed over all ranks, read back once."""
    total = state.epochs * state.steps_per_epoch
    loss_sum = correct = 0
    seen = 0
    for xb, yb, weight in batch_iter:
        step_attack = state.attack.scaled(eps_factor(state.step, total, eps_ramp)) if eps_ramp > 0 else state.attack
        batch_loss, batch_correct = _step(net, state.optimizer, xb, yb, step_attack, loss, amp, weight)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(yb)
        state.scheduler.step()
        state.step += 1
        for callback in state.callbacks:
            callback.on_batch_end(state)
    device = next(net.parameters()).device
    loss_sum, correct, seen = distributed.sum_over_ranks(loss_sum, correct, seen, group=state.group, device=device)
    return float(loss_sum), int(correct), int(seen)


def _summary(row: dict) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.3f}", f"train acc {row['train_acc']:.3f}"]
    if row["test_clean_acc"] is not None:
        parts.append(f"test clean {row['test_clean_acc']:.3f}")
    if row["test_robust_acc"] is not None:
        parts.append(f"robust {row['test_robust_acc']:.3f}")
    return " | ".join(parts + [f"{row['time_s']:.1f}s"])
