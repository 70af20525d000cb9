"""Crash-resume (R4): fit's per-epoch checkpoint is written atomically and refuses another run's;
a training process killed with SIGKILL in the middle of an epoch, then started again with the
same command, ends with the weights of a run never interrupted, bit for bit."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from robustutils import attacks, io, resume, train


class Interrupted(Exception):
    """Raised by :class:`CountingLoss` to cut a run short, the way a crash would."""


class CountingLoss:
    """Madry's loss that counts its calls and raises :class:`Interrupted` at call ``stop_at``.

    One class for the interrupted, the resumed and the whole run, so that their fingerprints match."""

    def __init__(self, stop_at: int | None = None):
        self.calls, self.stop_at = 0, stop_at

    def __call__(self, model, x, y, attack):
        self.calls += 1
        if self.calls == self.stop_at:
            raise Interrupted(f"stopped at step {self.calls}")
        return train.madry_loss(model, x, y, attack)


@pytest.fixture(autouse=True)
def one_thread():
    """Run these tiny models on one thread: on a loaded 2-core machine two threads mostly wait for
    each other (measured: 20 s instead of 0.3 s for the interrupted-run test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_digits(n: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


# Every state the next epoch depends on: random starts and the eps ramp (global step), a monitor
# whose eval attack draws random starts too, the one-cycle schedule, Adam's moments.
SETTINGS = {"epochs": 3, "batch_size": 16, "attack": attacks.PGD(eps=0.1, steps=2), "eps_ramp": 0.5, "lr": 1e-2}
MONITOR = train.Monitor(*random_digits(8, seed=1))


def resumable(path, monitor: bool = True) -> list:
    """The callbacks of a resumable run writing ``path``, monitored on 8 digits unless ``monitor`` is False."""
    return [MONITOR, train.Checkpoint(path)] if monitor else [train.Checkpoint(path)]


# --- in one process ----------------------------------------------------------------------------


def test_fit_writes_one_complete_checkpoint_per_epoch_and_no_temporary_file(tmp_path, make_tiny_model):
    path = tmp_path / "run" / "checkpoint.pt"
    on_disk = []  # at every step: (epoch the file holds, files in its folder)

    def observing_loss(model, x, y, attack):
        epoch = resume.read(path)["epoch"] if path.exists() else 0
        on_disk.append((epoch, sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []))
        return train.madry_loss(model, x, y, attack)

    history = train.fit(
        make_tiny_model(),
        random_digits(32),
        epochs=3,
        batch_size=16,
        loss=observing_loss,
        callbacks=[train.Checkpoint(path)],
    )
    assert [epoch for epoch, _ in on_disk] == [0, 0, 1, 1, 2, 2]  # two steps per epoch
    assert all(names in ([], ["checkpoint.pt"]) for _, names in on_disk)
    assert sorted(os.listdir(path.parent)) == ["checkpoint.pt"]
    payload = resume.read(path)
    assert payload["epoch"] == 3 and payload["step"] == 6 and payload["history"] == history
    assert len(payload["rng"]) == 1 and set(payload["rng"][0]) == {"torch", "cuda", "numpy", "python", "generators"}


@pytest.mark.parametrize("augment", [None, "crop-flip"])
def test_an_interrupted_fit_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, make_tiny_model, augment):
    data = random_digits(48)  # three steps per epoch
    settings = {**SETTINGS, "augment": augment}  # crop-flip draws from the shuffling generator too
    whole = make_tiny_model(seed=4)
    expected = train.fit(whole, data, loss=CountingLoss(), callbacks=resumable(tmp_path / "whole.pt"), **settings)

    cut = tmp_path / "cut.pt"
    with pytest.raises(Interrupted):
        train.fit(make_tiny_model(seed=4), data, loss=CountingLoss(stop_at=5), callbacks=resumable(cut), **settings)
    assert resume.read(cut)["epoch"] == 1 and resume.read(cut)["fingerprint"]["augment"] == augment
    torch.rand(100)  # the global RNG moves on, as it would in a new process; the checkpoint must override it
    resumed, loss = make_tiny_model(seed=4), CountingLoss()
    history = train.fit(resumed, data, loss=loss, callbacks=resumable(cut), **settings)
    assert loss.calls == 6, "only epochs 2 and 3 are trained again"
    assert weights_equal(resumed, whole)
    assert without_times(history) == without_times(expected) and history[0] == resume.read(cut)["history"][0]


def test_a_checkpoint_that_covers_every_epoch_loads_without_training(tmp_path, make_tiny_model):
    data, path = random_digits(32), tmp_path / "checkpoint.pt"
    trained = make_tiny_model()
    history = train.fit(trained, data, loss=CountingLoss(), callbacks=resumable(path), **SETTINGS)
    again, loss = make_tiny_model(), CountingLoss()
    assert train.fit(again, data, loss=loss, callbacks=resumable(path), **SETTINGS) == history
    assert loss.calls == 0 and weights_equal(again, trained)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epochs": 2}, r"epochs: 1 in the checkpoint, 2 now"),
        ({"lr": 2e-2}, r"lr: 0\.01 in the checkpoint, 0\.02 now"),
        ({"batch_size": 8}, r"batch_size: 16 in the checkpoint, 8 now.*steps_per_epoch: 2 in the checkpoint, 4 now"),
        ({"attack": attacks.PGD(eps=0.2, steps=2)}, r"attack: .*'eps': 0\.1.* in the checkpoint, .*'eps': 0\.2"),
        ({"data_seed": 1}, r"labels: '[0-9a-f]{16}' in the checkpoint, '[0-9a-f]{16}' now"),
        ({"augment": "crop-flip"}, r"augment: None in the checkpoint, 'crop-flip' now"),
    ],
    ids=["epochs", "lr", "batch_size", "attack", "data", "augment"],
)
def test_a_checkpoint_of_another_run_is_refused_with_what_differs(tmp_path, make_tiny_model, change, message):
    path = tmp_path / "checkpoint.pt"
    settings = {**SETTINGS, "epochs": 1}
    train.fit(make_tiny_model(), random_digits(32), callbacks=resumable(path, monitor=False), **settings)
    before = path.read_bytes()
    change = dict(change)
    data = random_digits(32, seed=change.pop("data_seed", 0))
    with pytest.raises(io.CheckpointError, match=rf"was written by a different run \(.*{message}.*delete it"):
        train.fit(make_tiny_model(), data, callbacks=resumable(path, monitor=False), **{**settings, **change})
    assert path.read_bytes() == before, "a refused checkpoint is left as it was"


