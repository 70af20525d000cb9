"""Benchmarks, printed with their targets and saved as JSON records for the performance appendix.

``python -m robustutils.bench [p1] [p3] [scaling] [--quick] [--out DIR] [--device cpu|cuda]`` (``make bench``
runs all three):

* **P1, PGD throughput**: :func:`robustutils.attacks.pgd` against ``torchattacks.PGD`` /
  ``PGDL2`` on the same model, batch, eps, steps and device, side by side in one process (a warm-up
  call, then the median of three timed calls on a CPU, five on a GPU). Our attack runs in several *variants* (float32,
  channels_last weights, bf16 autocast, both; ``torch.compile`` on GPUs): each one's speed-up is
  printed, beside torchattacks run under the same variant, and beside the mean float32 loss the
  attack reaches, so that a faster variant is kept only where it is as strong as float32.
* **P3, time to robustness**: the fastest MNIST l_inf 0.3 recipe found (:data:`P3_RECIPES`), trained
  under a PGD-10 monitor that detects catastrophic overfitting, then evaluated on all 10,000 test
  digits by PGD-40, by AutoAttack's APGD-CE and APGD-T (Croce & Hein's code) and by PGD-100 with
  20 restarts, as a cascade.
* **Scaling**: seconds per training epoch of PGD adversarial training against model width, batch
  size and PGD steps (measured on a few batches, scaled to the 60,000 MNIST digits).

Each record carries the machine, date and commit it was measured on.
"""

import argparse
import copy
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import attacks, checks, data, evaluate, independent, models, profiles, registry, train, zoo
from .runtime import pick_device, set_seed

RECORDS = Path(__file__).resolve().parent.parent / "book" / "perf"
P1_TARGET = {"cpu": 1.0, "cuda": 2.0}
P3_TARGET = {"clean": 0.985, "pgd-40": 0.93, "strongest": 0.893, "seconds": {"cpu": 600, "cuda": 30}}


