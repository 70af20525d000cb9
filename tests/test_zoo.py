"""The model cache: recipes, keys, train-once-then-load, cached evaluations."""

import dataclasses
import json
import re

import pytest
import torch

from robustutils import data, evaluate, independent, profiles, registry, zoo

TINY = zoo.recipe(
    dataset="mnist",
    arch="mnist_cnn",
    arch_kwargs={"channels": [4, 8], "hidden": 16},
    n_train=500,
    epochs=1,
    lr=5e-3,
    monitor_n=50,
)


def test_recipe_fills_defaults_and_refuses_unknown_keys():
    assert zoo.recipe()["optimizer"] == "adam" and zoo.recipe(lr=0.1)["lr"] == 0.1
    with pytest.raises(ValueError, match="unknown recipe keys"):
        zoo.recipe(learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown dataset"):
        zoo.recipe(dataset="svhn")


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 2e-3},
        {"seed": 1},
        {"n_train": 501},
        {"epochs": 2},
        {"arch_kwargs": {"channels": [4, 8], "hidden": 17}},
        {"trades_beta": 1.0},
    ],
)
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


def test_dataset_is_a_seeded_subset(data_dir):
    first, again = zoo.dataset(TINY), zoo.dataset(TINY)
    other = zoo.dataset(zoo.recipe(TINY, seed=1))
    assert len(first[1]) == 500 and torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])
    x, y = zoo.dataset(TINY, train_split=False, n=20)
    assert x.shape == (20, 1, 28, 28) and y.shape == (20,)


def test_get_trains_once_then_loads_the_same_model(data_dir, tmp_path, monkeypatch):
    rec = zoo.adversarial(TINY, "linf", 0.1, steps=2)
    model, meta = zoo.get(rec, device="cpu", progress=False, root=tmp_path)
    assert zoo.path(rec, tmp_path).is_file() and meta["recipe"] == rec and len(meta["history"]) == 1
    assert meta["history"][0]["test_robust_acc"] is not None

    def no_training(*args, **kwargs):
        raise AssertionError("a cached recipe must not be trained again")

    monkeypatch.setattr(zoo.train, "fit", no_training)
    loaded, meta_again = zoo.get(rec, device="cpu", progress=False, root=tmp_path)
    x = zoo.dataset(rec, train_split=False, n=10)[0]
    assert torch.equal(loaded(x), model(x)) and meta_again == meta


