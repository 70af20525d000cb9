"""The library on the device the tests are pointed at: ``ROBUSTUTILS_TEST_DEVICE`` (``cpu`` by default;
``make gpu-check`` sets ``cuda``). Attacks, training, evaluation, AutoAttack, augmentation and the model
cache keep every tensor on that device and give the same kind of answer as on the CPU."""

import os

import pytest
import torch

from robustutils import attacks, data, evaluate, independent, models, runtime, train, zoo

DEVICE = torch.device(os.environ.get("ROBUSTUTILS_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip("ROBUSTUTILS_TEST_DEVICE=cuda but no CUDA device is present", allow_module_level=True)


@pytest.fixture(scope="module")
def digits(mnist_eval):
    x, y = mnist_eval
    return x[:128].to(DEVICE), y[:128].to(DEVICE)


@pytest.fixture(scope="module")
def trained(mnist_train):
    runtime.set_seed(0)
    model = models.mnist_cnn((8, 16), 32).to(DEVICE)
    x, y = mnist_train[0][:2_000], mnist_train[1][:2_000]
    history = train.fit(model, (x, y), epochs=2, batch_size=128, lr=2e-3)
    attack = attacks.PGD(eps=0.1, steps=2)  # one more epoch with the training attack on the device
    history += train.fit(model, (x, y), epochs=1, batch_size=128, attack=attack, lr=1e-3)
    return model, history


def test_training_runs_on_the_device_and_learns(trained):
    model, history = trained
    assert next(model.parameters()).device.type == DEVICE.type
    assert history[1]["train_acc"] > 0.4 and history[1]["train_loss"] < history[0]["train_loss"]
    assert history[2]["eps"] == 0.1 and history[2]["train_acc"] > 0.3


@pytest.mark.parametrize("norm, eps", [("linf", 0.3), ("l2", 2.0)])
@pytest.mark.parametrize("amp", [False, True])
def test_pgd_stays_on_the_device_inside_the_ball(trained, digits, norm, eps, amp):
    model, _ = trained
    x, y = digits
    x_adv = attacks.pgd(model, x, y, eps=eps, norm=norm, steps=5, restarts=2, amp=amp)
    assert x_adv.device.type == DEVICE.type and x_adv.dtype == torch.float32
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float(attacks.threat(norm).norm(x_adv - x).max()) <= eps * (1 + 1e-5)
    loss = torch.nn.functional.cross_entropy(model(x_adv), y)
    assert float(loss) > float(torch.nn.functional.cross_entropy(model(x), y))


def test_cascade_restart_passes_match_the_batched_restarts(trained, digits):
    model, _ = trained
    x, y = digits
    batched = evaluate.evaluate(model, x, y, attack=attacks.PGD(eps=0.2, steps=10, restarts=4))["robust_acc"]
    runtime.set_seed(0)
    passes = evaluate.cascade(model, x, y, {"pgd": attacks.PGD(eps=0.2, steps=10, restarts=4)})
    assert abs(passes["robust_acc"]["pgd"] - batched) <= 0.05  # same answer up to the random starts
    assert passes["attacked"]["pgd"] < 4 * round(len(y) * passes["clean_acc"]), "fooled digits are not restarted"


def test_autoattack_runs_on_the_device(trained, digits):
    model, _ = trained
    x, y = digits
    aa = independent.AutoAttack(eps=0.3, attacks=("apgd-ce", "apgd-t"), n_iter=5, n_target_classes=2)
    x_adv = aa(model, x[:32], y[:32])
    assert x_adv.device.type == DEVICE.type
    assert float((x_adv - x[:32]).abs().max()) <= 0.3 + 1e-5


def test_crop_flip_runs_on_the_device(mnist_eval):
    x = mnist_eval[0][:16].to(DEVICE)
    out = data.crop_flip(x, torch.Generator().manual_seed(3))
    assert out.device.type == DEVICE.type and out.shape == x.shape


def test_the_model_cache_returns_models_on_the_device(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("ROBUSTUTILS_CACHE", str(tmp_path))
    model, meta = zoo.get("mnist/linf-0.3", "smoke", device=DEVICE, progress=False)
    assert next(model.parameters()).device.type == DEVICE.type
    again, _ = zoo.get("mnist/linf-0.3", "smoke", device=DEVICE, progress=False)
    x = data.mnist(train=False)[0][:8].to(DEVICE)
    assert torch.equal(model(x), again(x)), "the cached model is the model trained"
    assert meta["device"].startswith(DEVICE.type)