# --- where and when ----------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    """Return the git commit the package runs from (``+dirty`` when files differ), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine(device: torch.device) -> dict:
    """Return what a measurement ran on: device kind and name, CPU, cores, torch version, UTC date, commit."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": device.type,
        "device_name": gpu or _cpu_name(),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
    }


def measured_on(record: dict) -> str:
    """Return a Markdown sentence naming the machine, torch version, date and commit of a record."""
    m = record["machine"]
    return (
        f"Measured on **{m['device_name']}** ({m['device']}, {m['cpu_cores']} CPU cores), torch {m['torch']}, "
        f"{m['date']}, commit `{m['commit']}`."
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Return the median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.lru_cache(maxsize=2)
def _mnist(train: bool):
    """MNIST as tensors, read once per process however many benchmarks use it."""
    return data.mnist(train=train)


# --- P1: PGD throughput ------------------------------------------------------------------------


def variants(device: torch.device) -> dict[str, dict]:
    """Return the speed settings P1 tries on ``device``: name -> {channels_last, amp, compile}."""
    out = {
        "float32": {},
        "channels_last": {"channels_last": True},
        "bf16": {"amp": True},
        "bf16+channels_last": {"amp": True, "channels_last": True},
    }
    if device.type == "cuda":  # on a CPU, compiling takes longer than it saves at these sizes
        out["bf16+channels_last+compile"] = {"amp": True, "channels_last": True, "compile": True}
    return out


def prepared(model: torch.nn.Module, channels_last: bool = False, compile: bool = False, **_) -> torch.nn.Module:
    """Return a copy of ``model`` in eval mode with channels_last weights and/or compiled, as a variant asks."""
    model = copy.deepcopy(model).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError(
            "P1 compares our PGD with torchattacks': run `pip install --no-deps torchattacks scipy` (its "
            "pinned `requests` clashes with Sphinx; `make install` does)"
        ) from err
    return torchattacks


def _torchattacks_pgd(model, norm: str, eps: float, steps: int, step_size: float):
    ta = _torchattacks()
    cls = ta.PGD if norm == "linf" else ta.PGDL2
    return cls(model, eps=eps, alpha=step_size, steps=steps, random_start=True)


def _mean_loss(model, x_adv, y) -> float:
    """The float32 cross-entropy (nats) the attack reached, averaged over the batch."""
    with torch.no_grad():
        return F.cross_entropy(model(x_adv).float(), y).item()


def p1_case(model, x, y, norm: str, eps: float, steps: int, device: torch.device, repeats: int) -> dict:
    """Time our PGD in every variant and torchattacks (plain and under the same variant) on one batch,
    ``steps`` steps of ``2.5 * eps / steps`` within ``eps`` (pixel units) in ``norm``.

    Return ``{"torchattacks_s", "torchattacks_loss", "variants": {name: {"seconds", "speedup",
    "speedup_same_settings", "loss"}}}``: seconds per attack call, speed-ups as ratios of
    torchattacks' plain time (and of its time under the same settings) to ours, losses in nats.
    """
    step_size = 2.5 * eps / steps
    plain = prepared(model)
    ta_plain = _torchattacks_pgd(plain, norm, eps, steps, step_size)
    out = {
        "torchattacks_s": median_seconds(lambda: ta_plain(x, y), device, repeats),
        "torchattacks_loss": _mean_loss(plain, ta_plain(x, y), y),
        "variants": {},
    }
    for name, how in variants(device).items():
        fast = prepared(model, **how)
        amp = how.get("amp", False)
        settings = dict(eps=eps, steps=steps, step_size=step_size, norm=norm, use_best=False, amp=amp)
        ours = median_seconds(lambda fast=fast, settings=settings: attacks.pgd(fast, x, y, **settings), device, repeats)
        ta = _torchattacks_pgd(fast, norm, eps, steps, step_size)
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                theirs = median_seconds(lambda ta=ta: ta(x, y), device, repeats)
        except RuntimeError:  # torchattacks' PGDL2 .view()s gradients, which fails on channels_last ones
            theirs = None
        x_adv = attacks.pgd(fast, x, y, **settings)
        out["variants"][name] = {
            "seconds": ours,
            "speedup": out["torchattacks_s"] / ours,
            "speedup_same_settings": None if theirs is None else theirs / ours,
            "loss": _mean_loss(plain, x_adv, y),
        }
    return out


def _p1_models(device: torch.device, quick: bool):
    """The two models of P1 with a real batch each: Madry et al.'s MNIST CNN, briefly trained on
    real digits (so that the attack's loss means something), and a random-init PreAct-ResNet-18
    on real CIFAR-10 test images."""
    set_seed(0)
    mnist_x, mnist_y = _mnist(True)
    mnist = models.madry_mnist_cnn().to(device)
    train.fit(
        mnist, (mnist_x[: 2_000 if quick else 10_000], mnist_y[: 2_000 if quick else 10_000]), epochs=1, batch_size=128
    )
    test_x, test_y = _mnist(False)
    cifar_x, cifar_y = data.cifar10(train=False)
    on_gpu = device.type == "cuda"
    mnist_batch = 1024 if on_gpu else (64 if quick else 256)
    cifar_batch = 256 if on_gpu else (8 if quick else 32)
    resnet = models.preact_resnet18(width=16 if quick else 64).to(device)
    return [
        ("MNIST CNN (Madry)", mnist, test_x[:mnist_batch], test_y[:mnist_batch], {"linf": 0.3, "l2": 2.0}),
        ("PreAct-ResNet-18", resnet, cifar_x[:cifar_batch], cifar_y[:cifar_batch], {"linf": 8 / 255, "l2": 0.5}),
    ]


def p1(device: torch.device, quick: bool = False) -> dict:
    """Run P1 on ``device``; return its record (rows of model, norm, batch, steps and timings)."""
    steps, repeats = (3, 1) if quick else (10, 5 if device.type == "cuda" else 3)
    rows = []
    for name, model, x, y, eps_by_norm in _p1_models(device, quick):
        x, y = x.to(device), y.to(device)
        for norm, eps in eps_by_norm.items():
            case = p1_case(model, x, y, norm, eps, steps, device, repeats)
            rows.append({"model": name, "norm": norm, "eps": eps, "batch": len(y), "steps": steps, **case})
            print(_p1_line(rows[-1]), flush=True)
    return {"benchmark": "p1", "target": P1_TARGET[device.type], "rows": rows}


def best_variant(row: dict) -> tuple[str, dict]:
    """Return the fastest variant of a P1 row that keeps the attack's strength: its loss at least
    98% of our float32 attack's (the same algorithm; torchattacks' differs in its random start)."""
    strong = {k: v for k, v in row["variants"].items() if v["loss"] >= 0.98 * row["variants"]["float32"]["loss"]}
    name = max(strong or row["variants"], key=lambda k: row["variants"][k]["speedup"])
    return name, row["variants"][name]


def _p1_line(row: dict) -> str:
    name, best = best_variant(row)
    parts = [f"{v['speedup']:.2f}x {k}" for k, v in row["variants"].items()]
    return (
        f"P1 {row['model']} {row['norm']} batch {row['batch']} PGD-{row['steps']}: torchattacks "
        f"{row['torchattacks_s'] * 1e3:.0f} ms; ours " + ", ".join(parts) + f" -> best {best['speedup']:.2f}x ({name})"
    )


# --- P3: time to robustness --------------------------------------------------------------------

#: The P3 recipe per device type, ``"cpu"`` or ``"cuda"``: chapter 2's headline model
#: (:data:`robustutils.registry.HEADLINE`) at ``ci`` and at ``colab``, the fastest MNIST l_inf 0.3
#: recipes found (PGD-5 training with an eps ramp over the first 30% of steps and a one-cycle Adam
#: schedule, bf16 autocast and channels_last weights). It holds
#: :func:`robustutils.models.mnist_cnn`'s ``channels``, ``hidden`` and ``kernel``, then epochs, batch
#: size, peak learning rate, PGD steps, the eps ramp (a fraction of all steps), bf16 autocast and
#: channels_last weights.
P3_RECIPES = {
    device: {
        "channels": tuple(rec.arch_kwargs["channels"]),
        "hidden": rec.arch_kwargs["hidden"],
        "kernel": rec.arch_kwargs["kernel"],
        "epochs": rec.epochs,
        "batch_size": rec.batch_size,
        "lr": rec.lr,
        "steps": rec.attack["steps"],
        "eps_ramp": rec.eps_ramp,
        "amp": rec.amp,
        "channels_last": rec.channels_last,
    }
    for device, rec in (
        ("cpu", registry.recipe(registry.HEADLINE, "ci")),
        ("cuda", registry.recipe(registry.HEADLINE, "colab")),
    )
}


def p3_model(recipe: dict) -> models.Classifier:
    """Return the untrained P3 network of ``recipe`` (a :func:`robustutils.models.mnist_cnn`)."""
    return models.mnist_cnn(recipe["channels"], recipe["hidden"], recipe["kernel"])


def p3_train(model, x, y, monitor, recipe: dict, eps: float, progress: bool = True):
    """Adversarially train ``model`` on ``(x, y)`` by ``recipe`` against l_inf PGD within ``eps`` (pixel
    units); return (the history of :func:`robustutils.train.fit`, wall-clock seconds of training).

    ``monitor`` is ``(x, y)`` held-out digits on which PGD-10 (Wong et al.'s check) runs each epoch:
    :func:`robustutils.train.catastrophic_overfitting` reads its accuracy from the history.
    """
    if recipe["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    step_size = 1.25 * eps if recipe["steps"] == 1 else None  # FGSM: Wong et al.'s step; PGD: 2.5 eps / steps
    attack = attacks.PGD(eps=eps, steps=recipe["steps"], step_size=step_size, amp=recipe["amp"], use_best=False)
    start = time.perf_counter()
    callbacks = [train.Monitor(*monitor, attack=attacks.PGD(eps=eps, steps=10, amp=recipe["amp"]))]
    history = train.fit(
        model,
        (x, y),
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        attack=attack,
        lr=recipe["lr"],
        eps_ramp=recipe["eps_ramp"],
        amp=recipe["amp"],
        callbacks=callbacks + ([train.Progress()] if progress else []),
    )
    _sync(next(model.parameters()).device)
    return history, time.perf_counter() - start


def p3_attacks(eps: float, quick: bool = False, amp: bool = False) -> dict:
    """Return the P3 evaluation at l_inf ``eps`` (pixel units), attacks keyed by name, weakest first:
    Madry et al.'s PGD-40 (step ``eps / 30``, 0.01 at eps 0.3), AutoAttack's APGD-CE and APGD-T at
    their standard settings (:class:`robustutils.independent.AutoAttack`, float32), and PGD-100 with
    20 restarts (``amp``: under bf16 autocast); ``quick``: far fewer steps and iterations."""
    steps, long_steps, restarts = (5, 10, 2) if quick else (40, 100, 20)
    step = eps / 30
    settings = {"n_iter": 5, "n_target_classes": 2} if quick else {}
    return {
        f"pgd-{steps}": attacks.PGD(eps=eps, steps=steps, step_size=step),
        **{
            independent.stage_key(a): independent.AutoAttack(eps=eps, attacks=(a,), **settings)
            for a in ("apgd-ce", "apgd-t")
        },
        f"pgd-{long_steps}x{restarts}": attacks.PGD(
            eps=eps, steps=long_steps, step_size=step, restarts=restarts, amp=amp
        ),
    }


def p3(device: torch.device, quick: bool = False) -> dict:
    """Run P3 on ``device``: train the recipe on real MNIST, then evaluate; return its record."""
    recipe = dict(P3_RECIPES[device.type])
    eps = 0.3
    x, y = _mnist(True)
    test_x, test_y = _mnist(False)
    held_out = 1_000
    if quick:
        recipe.update(epochs=1, channels=(8, 16), hidden=32)
        x, y, test_x, test_y, held_out = x[:2_000], y[:2_000], test_x[:200], test_y[:200], 200
    set_seed(0)
    model = p3_model(recipe).to(device)
    monitor = (x[-held_out:], y[-held_out:])
    history, seconds = p3_train(model, x[:-held_out], y[:-held_out], monitor, recipe, eps, progress=not quick)
    overfit_epoch = train.catastrophic_overfitting(history)
    start = time.perf_counter()
    result = evaluate.cascade(
        model,
        test_x,
        test_y,
        p3_attacks(eps, quick, amp=recipe["amp"]),
        batch_size=500 if device.type == "cuda" else 250,
        progress=not quick,
    )
    record = {
        "benchmark": "p3",
        "recipe": {**recipe, "eps": eps, "norm": "linf", "n_train": len(y) - held_out},
        "targets": {**P3_TARGET, "seconds": P3_TARGET["seconds"][device.type]},
        "train_seconds": seconds,
        "eval_seconds": time.perf_counter() - start,
        "history": history,
        "catastrophic_overfitting_epoch": overfit_epoch,
        **result,
    }
    print(_p3_lines(record), flush=True)
    return record


def p3_verdict(record: dict) -> dict:
    """Return each P3 target's pass/fail: clean, PGD-40 (the first attack), strongest, time, no overfitting."""
    first, last = list(record["robust_acc"])[0], list(record["robust_acc"])[-1]
    target = record["targets"]
    return {
        "clean": record["clean_acc"] >= target["clean"],
        "pgd-40": record["robust_acc"][first] >= target["pgd-40"],
        "strongest": record["robust_acc"][last] >= target["strongest"],
        "seconds": record["train_seconds"] <= target["seconds"],
        "no catastrophic overfitting": record["catastrophic_overfitting_epoch"] is None,
    }


def _p3_lines(record: dict) -> str:
    verdict = p3_verdict(record)
    lines = [
        f"P3 trained in {record['train_seconds']:.0f} s (target <= {record['targets']['seconds']} s), "
        f"evaluated on {record['n']} test digits in {record['eval_seconds']:.0f} s",
        f"P3 clean {100 * record['clean_acc']:.2f}% (target >= {100 * record['targets']['clean']:.1f}%)",
    ]
    for i, (name, acc) in enumerate(record["robust_acc"].items()):
        what = "alone" if i == 0 else "worst case so far"
        lines.append(f"P3 {name} ({what}) {100 * acc:.2f}%")
    lines.append(
        f"P3 targets: PGD-40 >= {100 * record['targets']['pgd-40']:.1f}%, strongest >= "
        f"{100 * record['targets']['strongest']:.1f}%; catastrophic overfitting at epoch "
        f"{record['catastrophic_overfitting_epoch']}"
    )
    lines.append("P3 " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in verdict.items()))
    return "\n".join(lines)


