"""The model registry: every named entry hashes to the cache key the chapters used before it existed
(so no cached model is retrained), names resolve with helpful errors, and the cache cannot lie."""

import json
from pathlib import Path

import pytest
import torch

from robustutils import evaluate, independent, profiles, registry, zoo

KEYS_BEFORE = json.loads((Path(__file__).parent / "keys_before_registry.json").read_text())


def _keys(profile):
    models = {zoo.key(e) for e in registry.entries(profile).values() if isinstance(e, registry.Recipe)}
    datasets = {
        zoo.data_path(e, "/c").stem.rsplit("-", 1)[1]
        for e in registry.entries(profile).values()
        if isinstance(e, registry.Construction)
    }
    return models, datasets


@pytest.mark.parametrize("profile", [p for p in KEYS_BEFORE if not p.startswith("_")])
def test_every_entry_has_the_key_the_chapters_used_before_the_registry(profile, cifar_subset_dir, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_DATA", str(cifar_subset_dir))  # the keys were logged with the exact copy
    models, datasets = _keys(profile)
    assert models == set(KEYS_BEFORE[profile]["models"]), "a model would be retrained, or one is missing"
    assert datasets == set(KEYS_BEFORE[profile]["datasets"])


@pytest.mark.parametrize("profile", profiles.names() + profiles.derived_names())
def test_entries_round_trip_through_plain_dicts(profile):
    for name, entry in registry.entries(profile).items():
        kind = type(entry)
        assert kind.from_dict(entry.as_dict()) == entry, name
        if kind is registry.Recipe:
            assert zoo.key(entry) == zoo.key(entry.as_dict()) == zoo.key(zoo.recipe(entry.as_dict()))
        assert name.split("/", 1)[0] in registry.DATASETS


def test_names_follow_the_fields_terms():
    names = registry.names("ci")
    for expected in (
        "mnist/standard",
        "mnist/linf-0.3",
        "mnist/l2-2",
        "mnist/trades-6",
        "cifar10/linf-8/255",
        "cifar10/l2-0.5",
        "mnist/D_R(l2-2)",
        "mnist/D_NR",
        "mnist/D_rand",
        "mnist/D_det",
        "mnist/standard-on-D_R(l2-2)",
        "mnist/linf-0.3-no-ramp",
        "mnist/l2-1.5-n250",
    ):
        assert expected in names
    assert registry.model_name("cifar10", "linf", 8 / 255) == "cifar10/linf-8/255"
    assert registry.model_name("mnist", "l2", 0.0) == "mnist/standard"
    assert registry.recipe("mnist/linf-0.3", "ci").attack["eps"] == 0.3
    assert registry.construction("mnist/D_R(l2-2)", "ci").label == "D_R"
    assert registry.names("ci", "restricted_imagenet/*") == [] and registry.names("full", "restricted_imagenet/*")
    assert registry.constructed_datasets("ci") == registry.constructed_datasets("full") == ["mnist", "cifar10"]


def test_unknown_names_and_wrong_kinds_say_what_to_do():
    with pytest.raises(KeyError, match=r"no entry 'mnist/linf-0.25' .* did you mean \['mnist/linf-0.2'"):
        registry.entry("mnist/linf-0.25", "ci")
    with pytest.raises(ValueError, match="is a constructed dataset, not a model: use robustutils.zoo.constructed"):
        registry.recipe("mnist/D_det", "ci")
    with pytest.raises(ValueError, match="is a model, not a constructed dataset"):
        registry.construction("mnist/standard", "ci")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        registry.names("huge")
    with pytest.raises(ValueError, match="give the profile too"):
        zoo.get("mnist/standard")
    with pytest.raises(ValueError, match="unknown recipe keys"):
        registry.Recipe.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown dataset"):
        registry.Recipe(dataset="svhn")


TINY = registry.Recipe(arch_kwargs={"channels": [4, 8], "hidden": 16}, n_train=300, epochs=1, lr=5e-3)


def test_a_model_cached_by_other_code_loads_with_a_warning(data_dir, tmp_path, monkeypatch):
    _, meta = zoo.get(TINY, device="cpu", progress=False, root=tmp_path)
    assert meta["code"] == zoo.code_fingerprint() and len(meta["code"]) == 12
    zoo.get(TINY, device="cpu", progress=False, root=tmp_path)  # same code: no warning (pytest's -W error would fail)
    monkeypatch.setattr(zoo, "code_fingerprint", lambda: "0123456789ab")
    with pytest.warns(UserWarning, match=r"trained by other code .* now 0123456789ab.*Delete .*\.pt"):
        zoo.get(TINY, device="cpu", progress=False, root=tmp_path)


def test_the_fingerprint_ignores_comments_and_docstrings_and_sees_code():
    source = 'def f(x):\n    """Doc."""\n    return x + 1  # note\n'
    same = 'def f(x):\n    """Another doc."""\n    # a comment\n    return x + 1\n'
    assert zoo._without_docstrings(source) == zoo._without_docstrings(same)
    assert zoo._without_docstrings(source) != zoo._without_docstrings(source.replace("x + 1", "x + 2"))
    first = zoo.code_fingerprint()
    zoo.code_fingerprint.cache_clear()
    assert zoo.code_fingerprint() == first, "the fingerprint must be stable"


SUITE = {"attacks": ["apgd-ce", "apgd-t"], "n_iter": 2, "n_target_classes": 2}


def test_evaluations_are_keyed_by_the_code_that_trained_the_model(data_dir, tmp_path, monkeypatch):
    suite = independent.suite(0.1, "linf", pgd_steps=2, autoattack=SUITE)
    first = zoo.robustness(TINY, attacks_by_name=suite, n_test=20, device="cpu", root=tmp_path)
    calls = []
    cascade = evaluate.cascade
    monkeypatch.setattr(evaluate, "cascade", lambda *a, **k: calls.append(1) or cascade(*a, **k))
    assert zoo.robustness(TINY, attacks_by_name=suite, n_test=20, device="cpu", root=tmp_path) == first and not calls
    (next(tmp_path.glob("mnist-*.pt"))).unlink()
    monkeypatch.setattr(zoo, "code_fingerprint", lambda: "0123456789ab")  # retrained by new code
    zoo.robustness(TINY, attacks_by_name=suite, n_test=20, device="cpu", root=tmp_path)
    assert calls == [1], "a model trained by other code must be evaluated again"
    assert len(list((tmp_path / "evaluations").glob("*.json"))) == 2


def test_robustness_asks_for_one_threat_model():
    with pytest.raises(ValueError, match="not both"):
        zoo.robustness("mnist/standard", "ci", at=("linf", 0.3), attacks_by_name={})
    with pytest.raises(ValueError, match="give the profile"):
        zoo.robustness(TINY, at=("linf", 0.3))


def test_eval_attacks_follow_the_profile():
    attacks = zoo.eval_attacks("ci", "linf", 0.3)
    assert list(attacks) == ["pgd-40", "aa-apgd-ce", "aa-apgd-t"], "our PGD first, then AutoAttack in its order"
    assert [a.settings()["attack"] for a in list(attacks.values())[1:]] == ["AutoAttack APGD-CE", "AutoAttack APGD-T"]
    standard = zoo.eval_attacks("colab", "l2", 0.5)
    assert list(standard) == ["pgd-50x2"] + [independent.stage_key(a) for a in independent.STANDARD]
    assert (
        all(standard[independent.stage_key(a)].settings().get("n_iter", 100) == 100 for a in independent.STANDARD)
        and standard["aa-square"].settings()["n_queries"] == 5000
    )
    assert attacks["pgd-40"].settings()["eps"] == 0.3 and isinstance(
        attacks["pgd-40"](
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.rand(2, 4), torch.tensor([0, 1])
        ),
        torch.Tensor,
    )


def test_getting_a_model_leaves_the_callers_random_state_as_it_was(data_dir, tmp_path):
    for _ in ("trained", "loaded"):
        torch.manual_seed(7)
        zoo.get(TINY, device="cpu", progress=False, root=tmp_path)
        after = torch.rand(3)
        torch.manual_seed(7)
        assert torch.equal(after, torch.rand(3)), "a chapter's numbers must not depend on the cache"


def test_an_evaluation_does_not_depend_on_what_ran_before(data_dir, tmp_path):
    suite = independent.suite(0.1, "linf", pgd_steps=2, autoattack=SUITE)
    results = []
    for seed, root in ((1, tmp_path / "a"), (2, tmp_path / "b")):
        torch.manual_seed(seed)
        zoo.get(TINY, device="cpu", progress=False, root=tmp_path / "model")
        for f in (tmp_path / "model").glob("*.pt"):
            (root).mkdir(exist_ok=True)
            (root / f.name).write_bytes(f.read_bytes())
        state = torch.get_rng_state()
        results.append(zoo.robustness(TINY, attacks_by_name=suite, n_test=50, device="cpu", root=root))
        assert torch.equal(torch.get_rng_state(), state), "the caller's random state must be left as it was"
    timed = [{k: v for k, v in r.items() if k != "seconds"} for r in results]  # wall-clock time varies
    assert timed[0] == timed[1], "the same evaluation after other random draws must give the same numbers"


@pytest.mark.parametrize("profile", ["ci", "colab"])
def test_the_headline_model_is_madrys_threat_model_on_all_digits_and_the_p3_recipe(profile):
    from robustutils import bench

    rec = registry.recipe(registry.HEADLINE, profile)
    assert rec.dataset == "mnist" and rec.n_train is None, "Madry et al. trained on all 60,000 digits"
    assert (rec.attack["norm"], rec.attack["eps"]) == ("linf", registry.HEADLINE_EPS) == ("linf", 0.3)
    net = bench.P3_NETWORK  # P3 compares fast recipes on the headline model's network
    assert tuple(rec.arch_kwargs["channels"]) == net["channels"] or profile != "ci"
    assert (rec.amp, rec.channels_last) == (net["amp"], net["channels_last"])
    assert rec.monitor_n > 0, "the chapter shows its training curve"


def test_the_full_headline_is_the_full_linf_model_and_trains_once():
    assert registry.recipe(registry.HEADLINE, "full") == registry.recipe("mnist/linf-0.3", "full")
    assert zoo.key(registry.recipe(registry.HEADLINE, "full")) == zoo.key(registry.recipe("mnist/linf-0.3", "full"))
