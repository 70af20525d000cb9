"""The training loop (standard and adversarial, eps ramp, callbacks, reproducibility) on real MNIST digits."""

import re

import pytest
import torch

from robustutils import attacks, data, models, runtime, train

HISTORY_KEYS = {"epoch", "lr", "eps", "train_loss", "train_acc", "time_s", "test_clean_acc", "test_robust_acc"}


@pytest.fixture(scope="module")
def small_train(mnist_train):
    """1,000 real training digits: enough to exercise the loop in well under a second."""
    return data.subset(*mnist_train, 1_000, generator=torch.Generator().manual_seed(1))


def small_model(seed: int = 0):
    runtime.set_seed(seed)
    return models.build("mnist_cnn", channels=(8, 16), hidden=32)


# --- evaluate ------------------------------------------------------------------------------


def test_standard_training_learns_real_digits(small_train, mnist_eval):
    model = small_model()
    history = train.fit(model, small_train, epochs=2, batch_size=50, lr=1e-2, callbacks=[train.Monitor(*mnist_eval)])
    assert [row["epoch"] for row in history] == [1, 2] and all(set(row) == HISTORY_KEYS for row in history)
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_clean_acc"] > 0.7 and history[-1]["test_robust_acc"] is None  # about 0.83
    assert all(row["eps"] == 0.0 for row in history)


def test_adversarial_training_with_eps_ramp_runs_and_records_its_history(small_train, mnist_eval):
    attack = attacks.PGD(eps=0.1, steps=3)
    x_test, y_test = mnist_eval
    settings = {
        "epochs": 2,
        "batch_size": 100,
        "lr": 1e-2,
        "callbacks": [train.Monitor(x_test[:100], y_test[:100], attack=attack)],
    }
    history = train.fit(small_model(), small_train, attack=attack, eps_ramp=0.8, **settings)
    assert len(history) == 2 and all(set(row) == HISTORY_KEYS for row in history)
    # After epoch 1 of 2 the ramp (over 80% of the steps) stands at 0.5 / 0.8 of the full eps.
    assert history[0]["eps"] == pytest.approx(0.1 * 0.5 / 0.8) and history[1]["eps"] == pytest.approx(0.1)
    for row in history:
        assert 0 <= row["test_robust_acc"] <= row["test_clean_acc"] <= 1
        assert 0 <= row["train_acc"] <= 1 and row["train_loss"] > 0 and row["time_s"] > 0 and row["lr"] >= 0
    # The same run without the attack fits its (clean) inputs far better: the attack was trained on.
    standard = train.fit(small_model(), small_train, **settings)
    assert history[-1]["train_loss"] > standard[-1]["train_loss"] + 0.2  # about 1.55 against 1.02 nats


def test_eps_factor_ramps_linearly_then_stays_at_one():
    assert [train.eps_factor(s, 100, 0.5) for s in (0, 25, 50, 99)] == [0.0, 0.5, 1.0, 1.0]
    assert train.eps_factor(0, 100, 0.0) == 1.0


@pytest.mark.parametrize(
    "attack", [None, lambda model, x, y: attacks.fgsm(model, x, y, eps=0.1)], ids=["no-attack", "function-attack"]
)
def test_eps_ramp_without_a_scalable_attack_is_refused(attack):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    with pytest.raises(ValueError, match=r"eps_ramp needs an attack with \.scaled\(factor\)"):
        train.fit(small_model(), (x, y), epochs=1, attack=attack, eps_ramp=0.5)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1; got 0"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1; got 0"),
        ({"epochs": 1.5}, r"epochs must be an integer >= 1; got 1.5"),
        ({"eps_ramp": -1.0}, r"eps_ramp is the fraction of training .* in \[0, 1\]"),
        ({"optimizer": "rmsprop"}, r"unknown optimizer 'rmsprop'"),
        ({"schedule": "linear"}, r"unknown schedule 'linear'"),
    ],
)
def test_bad_training_settings_are_refused(settings, message):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    with pytest.raises(ValueError, match=message):
        train.fit(small_model(), (x, y), **{"epochs": 1, **settings})