# --- scaling -----------------------------------------------------------------------------------

#: The settings :func:`scaling` holds while it varies one axis (conv channels, hidden units, batch
#: size and PGD steps).
SCALING_BASE = {"channels": (16, 32), "hidden": 128, "batch_size": 256, "steps": 5}
#: The values :func:`scaling` tries on each axis, width as (channels, channels, hidden units), batch
#: size and PGD steps (0 means standard training).
SCALING_GRID = {
    "width": [(8, 16, 64), (16, 32, 128), (32, 64, 256), (64, 128, 512)],
    "batch_size": [64, 128, 256, 512],
    "steps": [0, 1, 2, 5, 10],
}


def epoch_seconds(
    device: torch.device, x, y, channels, hidden: int, batch_size: int, steps: int, fast: bool, batches: int = 6
) -> float:
    """Return the seconds one epoch of 60,000 digits takes: PGD-``steps`` adversarial training
    (``steps=0``: standard) of ``mnist_cnn(channels, hidden)``, timed as the median of ``batches``
    steps. ``fast``: bf16 autocast and channels_last weights."""
    set_seed(0)
    model = prepared(models.mnist_cnn(channels, hidden).to(device), channels_last=fast).train()
    opt = train.make_optimizer(model, "adam", 1e-3)
    attack = attacks.PGD(eps=0.3, steps=steps, amp=fast, use_best=False) if steps else None
    xb, yb = x[:batch_size].to(device), y[:batch_size].to(device)
    seconds = median_seconds(lambda: train.train_step(model, opt, xb, yb, attack, amp=fast), device, batches)
    return seconds * 60_000 / batch_size


