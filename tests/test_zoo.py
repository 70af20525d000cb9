"""The model cache: recipes, keys, train-once-then-load, cached evaluations."""

import json

import pytest
import torch

from robustutils import evaluate, independent, profiles, zoo

TINY = zoo.recipe(dataset="mnist", arch="mnist_cnn", arch_kwargs={"channels": [4, 8], "hidden": 16},
                  n_train=500, epochs=1, lr=5e-3, monitor_n=50)


def test_recipe_fills_defaults_and_refuses_unknown_keys():
    assert zoo.recipe()["optimizer"] == "adam" and zoo.recipe(lr=0.1)["lr"] == 0.1
    with pytest.raises(ValueError, match="unknown recipe keys"):
        zoo.recipe(learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown dataset"):
        zoo.recipe(dataset="svhn")


@pytest.mark.parametrize("change", [{"lr": 2e-3}, {"seed": 1}, {"n_train": 501}, {"epochs": 2},
                                    {"arch_kwargs": {"channels": [4, 8], "hidden": 17}}, {"trades_beta": 1.0}])
def test_the_key_changes_with_every_part_of_the_recipe(change):
    assert zoo.key(zoo.recipe(TINY, **change)) != zoo.key(TINY)
    assert zoo.key(dict(reversed(list(TINY.items())))) == zoo.key(TINY), "the key must not depend on key order"


def test_adversarial_sets_the_attack_and_eps_zero_means_standard():
    rec = zoo.adversarial(TINY, "l2", 2.0, steps=4)
    assert rec["attack"] == {"norm": "l2", "eps": 2.0, "steps": 4, "step_size": None}
    assert zoo.adversarial(TINY, "linf", 0.3, steps=1, step_factor=1.25)["attack"]["step_size"] == pytest.approx(0.375)
    assert zoo.adversarial(TINY, "linf", 0.0, steps=4)["attack"] is None
    assert zoo.label(rec) == "l2 2" and zoo.label(zoo.recipe(rec, trades_beta=6.0)) == "trades l2 2 b6"
    assert zoo.path(rec, "/c").name == f"mnist-mnist_cnn-l2-2-{zoo.key(rec)}.pt"


def test_the_profiles_recipes_are_valid():
    for name in profiles.names():
        for chapter, key in (("advtrain", "mnist"), ("tradeoff", "mnist"), ("tradeoff", "cifar")):
            zoo.recipe(profiles.config(name, chapter)[key])
    assert profiles.config("ci", "advtrain")["mnist"] == profiles.config("ci", "tradeoff")["mnist"], \
        "the chapters must share the MNIST recipe so that the cache serves both"


def test_dataset_is_a_seeded_subset(data_dir):
    first, again = zoo.dataset(TINY), zoo.dataset(TINY)
    other = zoo.dataset(zoo.recipe(TINY, seed=1))
    assert len(first[1]) == 500 and torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])
    x, y = zoo.dataset(TINY, train_split=False, n=20)
    assert x.shape == (20, 1, 28, 28) and y.shape == (20,)


def test_get_trains_once_then_loads_the_same_model(data_dir, tmp_path, monkeypatch):
    rec = zoo.adversarial(TINY, "linf", 0.1, steps=2)
    model, meta = zoo.get(rec, "cpu", progress=False, root=tmp_path)
    assert zoo.path(rec, tmp_path).is_file() and meta["recipe"] == rec and len(meta["history"]) == 1
    assert meta["history"][0]["test_robust_acc"] is not None

    def no_training(*args, **kwargs):
        raise AssertionError("a cached recipe must not be trained again")
    monkeypatch.setattr(zoo.train, "fit", no_training)
    loaded, meta_again = zoo.get(rec, "cpu", progress=False, root=tmp_path)
    x = zoo.dataset(rec, train_split=False, n=10)[0]
    assert torch.equal(loaded(x), model(x)) and meta_again == meta


def test_the_same_recipe_trains_the_same_weights(data_dir, tmp_path):
    a, _ = zoo.get(TINY, "cpu", progress=False, root=tmp_path / "a")
    b, _ = zoo.get(TINY, "cpu", progress=False, root=tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_robustness_is_cached_per_model_attacks_and_size(data_dir, tmp_path, monkeypatch):
    model, _ = zoo.get(TINY, "cpu", progress=False, root=tmp_path)
    suite = independent.suite(0.1, "linf", pgd_steps=3, apgd_steps=3)
    first = zoo.robustness(TINY, model, suite, 40, root=tmp_path)
    files = list((tmp_path / "evaluations").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == first

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a cached evaluation must not run again")
    monkeypatch.setattr(evaluate, "compare", no_evaluation)
    assert zoo.robustness(TINY, model, suite, 40, root=tmp_path) == first
    with pytest.raises(AssertionError, match="must not run again"):
        zoo.robustness(TINY, model, suite, 41, root=tmp_path)


def test_restricted_imagenet_recipes_train_from_image_folders(imagenet_sample_dir, tmp_path):
    # The full profile's code path, at toy scale: the sample's val images as a training folder.
    rec = zoo.recipe(dataset="restricted_imagenet", train_split="val", n_train=12, image_size=64, batch_size=6,
                     arch="resnet50", arch_kwargs={"num_classes": 9}, epochs=1, lr=1e-3)
    loader = zoo.dataset(rec)
    xb, yb = next(iter(loader))
    assert xb.shape == (6, 3, 64, 64) and 0 <= xb.min() and xb.max() <= 1 and yb.max() < 9
    model, meta = zoo.get(rec, "cpu", progress=False, root=tmp_path)
    assert len(meta["history"]) == 1 and meta["history"][0]["train_loss"] > 0
    x, y = zoo.dataset(rec, train_split=False, n=4)
    assert x.shape == (4, 3, 64, 64) and model(x).shape == (4, 9)


def test_the_full_profile_names_a_complete_restricted_imagenet_recipe():
    rec = zoo.recipe(profiles.config("full", "features")["imagenet"])
    assert rec["arch"] == "resnet50" and rec["attack"]["norm"] == "l2" and zoo.training_attack(rec).eps == 3.0
    assert profiles.config("ci", "features")["imagenet"] is None