def test_a_checkpoint_remembers_the_monitor_and_says_it_resumes_only_with_progress(tmp_path, make_tiny_model, capsys):
    path, data = tmp_path / "checkpoint.pt", random_digits(32)
    settings = {**SETTINGS, "epochs": 1}
    train.fit(make_tiny_model(), data, callbacks=resumable(path), **settings)
    stronger = train.Monitor(MONITOR.x, MONITOR.y, attack=attacks.PGD(eps=0.2, steps=2))
    with pytest.raises(io.CheckpointError, match=r"eval_attack: .*'eps': 0\.1.* in the checkpoint, .*'eps': 0\.2"):
        train.fit(make_tiny_model(), data, callbacks=[stronger, train.Checkpoint(path)], **settings)
    with pytest.raises(io.CheckpointError, match=r"test_examples: 8 in the checkpoint, None now"):
        train.fit(make_tiny_model(), data, callbacks=[train.Checkpoint(path)], **settings)
    capsys.readouterr()
    train.fit(make_tiny_model(), data, callbacks=resumable(path), **settings)
    assert "resuming" not in capsys.readouterr().out
    train.fit(make_tiny_model(), data, callbacks=[train.Progress(), *resumable(path)], **settings)
    assert capsys.readouterr().out == f"resuming from {path} after epoch 1/1\n"