def scaling(device: torch.device, quick: bool = False) -> dict:
    """Measure :func:`epoch_seconds` along each axis of :data:`SCALING_GRID` (the others at
    :data:`SCALING_BASE`), in float32 and in bf16 + channels_last; return the record."""
    x, y = _mnist(False)
    grid = {k: v[:2] for k, v in SCALING_GRID.items()} if quick else SCALING_GRID
    rows = []
    for axis, values in grid.items():
        for value in values:
            cfg = dict(SCALING_BASE)
            if axis == "width":
                cfg["channels"], cfg["hidden"] = value[:2], value[2]
            else:
                cfg[axis] = value
            for fast in (False, True):
                s = epoch_seconds(device, x, y, fast=fast, batches=2 if quick else 6, **cfg)
                rows.append(
                    {
                        "axis": axis,
                        "value": list(value) if axis == "width" else value,
                        "precision": "bf16+channels_last" if fast else "float32",
                        "epoch_seconds": s,
                        **cfg,
                    }
                )
            print(
                f"scaling {axis}={value}: {rows[-2]['epoch_seconds']:.1f} s float32, "
                f"{rows[-1]['epoch_seconds']:.1f} s bf16+channels_last per epoch",
                flush=True,
            )
    return {"benchmark": "scaling", "base": SCALING_BASE, "rows": rows}