def test_same_seed_same_history_and_weights(small_train):
    # Adversarial training, so that the attack's random starts are covered by the seed as well.
    x, y = small_train[0][:400], small_train[1][:400]
    runs = []
    for seed in (5, 5, 6):
        model = small_model(seed=3)
        history = train.fit(model, (x, y), epochs=2, batch_size=100, attack=attacks.PGD(eps=0.1, steps=2), seed=seed)
        runs.append(([{k: v for k, v in row.items() if k != "time_s"} for row in history], model.state_dict()))
    (history_a, weights_a), (history_b, weights_b), (history_c, _) = runs
    assert history_a == history_b
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert history_c != history_a  # the seed does reach the shuffling and the random starts


# --- sweeps, attack strength, custom training losses -------------------------------------


def test_fit_accepts_any_loss_with_the_madry_contract(small_train):
    calls = []

    def counting_loss(model, x, y, attack):
        calls.append(len(y))
        return train.madry_loss(model, x, y, attack)

    train.fit(small_model(), small_train, epochs=1, batch_size=250, loss=counting_loss)
    assert calls == [250, 250, 250, 250]


def test_progress_yields_every_item_and_writes_to_stdout(capsys):
    assert list(runtime.progress(range(3), "items")) == [0, 1, 2]
    captured = capsys.readouterr()
    assert "items" in captured.out and captured.err == ""


# --- training-set augmentation (fit's augment) -------------------------------------------------------


class RecordingAttack:
    """An attack that records the inputs it is given and returns them unchanged."""

    def __init__(self):
        self.inputs = []

    def __call__(self, model, x, y):
        self.inputs.append(x.clone())
        return x


def test_fit_augments_each_batch_before_the_attack_and_repeats_with_the_seed(make_tiny_model):
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(0))
    runs = {}
    for name, augment in (("plain", None), ("augmented", "crop-flip"), ("again", "crop-flip")):
        attack, model = RecordingAttack(), make_tiny_model(seed=1)
        train.fit(model, (x, y), epochs=2, batch_size=16, attack=attack, augment=augment)
        runs[name] = torch.cat(attack.inputs), model
    rows = {tuple(row.flatten().tolist()) for row in x}
    assert all(tuple(row.flatten().tolist()) in rows for row in runs["plain"][0]), "without augment: the rows as given"
    augmented = runs["augmented"][0]
    assert sum(tuple(row.flatten().tolist()) not in rows for row in augmented) > len(augmented) // 2, (
        "the attack receives the augmented images"
    )
    assert augmented.min() >= 0 and augmented.max() <= 1
    assert torch.equal(augmented, runs["again"][0]), "the same seed draws the same crops and flips"
    weights = {name: model.state_dict() for name, (_, model) in runs.items()}
    assert all(torch.equal(weights["augmented"][k], weights["again"][k]) for k in weights["plain"])
    assert not all(torch.equal(weights["augmented"][k], weights["plain"][k]) for k in weights["plain"])


def test_fit_refuses_an_unknown_augmentation_or_one_for_a_dataloader(make_tiny_model):
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match=r"unknown augmentation 'cutout': choose None or one of \['crop-flip'\]"):
        train.fit(make_tiny_model(), (x, y), epochs=1, augment="cutout")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    with pytest.raises(ValueError, match=r"a DataLoader augments in its own transform"):
        train.fit(make_tiny_model(), loader, epochs=1, augment="crop-flip")


# --- callbacks: monitoring, progress, custom hooks ------------------------------------------------


