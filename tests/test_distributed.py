"""The entry point ``python -m robustutils train CONFIG``: its config, and data-parallel training
under ``torchrun`` (gloo, 2 CPU processes) against one process with the same global batch; the
training losses run the attack on the module inside the DDP wrapper."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from robustutils import attacks, distributed, io, launch, resume, trades, train, zoo

# --- shards and config (no processes) -------------------------------------------------------------


@pytest.mark.parametrize("n, world", [(64, 2), (5, 2), (7, 3), (3, 3)])
def test_the_shards_of_a_global_batch_are_contiguous_and_make_it_up_exactly(n, world):
    x, y = torch.rand(n, 1, 28, 28), torch.arange(n)
    parts = [next(distributed.shards([(x, y)], distributed.Group(rank, world))) for rank in range(world)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    # DDP averages the shards' gradients; the weights turn that average into the global batch's mean.
    losses = torch.rand(n, dtype=torch.float64)
    shard_means = [losses[p[1]].mean() for p in parts]
    assert sum(p[2] * m for p, m in zip(parts, shard_means)) / world == pytest.approx(losses.mean().item())


def test_one_process_gets_the_whole_batch_with_weight_one():
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    ((xb, yb, weight),) = distributed.shards([(x, y)], distributed.Group())
    assert xb is x and yb is y and weight == 1.0


def test_a_batch_smaller_than_the_number_of_processes_is_refused():
    distributed.check_batches(130, 64, distributed.Group(0, 2))  # last batch of 2: one example each
    with pytest.raises(ValueError, match=r"a global batch of 1 examples cannot be shared by 2 processes"):
        distributed.check_batches(129, 64, distributed.Group(0, 2))


class RecordingAttack:
    """An :class:`robustutils.attacks.Attack` that records the network each call receives and
    runs a deterministic PGD on it (no random start, so that two runs can be compared exactly)."""

    def __init__(self, inner=None, seen=None):
        self.inner = inner or attacks.PGD(eps=0.1, steps=2, random_start=False)
        self.seen = [] if seen is None else seen

    def __call__(self, model, x, y):
        self.seen.append(model)
        return self.inner(model, x, y)

    def settings(self):
        return self.inner.settings()

    def with_loss(self, loss_fn):
        return RecordingAttack(self.inner.with_loss(loss_fn), self.seen)


@pytest.fixture
def one_process_group(tmp_path):
    """A gloo process group of one rank in this process, so that DistributedDataParallel can wrap a model."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("loss", [train.madry_loss, trades.TradesLoss(6.0)], ids=["madry", "trades"])
def test_the_losses_attack_the_module_inside_the_ddp_wrapper(one_process_group, make_tiny_model, loss):
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8)
    module = make_tiny_model(seed=3)
    attack = RecordingAttack()
    assert isinstance(attack, attacks.Attack)
    wrapped = DistributedDataParallel(module)
    assert distributed.unwrap(wrapped) is module
    value_wrapped, logits_wrapped = loss(wrapped, x, y, attack)
    assert attack.seen and all(model is module for model in attack.seen), "never the wrapper: no collectives per step"
    value, logits = loss(module, x, y, RecordingAttack())
    assert torch.equal(value_wrapped, value) and torch.equal(logits_wrapped, logits)


def test_wrap_leaves_the_model_alone_in_one_process(make_tiny_model):
    model = make_tiny_model()
    assert distributed.wrap(model, distributed.Group()) is model


def test_rank_seeds_keep_rank_zero_and_differ_between_ranks():
    assert distributed.rank_seed(7, 0) == 7
    assert len({distributed.rank_seed(7, rank) for rank in range(4)} | {distributed.rank_seed(8, 1)}) == 5


def write(path, config: dict):
    path.write_text(json.dumps(config) if path.suffix == ".json" else config)
    return path


def test_a_config_holds_a_recipe_and_the_run_keys(tmp_path):
    config = write(tmp_path / "run.toml", 'out = "o"\nepochs = 2\nattack = {norm = "l2", eps = 1.0, steps = 3}\n')
    rec, run = launch.read_config(config)
    assert rec == zoo.recipe(epochs=2, attack={"norm": "l2", "eps": 1.0, "steps": 3})
    assert run == {"out": "o", "amp": False, "progress": True}
    assert launch.read_config(write(tmp_path / "run.json", {"out": "o", "epochs": 2, "amp": True}))[1]["amp"] is True


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'out = "o"\nlearning_rate = 0.1\n',
            r"unknown keys \['learning_rate'\]; a config holds the recipe keys .*run keys",
        ),
        ('out = "o"\nchekpoint = "c.pt"\n', r"unknown keys \['chekpoint'\]"),
        ("epochs = 2\n", r'set out = "<folder>"'),
        ('out = "o"\namp = "yes"\n', r"amp must be true or false"),
        ('out = "o"\ndataset = "svhn"\n', r"unknown dataset 'svhn'"),
        ('out = "o"\nepochs = \n', r"is not valid TOML"),
    ],
    ids=["recipe-typo", "run-typo", "no-out", "amp-not-bool", "bad-dataset", "bad-toml"],
)
def test_a_bad_config_is_refused_with_a_clear_error(tmp_path, text, message):
    with pytest.raises(launch.ConfigError, match=message):
        launch.read_config(write(tmp_path / "run.toml", text))