# --- records and the command line --------------------------------------------------------------


def save_record(record: dict, where: dict, out: Path) -> Path:
    """Write ``record`` with ``where`` (:func:`machine`, taken when the run started, so that the
    commit is the code that ran) to ``out/<benchmark>-<device>.json``; return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['benchmark']}-{where['device']}.json"
    path.write_text(json.dumps({"machine": where, **record}, indent=1, default=str) + "\n")
    return path


def load_records(folder=RECORDS) -> list[dict]:
    """Return every benchmark record saved under ``folder``, sorted by benchmark then device."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


# --- the performance appendix: records as tables, sentences and checks -------------------------

NORM_NAMES = {"linf": "ℓ∞", "l2": "ℓ2"}


def record_index(folder=RECORDS) -> dict[tuple[str, str], dict]:
    """Return the records under ``folder`` (:func:`load_records`) keyed by ``(benchmark, device)``,
    e.g. ``("p1", "cpu")``; a later record of the same key replaces an earlier one."""
    return {(r["benchmark"], r["machine"]["device"]): r for r in load_records(folder)}


def records_verdict(index: dict[tuple[str, str], dict], device: str = "cpu") -> dict:
    """Return ``{"measured", "held"}``: whether ``index`` (:func:`record_index`) holds a record of
    every benchmark of ``BENCHMARKS`` on ``device``; measured names the records found (or missing)."""
    missing = [name for name in BENCHMARKS if (name, device) not in index]
    found = ", ".join(f"{name} on {dev}" for name, dev in sorted(index)) or "none"
    return {
        "measured": f"records: {found}" + (f"; missing on {device}: {', '.join(missing)}" if missing else ""),
        "held": not missing,
    }


def _case(row: dict) -> str:
    return f"{row['model']}, {NORM_NAMES.get(row['norm'], row['norm'])}"


