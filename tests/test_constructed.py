"""Ilyas et al.'s constructions: representation inversion (D_R / D_NR), targeted relabelling
(D_rand / D_det), and their cache in the zoo."""

import pytest
import torch

from robustutils import attacks, constructed, io, models, profiles, zoo
from robustutils.perception import target_rate

# A source model small enough to train in a second inside the zoo tests.
TINY = zoo.recipe(dataset="mnist", arch="mnist_cnn", arch_kwargs={"channels": [4, 8], "hidden": 16},
                  n_train=200, epochs=1, lr=5e-3)


@pytest.fixture(scope="module")
def digits(mnist_eval):
    return mnist_eval[0][:64], mnist_eval[1][:64]


def test_other_indices_never_pick_the_image_itself_and_reach_every_other():
    idx = constructed.other_indices(5, torch.Generator().manual_seed(0))
    assert idx.shape == (5,) and not (idx == torch.arange(5)).any()
    many = torch.stack([constructed.other_indices(5, torch.Generator().manual_seed(s)) for s in range(200)])
    assert {int(j) for j in many[:, 0]} == {1, 2, 3, 4}, "each other image must be a possible start"
    with pytest.raises(ValueError, match="different starting image"):
        constructed.other_indices(1, torch.Generator())


def test_det_targets_are_the_next_class_and_rand_targets_are_uniform_and_seeded():
    y = torch.arange(10).repeat(100)
    assert torch.equal(constructed.targets(y, "det", 10), (y + 1) % 10)
    rand = constructed.targets(y, "rand", 10, torch.Generator().manual_seed(0))
    again = constructed.targets(y, "rand", 10, torch.Generator().manual_seed(0))
    assert torch.equal(rand, again) and rand.min() >= 0 and rand.max() <= 9
    assert torch.bincount(rand, minlength=10).min() > 60, "1000 uniform draws put ~100 in each class"
    with pytest.raises(ValueError, match="unknown mode"):
        constructed.targets(y, "shuffle", 10)


def test_inversion_lowers_the_representation_distance(mnist_model, digits):
    x, y = digits
    before = constructed.relative_distance(mnist_model, constructed.start_images(x, 0), x)
    x_r, labels = constructed.invert(mnist_model, x, y, steps=40, step_size=0.2, seed=0, progress=False)
    after = constructed.relative_distance(mnist_model, x_r, x)
    assert torch.equal(labels, y) and x_r.shape == x.shape and x_r.min() >= 0 and x_r.max() <= 1
    assert (after <= before + 1e-5).all(), "the best iterate, the start included, is kept"
    assert after.mean() < 0.5 * before.mean(), f"mean relative distance {before.mean():.3f} -> {after.mean():.3f}"


def test_inversion_starts_from_another_image_not_from_the_goal(mnist_model, digits):
    x, y = digits
    x_r, _ = constructed.invert(mnist_model, x, y, steps=1, step_size=1e-3, seed=0, progress=False)
    start = constructed.start_images(x, 0)
    assert not (start == x).flatten(1).all(1).any()
    assert (x_r - start).flatten(1).norm(dim=1).max() <= 1e-3 + 1e-5
    assert (x_r - x).flatten(1).norm(dim=1).min() > 1.0


@pytest.mark.parametrize("mode", constructed.MODES)
def test_relabelling_stays_within_eps_and_moves_toward_the_new_label(mnist_model, digits, mode):
    x, y = digits
    eps = 3.0  # l2 on MNIST digits: enough to take most of them to another class
    x_adv, t = constructed.relabel(mnist_model, x, y, mode=mode, eps=eps, steps=20, step_size=0.3, seed=0,
                                   progress=False)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert attacks.L2.norm(x_adv - x).max() <= eps + 1e-4
    if mode == "det":
        assert torch.equal(t, (y + 1) % 10)
    assert target_rate(mnist_model, x_adv, t) > target_rate(mnist_model, x, t) + 0.3


def test_constructions_are_deterministic_under_a_seed(mnist_model, digits):
    x, y = digits
    settings = {"steps": 5, "step_size": 0.2, "progress": False}
    a, b = (constructed.invert(mnist_model, x, y, seed=3, **settings)[0] for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, constructed.invert(mnist_model, x, y, seed=4, **settings)[0])
    r1, r2 = (constructed.relabel(mnist_model, x, y, mode="rand", eps=1.0, seed=3, **settings) for _ in range(2))
    assert torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])


