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
        "attack_strength": lambda x, y: evaluate.attack_strength(
            model, x, y, eps=0.1, norm="linf", steps=[1], restarts=[1]
        ),
        "pgd": lambda x, y: attacks.pgd(model, x, y, eps=0.1, steps=1),
        "fgsm": lambda x, y: attacks.fgsm(model, x, y, eps=0.1),
        "AutoAttack": lambda x, y: independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2)(model, x, y),
        "train_step": lambda x, y: train.train_step(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), x, y),
        "fit": lambda x, y: train.fit(models.build("mlp", hidden=(8,)), (x, y), epochs=1),
        "fit Monitor": lambda x, y: train.fit(
            models.build("mlp", hidden=(8,)),
            (x.clamp(0, 1).float(), y.view(-1).long()),
            epochs=1,
            callbacks=[train.Monitor(x, y)],
        ),
    }


CALLS = list(entry_points(None, None))


@pytest.mark.parametrize("call", CALLS)
def test_labels_shaped_n_by_1_are_refused_everywhere(mnist_model, digits, call):
    x, y = digits
    message = r"1-D integer tensor \[N\] of class indices; got shape \(32, 1\): use y\.view\(-1\)"
    with pytest.raises(ValueError, match=message):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](x, y.view(-1, 1))


def test_the_right_clean_accuracy_is_that_of_the_label_vector(mnist_model, digits):
    # [N, 1] labels used to broadcast into a 32 x 32 comparison (clean accuracy 4.19 reported).
    x, y = digits
    with torch.no_grad():
        right = (mnist_model(x).argmax(1) == y).float().mean().item()
    assert evaluate.evaluate(mnist_model, x, y.view(-1, 1).view(-1))["clean_acc"] == pytest.approx(right)
    assert right <= 1


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda x: x * 255, r"inputs must lie in \[0,1\].*got values in \[0, 255\] \(0\.\.255\? divide by 255\)"),
        (lambda x: x.index_put((torch.tensor(0),), torch.tensor(float("nan"))), r"inputs must lie in \[0,1\]"),
        (lambda x: (x * 255).round().to(torch.uint8), r"inputs are uint8.*convert with x\.float\(\) / 255"),
    ],
    ids=["0..255", "nan", "uint8"],
)
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


@pytest.mark.parametrize(
    "make",
    [
        lambda: attacks.PGD(eps=8),
        lambda: attacks.PGD(eps=8, norm="linf", steps=10, restarts=2),
        lambda: independent.AutoAttack(eps=8),
        lambda: independent.suite(8, "linf", 10, {"attacks": ["apgd-ce"]}),
    ],
    ids=["PGD", "PGD-restarts", "AutoAttack", "suite"],
)
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
        independent.AutoAttack(eps=100, norm="l2")(mnist_model, x, y)


def test_fit_checks_its_data_before_training(digits):
    x, y = digits
    model = models.build("mlp", hidden=(8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"use y\.view\(-1\)"):
        train.fit(model, (x, y), epochs=1, callbacks=[train.Monitor(x, y.view(-1, 1))])
    with pytest.raises(ValueError, match=r"got a list: use tuple\(train_data\)"):
        train.fit(model, [x, y], epochs=1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "refused before any step"
    runtime.set_seed(0)
    history = train.fit(model, (x, y), epochs=1, callbacks=[train.Monitor(x, y)])
    assert 0 <= history[0]["test_clean_acc"] <= 1


# --- what only the model can tell: dtype, layout, number of classes ----------------------------


@pytest.mark.parametrize("call", CALLS)
def test_images_of_another_dtype_than_the_model_are_refused_everywhere(mnist_model, digits, call):
    x, y = digits
    with pytest.raises(
        ValueError,
        match=r"inputs are torch.float64 but the model's weights are torch.float32: "
        r"convert with x.to\(torch.float32\)",
    ):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](x.double(), y)


@pytest.mark.parametrize("call", CALLS)
def test_labels_of_another_integer_dtype_are_refused_everywhere(mnist_model, digits, call):
    x, y = digits
    with pytest.raises(ValueError, match=r"must be int64 class indices .* got dtype torch.int32: use y.long\(\)"):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](x, y.int())