def p1_markdown(record: dict) -> str:
    """Return the Markdown of one P1 record: a heading with the device and target, the machine
    (:func:`measured_on`), then two narrow tables. The first gives torchattacks' time (ms per attack
    call) and our speed-up in every variant; the second the variant kept (:func:`best_variant`),
    its speed-up against torchattacks under the same settings, and the mean float32 loss (nats)
    ours / theirs."""
    from .report import markdown_table

    rows = record["rows"]
    names = list(rows[0]["variants"])
    sizes = "; ".join(dict.fromkeys(f"{r['model']}: batch {r['batch']}, PGD-{r['steps']}" for r in rows))
    speed = [
        {"case": _case(r), "ms": 1e3 * r["torchattacks_s"], **{n: v["speedup"] for n, v in r["variants"].items()}}
        for r in rows
    ]
    kept = []
    for r in rows:
        name, best = best_variant(r)
        loss = f"{best['loss']:.3f} / {r['torchattacks_loss']:.3f}"
        kept.append(
            {
                "case": _case(r),
                "best": f"{best['speedup']:.2f}x ({name})",
                "same": best["speedup_same_settings"],
                "loss": loss,
            }
        )
    return (
        f"### {record['machine']['device'].upper()}, target at least {record['target']:g}x\n\n"
        f"{measured_on(record)} {sizes}.\n\nSpeed-up over torchattacks, by variant of our attack:\n\n"
        + markdown_table(
            speed,
            {"case": "model, norm", "ms": "torchattacks (ms)", **{n: n for n in names}},
            {"ms": ".0f", **dict.fromkeys(names, ".2f")},
        )
        + "\n\nThe variant kept:\n\n"
        + markdown_table(
            kept,
            {"case": "model, norm", "best": "best kept", "same": "same settings", "loss": "loss ours / theirs"},
            {"same": ".2f"},
        )
    )


def p1_strength_verdict(records: list[dict]) -> dict:
    """Return ``{"measured", "held"}``: whether, in every row of the P1 ``records``, the variant kept
    (:func:`best_variant`) reaches at least 98% of the mean loss of our float32 attack."""
    rows = [(r["machine"]["device"], row) for r in records for row in r["rows"]]
    weak = [
        f"{_case(row)} on {device}"
        for device, row in rows
        if best_variant(row)[1]["loss"] < 0.98 * row["variants"]["float32"]["loss"]
    ]
    measured = f"{len(rows) - len(weak)} of {len(rows)} cases" + (f"; weaker: {', '.join(weak)}" if weak else "")
    return {"measured": measured, "held": not weak}


def p1_summary(record: dict) -> str:
    """Return one Markdown paragraph on a P1 record: the range of float32 and best-kept speed-ups,
    how many cases meet the target, and how much of the gain remains against torchattacks run under
    the same settings (below 1.2x: the gain is the precision and memory layout, not our loop)."""
    plain = [row["variants"]["float32"]["speedup"] for row in record["rows"]]
    kept = [best_variant(row)[1] for row in record["rows"]]
    fast = [k["speedup"] for k in kept]
    same = [k["speedup_same_settings"] for k in kept if k["speedup_same_settings"] is not None]
    met = sum(s >= record["target"] for s in fast)
    text = (
        f"**{record['machine']['device'].upper()}**: float32 runs at {min(plain):.2f}x to {max(plain):.2f}x "
        f"torchattacks' speed; the best kept variant at {min(fast):.2f}x to {max(fast):.2f}x, meeting the target "
        f"of {record['target']:g}x in {met} of {len(fast)} cases."
    )
    if same:
        text += (
            f" Against torchattacks run under the same settings the ratio is {min(same):.2f}x to "
            f"{max(same):.2f}x: "
            + (
                "the gain is the precision and the memory layout, which our attack exposes as settings "
                "(`amp=True`, a `channels_last` model), not a faster loop."
                if max(same) < 1.2
                else "part of the gain is our loop's own."
            )
        )
    return text


