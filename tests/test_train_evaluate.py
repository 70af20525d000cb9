"""The training loop (standard and adversarial, eps ramp, reproducibility) and evaluation on
real MNIST digits."""

import pytest
import torch

from robustutils import attacks, data, evaluate, models, runtime, train

HISTORY_KEYS = {"epoch", "lr", "eps", "train_loss", "train_acc", "time_s", "test_clean_acc", "test_robust_acc"}


@pytest.fixture(scope="module")
def small_train(mnist_train):
    """1,000 real training digits: enough to exercise the loop in well under a second."""
    return data.subset(*mnist_train, 1_000, generator=torch.Generator().manual_seed(1))


def small_model(seed: int = 0):
    runtime.set_seed(seed)
    return models.build("mnist_cnn", channels=(8, 16), hidden=32)


# --- evaluate ------------------------------------------------------------------------------

def test_evaluate_reports_accuracies_and_the_attack_settings(mnist_model, mnist_eval):
    x, y = mnist_eval
    attack = attacks.PGD(eps=0.1, steps=5)
    result = evaluate.evaluate(mnist_model, x, y, attack=attack, batch_size=128)
    assert set(result) == {"n", "clean_acc", "robust_acc", "attack"}
    assert result["n"] == len(y) == 500
    assert result["attack"] == attack.settings() and result["attack"]["eps"] == 0.1
    assert 0 <= result["robust_acc"] <= result["clean_acc"] <= 1
    with torch.no_grad():
        expected = (mnist_model(x).argmax(1) == y).float().mean().item()
    assert result["clean_acc"] == pytest.approx(expected)


def test_evaluate_without_attack_measures_clean_accuracy_only(mnist_model, mnist_eval):
    result = evaluate.evaluate(mnist_model, *mnist_eval)
    assert result["robust_acc"] is None and result["attack"] is None and result["clean_acc"] > 0.8


def test_robust_means_correct_both_clean_and_attacked(mnist_model, mnist_eval):
    # An "attack" that returns its input leaves exactly the clean-correct examples robust.
    result = evaluate.evaluate(mnist_model, *mnist_eval, attack=lambda model, x, y: x)
    assert result["robust_acc"] == result["clean_acc"] and isinstance(result["attack"], str)


def test_an_attack_that_helps_cannot_raise_robust_accuracy_above_clean(mnist_model, mnist_eval):
    # Swap every input for a test digit the model gets right with the same label: all "attacked"
    # predictions are then correct, yet an example misclassified clean must still count as not robust.
    x, y = mnist_eval
    with torch.no_grad():
        pred = mnist_model(x).argmax(1)
    right = {int(label): x[(pred == y) & (y == label)][0] for label in y.unique()}

    def helpful_attack(model, xb, yb):
        return torch.stack([right[int(label)] for label in yb])

    result = evaluate.evaluate(mnist_model, x, y, attack=helpful_attack)
    assert result["clean_acc"] < 1 and result["robust_acc"] == result["clean_acc"]


def test_evaluate_restores_the_model_mode(make_tiny_model):
    model = make_tiny_model().train()
    evaluate.evaluate(model, torch.rand(4, 1, 28, 28), torch.arange(4), attack=attacks.PGD(eps=0.1, steps=1))
    assert model.training


def test_predict_restores_the_model_mode_when_the_forward_pass_raises(make_tiny_model):
    model = make_tiny_model().train()
    with pytest.raises(ValueError, match=r"the model cannot read inputs shaped \(2, 3, 28, 28\)"):
        evaluate.predict(model, torch.rand(2, 3, 28, 28))  # wrong channel count
    assert model.training


def test_evaluate_refuses_a_label_batch_size_mismatch(tiny_model):
    with pytest.raises(ValueError, match=r"batch size mismatch: 4 inputs but 3 labels"):
        evaluate.evaluate(tiny_model, torch.rand(4, 1, 28, 28), torch.arange(3))


# --- fit -----------------------------------------------------------------------------------

def test_standard_training_learns_real_digits(small_train, mnist_eval):
    model = small_model()
    history = train.fit(model, small_train, epochs=2, batch_size=50, lr=1e-2, test_data=mnist_eval, progress=False)
    assert [row["epoch"] for row in history] == [1, 2] and all(set(row) == HISTORY_KEYS for row in history)
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_clean_acc"] > 0.7 and history[-1]["test_robust_acc"] is None  # about 0.83
    assert all(row["eps"] == 0.0 for row in history)


def test_adversarial_training_with_eps_ramp_runs_and_records_its_history(small_train, mnist_eval):
    attack = attacks.PGD(eps=0.1, steps=3)
    x_test, y_test = mnist_eval
    settings = {"epochs": 2, "batch_size": 100, "lr": 1e-2, "test_data": (x_test[:100], y_test[:100]),
                "eval_attack": attack, "progress": False}
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