@pytest.mark.parametrize("call", CALLS)
def test_labels_beyond_the_models_classes_are_refused(mnist_model, digits, call):
    # A label 10 on a 10-class model used to count as a miss: clean accuracy 0.72 instead of an error.
    x, y = digits
    y = y.clone()
    y[0] = 10
    with pytest.raises(ValueError, match=r"labels must be class indices below the model's 10 classes; got 10"):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](x, y)


@pytest.mark.parametrize(
    "layout, shape, hint",
    [
        (lambda x: x.permute(0, 2, 3, 1), r"\(32, 28, 28, 1\)", r"channels-last .* use x.permute\(0, 3, 1, 2\)"),
        (lambda x: x[:, 0], r"\(32, 28, 28\)", r"no channel axis: use x.unsqueeze\(1\)"),
    ],
    ids=["channels-last", "no-channel"],
)
@pytest.mark.parametrize("call", [c for c in CALLS if c not in ("train_step", "fit", "fit Monitor")])
def test_images_the_model_cannot_read_are_refused_with_the_layout_fix(mnist_model, digits, call, layout, shape, hint):
    x, y = digits
    expected = rf"the model cannot read inputs shaped {shape}.*{hint}"
    if call == "AutoAttack" and layout(x).dim() == 3:  # refused earlier, with its own fix
        expected = r"AutoAttack takes images shaped \[N, C, H, W\]; got \(32, 28, 28\): reshape"
    with pytest.raises(ValueError, match=expected):
        entry_points(mnist_model, attacks.PGD(eps=0.1, steps=1))[call](layout(x), y)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
@pytest.mark.parametrize("call", ["predict", "evaluate", "compare", "cascade", "eps_sweep", "attack_strength"])
def test_a_batch_size_below_one_or_fractional_is_refused(mnist_model, digits, call, batch_size):
    # batch_size=-1 used to return clean accuracy 0.0 without an error.
    x, y = digits
    pgd = attacks.PGD(eps=0.1, steps=1)
    calls = {
        "predict": lambda: evaluate.predict(mnist_model, x, batch_size=batch_size),
        "evaluate": lambda: evaluate.evaluate(mnist_model, x, y, batch_size=batch_size),
        "compare": lambda: evaluate.compare(mnist_model, x, y, {"pgd": pgd}, batch_size=batch_size),
        "cascade": lambda: evaluate.cascade(mnist_model, x, y, {"pgd": pgd}, batch_size=batch_size),
        "eps_sweep": lambda: evaluate.eps_sweep(mnist_model, x, y, [0.1], norm="linf", steps=1, batch_size=batch_size),
        "attack_strength": lambda: evaluate.attack_strength(
            mnist_model, x, y, eps=0.1, norm="linf", steps=[1], restarts=[1], batch_size=batch_size
        ),
    }
    with pytest.raises(ValueError, match=rf"batch_size must be an integer >= 1 .*; got {batch_size}"):
        calls[call]()


def test_a_single_value_where_a_list_is_expected_is_refused(mnist_model, digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"eps_values is a list of radii; got one value 0.1: use \[eps\]"):
        evaluate.eps_sweep(mnist_model, x, y, 0.1, norm="linf", steps=1)
    with pytest.raises(ValueError, match=r"steps is a list of values to try; got one value 5: use \[5\]"):
        evaluate.attack_strength(mnist_model, x, y, eps=0.1, norm="linf", steps=5, restarts=[1])
    with pytest.raises(ValueError, match=r"attacks must be a dict \{name: attack\}; got list"):
        evaluate.compare(mnist_model, x, y, [attacks.PGD(eps=0.1, steps=1)])


def test_eps_as_a_tensor_is_refused_with_float(mnist_model, digits):
    with pytest.raises(ValueError, match=r"eps must be a Python number .* use float\(eps\)"):
        attacks.PGD(eps=torch.tensor(0.1))
    with pytest.raises(ValueError, match=r"eps must be one number for the whole batch; got a tensor of shape \(32,\)"):
        attacks.pgd(mnist_model, *digits, eps=torch.full((32,), 0.1))


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), 0.0, -1.0])
def test_train_step_refuses_a_loss_weight_that_would_poison_the_weights(digits, weight):
    # weight=nan used to turn every parameter into NaN.
    model = models.build("mlp", hidden=(8,))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"weight scales the loss .* finite number > 0"):
        train.train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), *digits, weight=weight)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