def p3_markdown(record: dict) -> str:
    """Return the Markdown of one P3 record: a heading with the device, the machine and the recipe
    in one paragraph, and a table of each measure (training seconds, clean accuracy, each attack of
    the cascade, catastrophic overfitting) with its target and whether it was met (:func:`p3_verdict`)."""
    from .report import markdown_table

    recipe, targets, verdict = record["recipe"], record["targets"], p3_verdict(record)
    rows = [
        {
            "what": "training time (s)",
            "value": f"{record['train_seconds']:.0f}",
            "target": f"<= {targets['seconds']}",
            "ok": verdict["seconds"],
        },
        {
            "what": "clean accuracy",
            "value": f"{record['clean_acc']:.2%}",
            "target": f">= {targets['clean']:.1%}",
            "ok": verdict["clean"],
        },
    ]
    names = list(record["robust_acc"])
    for i, name in enumerate(names):
        key = "pgd-40" if i == 0 else "strongest" if i == len(names) - 1 else None
        rows.append(
            {
                "what": name + (" alone" if i == 0 else " (worst case so far)"),
                "value": f"{record['robust_acc'][name]:.2%}",
                "target": f">= {targets[key]:.1%}" if key else None,
                "ok": verdict[key] if key else None,
            }
        )
    epoch = record["catastrophic_overfitting_epoch"]
    rows.append(
        {
            "what": "catastrophic overfitting",
            "value": f"epoch {epoch}" if epoch else "not detected",
            "target": "none",
            "ok": verdict["no catastrophic overfitting"],
        }
    )
    for row in rows:
        row["ok"] = {True: "yes", False: "**no**"}.get(row["ok"])
    channels = "/".join(map(str, recipe["channels"]))
    return (
        f"### {record['machine']['device'].upper()}\n\n{measured_on(record)} Recipe: `mnist_cnn` with "
        f"{channels} channels and {recipe['hidden']} hidden units ({recipe['kernel']}x{recipe['kernel']} kernels), "
        f"{recipe['epochs']} epoch(s) of PGD-{recipe['steps']} on {recipe['n_train']:,} digits, batch "
        f"{recipe['batch_size']}, ε ramp over the first {recipe['eps_ramp']:.0%} of steps, one-cycle Adam (peak lr "
        f"{recipe['lr']:g}), bf16 autocast {recipe['amp']}, channels_last {recipe['channels_last']}. Evaluated on "
        f"{record['n']:,} test digits in {record['eval_seconds'] / 60:.0f} min.\n\n"
        + markdown_table(rows, {"what": "measure", "value": "this run", "target": "target", "ok": "met"})
    )


def scaling_fits(record: dict) -> dict[str, dict]:
    """Return, per precision of a scaling record, how an epoch's seconds grow with the PGD steps ``k``.

    Each value has ``r2`` (of the least-squares line of seconds against ``k``), ``slope`` (seconds
    per extra step), ``increasing`` (every step count costs more than the one before),
    ``about_k_plus_1`` (each epoch costs between 0.5 and 1.5 times ``k + 1`` standard epochs, the
    ``k = 0`` point) and ``batch_ratio``/``batches``: the seconds at the largest batch size over
    those at the smallest, and those two sizes.
    """
    import numpy as np

    out = {}
    for precision in dict.fromkeys(r["precision"] for r in record["rows"]):
        rows = [r for r in record["rows"] if r["precision"] == precision]
        steps, seconds = np.array([(r["value"], r["epoch_seconds"]) for r in rows if r["axis"] == "steps"]).T
        ratios = seconds / seconds[steps == 0][0]
        by_batch = {r["value"]: r["epoch_seconds"] for r in rows if r["axis"] == "batch_size"}
        out[precision] = {
            "r2": float(np.corrcoef(steps, seconds)[0, 1] ** 2),
            "slope": float(np.polyfit(steps, seconds, 1)[0]),
            "increasing": bool(all(b > a for a, b in zip(seconds, seconds[1:]))),
            "about_k_plus_1": bool(all(0.5 * (k + 1) <= r <= 1.5 * (k + 1) for k, r in zip(steps, ratios))),
            "batch_ratio": by_batch[max(by_batch)] / by_batch[min(by_batch)],
            "batches": (min(by_batch), max(by_batch)),
        }
    return out


def scaling_verdict(fits: dict[str, dict]) -> dict:
    """Return ``{"measured", "held"}`` for :func:`scaling_fits`: in every precision the seconds per
    epoch grow along a line in the PGD steps (``R^2 > 0.95``), strictly, at about ``k + 1`` standard epochs."""
    held = all(f["r2"] > 0.95 and f["increasing"] and f["about_k_plus_1"] for f in fits.values())
    measured = "; ".join(f"{p}: R² = {f['r2']:.3f}, {f['slope']:.1f} s per extra step" for p, f in fits.items())
    return {"measured": measured, "held": held}