def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path, make_tiny_model):
    model_file = io.save(make_tiny_model(), tmp_path / "model.pt")
    with pytest.raises(io.CheckpointError, match=r"is not a robustutils training checkpoint"):
        train.fit(make_tiny_model(), random_digits(16), epochs=1, callbacks=[train.Checkpoint(model_file)])


# --- a process killed with SIGKILL ---------------------------------------------------------------

# About 1.5 s per epoch on one core of the 2-core test machine (3,000 digits, 60 steps of PGD-2),
# twice that while the uninterrupted run shares the machine: long enough to kill inside epoch 2.
KILL_CONFIG = """\
out = "{out}"
dataset = "mnist"
n_train = 3000
arch = "mnist_cnn"
arch_kwargs = {{channels = [8, 16], hidden = 32}}
epochs = 3
batch_size = 50
lr = 0.01
eps_ramp = 0.5
attack = {{norm = "linf", eps = 0.1, steps = 2, random_start = true}}
progress = true
"""


def start(config, data_dir, log):
    """Start ``python -m robustutils train config`` on one thread (the same in every run,
    so that the float arithmetic is the same), its output going to ``log``."""
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "robustutils", "train", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def first_checkpoint_epoch(path, process, timeout_s: float = 90) -> int:
    """Poll for the checkpoint (written atomically: never half a file); return the epoch it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return resume.read(path)["epoch"]
        assert process.poll() is None, f"the training process ended early with {process.returncode}"
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint after {timeout_s}s")


def test_a_process_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, data_dir):
    configs = {name: tmp_path / f"{name}.toml" for name in ("killed", "whole")}
    for name, config in configs.items():
        config.write_text(KILL_CONFIG.format(out=tmp_path / name))
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    with open(tmp_path / "killed.log", "w") as log, open(tmp_path / "whole.log", "w") as whole_log:
        whole = start(configs["whole"], data_dir, whole_log)  # alongside, to save time
        victim = start(configs["killed"], data_dir, log)
        try:
            assert first_checkpoint_epoch(checkpoint, victim) == 1
            time.sleep(0.5)  # into epoch 2, which takes seconds
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL, "the process must really be killed"
            assert resume.read(checkpoint)["epoch"] == 1, "the kill must land in epoch 2"
            assert not (tmp_path / "killed" / "model.pt").exists()
            rerun = start(configs["killed"], data_dir, log)  # the same command again
            assert rerun.wait(timeout=120) == 0 and whole.wait(timeout=120) == 0
        finally:
            for process in (victim, whole):
                process.kill()  # nothing to do when it has ended
    assert f"resuming from {checkpoint} after epoch 1/3" in (tmp_path / "killed.log").read_text()
    resumed, resumed_meta = io.load(tmp_path / "killed" / "model.pt")
    expected, expected_meta = io.load(tmp_path / "whole" / "model.pt")
    assert weights_equal(resumed, expected)
    assert without_times(resumed_meta["history"]) == without_times(expected_meta["history"])
    assert resumed_meta["history"][-1]["train_acc"] > 0.7  # it learned: the weights compared are not trivial


def test_a_checkpoint_written_before_augment_existed_still_resumes(tmp_path, make_tiny_model):
    path = tmp_path / "checkpoint.pt"
    settings = {**SETTINGS, "epochs": 2, "callbacks": resumable(path, monitor=False)}
    with pytest.raises(Interrupted):
        train.fit(make_tiny_model(), random_digits(32), loss=CountingLoss(stop_at=3), **settings)
    payload = resume.read(path)
    del payload["fingerprint"]["augment"]  # as the library wrote it before the setting existed
    torch.save(payload, path)
    loss = CountingLoss()
    train.fit(make_tiny_model(), random_digits(32), loss=loss, **settings)
    assert loss.calls == 2, "epoch 2 only: the older checkpoint was accepted"