def test_the_same_recipe_trains_the_same_weights(data_dir, tmp_path):
    a, _ = zoo.get(TINY, device="cpu", progress=False, root=tmp_path / "a")
    b, _ = zoo.get(TINY, device="cpu", progress=False, root=tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


SUITE = {"attacks": ["apgd-ce", "apgd-t"], "n_iter": 2, "n_target_classes": 2}


def no_evaluation(*args, **kwargs):
    raise AssertionError("a cached evaluation must not run again")


def test_robustness_is_cached_per_model_attacks_and_size(data_dir, tmp_path, monkeypatch):
    model, _ = zoo.get(TINY, device="cpu", progress=False, root=tmp_path)
    suite = independent.suite(0.1, "linf", pgd_steps=3, autoattack=SUITE)
    first = zoo.robustness(TINY, attacks_by_name=suite, n_test=40, device="cpu", root=tmp_path)
    files = list((tmp_path / "evaluations").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == first
    # a cascade: our PGD alone, then each AutoAttack attack on what it left; the last is the worst case
    assert list(first["robust_acc"]) == ["pgd-3", "aa-apgd-ce", "aa-apgd-t"] and first["flags"] == []
    values = list(first["robust_acc"].values())
    assert first["clean_acc"] >= values[0] >= values[1] >= values[2] == first["worst_acc"]
    assert first["attacks"]["aa-apgd-t"]["pyautoattack"] == independent.package_version()

    monkeypatch.setattr(evaluate, "cascade", no_evaluation)
    assert zoo.robustness(TINY, attacks_by_name=suite, n_test=40, device="cpu", root=tmp_path) == first
    with pytest.raises(AssertionError, match="must not run again"):
        zoo.robustness(TINY, attacks_by_name=suite, n_test=41, device="cpu", root=tmp_path)


def test_restricted_imagenet_recipes_train_from_image_folders(imagenet_sample_dir, tmp_path):
    # The full profile's code path, at toy scale: the sample's val images as a training folder.
    rec = zoo.recipe(
        dataset="restricted_imagenet",
        train_split="val",
        n_train=12,
        image_size=64,
        batch_size=6,
        arch="resnet50",
        arch_kwargs={"num_classes": 9},
        epochs=1,
        lr=1e-3,
    )
    loader = zoo.dataset(rec)
    xb, yb = next(iter(loader))
    assert xb.shape == (6, 3, 64, 64) and 0 <= xb.min() and xb.max() <= 1 and yb.max() < 9
    model, meta = zoo.get(rec, device="cpu", progress=False, root=tmp_path)
    assert len(meta["history"]) == 1 and meta["history"][0]["train_loss"] > 0
    x, y = zoo.dataset(rec, train_split=False, n=4)
    assert x.shape == (4, 3, 64, 64) and model(x).shape == (4, 9)


def test_the_full_profile_names_a_complete_restricted_imagenet_recipe():
    rec = zoo.recipe(registry.recipe("restricted_imagenet/l2-3", "full"))
    assert rec["arch"] == "resnet50" and rec["attack"]["norm"] == "l2" and zoo.training_attack(rec).eps == 3.0
    assert registry.names("ci", "restricted_imagenet/*") == []


# --- recipe keys added later (augment) leave the keys of the cached models as they were -------------

# Computed with the code before `augment` existed (main at 19f6a1b): the cache files of every profile's
# MNIST and CIFAR-10 models, and of a constructed dataset and the model trained on it, keep these names
# (with the exact CIFAR-10 copy as the data root). The ci and colab CIFAR-10 recipes changed later (issue 17:
# crop-flip, and at ci all 50,000 images), so their models are not listed.
KEYS_BEFORE_AUGMENT = {
    ("smoke", "mnist", "standard"): "81a136bd23a46c32",
    ("smoke", "mnist", "linf"): "1c1cd28320608c90",
    ("smoke", "cifar", "standard"): "2e0e3774e907740b",
    ("smoke", "cifar", "linf"): "19fa522292844484",
    ("ci", "mnist", "standard"): "782bc33aec40d1b2",
    ("ci", "mnist", "linf"): "7ebdcc356ce3d0a6",
    ("colab", "mnist", "standard"): "8e4d3aa36214a0ff",
    ("colab", "mnist", "linf"): "d5f932d17bd46ca3",
    ("full", "mnist", "standard"): "8762f608f63b419e",
    ("full", "mnist", "linf"): "37ab00bdbe6f0e97",
}


def profile_recipes(profile: str) -> dict:
    """The standard and l_inf models of a profile's MNIST (eps 0.3) and CIFAR-10 (eps 8/255) bases."""
    mnist, cifar = registry._MNIST[profile], registry._CIFAR[profile]
    return {
        (profile, "mnist", "standard"): zoo.recipe(mnist),
        (profile, "mnist", "linf"): zoo.adversarial(mnist, "linf", 0.3, **registry._ATTACK["mnist"][profile]),
        (profile, "cifar", "standard"): zoo.recipe(cifar),
        (profile, "cifar", "linf"): zoo.adversarial(cifar, "linf", 8 / 255, **registry._ATTACK["cifar10"][profile]),
    }


def test_adding_the_augment_key_left_the_keys_of_existing_recipes_unchanged(cifar_subset_dir, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(cifar_subset_dir))
    recipes = {name: rec for profile in profiles.names() for name, rec in profile_recipes(profile).items()}
    assert {name: zoo.key(recipes[name]) for name in KEYS_BEFORE_AUGMENT} == KEYS_BEFORE_AUGMENT
    assert all(rec["augment"] is None for name, rec in recipes.items() if name[0] != "full" and name[1] != "cifar")
    spec = zoo.construction("det", registry._MNIST["ci"], n=4_000, steps=30, step_size=0.25, eps=3.0)
    assert zoo.data_path(spec, "/c").name == "mnist-D_det-3fc404d0f3a5ea46.pt"
    assert zoo.key(zoo.standard_on(registry._MNIST["ci"], spec)) == "2287b40d5c2a858c"


def test_augment_changes_the_key_only_when_set():
    assert zoo.key(zoo.recipe(TINY, augment=None)) == zoo.key(TINY)
    assert zoo.key(zoo.recipe(TINY, augment="crop-flip")) != zoo.key(TINY)
    augmented = zoo.recipe(TINY, augment="crop-flip")
    spec, plain = (
        zoo.construction("rand", source, n=100, steps=2, step_size=0.1, eps=1.0) for source in (augmented, TINY)
    )
    assert zoo.data_path(spec, "/c") != zoo.data_path(plain, "/c"), "a constructed dataset's name hashes its source"


def test_amp_and_channels_last_change_the_key_only_when_set_and_reach_training():
    for late in ("amp", "channels_last"):
        assert zoo.key(zoo.recipe(TINY, **{late: False})) == zoo.key(TINY), f"{late}=False must keep older keys"
        assert zoo.key(zoo.recipe(TINY, **{late: True})) != zoo.key(TINY)
    assert zoo.fit_settings(zoo.recipe(TINY, amp=True))["amp"] is True
    assert zoo.fit_settings(zoo.recipe(TINY))["amp"] is False
    fast = zoo.initial_model(zoo.recipe(TINY, channels_last=True))
    plain = zoo.initial_model(zoo.recipe(TINY))
    conv = [n for n, w in fast.named_parameters() if w.dim() == 4][-1]  # a conv with several input channels
    weights, plain_weights = dict(fast.named_parameters())[conv], dict(plain.named_parameters())[conv]
    assert weights.is_contiguous(memory_format=torch.channels_last)
    assert not plain_weights.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(weights, plain_weights), "the memory format must not change the seeded initial weights"


def test_augment_is_validated():
    with pytest.raises(ValueError, match=r"unknown augment 'mixup': choose None or one of \['crop-flip'\]"):
        zoo.recipe(TINY, augment="mixup")
    with pytest.raises(ValueError, match="Restricted ImageNet augments in its image transform"):
        zoo.recipe(dataset="restricted_imagenet", augment="crop-flip")


def test_the_cifar_recipes_on_all_50000_images_are_augmented_and_smokes_are_not(cifar_subset_dir, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(cifar_subset_dir))  # the key below is the exact copy's
    for name in profiles.names():
        augment = registry.table(name)["cifar10"]["base"].get("augment")
        assert augment == (None if name == "smoke" else "crop-flip"), name
        assert registry.table(name)["mnist"]["base"].get("augment") is None
    rec = zoo.recipe(registry.table("full")["cifar10"]["base"])
    assert zoo.fit_settings(rec)["augment"] == "crop-flip"
    assert zoo.key(rec) == "2afecb15fc2a3baa" != "ef2a0395b16bdf02", "a new key: models trained without augmentation"


def test_models_on_d_det_are_trained_without_augmentation_and_the_others_keep_it():
    base = zoo.recipe(registry.table("full")["cifar10"]["base"])
    assert base["augment"] == "crop-flip"
    source = zoo.adversarial(base, "l2", 0.0, steps=7)
    specs = {
        kind: zoo.construction(kind, source, n=None, steps=1, step_size=0.1, eps=None if kind == "invert" else 0.5)
        for kind in zoo.CONSTRUCTIONS
    }
    assert zoo.standard_on(base, specs["det"])["augment"] is None
    assert zoo.standard_on(base, specs["det"], augment="crop-flip")["augment"] == "crop-flip"
    assert (
        zoo.standard_on(base, specs["rand"])["augment"]
        == zoo.standard_on(base, specs["invert"])["augment"]
        == zoo.standard_on(base, n_train=None)["augment"]
        == "crop-flip"
    )
    assert zoo.label(zoo.standard_on(base, specs["det"])) == "standard on D_det", "labels do not name the augmentation"


def test_an_augmented_recipe_trains_with_it_and_records_it(cifar_subset_dir, tmp_path, monkeypatch):
    rec = zoo.recipe(
        dataset="cifar10",
        arch="cifar_cnn",
        arch_kwargs={"channels": [4, 8], "hidden": 16, "convs_per_block": 1},
        n_train=64,
        batch_size=32,
        epochs=1,
        augment="crop-flip",
    )
    seen = []
    fit = zoo.train.fit
    monkeypatch.setattr(
        zoo.train, "fit", lambda *args, **kwargs: seen.append(kwargs["augment"]) or fit(*args, **kwargs)
    )
    model, meta = zoo.get(rec, device="cpu", progress=False, root=tmp_path)
    assert seen == ["crop-flip"] and meta["recipe"]["augment"] == "crop-flip"
    assert zoo.path(rec, tmp_path).is_file() and zoo.path(rec, tmp_path) != zoo.path(
        zoo.recipe(rec, augment=None), tmp_path
    )


# --- case 7: a size the data cannot meet is an error, not silently shrunk ------------------------------


def test_more_test_images_than_on_disk_is_an_error_naming_both_sizes(cifar_subset_dir):
    rec = zoo.recipe(dataset="cifar10")
    available = len(zoo.dataset(rec, train_split=False)[1])
    assert len(zoo.dataset(rec, train_split=False, n=available)[1]) == available
    with pytest.raises(
        ValueError,
        match=rf"asked for {available + 1:,} CIFAR-10 test images but the data under "
        rf".* has {available:,}.*lower the test size .* in robustutils/profiles\.py",
    ):
        zoo.dataset(rec, train_split=False, n=available + 1)
    for n in (0, -5):
        with pytest.raises(ValueError, match=rf"asked for {n} examples: give a positive number"):
            zoo.dataset(rec, train_split=False, n=n)


def test_the_cifar_subset_says_it_is_shortened_and_how_to_get_the_rest(cifar_subset_dir, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(cifar_subset_dir))
    rec = zoo.recipe(dataset="cifar10")
    assert len(zoo.dataset(rec, train_split=False)[1]) == 1_017
    with pytest.raises(
        ValueError,
        match=r"asked for 10,000 CIFAR-10 test images but the data under .* has 1,017 "
        r"\(a shortened copy: the complete CIFAR-10 has 10,000\).*point ROBUSTUTILS_DATA "
        r"at the complete CIFAR-10",
    ):
        zoo.dataset(rec, train_split=False, n=10_000)
    with pytest.raises(ValueError, match=r"asked for 50,000 CIFAR-10 training images but .* has 8,068"):
        zoo.dataset(zoo.recipe(rec, n_train=50_000))


def test_a_larger_training_set_than_on_disk_is_an_error(data_dir):
    with pytest.raises(
        ValueError,
        match=r"asked for 60,001 MNIST training images but .* has 60,000: lower n_train "
        r"in robustutils/profiles\.py$",
    ):
        zoo.dataset(zoo.recipe(TINY, n_train=60_001))
    with pytest.raises(ValueError, match=r"asked for 0 examples"):
        zoo.dataset(zoo.recipe(TINY, n_train=0))
    assert len(zoo.dataset(zoo.recipe(TINY, n_train=60_000))[1]) == 60_000


def test_restricted_imagenet_sizes_beyond_the_folder_are_errors(imagenet_sample_dir):
    rec = zoo.recipe(dataset="restricted_imagenet", train_split="val", image_size=32)
    with pytest.raises(ValueError, match=r"asked for 204 Restricted ImageNet test images but the folder .*val has 203"):
        zoo.dataset(rec, train_split=False, n=204)
    with pytest.raises(
        ValueError, match=r"asked for 204 Restricted ImageNet training images but the folder .* has 203"
    ):
        zoo.dataset(zoo.recipe(rec, n_train=204))


def test_a_construction_from_more_images_than_its_source_has_is_refused_before_training(data_dir, tmp_path):
    spec = zoo.construction("det", zoo.recipe(TINY, n_train=100), n=101, steps=1, step_size=0.1, eps=1.0)
    with pytest.raises(
        ValueError,
        match=r"asked for 101 MNIST training images but the source recipe's training set "
        r"has 100: lower the construction's n",
    ):
        zoo.constructed(spec, device="cpu", progress=False, root=tmp_path)
    assert not zoo.path(spec["source"], tmp_path).exists(), "refused before its source model is trained"


def test_the_smoke_and_ci_profiles_ask_no_more_cifar_images_than_the_offline_copies_hold():
    """The book builds at smoke and ci from the offline copies (../shared/data): smoke's CIFAR-10 sizes
    fit the exact 8,068/1,017-image subset, ci's the complete JPEG copy (50,000/10,000)."""
    for name, (n_train, n_test) in {"smoke": (8_068, 1_017), "ci": (50_000, 10_000)}.items():
        features, constructed = profiles.config(name, "features"), profiles.config(name, "constructed")
        test_sizes = [profiles.config(name, "eval")[k] for k in ("n_test", "n_sweep")]
        test_sizes += [features["n_measure"], features["n_target"]]
        table = registry.table(name)
        if "cifar10" in table["constructed"]:
            test_sizes.append(constructed["n_measure"])
            assert (table["constructed"]["cifar10"]["n"] or n_train) <= (table["cifar10"]["base"]["n_train"] or n_train)
        cifar = table["cifar10"]["base"]
        assert max(test_sizes + [cifar.get("monitor_n") or 0]) <= n_test, (name, test_sizes)
        assert (cifar["n_train"] or 0) <= n_train


def test_a_model_of_the_jpeg_copy_is_another_model_than_one_of_the_subset(cifar_subset_dir, data_dir, monkeypatch):
    rec, digits = zoo.recipe(dataset="cifar10"), zoo.recipe(dataset="mnist")
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(cifar_subset_dir))
    on_subset, digits_there = zoo.key(rec), zoo.key(digits)
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(data_dir))
    if data.cifar10_copy() != "jpeg":
        pytest.skip("$ROBUSTUTILS_DATA holds no CIFAR-10 JPEG copy")
    assert zoo.key(rec) != on_subset
    assert zoo.key(digits) == digits_there  # MNIST's models do not depend on which CIFAR-10 copy is there