@pytest.mark.parametrize("attack", [None, lambda model, x, y: attacks.fgsm(model, x, y, eps=0.1)],
                         ids=["no-attack", "function-attack"])
def test_eps_ramp_without_a_scalable_attack_is_refused(attack):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    with pytest.raises(ValueError, match=r"eps_ramp needs an attack with \.scaled\(factor\)"):
        train.fit(small_model(), (x, y), epochs=1, attack=attack, eps_ramp=0.5, progress=False)


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, r"epochs must be an integer >= 1; got 0"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1; got 0"),
    ({"epochs": 1.5}, r"epochs must be an integer >= 1; got 1.5"),
    ({"eps_ramp": -1.0}, r"eps_ramp is the fraction of training .* in \[0, 1\]"),
    ({"optimizer": "rmsprop"}, r"unknown optimizer 'rmsprop'"),
    ({"schedule": "linear"}, r"unknown schedule 'linear'"),
])
def test_bad_training_settings_are_refused(settings, message):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    with pytest.raises(ValueError, match=message):
        train.fit(small_model(), (x, y), **{"epochs": 1, **settings, "progress": False})


def test_same_seed_same_history_and_weights(small_train):
    # Adversarial training, so that the attack's random starts are covered by the seed as well.
    x, y = small_train[0][:400], small_train[1][:400]
    runs = []
    for seed in (5, 5, 6):
        model = small_model(seed=3)
        history = train.fit(model, (x, y), epochs=2, batch_size=100, attack=attacks.PGD(eps=0.1, steps=2),
                            seed=seed, progress=False)
        runs.append(([{k: v for k, v in row.items() if k != "time_s"} for row in history], model.state_dict()))
    (history_a, weights_a), (history_b, weights_b), (history_c, _) = runs
    assert history_a == history_b
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert history_c != history_a  # the seed does reach the shuffling and the random starts


# --- sweeps, attack strength, custom training losses -------------------------------------

def test_eps_sweep_starts_at_clean_accuracy_and_falls(mnist_model, mnist_eval):
    x, y = mnist_eval
    acc = evaluate.eps_sweep(mnist_model, x, y, [0.0, 0.05, 0.15, 0.3], norm="linf", steps=10)
    assert acc[0] == evaluate.evaluate(mnist_model, x, y)["clean_acc"]
    assert acc[-1] < acc[1] < acc[0] and acc[-1] <= 0.05


def test_attack_strength_lists_every_attack_and_single_steps_are_weakest(mnist_model, mnist_eval):
    x, y = mnist_eval
    rows = evaluate.attack_strength(mnist_model, x, y, eps=0.1, norm="linf", steps=[5, 20], restarts=[1, 3])
    names = [r["attack"] for r in rows]
    assert names == ["FGSM", "PGD-5", "PGD-20", "PGD-10, step x0.25", "PGD-10, step x4", "PGD-10, 3 restarts"]
    acc = {r["attack"]: r["robust_acc"] for r in rows}
    assert acc["FGSM"] >= acc["PGD-20"] and acc["PGD-10, step x0.25"] >= acc["PGD-20"]
    assert rows[0]["step_size"] == pytest.approx(0.1) and rows[-1]["restarts"] == 3


def test_fit_accepts_any_loss_with_the_madry_contract(small_train):
    calls = []

    def counting_loss(model, x, y, attack):
        calls.append(len(y))
        return train.madry_loss(model, x, y, attack)

    train.fit(small_model(), small_train, epochs=1, batch_size=250, loss=counting_loss, progress=False)
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
        train.fit(model, (x, y), epochs=2, batch_size=16, attack=attack, augment=augment, progress=False)
        runs[name] = torch.cat(attack.inputs), model
    rows = {tuple(row.flatten().tolist()) for row in x}
    assert all(tuple(row.flatten().tolist()) in rows for row in runs["plain"][0]), "without augment: the rows as given"
    augmented = runs["augmented"][0]
    assert sum(tuple(row.flatten().tolist()) not in rows for row in augmented) > len(augmented) // 2, \
        "the attack receives the augmented images"
    assert augmented.min() >= 0 and augmented.max() <= 1
    assert torch.equal(augmented, runs["again"][0]), "the same seed draws the same crops and flips"
    weights = {name: model.state_dict() for name, (_, model) in runs.items()}
    assert all(torch.equal(weights["augmented"][k], weights["again"][k]) for k in weights["plain"])
    assert not all(torch.equal(weights["augmented"][k], weights["plain"][k]) for k in weights["plain"])


def test_fit_refuses_an_unknown_augmentation_or_one_for_a_dataloader(make_tiny_model):
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match=r"unknown augmentation 'cutout': choose None or one of \['crop-flip'\]"):
        train.fit(make_tiny_model(), (x, y), epochs=1, augment="cutout", progress=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    with pytest.raises(ValueError, match=r"a DataLoader augments in its own transform"):
        train.fit(make_tiny_model(), loader, epochs=1, augment="crop-flip", progress=False)
