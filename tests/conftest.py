"""Shared fixtures: the real datasets (loaded once per session), a model trained once on real
MNIST digits, and a tiny random-init model for the attack property tests.

The loader and real-data tests need ``ROBUSTUTILS_DATA`` (from the project root:
``ROBUSTUTILS_DATA=../shared/data``); without it they are skipped with that reason, and
everything else still runs.

The chapters' runs at ``colab-smoke`` and ``full-smoke`` load the papers' published models: when
they are collected, stand-ins (the real architectures, random weights; tests/published_standins.py)
are written once into ``_build/published-standins`` and ``ROBUSTUTILS_PUBLISHED`` and ``TORCH_HOME``
point there, for the notebooks' kernels to inherit.

Hypothesis runs the ``fast`` profile (20 examples per property, no deadline) unless
``HYPOTHESIS_PROFILE=thorough`` asks for 500, e.g. before changing an attack.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from robustutils import data, models, runtime, train

settings.register_profile("fast", max_examples=20, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

NO_DATA = "ROBUSTUTILS_DATA is not set: point it at ../shared/data to run the loader tests"

MNIST_TRAIN_SIZE = 5_000  # real training digits for the session model (about one second on 2 cores)
MNIST_EVAL_SIZE = 500  # real test digits the attacks are measured on


PUBLISHED_PROFILES = ("colab-smoke", "full-smoke")  # the chapter runs that load published models
STANDINS = Path(__file__).parents[1] / "_build" / "published-standins"


def pytest_collection_modifyitems(session, config, items):
    """Give the chapters run at a profile with published models their stand-ins (module docstring)."""
    if not any(set(PUBLISHED_PROFILES) & set(Path(str(item.fspath)).parts) for item in items):
        return
    import published_standins

    published_standins.write_standins(STANDINS)
    os.environ.update(published_standins.environment(STANDINS))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder ``$ROBUSTUTILS_DATA`` names; skip the test when the variable is unset."""
    root = os.environ.get(data.DATA_ENV)
    if not root:
        pytest.skip(NO_DATA)
    return Path(root)


def _offline_copy(data_dir: Path, name: str) -> Path:
    folder = data_dir / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: these tests check the offline copy described in ../shared/data/README.md")
    return folder


@pytest.fixture(scope="session")
def cifar_subset_dir(data_dir) -> Path:
    """``$ROBUSTUTILS_DATA/cifar-10-subset`` (the shortened CIFAR-10); skip when it is absent."""
    return _offline_copy(data_dir, "cifar-10-subset")


@pytest.fixture(scope="session")
def imagenet_sample_dir(data_dir) -> Path:
    """``$ROBUSTUTILS_DATA/restricted-imagenet-sample``; skip when it is absent."""
    return _offline_copy(data_dir, "restricted-imagenet-sample")


@pytest.fixture(scope="session")
def mnist_train(data_dir):
    """All 60,000 real MNIST training digits ``(x, y)``, read once per session."""
    return data.mnist(train=True, root=data_dir)


@pytest.fixture(scope="session")
def mnist_test(data_dir):
    """All 10,000 real MNIST test digits ``(x, y)``, read once per session."""
    return data.mnist(train=False, root=data_dir)


@pytest.fixture(scope="session")
def mnist_eval(mnist_test):
    """The first 500 real MNIST test digits: the attacks' evaluation set."""
    x, y = mnist_test
    return x[:MNIST_EVAL_SIZE], y[:MNIST_EVAL_SIZE]


@pytest.fixture(scope="session")
def mnist_model(mnist_train):
    """``mnist_cnn`` trained once per session: one epoch of standard training on 5,000 real digits.

    Returned in eval mode; tests must not train it further (build their own model instead).
    """
    generator = runtime.set_seed(0)
    x, y = data.subset(*mnist_train, MNIST_TRAIN_SIZE, generator=generator)
    model = models.build("mnist_cnn")
    train.fit(model, (x, y), epochs=1, batch_size=64, seed=0)
    return model.eval()


def tiny_mnist_cnn(seed: int = 0) -> models.Classifier:
    """A small random-init ``mnist_cnn`` (4 and 8 channels, 32 hidden units) for 28x28 inputs."""
    runtime.set_seed(seed)
    return models.build("mnist_cnn", channels=(4, 8), hidden=32)


@pytest.fixture(scope="session")
def make_tiny_model():
    """A factory ``make_tiny_model(seed)`` for tests that need a fresh model of their own."""
    return tiny_mnist_cnn


@pytest.fixture(scope="session")
def tiny_model():
    """One tiny random-init model shared by the property tests (eval mode; do not change its mode)."""
    return tiny_mnist_cnn().eval()