def test_a_cached_evaluation_of_more_test_images_than_exist_is_not_served(data_dir, tmp_path, monkeypatch):
    model, _ = zoo.get(TINY, device="cpu", progress=False, root=tmp_path)
    suite = independent.suite(0.1, "linf", pgd_steps=2, autoattack=SUITE)
    with monkeypatch.context() as patch:  # an evaluation cached by the code that shrank the request silently
        patch.setattr(data, "check_request", lambda *args, **kwargs: None)
        patch.setattr(evaluate, "cascade", lambda *a, **_: {"n": len(a[2]), "robust_acc": {"pgd-2": 0.0}})
        cached = zoo.robustness(TINY, attacks_by_name=suite, n_test=10_001, device="cpu", root=tmp_path)
        assert cached["n"] == 10_000
    with pytest.raises(ValueError, match=r"asked for 10,001 MNIST test images but .* has 10,000"):
        zoo.robustness(TINY, attacks_by_name=suite, n_test=10_001, device="cpu", root=tmp_path)


@dataclasses.dataclass(frozen=True)
class OnProbabilities:
    """AutoAttack run on the model's softmax probabilities instead of its logits: the mistake
    AutoAttack's ``check_range_output`` flags."""

    autoattack: independent.AutoAttack

    def __call__(self, model, x, y):
        return self.autoattack(torch.nn.Sequential(model, torch.nn.Softmax(dim=-1)), x, y)

    def settings(self) -> dict:
        return {**self.autoattack.settings(), "on": "probabilities"}

    def with_loss(self, loss_fn):
        return self.autoattack.with_loss(loss_fn)


