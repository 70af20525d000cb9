"""Evaluation (clean and robust accuracy, sweeps, attack strength, the cascade) on real MNIST digits."""

import pytest
import torch

from robustutils import attacks, evaluate


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


def test_cascade_splits_batches_by_the_restarts_an_attack_declares(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:40], mnist_eval[1][:40]
    sizes = {"plain": [], "restarted": []}

    def plain(model, xb, yb):  # a plain function: one copy per input
        sizes["plain"].append(len(xb))
        return xb

    class Restarted:  # an Attack that is not PGD: its restarts run side by side, as it declares
        def __call__(self, model, xb, yb):
            sizes["restarted"].append(len(xb))
            return xb

        def settings(self):
            return {"attack": "restarted", "eps": 0.0, "restarts": 4}

        def with_loss(self, loss_fn):
            return self

    restarted = Restarted()
    assert isinstance(restarted, attacks.Attack)
    result = evaluate.cascade(mnist_model, x, y, {"plain": plain, "restarted": restarted}, batch_size=20)
    assert max(sizes["plain"]) == 20 and max(sizes["restarted"]) == 20 // 4, (
        "about batch_size inputs, restarts included"
    )
    assert isinstance(result["attacks"]["plain"], str) and result["attacks"]["restarted"] == restarted.settings()


def test_cascade_runs_pgd_restarts_as_passes_on_the_points_still_standing(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:200], mnist_eval[1][:200]
    seen = []

    class Counted(attacks.PGD):
        def __call__(self, model, xb, yb):
            seen.append((self.restarts, len(xb)))
            return super().__call__(model, xb, yb)

    attack = Counted(eps=0.1, steps=5, restarts=3)
    result = evaluate.cascade(mnist_model, x, y, {"pgd": attack}, batch_size=500)
    assert [r for r, _ in seen] == [1, 1, 1], "three single-start passes"
    standing = [n for _, n in seen]
    assert standing[0] == round(200 * result["clean_acc"]) and standing[0] >= standing[1] >= standing[2]
    assert result["attacked"]["pgd"] == sum(standing) and result["attacks"]["pgd"]["restarts"] == 3
    robust = result["robust"]
    assert robust.dtype == torch.bool and robust.sum().item() == round(200 * result["robust_acc"]["pgd"])
    # the same answer as the restarts side by side, up to their random starts
    side_by_side = evaluate.evaluate(mnist_model, x, y, attack=attacks.PGD(eps=0.1, steps=5, restarts=3))
    assert abs(side_by_side["robust_acc"] - result["robust_acc"]["pgd"]) <= 0.03


def test_cascade_counts_the_examples_each_attack_ran_on_and_times_it(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:60], mnist_eval[1][:60]
    weak, strong = attacks.PGD(eps=0.05, steps=1), attacks.PGD(eps=0.3, steps=5)
    result = evaluate.cascade(mnist_model, x, y, {"weak": weak, "strong": strong})
    assert result["attacked"] == {
        "weak": round(60 * result["clean_acc"]),
        "strong": round(60 * result["robust_acc"]["weak"]),
    }
    assert list(result["seconds"]) == ["weak", "strong"] and all(s > 0 for s in result["seconds"].values())