def test_batches_do_not_change_the_result(mnist_model, digits):
    x, y = digits
    one = constructed.relabel(mnist_model, x, y, mode="det", eps=1.0, steps=5, step_size=0.2, batch_size=64, progress=False)
    many = constructed.relabel(mnist_model, x, y, mode="det", eps=1.0, steps=5, step_size=0.2, batch_size=10, progress=False)
    assert torch.allclose(one[0], many[0], atol=1e-5)


def test_a_construction_spec_says_what_it_builds():
    robust = zoo.adversarial(TINY, "l2", 1.0, steps=2)
    assert zoo.data_label(zoo.construction("invert", robust, n=10, steps=2, step_size=0.1)) == "D_R"
    assert zoo.data_label(zoo.construction("invert", TINY, n=10, steps=2, step_size=0.1)) == "D_NR"
    assert zoo.data_label(zoo.construction("det", TINY, n=10, steps=2, step_size=0.1, eps=1.0)) == "D_det"
    with pytest.raises(ValueError, match="eps bounds the relabelling"):
        zoo.construction("invert", TINY, n=10, steps=2, step_size=0.1, eps=1.0)
    with pytest.raises(ValueError, match="eps bounds the relabelling"):
        zoo.construction("rand", TINY, n=10, steps=2, step_size=0.1)
    with pytest.raises(ValueError, match="unknown construction"):
        zoo.construction("shuffle", TINY, n=10, steps=2, step_size=0.1)
    with pytest.raises(ValueError, match="in-memory dataset"):
        zoo.construction("det", zoo.recipe(dataset="restricted_imagenet"), n=10, steps=2, step_size=0.1, eps=1.0)


def test_constructed_datasets_are_cached_and_models_train_on_them(data_dir, tmp_path, monkeypatch):
    spec = zoo.construction("det", TINY, n=40, steps=3, step_size=0.5, eps=1.5)
    x, y = zoo.constructed(spec, "cpu", progress=False, root=tmp_path)
    assert x.shape == (40, 1, 28, 28) and torch.equal(y, (zoo.dataset(TINY)[1][:40] + 1) % 10)
    meta = zoo.constructed_meta(spec, root=tmp_path)
    assert meta["spec"] == spec and meta["build_time_s"] > 0

    def no_building(*args, **kwargs):
        raise AssertionError("a cached dataset must not be built again")
    monkeypatch.setattr(constructed, "relabel", no_building)
    again = zoo.constructed(spec, "cpu", progress=False, root=tmp_path)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
    other = zoo.construction("det", TINY, n=40, steps=3, step_size=0.5, eps=1.0)
    assert zoo.data_path(other, tmp_path) != zoo.data_path(spec, tmp_path)

    fresh = zoo.standard_on(TINY, spec)
    assert zoo.label(fresh) == "standard on D_det" and zoo.key(fresh) != zoo.key(TINY)
    model, meta = zoo.get(fresh, "cpu", progress=False, root=tmp_path)
    assert meta["recipe"]["train_data"] == spec and model(x[:2]).shape == (2, 10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == sorted(
        [zoo.path(TINY, tmp_path).name, zoo.path(fresh, tmp_path).name]), "source and fresh model share the root"


def test_the_baseline_trains_on_the_images_the_constructions_start_from(data_dir):
    x_base, y_base = zoo.dataset(zoo.standard_on(TINY, n_train=40))
    x_source, y_source = zoo.dataset(TINY)
    assert torch.equal(x_base, x_source[:40]) and torch.equal(y_base, y_source[:40])


def test_a_dataset_file_is_not_a_checkpoint_and_vice_versa(tmp_path):
    io.save_data(tmp_path / "d.pt", torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), {"n": 2})
    x, y, meta = io.load_data(tmp_path / "d.pt")
    assert x.shape == (2, 1, 2, 2) and meta == {"n": 2}
    with pytest.raises(io.CheckpointError, match="not a robustutils checkpoint"):
        io.load(tmp_path / "d.pt")
    io.save(models.build("mnist_cnn", channels=[2, 2], hidden=4), tmp_path / "m.pt")
    with pytest.raises(io.CheckpointError, match="not a robustutils dataset"):
        io.load_data(tmp_path / "m.pt")


def test_the_profiles_constructions_are_valid():
    for name in profiles.names():
        cfg = profiles.config(name, "constructed")
        for d, c in cfg["datasets"].items():
            base = zoo.recipe(c["base"])
            zoo.construction("invert", base, n=c["n"], **c["invert"])
            zoo.construction("det", base, n=c["n"], **c["relabel"])
            for spec in c["transfer"].values():
                models.build(spec["arch"], **spec["arch_kwargs"])
    assert list(profiles.config("ci", "constructed")["datasets"]) == ["mnist"]