def test_autoattacks_flags_are_recorded_with_the_evaluation_and_shown_again_from_the_cache(
    data_dir, tmp_path, monkeypatch
):
    aa = OnProbabilities(independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2))
    suite = {"pgd-2": independent.suite(0.1, "linf", 2, SUITE)["pgd-2"], "aa-probabilities": aa}
    message = r"it seems that the output is a probability distribution"
    with pytest.warns(independent.AutoAttackFlag, match=message):
        first = zoo.robustness(TINY, attacks_by_name=suite, n_test=20, device="cpu", root=tmp_path)
    assert len(first["flags"]) == 1 and re.search(
        r"^AutoAttack APGD-CE \(2 iterations\): " + message, first["flags"][0]
    )
    monkeypatch.setattr(evaluate, "cascade", no_evaluation)
    with pytest.warns(independent.AutoAttackFlag, match=message):
        assert zoo.robustness(TINY, attacks_by_name=suite, n_test=20, device="cpu", root=tmp_path) == first


def test_cached_cascade_keys_its_result_by_the_images_it_measured(tmp_path):
    # Same key and size, other images: the cached result of the first set must not be served.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        y = net(x).argmax(1)
    stages = independent.suite(0.03, "linf", 2, {"attacks": ["apgd-ce"], "n_iter": 2})
    first = zoo.cached_cascade(net, x, y, stages, {"m": "same"}, name="stale", root=tmp_path)
    assert first["clean_acc"] == 1.0
    wrong = (y + 1) % 10  # every label wrong: clean accuracy 0
    again = zoo.cached_cascade(net, x, wrong, stages, {"m": "same"}, name="stale", root=tmp_path)
    assert again["clean_acc"] == 0.0 and again["worst_acc"] == 0.0
    with pytest.raises(ValueError, match="attacks_by_name is empty"):
        zoo.cached_cascade(net, x, y, {}, {"m": "same"}, name="stale", root=tmp_path)