def scaling_summary(fits: dict[str, dict]) -> str:
    """Return one Markdown line per precision of :func:`scaling_fits`: the line's R², the cost of one
    more PGD step, and how an epoch at the largest batch compares with one at the smallest."""
    return "\n\n".join(
        f"{p}: seconds per epoch against PGD steps fit a line with R² = {f['r2']:.3f}; each extra step "
        f"costs {f['slope']:.1f} s per epoch. An epoch at batch {f['batches'][1]} takes "
        f"{f['batch_ratio']:.2f} times as long as at batch {f['batches'][0]}."
        for p, f in fits.items()
    )


def gpu_note(index: dict[tuple[str, str], dict]) -> str:
    """Return a Markdown sentence listing the GPU records of ``index`` (:func:`record_index`), or
    saying that the GPU targets are unmeasured and how to measure them."""
    gpu = [name for name, device in index if device == "cuda"]
    if gpu:
        return "GPU records: " + ", ".join(gpu)
    return (
        "No GPU record yet: the GPU targets (P1 at least 2x torchattacks on an H100, P3 within 30 s) are "
        "**unmeasured**. Run `make bench` on a GPU machine; it writes `book/perf/*-cuda.json`, which this "
        "page then shows beside the CPU records."
    )


# --- chapter 2's headline model --------------------------------------------------------------


def headline_result(profile: str, *, device=None, records=None) -> dict:
    """Return chapter 2's headline result at ``profile``: measured now
    (:func:`robustutils.checks.measure_headline`), or, where the profile's ``headline_from`` is
    ``"record"`` (``ci``: training the model and running AutoAttack take longer than the book's CPU
    budget leaves), read from the ``make bench`` record ``book/perf/headline-cpu.json``
    (:func:`headline`; ``records``: another folder of records), which holds the same dict plus
    ``machine`` (where and when it was measured).

    Raises ``FileNotFoundError`` when the record is missing and ``ValueError`` when it was measured
    for another recipe, profile or number of digits than the profile's now (rerun ``make bench
    BENCH=headline``)."""
    cfg = profiles.config(profile, "advtrain")
    if cfg["headline_from"] != "record":
        return checks.measure_headline(profile, device=device)
    folder = RECORDS if records is None else records
    record = record_index(folder).get(("headline", "cpu"))
    if record is None:
        raise FileNotFoundError(
            f"no headline record in {folder}: run `make bench BENCH=headline` on a CPU (it trains "
            f"{registry.HEADLINE} and runs AutoAttack, about half an hour on 2 cores)"
        )
    expected = {
        "profile": profile,
        "model_key": zoo.key(registry.recipe(registry.HEADLINE, profile)),
        "n_pgd": cfg["headline_n_pgd"],
        "n_autoattack": cfg["headline_n_autoattack"],
    }
    stale = {k: (record.get(k), v) for k, v in expected.items() if record.get(k) != v}
    if stale:
        raise ValueError(
            f"the headline record in {folder} was measured for another setting (recorded, now: {stale}): "
            "rerun `make bench BENCH=headline`"
        )
    return record


def headline(device: torch.device, quick: bool = False) -> dict:
    """Measure chapter 2's headline model (:func:`robustutils.checks.measure_headline`) at the profile
    whose record the book reads (``ci`` on a CPU, ``colab`` on a GPU; ``smoke`` when ``quick``), from
    the model cache when it is there (its seconds are those of the cached training and evaluations);
    return its record."""
    profile = "smoke" if quick else ("ci" if device.type == "cpu" else "colab")
    result = checks.measure_headline(profile, device=device)
    print(checks.headline_table(result), flush=True)
    return {"benchmark": "headline", **result}


BENCHMARKS = {"p1": p1, "p3": p3, "scaling": scaling, "headline": headline}


def main(argv=None) -> None:
    """Command line: run the benchmarks named in ``argv`` (default: all) on ``--device``, print their
    results and write each record to ``--out`` (:func:`save_record`); ``--quick``: tiny sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "benchmarks", nargs="*", metavar="BENCHMARK", help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmarks run (for tests)")
    parser.add_argument("--out", type=Path, default=RECORDS, help=f"folder of the JSON records (default {RECORDS})")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when present)")
    args = parser.parse_args(argv)
    unknown = set(args.benchmarks) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: choose from {', '.join(BENCHMARKS)}")
    device = pick_device(args.device)
    where = machine(device)
    print(f"benchmarks on {where}", flush=True)
    for name in args.benchmarks or BENCHMARKS:
        print(f"wrote {save_record(BENCHMARKS[name](device, args.quick), where, args.out)}", flush=True)


if __name__ == "__main__":
    main()
