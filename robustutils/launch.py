"""Train a recipe from a config file: ``python -m robustutils train CONFIG``.

The config (TOML, or JSON by the ``.json`` suffix) holds a recipe, with the keys of
:data:`robustutils.zoo.DEFAULTS`, and the run keys of :data:`RUN_KEYS`::

    out = "runs/mnist-linf"    # folder (relative to the current one) for checkpoint.pt, model.pt, history.json
    dataset = "mnist"
    n_train = 2000
    arch_kwargs = {channels = [8, 16], hidden = 32}
    epochs = 3
    attack = {norm = "linf", eps = 0.3, steps = 2}

It trains with :func:`robustutils.train.fit`, writing ``<out>/checkpoint.pt`` after every epoch
(:class:`robustutils.train.Checkpoint`), so
that running the same command again after a crash resumes where the last epoch ended. At the end
it writes ``<out>/model.pt`` (:func:`robustutils.io.save`, loadable by :func:`robustutils.io.load`,
with the recipe, the history, ``train_time_s`` (the epochs' summed times, s, across resumed runs),
the device and the number of processes in its meta) and ``<out>/history.json``.

Under ``torchrun --nproc-per-node N -m robustutils train CONFIG`` the N processes train
data-parallel (:mod:`robustutils.distributed`); ``batch_size`` stays the global batch.
"""

import json
from pathlib import Path

import torch

from . import distributed, io, train, zoo
from .runtime import pick_device

#: The keys of a config that are not recipe keys, with their defaults (``None`` means required).
#: ``out`` is the output folder, ``amp`` bf16 autocast, ``progress`` progress bars and epoch lines.
RUN_KEYS = {"out": None, "amp": False, "progress": True}  # None: required
CHECKPOINT, MODEL, HISTORY = "checkpoint.pt", "model.pt", "history.json"


class ConfigError(ValueError):
    """A config file cannot be read or holds keys or values it should not; the message says which."""


def read_config(path) -> tuple[dict, dict]:
    """Return ``(recipe, run settings)`` from the TOML or JSON file at ``path``; the recipe is
    completed by :func:`robustutils.zoo.recipe`, the run settings by :data:`RUN_KEYS`."""
    path = Path(path)
    config = _parse(path)
    unknown = set(config) - set(zoo.DEFAULTS) - set(RUN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {sorted(unknown)}; a config holds the recipe keys "
            f"{sorted(zoo.DEFAULTS)} and the run keys {sorted(RUN_KEYS)}"
        )
    run = {name: config.get(name, default) for name, default in RUN_KEYS.items()}
    if not isinstance(run["out"], str) or not run["out"]:
        raise ConfigError(f'{path}: set out = "<folder>", where the checkpoint, the model and the history go')
    for name in ("amp", "progress"):
        if not isinstance(run[name], bool):
            raise ConfigError(f"{path}: {name} must be true or false; got {run[name]!r}")
    try:
        rec = zoo.recipe({name: value for name, value in config.items() if name not in RUN_KEYS})
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err
    return rec, run


def _parse(path: Path) -> dict:
    """Return the table in the TOML (or, by suffix, JSON) file at ``path``."""
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    as_json = path.suffix == ".json"
    if not as_json:
        try:
            import tomllib
        except ImportError as err:  # Python < 3.11
            raise ConfigError(f"{path}: reading TOML needs Python 3.11 or later; write the config as .json") from err
    try:
        config = json.loads(path.read_text()) if as_json else tomllib.loads(path.read_text())
    except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise ConfigError(f"{path} is not valid {'JSON' if as_json else 'TOML'}: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config is a table of keys, not a {type(config).__name__}")
    return config


def run(config_path) -> list[dict]:
    """Train the config at ``config_path`` (resuming from its checkpoint when there is one) and
    return the history; on rank 0 write the model and the history into the config's ``out``."""
    rec, settings = read_config(config_path)
    out = Path(settings["out"])
    parallel = distributed.launched()
    if parallel and rec["dataset"] == "restricted_imagenet":
        raise ConfigError(
            "Restricted ImageNet trains from a DataLoader, which is not shared out across processes: "
            "run it in one process, python -m robustutils train CONFIG, without torchrun"
        )
    device = distributed.start() if parallel else pick_device()
    try:
        group = distributed.current()
        model = zoo.initial_model(rec).to(device)
        callbacks = [*zoo.fit_callbacks(rec, settings["progress"]), train.Checkpoint(out / CHECKPOINT)]
        history = train.fit(
            model,
            zoo.dataset(rec, device=device),
            **{**zoo.fit_settings(rec), "amp": settings["amp"] or rec["amp"]},
            callbacks=callbacks,
        )
        if group.is_main:
            meta = {
                "recipe": rec,
                "history": history,
                "train_time_s": sum(row["time_s"] for row in history),
                "device": str(device),
                "world_size": group.world_size,
                "amp": settings["amp"],
                "torch": torch.__version__,
            }
            io.save(model, out / MODEL, meta)
            (out / HISTORY).write_text(json.dumps(history, indent=1))
            if settings["progress"]:
                print(f"wrote {out / MODEL} and {out / HISTORY}", flush=True)
        distributed.barrier(group)
    finally:
        distributed.stop()
    return history
