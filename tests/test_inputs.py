"""Every public entry point checks what it is given and names the fix (issue 14, section 2):
eps in 0-255 units, inputs outside [0, 1] or uint8, labels not shaped [N]; the right value is
what the corrected call returns. The per-attack properties are in test_attacks.py."""

import pytest
import torch

from robustutils import attacks, evaluate, independent, models, runtime, train


@pytest.fixture(scope="module")
def digits(mnist_eval):
    """The first 32 real MNIST test digits."""
    return mnist_eval[0][:32], mnist_eval[1][:32]


def entry_points(model, attack):
    """Every public call that takes (x, y), as ``name -> call(x, y)``."""
    fresh = models.build("mlp", hidden=(8,))  # train_step would put a shared model in train mode
    return {
        "evaluate": lambda x, y: evaluate.evaluate(model, x, y),
        "evaluate+attack": lambda x, y: evaluate.evaluate(model, x, y, attack=attack),
        "compare": lambda x, y: evaluate.compare(model, x, y, {"pgd": attack}),
        "cascade": lambda x, y: evaluate.cascade(model, x, y, {"pgd": attack}),
        "eps_sweep": lambda x, y: evaluate.eps_sweep(model, x, y, [0.0, 0.1], norm="linf", steps=1),
        "attack_strength": lambda x, y: evaluate.attack_strength(model, x, y, eps=0.1, norm="linf", steps=[1],
                                                                 restarts=[1]),
        "pgd": lambda x, y: attacks.pgd(model, x, y, eps=0.1, steps=1),
        "fgsm": lambda x, y: attacks.fgsm(model, x, y, eps=0.1),
        "APGD": lambda x, y: independent.APGD(eps=0.1, steps=2)(model, x, y),
        "train_step": lambda x, y: train.train_step(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), x, y),
        "fit": lambda x, y: train.fit(models.build("mlp", hidden=(8,)), (x, y), epochs=1, progress=False),
        "fit test_data": lambda x, y: train.fit(models.build("mlp", hidden=(8,)), (x.clamp(0, 1).float(), y.view(-1).long()),
                                                epochs=1, test_data=(x, y), progress=False),
    }


CALLS = list(entry_points(None, None))


@pytest.mark.parametrize("call", CALLS)
def test_labels_shaped_n_by_1_are_refused_everywhere(mnist_model, digits, call):
    x, y = digits
    with pytest.raises(ValueError, match=r"1-D integer tensor \[N\] of class indices; got shape \(32, 1\): use y\.view\(-1\)"):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](x, y.view(-1, 1))


def test_the_right_clean_accuracy_is_that_of_the_label_vector(mnist_model, digits):
    # [N, 1] labels used to broadcast into a 32 x 32 comparison (clean accuracy 4.19 reported).
    x, y = digits
    with torch.no_grad():
        right = (mnist_model(x).argmax(1) == y).float().mean().item()
    assert evaluate.evaluate(mnist_model, x, y.view(-1, 1).view(-1))["clean_acc"] == pytest.approx(right)
    assert right <= 1


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad, message", [
    (lambda x: x * 255, r"inputs must lie in \[0,1\].*got values in \[0, 255\] \(0\.\.255\? divide by 255\)"),
    (lambda x: x.index_put((torch.tensor(0),), torch.tensor(float("nan"))), r"inputs must lie in \[0,1\]"),
    (lambda x: (x * 255).round().to(torch.uint8), r"inputs are uint8.*convert with x\.float\(\) / 255"),
], ids=["0..255", "nan", "uint8"])
def test_images_outside_the_unit_box_or_uint8_are_refused_everywhere(mnist_model, digits, call, bad, message):
    x, y = digits
    with pytest.raises(ValueError, match=message):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](bad(x), y)


def test_clean_accuracy_of_the_real_inputs_is_the_right_value(mnist_model, mnist_eval):
    # x * 255 used to be accepted without an attack (0.781 against 0.875 on an MLP).
    x, y = mnist_eval
    with torch.no_grad():
        right = (mnist_model(x).argmax(1) == y).float().mean().item()
    assert evaluate.evaluate(mnist_model, x, y)["clean_acc"] == pytest.approx(right)
    assert torch.equal(evaluate.predict(mnist_model, x).cpu(), mnist_model(x).argmax(1))


@pytest.mark.parametrize("make", [
    lambda: attacks.PGD(eps=8),
    lambda: attacks.PGD(eps=8, norm="linf", steps=10, restarts=2),
    lambda: independent.APGD(eps=8),
    lambda: independent.suite(8, "linf", 10, 10),
], ids=["PGD", "PGD-restarts", "APGD", "suite"])
def test_linf_eps_in_0_255_units_is_refused_with_eps_over_255(make):
    with pytest.raises(ValueError, match=r"l_inf eps=8 is above 1: .*did you mean eps=8/255 = 0\.0314\?"):
        make()


def test_eps_in_0_255_units_is_refused_before_any_attack_runs(mnist_model, digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"did you mean eps=8/255 = 0\.0314\?"):
        evaluate.eps_sweep(mnist_model, x, y, [8 / 255, 8], norm="linf", steps=1)
    with pytest.raises(ValueError, match=r"did you mean eps=8/255 = 0\.0314\?"):
        evaluate.attack_strength(mnist_model, x, y, eps=8, norm="linf", steps=[1], restarts=[1])
    with pytest.raises(ValueError, match=r"l_2 eps=40 exceeds 28, the diameter sqrt\(784\)"):
        evaluate.eps_sweep(mnist_model, x, y, [1.0, 40.0], norm="l2", steps=1)
    with pytest.raises(ValueError, match=r"did you mean eps=8/255 = 0\.0314\?"):
        attacks.fgsm(mnist_model, x, y, eps=8)
    # The right value: 8/255 is accepted and leaves robust accuracy between 0 and clean.
    acc = evaluate.eps_sweep(mnist_model, x, y, [0.0, 8 / 255], norm="linf", steps=1)
    assert 0 < acc[1] <= acc[0]


def test_l2_eps_up_to_the_diameter_is_accepted(mnist_model, digits):
    x, y = digits
    x_adv = attacks.pgd(mnist_model, x, y, eps=28.0, norm="l2", steps=1, step_size=28.0)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with pytest.raises(ValueError, match=r"l_2 eps=100 exceeds 28"):
        independent.APGD(eps=100, norm="l2")(mnist_model, x, y)


def test_fit_checks_its_data_before_training(digits):
    x, y = digits
    model = models.build("mlp", hidden=(8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"use y\.view\(-1\)"):
        train.fit(model, (x, y), epochs=1, test_data=(x, y.view(-1, 1)), progress=False)
    with pytest.raises(ValueError, match=r"got a list: use tuple\(train_data\)"):
        train.fit(model, [x, y], epochs=1, progress=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "refused before any step"
    runtime.set_seed(0)
    history = train.fit(model, (x, y), epochs=1, test_data=(x, y), progress=False)
    assert 0 <= history[0]["test_clean_acc"] <= 1
