"""The entry point ``python -m robustutils.train --config FILE``: its config, and data-parallel
training under ``torchrun`` (gloo, 2 CPU processes) against one process with the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from robustutils import attacks, distributed, io, launch, resume, zoo

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
    (xb, yb, weight), = distributed.shards([(x, y)], distributed.Group())
    assert xb is x and yb is y and weight == 1.0


def test_a_batch_smaller_than_the_number_of_processes_is_refused():
    distributed.check_batches(130, 64, distributed.Group(0, 2))  # last batch of 2: one example each
    with pytest.raises(ValueError, match=r"a global batch of 1 examples cannot be shared by 2 processes"):
        distributed.check_batches(129, 64, distributed.Group(0, 2))


def test_local_pgd_keeps_its_class_and_settings_when_scaled_or_replaced():
    attack = distributed.local_attack(attacks.PGD(eps=0.3, steps=4))
    assert isinstance(attack.scaled(0.5), distributed.LocalPGD) and attack.scaled(0.5).eps == 0.15
    assert attack.settings() == attacks.PGD(eps=0.3, steps=4).settings()
    with pytest.raises(ValueError, match=r"needs the attack as robustutils\.attacks\.PGD"):
        distributed.local_attack(lambda model, x, y: x)


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


@pytest.mark.parametrize("text, message", [
    ('out = "o"\nlearning_rate = 0.1\n', r"unknown keys \['learning_rate'\]; a config holds the recipe keys .*run keys"),
    ('out = "o"\nchekpoint = "c.pt"\n', r"unknown keys \['chekpoint'\]"),
    ("epochs = 2\n", r'set out = "<folder>"'),
    ('out = "o"\namp = "yes"\n', r"amp must be true or false"),
    ('out = "o"\ndataset = "svhn"\n', r"unknown dataset 'svhn'"),
    ('out = "o"\nepochs = \n', r"is not valid TOML"),
], ids=["recipe-typo", "run-typo", "no-out", "amp-not-bool", "bad-dataset", "bad-toml"])
def test_a_bad_config_is_refused_with_a_clear_error(tmp_path, text, message):
    with pytest.raises(launch.ConfigError, match=message):
        launch.read_config(write(tmp_path / "run.toml", text))


# --- torchrun with 2 processes against 1 process ---------------------------------------------------

# 1,024 real digits, global batch 64: 16 steps of adversarial training, each global batch split
# 32 + 32. random_start is off: random starts are drawn per rank, so with them the two runs could
# not match draw for draw.
RECIPE = {"dataset": "mnist", "n_train": 1024, "arch": "mnist_cnn", "arch_kwargs": {"channels": [8, 16], "hidden": 32},
          "epochs": 1, "batch_size": 64, "lr": 0.01, "schedule": "onecycle",
          "attack": {"norm": "linf", "eps": 0.1, "steps": 2, "random_start": False}}
# Measured: max |w_2proc - w_1proc| = 1.6e-7 (float summation order in the gradient all-reduce and
# the loss sums), against weights that moved by up to 0.07 from their initial values.
WEIGHT_TOLERANCE = 1e-5


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, data_dir):
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    two = write(tmp_path / "two.json", {**RECIPE, "out": str(tmp_path / "two")})
    one = write(tmp_path / "one.json", {**RECIPE, "out": str(tmp_path / "one")})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "robustutils.train", "--config", str(two)]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for command in (torchrun, [sys.executable, "-m", "robustutils.train", "--config", str(one)])]
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
    refused = subprocess.run([sys.executable, "-m", "robustutils.train", "--config", str(two)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "world_size: 2 in the checkpoint, 1 now" in refused.stderr