# --- the command line: a config file or a registry name ---------------------------------------------


def test_the_command_line_trains_a_registry_name_into_the_cache(tmp_path, monkeypatch, data_dir, capsys):
    from robustutils.__main__ import main

    monkeypatch.setenv(io.CACHE_ENV, str(tmp_path))
    assert main(["train", "mnist/standard", "--profile", "smoke", "--quiet"]) == 0
    model, meta = zoo.get("mnist/standard", "smoke", device="cpu", progress=False)
    assert [path.parent for path in tmp_path.glob("*.pt")] == [tmp_path] and len(meta["history"]) >= 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "mnist/linf-9", "--profile", "ci"], r"no entry 'mnist/linf-9' in the registry at profile 'ci'"),
        (["train", "mnist/linf-0.3", "--profile", "nope"], r"unknown profile 'nope'"),
        (["train", "missing.toml"], r"no config file at missing\.toml"),
        (["train", "run.yaml"], r"a config file is \.toml or \.json"),
        (["train", "missing.toml", "--profile", "ci"], r"--profile picks a registry name's recipe"),
        (["train", "mnist/D_det", "--profile", "ci"], r"is a constructed dataset, not a model"),
    ],
)
def test_the_command_line_refuses_an_unknown_name_or_file_with_status_2(argv, message, capsys):
    from robustutils.__main__ import main

    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_bad_value_in_a_config_is_a_message_with_status_2(tmp_path, capsys):
    from robustutils.__main__ import main

    config = tmp_path / "bad.toml"
    config.write_text(
        f'out = "{tmp_path / "run"}"\ndataset = "mnist"\nepochs = 1\nattack = {{norm = "linf", eps = 8, steps = 1}}\n'
    )
    assert main(["train", str(config)]) == 2
    assert "8/255" in capsys.readouterr().err


def test_the_training_module_is_not_the_command_line():
    assert not hasattr(train, "main"), "python -m robustutils train CONFIG; train must not import the command line"


# --- torchrun with 2 processes against 1 process ---------------------------------------------------

# 1,024 real digits, global batch 64: 16 steps of adversarial training, each global batch split
# 32 + 32. random_start is off: random starts are drawn per rank, so with them the two runs could
# not match draw for draw.
RECIPE = {
    "dataset": "mnist",
    "n_train": 1024,
    "arch": "mnist_cnn",
    "arch_kwargs": {"channels": [8, 16], "hidden": 32},
    "epochs": 1,
    "batch_size": 64,
    "lr": 0.01,
    "schedule": "onecycle",
    "attack": {"norm": "linf", "eps": 0.1, "steps": 2, "random_start": False},
}
# Measured: max |w_2proc - w_1proc| = 1.6e-7 (float summation order in the gradient all-reduce and
# the loss sums), against weights that moved by up to 0.07 from their initial values.
WEIGHT_TOLERANCE = 1e-5


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, data_dir):
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    two = write(tmp_path / "two.json", {**RECIPE, "out": str(tmp_path / "two")})
    one = write(tmp_path / "one.json", {**RECIPE, "out": str(tmp_path / "one")})
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "robustutils",
        "train",
        str(two),
    ]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for command in (torchrun, [sys.executable, "-m", "robustutils", "train", str(one)])
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
    assert outputs[0].count("epoch 1 |") == 1, "only rank 0 prints"

    model_two, meta_two = io.load(tmp_path / "two" / "model.pt")
    model_one, meta_one = io.load(tmp_path / "one" / "model.pt")
    assert (meta_two["world_size"], meta_one["world_size"]) == (2, 1)
    initial = zoo.initial_model(zoo.recipe(RECIPE)).state_dict()
    two_w, one_w = model_two.state_dict(), model_one.state_dict()
    difference = max((two_w[k] - one_w[k]).abs().max().item() for k in one_w)
    moved = max((one_w[k] - initial[k]).abs().max().item() for k in one_w)
    assert difference < WEIGHT_TOLERANCE < moved / 100, (difference, moved)
    (row_two,), (row_one,) = meta_two["history"], meta_one["history"]
    assert row_two["train_loss"] == pytest.approx(row_one["train_loss"], rel=1e-5)
    assert row_two["train_acc"] == pytest.approx(row_one["train_acc"], abs=1 / 1024)  # one digit at most
    assert json.loads((tmp_path / "two" / "history.json").read_text()) == meta_two["history"]

    # Every rank's random states are in the checkpoint, and the same command again resumes from it
    # on every rank: all epochs are there, so nothing is trained and the weights stay.
    assert len(resume.read(tmp_path / "two" / "checkpoint.pt")["rng"]) == 2
    again = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "after epoch 1/1" in again.stdout and "epoch 1 |" not in again.stdout
    reloaded, _ = io.load(tmp_path / "two" / "model.pt")
    assert all(torch.equal(reloaded.state_dict()[k], two_w[k]) for k in two_w)

    # A one-process run refuses the two-process checkpoint rather than continuing another run.
    refused = subprocess.run(
        [sys.executable, "-m", "robustutils", "train", str(two)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "world_size: 2 in the checkpoint, 1 now" in refused.stderr