class CollapsingAttack:
    """A monitor "attack" whose strength collapses the robust accuracy from the second call on: the
    history then shows what catastrophic overfitting looks like."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, x, y):
        self.calls += 1
        return x if self.calls == 1 else (1 - x)  # the negative image: the model gets almost none right


def test_monitor_warns_of_catastrophic_overfitting_once(make_tiny_model, mnist_eval, small_train):
    x, y = small_train
    model = make_tiny_model(seed=0)
    monitor = train.Monitor(*mnist_eval, attack=CollapsingAttack(), drop=0.05)
    with pytest.warns(RuntimeWarning, match=r"catastrophic overfitting at epoch 2: robust accuracy") as caught:
        history = train.fit(model, (x, y), epochs=3, batch_size=100, lr=1e-2, callbacks=[monitor])
    assert len([w for w in caught if "catastrophic" in str(w.message)]) == 1
    assert train.catastrophic_overfitting(history, drop=0.05) == 2
    assert history[0]["test_robust_acc"] == history[0]["test_clean_acc"] > history[1]["test_robust_acc"] + 0.05


def test_monitor_defaults_to_the_training_attack_at_full_eps(make_tiny_model, mnist_eval):
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    recorded = []

    class Recording(attacks.PGD):  # a PGD that records the eps of each call
        def __call__(self, model, xb, yb):
            recorded.append(self.eps)
            return super().__call__(model, xb, yb)

    train.fit(
        make_tiny_model(),
        (x, y),
        epochs=2,
        batch_size=32,
        attack=Recording(eps=0.2, steps=1),
        eps_ramp=1.0,
        callbacks=[train.Monitor(x[:8], y[:8])],
    )
    # the training calls ramp up (0, 0.05, 0.1, 0.15); each monitor call uses the full 0.2
    assert recorded == pytest.approx([0.0, 0.05, 0.2, 0.1, 0.15, 0.2])


class HookRecorder(train.Callback):
    def __init__(self, name, log, order=0):
        self.name, self.log, self.order = name, log, order

    def on_fit_start(self, state):
        self.log.append((self.name, "fit_start", state.epoch, state.step))

    def on_epoch_start(self, state):
        self.log.append((self.name, "epoch_start", state.epoch, state.step))

    def on_batch_end(self, state):
        self.log.append((self.name, "batch_end", state.epoch, state.step))

    def on_epoch_end(self, state, row):
        assert state.history[-1] is row
        self.log.append((self.name, "epoch_end", row["epoch"], state.step))


def test_callbacks_are_called_in_their_order_at_each_hook():
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    log = []
    train.fit(
        small_model(),
        (x, y),
        epochs=2,
        batch_size=4,
        callbacks=[HookRecorder("late", log, order=5), HookRecorder("early", log, order=-5)],
    )
    expected = [("fit_start", 0, 0)]
    for epoch in (1, 2):
        step = 2 * (epoch - 1)
        expected += [
            ("epoch_start", epoch, step),
            ("batch_end", epoch, step + 1),
            ("batch_end", epoch, step + 2),
            ("epoch_end", epoch, step + 2),
        ]
    assert log == [(name, *event) for event in expected for name in ("early", "late")]


def test_progress_prints_one_line_per_epoch_and_nothing_without_it(capsys, small_train):
    x, y = small_train[0][:200], small_train[1][:200]
    history = train.fit(small_model(), (x, y), epochs=2, batch_size=100)
    assert capsys.readouterr().out == "" and all(row["test_clean_acc"] is None for row in history)
    train.fit(small_model(), (x, y), epochs=2, batch_size=100, callbacks=[train.Progress()])
    # the bar redraws itself after carriage returns; the summary lines follow it
    assert re.findall(r"(?:^|\r)(epoch \d+) \| loss", capsys.readouterr().out, re.MULTILINE) == ["epoch 1", "epoch 2"]


@pytest.mark.parametrize(
    "callbacks, message",
    [
        (train.Progress(), r"callbacks is a list of callbacks; got one Progress: use callbacks=\[Progress\(...\)\]"),
        ([lambda state: None], r"callbacks must be train\.Callback objects .*; got function"),
    ],
)
def test_callbacks_that_are_not_a_list_of_callbacks_are_refused(callbacks, message):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    with pytest.raises(ValueError, match=message):
        train.fit(small_model(), (x, y), epochs=1, callbacks=callbacks)


def test_the_cyclic_schedule_is_wong_et_als_triangle():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = train.make_schedule(opt, "cyclic", 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0 and max(lrs) == pytest.approx(5e-3) and lrs.index(max(lrs)) == 40
    assert lrs[20] == pytest.approx(2.5e-3) and lrs[70] == pytest.approx(2.5e-3) and lrs[-1] < 1e-4
