"""Ilyas et al.'s constructions: representation inversion (D_R / D_NR), targeted relabelling
(D_rand / D_det), and their cache in the zoo."""

import pytest
import torch

from robustutils import attacks, constructed, evaluate, io, models, profiles, registry, report, zoo
from robustutils.perception import target_rate

# A source model small enough to train in a second inside the zoo tests.
TINY = zoo.recipe(
    dataset="mnist", arch="mnist_cnn", arch_kwargs={"channels": [4, 8], "hidden": 16}, n_train=200, epochs=1, lr=5e-3
)


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
    x_adv, t = constructed.relabel(
        mnist_model, x, y, mode=mode, eps=eps, steps=20, step_size=0.3, seed=0, progress=False
    )
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
    settings = {"mode": "det", "eps": 1.0, "steps": 5, "step_size": 0.2, "progress": False}
    one = constructed.relabel(mnist_model, x, y, batch_size=64, **settings)
    many = constructed.relabel(mnist_model, x, y, batch_size=10, **settings)
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
    x, y = zoo.constructed(spec, device="cpu", progress=False, root=tmp_path)
    assert x.shape == (40, 1, 28, 28) and torch.equal(y, (zoo.dataset(TINY)[1][:40] + 1) % 10)
    meta = zoo.constructed_meta(spec, root=tmp_path)
    assert meta["spec"] == spec and meta["build_time_s"] > 0

    def no_building(*args, **kwargs):
        raise AssertionError("a cached dataset must not be built again")

    monkeypatch.setattr(constructed, "relabel", no_building)
    again = zoo.constructed(spec, device="cpu", progress=False, root=tmp_path)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
    other = zoo.construction("det", TINY, n=40, steps=3, step_size=0.5, eps=1.0)
    assert zoo.data_path(other, tmp_path) != zoo.data_path(spec, tmp_path)

    fresh = zoo.standard_on(TINY, spec)
    assert zoo.label(fresh) == "standard on D_det" and zoo.key(fresh) != zoo.key(TINY)
    model, meta = zoo.get(fresh, device="cpu", progress=False, root=tmp_path)
    assert meta["recipe"]["train_data"] == spec and model(x[:2]).shape == (2, 10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == sorted(
        [zoo.path(TINY, tmp_path).name, zoo.path(fresh, tmp_path).name]
    ), "source and fresh model share the root"


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
        for d in registry.constructed_datasets(name):
            s = constructed.study(d, name)
            assert s.datasets == registry.names(name, f"{d}/D_*") and set(s.specs) == set(s.datasets)
            for on_real, on_det in s.transfer.values():
                rec = registry.recipe(on_det, name)
                models.build(rec.arch, **rec.arch_kwargs)
                assert rec.train_data == s.specs[f"{d}/D_det"] and registry.recipe(on_real, name).train_data is None
    assert registry.constructed_datasets("ci") == ["mnist", "cifar10"]
    assert registry.transfer_archs("cifar10", "ci") == [] and registry.transfer_archs("mnist", "ci")


# --- The chapter's study: names, rows, verdicts and tables --------------------------------------


def test_the_study_names_the_registry_entries_of_the_chapter():
    s = constructed.study("mnist", "ci")
    assert list(s.inversions) == ["mnist/D_R(l2-2)", "mnist/D_R(l2-3)", "mnist/D_NR"]
    assert s.inversions["mnist/D_NR"] == "mnist/standard" and set(s.relabellings.values()) == {"mnist/standard"}
    assert s.sources == ["mnist/standard", "mnist/l2-2", "mnist/l2-3"] and s.judge == "mnist/l2-3"
    assert s.observer == constructed.OBSERVERS["mnist"] == "mnist/l2-2-seed1"

    assert s.best_r == "D_R(l2-3)" and s.title == "MNIST" and (s.eval_eps, s.seed) == (2.0, 0)
    assert s.trained["D"] == "mnist/standard-on-D" and s.trained["D_det"] == "mnist/standard-on-D_det"
    assert list(s.transfer) == registry.transfer_archs("mnist", "ci")
    every = set(registry.names("ci"))
    assert set(s.robust_models) <= every and {n for pair in s.transfer.values() for n in pair} <= every
    assert "mnist/standard-on-D_det" not in s.robust_models, "the relabelled sets' models are not attacked"
    assert constructed.study("cifar10", "smoke").sources == ["cifar10/standard", "cifar10/l2-0.5"]
    with pytest.raises(ValueError, match="builds no constructed datasets"):
        constructed.study("cifar10", "colab")


@pytest.mark.parametrize("observer", ["mnist/l2-3", "mnist/standard-seed1", "mnist/linf-0.3"])
def test_the_observer_is_neither_a_source_nor_trained_at_the_relabelling_radius(monkeypatch, observer):
    monkeypatch.setitem(constructed.OBSERVERS, "mnist", observer)
    with pytest.raises(ValueError, match="cannot observe"):
        constructed.study("mnist", "ci")
    assert constructed.study("cifar10", "ci").observer == "cifar10/l2-1"


def test_the_real_images_are_those_the_constructions_and_D_start_from(data_dir):
    s = constructed.study("mnist", "smoke")
    x, y = s.real_images()
    x_d, y_d = zoo.dataset(registry.recipe("mnist/standard-on-D", "smoke").as_dict())
    assert torch.equal(x, x_d) and torch.equal(y, y_d) and len(y) == s.specs["mnist/D_NR"].n


def _tiny_study(mnist_model):
    """A study of three tiny constructions through the session model (every name is its own)."""
    source = registry.recipe("mnist/standard", "smoke")
    specs = {
        "m/D_R(a)": registry.Construction("invert", source, n=None, steps=20, step_size=0.2),
        "m/D_NR": registry.Construction("invert", source, n=None, steps=20, step_size=0.2),
        "m/D_det": registry.Construction("det", source, n=None, steps=10, step_size=0.3, eps=2.0),
    }
    s = constructed.Study(
        "mnist",
        "smoke",
        specs,
        {"m/D_R(a)": "m/robust", "m/D_NR": "m/standard"},
        {"m/D_det": "m/standard"},
        ["m/standard", "m/robust"],
        {},
        {},
        2.0,
        [0.0, 1.0, 2.0],
        observer="m/robust",
    )
    return s, {"m/standard": mnist_model, "m/robust": mnist_model}


def test_inversion_and_relabel_rows_measure_what_their_tables_say(mnist_model, digits):
    x, y = digits
    s, nets = _tiny_study(mnist_model)
    sets = {n: constructed.invert(mnist_model, x, y, steps=20, step_size=0.2, progress=False) for n in s.inversions}
    sets["m/D_det"] = constructed.relabel(
        mnist_model, x, y, mode="det", eps=2.0, steps=10, step_size=0.3, progress=False
    )
    built = {n: 1.5 for n in sets}
    rows = constructed.inversion_rows(s, nets, sets, x, y, built)
    assert [r["set"] for r in rows] == ["D_R(a)", "D_NR"] and all(r["built"] == 1.5 for r in rows)
    assert all(r["after"] < r["before"] and 0 <= r["source"] <= 1 for r in rows)
    assert rows[0]["source"] == rows[0]["observer"], "one model is both source and observer here"
    checks = constructed.inversion_verdicts(s, rows)["checks"]
    assert [c["key"] for c in checks] == [
        "ch06-mnist-inversion-converges",
        "ch06-mnist-inversion-shows-y",
        "ch06-mnist-dnr-noisier",
    ]
    assert checks[0]["held"] == all(r["after"] < 0.5 * r["before"] for r in rows)
    assert rows[0]["observer_real"] == rows[1]["observer_real"] == target_rate(mnist_model, x, y)
    assert checks[1]["held"] == (rows[0]["observer"] >= 0.8 * rows[0]["observer_real"])
    assert checks[2]["held"] == (rows[0]["observer"] > rows[1]["observer"])
    assert f"(real images: {rows[0]['observer_real']:.1%})" in checks[1]["measured"]
    (row,) = constructed.relabel_rows(s, nets, sets, x, y, built)
    assert row["set"] == "D_det" and row["eps"] == 2.0 and row["changed"] == 1.0 and row["max"] <= 2.0 + 1e-4
    assert row["source"] == target_rate(mnist_model, sets["m/D_det"][0], (y + 1) % 10)
    in_ball, _, shows_y = constructed.relabel_verdicts(s, [row])["checks"]
    assert in_ball["held"] and "≤ 2" in in_ball["measured"]
    assert row["observer"] == target_rate(mnist_model, sets["m/D_det"][0], y)
    assert shows_y["held"] == (row["observer"] >= 0.8 * row["observer_real"])
    assert f"(real images: {row['observer_real']:.1%})" in shows_y["measured"]
    assert "| D_det | 2 | 2 |" in constructed.table("relabel", [row])
    with pytest.raises(ValueError, match="unknown table"):
        constructed.table("claims", [row])


def _rows(worst_r3=0.21):
    return [
        {"set": "D", "clean": 0.955, "worst": 0.132},
        {"set": "D_R(l2-2)", "clean": 0.938, "worst": 0.155},
        {"set": "D_R(l2-3)", "clean": 0.945, "worst": worst_r3},
        {"set": "D_NR", "clean": 0.94, "worst": 0.01},
        {"set": "D_rand", "clean": 0.812, "worst": None},
        {"set": "D_det", "clean": 0.442, "worst": None},
    ]


def test_training_verdicts_state_the_claims_of_the_chapter():
    s = constructed.study("mnist", "ci")
    v = constructed.training_verdicts(s, _rows(), {"D": (s.sweep, [0.9, 0.85, 0.823, 0.6, 0.4, 0.2, 0.1])})
    assert v["best_r"] == "D_R(l2-3)" and v["over_d"] == pytest.approx(7.8) and v["over_nr"] == pytest.approx(20.0)
    assert (v["half_eps"], v["d_at_half"], v["rising"]) == (1.0, 0.823, True)
    keys = [c["key"] for c in v["claims"]]
    assert keys == [
        f"ch06-mnist-{k}"
        for k in (
            "drand-generalises",
            "ddet-generalises",
            "ddet-harder",
            "dr-beats-dnr",
            "dr-beats-d",
            "dnr-not-robust",
        )
    ]
    assert all(c["held"] for c in v["claims"]) and v["claims"][0]["text"].startswith("On MNIST, standard training")
    assert v["d_r"] == ["D_R(l2-2)", "D_R(l2-3)"]
    assert v["claims"][3]["measured"] == (
        "15.5% (D_R(l2-2), +14.5 pp), 21.0% (D_R(l2-3), +20.0 pp) vs 1.0% (D_NR) at l2 eps 2"
    )
    assert v["claims"][4]["measured"].startswith("15.5% (D_R(l2-2), +2.3 pp), 21.0% (D_R(l2-3), +7.8 pp) vs 13.2% (D)")
    assert [c["key"] for c in v["checks"]] == ["ch06-mnist-d-robust-at-half-eps"] and v["checks"][0]["held"]
    worse = constructed.training_verdicts(s, _rows(worst_r3=0.1), {"D": (s.sweep, [0.4] * 7)})
    held = {c["key"]: c["held"] for c in worse["claims"] + worse["checks"]}
    assert not held["ch06-mnist-dr-beats-d"] and not held["ch06-mnist-d-robust-at-half-eps"] and not worse["rising"]
    rows = _rows()
    rows[1] = {**rows[1], "worst": 0.125}  # the less robust source's D_R falls behind D: the claim says so
    held = {c["key"]: c["held"] for c in constructed.training_verdicts(s, rows, {"D": (s.sweep, [0.9] * 7)})["claims"]}
    assert not held["ch06-mnist-dr-beats-d"] and held["ch06-mnist-dr-beats-dnr"]


def test_the_mislabel_diagnosis_names_what_section_2_measured():
    s = constructed.study("cifar10", "ci")
    relabelled = [{"set": "D_rand", "source": 0.421}, {"set": "D_det", "source": 0.38}]
    trained = [{"set": "D", "clean": 0.583}, {"set": "D_rand", "clean": 0.122}, {"set": "D_det", "clean": 0.08}]
    (line,) = constructed.mislabel_diagnosis(s, relabelled, trained)
    assert line.startswith("CIFAR-10") and "trained on D_rand and D_det, below 30%" in line
    assert "only on D_rand 42.1%, D_det 38.0%" in line and "reaches 58.3%" in line
    trained[1:] = [{"set": "D_rand", "clean": 0.808}, {"set": "D_det", "clean": 0.456}]
    assert constructed.mislabel_diagnosis(s, relabelled, trained) == []


def test_cost_and_tradeoff_verdicts():
    s = constructed.study("mnist", "ci")
    robust = {n: {"worst_acc": w} for n, w in zip(s.robust_models, [0.078, 0.562, 0.61, 0.132, 0.155, 0.212, 0.01])}
    trained = _rows()
    clean = {"mnist/standard": 0.978, "mnist/l2-2": 0.972, "mnist/l2-3": 0.941}
    rows = [
        {"model": f"source: {constructed.short(n)}", "clean": clean[n], "worst": robust[n]["worst_acc"], "time": 10.0}
        for n in s.sources
    ]
    rows += [{"model": f"standard on {k}", "clean": 0.945, "worst": 0.212, "time": 25.0} for k in ("D_R(l2-3)",)]
    v = constructed.cost_verdicts(s, rows)
    assert v["checks"][0]["held"] and "35%" in v["lines"][0] and "2.5x" in v["lines"][1]
    c = constructed.robustness_costs(s, rows, trained)
    assert c["cost"] == pytest.approx(0.037) and [k["held"] for k in c["checks"]] == [True, True]
    assert "44.2% test accuracy" in c["lines"][-1]
    t = constructed.tradeoff_verdicts(c["cost"], {"cifar10/standard": 0.572, "cifar10/linf-8/255": 0.378}, 400)
    assert t["cost"] == pytest.approx(0.194) and all(k["held"] for k in t["checks"]) and "LARGER" in t["lines"][1]
    assert not constructed.tradeoff_verdicts(0.3, {"a/standard": 0.5, "a/b": 0.4}, 10)["checks"][1]["held"]


def test_cost_rows_add_up_the_time_to_make_a_model(mnist_model, digits):
    x, y = digits
    s = constructed.study("mnist", "smoke")
    nets = {n: mnist_model for n in s.sources}
    robust = {n: {"worst_acc": 0.5} for n in s.robust_models}
    meta = {n: {"train_time_s": 10.0} for n in s.robust_models}
    rows = constructed.cost_rows(s, nets, meta, x, y, robust, {n: 5.0 for n in s.inversions}, _rows())
    assert [r["model"] for r in rows] == [
        "source: standard",
        "source: l2-2",
        "source: l2-3",
        "standard on D_R(l2-2)",
        "standard on D_R(l2-3)",
        "standard on D_NR",
        "standard on D",
    ]
    assert [r["time"] for r in rows] == [10.0] * 3 + [25.0] * 3 + [10.0]
    assert rows[3]["clean"] == 0.938 and rows[0]["clean"] == evaluate.evaluate(mnist_model, x, y)["clean_acc"]


def test_the_transfer_study_measures_rates_and_their_correlation(mnist_model, digits):
    x, y = digits
    s = constructed.study("mnist", "smoke")
    s = constructed.Study(**{**s.__dict__, "transfer": {"trained": ("a", "a"), "random": ("b", "b")}})
    torch.manual_seed(0)
    nets = {"mnist/standard": mnist_model, "a": mnist_model, "b": models.build("mnist_cnn", channels=[2, 2], hidden=4)}
    r = constructed.transfer_study(s, nets, x, y)
    assert set(r["points"]) == {"trained", "random"} and r["rows"][0]["det"] == r["points"]["trained"][1]
    assert r["points"]["trained"][1] == evaluate.evaluate(mnist_model, x, y)["clean_acc"]
    assert r["corr"] == pytest.approx(1.0) or r["corr"] == pytest.approx(-1.0), "two points lie on a line"
    assert [c["key"] for c in r["claims"]] == ["ch06-mnist-transfer"] and r["claims"][0]["held"] == (r["corr"] > 0.5)
    assert r["same_top"] and r["checks"][0]["held"], "with two architectures the top two are both"


def test_the_training_table_carries_the_papers_numbers_with_d_attacked_as_in_table_7(mnist_model, digits):
    assert constructed.PAPER["D"] == (0.9525, 0.0449), "Ilyas et al. Table 7: D, 95.25% and 4.49% at l2 0.25"
    assert constructed.PAPER["D_rand"][1] is None and constructed.PAPER["D_det"][1] is None
    s = constructed.study("mnist", "smoke")
    robust = {n: {"worst_acc": 0.5} for n in s.robust_models}
    rows = constructed.training_rows(s, {n: mnist_model for n in s.trained.values()}, *digits, robust)
    by = {r["set"]: r for r in rows}
    assert (by["D"]["paper_clean"], by["D"]["paper_robust"]) == constructed.PAPER["D"]
    assert by["D_NR"]["paper_robust"] == constructed.PAPER["D_NR"][1] and by["D_det"]["worst"] is None
    assert "| D | " in constructed.table("training", rows) and "4.5%" in constructed.table("training", rows)


def test_the_transfer_claim_cites_the_targeted_measure():
    s = constructed.study("mnist", "smoke")
    result = {"corr": 0.8, "points": {"a": (0.5, 0.4), "b": (0.2, 0.1)}, "top": [["a", "b"], ["a", "b"]]}
    claim, _ = constructed.transfer_claims(s, {**result, "same_top": True})
    assert "Fig. 3" in claim["paper"] and "Appendix D.9, Fig. 13" in claim["paper"] and "targeted" in claim["text"]


def test_record_prints_and_records_and_stops_at_a_failed_check(capsys):
    page = report.Chapter(6, "smoke", checked=True)
    constructed.record(
        page, {"lines": ["one", "two"], "checks": [{"key": "k1", "text": "fine", "measured": "1", "held": True}]}
    )
    assert capsys.readouterr().out.startswith("one\ntwo\n") and page.records["k1"]["held"]
    with pytest.raises(AssertionError, match="k2"):
        constructed.record(page, {"checks": [{"key": "k2", "text": "bad", "measured": "0", "held": False}]})


def test_a_study_that_is_not_asserted_reports_its_claims_and_checks_without_stopping():
    page = report.Chapter(6, "ci", checked=True)
    verdict = {
        "claims": [{"key": "k1", "text": "t", "paper": "p", "measured": "m", "held": False}],
        "checks": [{"key": "k2", "text": "t", "measured": "m", "held": False}],
    }
    ci = constructed.study("cifar10", "ci")
    assert not ci.asserted and constructed.study("mnist", "ci").asserted
    constructed.record(page, verdict, ci)  # does not raise
    assert [page.records[k]["checked"] for k in ("k1", "k2")] == [False, False]
    with pytest.raises(AssertionError, match="did not hold"):
        constructed.record(page, verdict, constructed.study("mnist", "ci"))
