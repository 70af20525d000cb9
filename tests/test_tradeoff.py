"""The trade-off chapter's bookkeeping (robustutils.tradeoff): the arithmetic of the panels, the
low-data study and TRADES on given evaluations, and the registry names it reads. The studies run
end to end, on models trained at each test profile, when `make test` executes chapter 3."""

import matplotlib
import numpy as np
import pytest

from robustutils import data, registry, report, tradeoff

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PGD = tradeoff.pgd_key("ci")


def result(clean: float, worst: float, pgd: float | None = None) -> dict:
    """A zoo.robustness() result with the ci profile's attacks run as a cascade: PGD at ``pgd``
    (default the worst case), APGD-CE halfway down to the worst case, APGD-T at it."""
    pgd = worst if pgd is None else pgd
    return {
        "n": 400,
        "clean_acc": clean,
        "robust_acc": {PGD: pgd, "aa-apgd-ce": (pgd + worst) / 2, "aa-apgd-t": worst},
        "worst_acc": worst,
        "attacks": {},
        "flags": [],
    }


def panel(dataset="mnist", norm="linf", standard=(0.99, 0.98, 0.97), robust=(0.99, 0.8, 0.7), baseline=0.0):
    eps = (0.0, 0.1, 0.3)[: len(standard)]
    return tradeoff.Panel(
        dataset,
        norm,
        eps,
        tuple(registry.model_name(dataset, norm, e) for e in eps),
        tuple(result(s, r) for s, r in zip(standard, robust)),
        result(standard[0], baseline),
    )


def test_a_panel_measures_cost_and_robustness_bought():
    p = panel(standard=(0.99, 0.985, 0.95), robust=(0.99, 0.8, 0.7), baseline=0.02)
    assert p.title == "MNIST ℓ∞" and p.names == ("mnist/standard", "mnist/linf-0.1", "mnist/linf-0.3")
    assert p.standard == [0.99, 0.985, 0.95] and p.robust == [0.99, 0.8, 0.7]
    assert p.cost == pytest.approx(0.04) and p.bought == pytest.approx(0.68)
    assert p.non_increasing(0.0)
    rising = panel(standard=(0.95, 0.97, 0.94))
    assert not rising.non_increasing(0.015) and rising.non_increasing(0.02)


def test_the_verdict_needs_every_norm_to_pay():
    both = {("mnist", "linf"): panel(baseline=0.0), ("mnist", "l2"): panel(norm="l2", baseline=0.0)}
    held, measured = tradeoff.tradeoff_verdict(both, "mnist", tolerance=0.015, least_cost=0.005)
    assert held
    assert measured == "ℓ∞ ε 0.3: standard accuracy 99.0% → 97.0%; ℓ2 ε 0.3: standard accuracy 99.0% → 97.0%"
    both["mnist", "l2"] = panel(norm="l2", standard=(0.99, 0.99, 0.988))  # no cost in l2
    assert not tradeoff.tradeoff_verdict(both, "mnist", tolerance=0.015, least_cost=0.005)[0]
    with pytest.raises(ValueError, match="no panel of 'cifar10'"):
        tradeoff.tradeoff_verdict(both, "cifar10", tolerance=0.03, least_cost=0.03)


def test_robustness_bought_needs_every_norm_and_shows_pgds_own_figure():
    both = {("mnist", "linf"): panel(baseline=0.0), ("mnist", "l2"): panel(norm="l2", baseline=0.0)}
    held, measured = tradeoff.bought_verdict(both, "mnist", least_bought=0.2)
    assert held and measured.startswith("ℓ∞ ε 0.3: +70.0 pp (PGD-40 alone: ")
    assert not tradeoff.bought_verdict(both, "mnist", least_bought=0.71)[0]
    with pytest.raises(ValueError, match="no panel of 'cifar10'"):
        tradeoff.bought_verdict(both, "cifar10", least_bought=0.1)


def test_rows_list_every_model_then_the_standard_model_at_each_largest_eps():
    by_panel = {
        ("cifar10", "linf"): tradeoff.Panel(
            "cifar10",
            "linf",
            (0.0, 8 / 255),
            ("cifar10/standard", "cifar10/linf-8/255"),
            (result(0.57, 0.57), result(0.38, 0.21, pgd=0.24)),
            result(0.57, 0.02),
        )
    }
    rows = tradeoff.robustness_rows(by_panel, "ci")
    assert [(r["model"], r["threat"]) for r in rows] == [
        ("cifar10/standard", "ℓ∞ ε 0"),
        ("cifar10/linf-8/255", "ℓ∞ ε 8/255"),
        ("cifar10/standard", "ℓ∞ ε 8/255"),
    ]
    assert rows[1]["gap"] == pytest.approx(3.0) and rows[1][PGD] == 0.24
    assert tradeoff.flagged(rows) == ["cifar10/linf-8/255 at ℓ∞ ε 8/255 (3.0 pp)"]
    table = tradeoff.robustness_table(rows, "ci").splitlines()
    assert table[0] == "| model | attack | clean | PGD-40 | + APGD-CE | + APGD-T = worst case | PGD − worst (pp) |"
    assert table[3] == "| cifar10/linf-8/255 | ℓ∞ ε 8/255 | 38.0% | 24.0% | 22.5% | 21.0% | 3.0 |"
    verdicts = tradeoff.verdict_table(by_panel, {"cifar10": 0.03})
    assert f"| {data.title('cifar10')} ℓ∞ | 57.0 → 38.0 | yes | 8/255 | 19.0% | +19.0% |" in verdicts


def test_the_figure_shows_each_panels_cost_on_its_own_scale():
    by_panel = {
        ("mnist", "linf"): panel(standard=(0.992, 0.985, 0.970)),
        ("cifar10", "l2"): panel("cifar10", "l2", standard=(0.57, 0.49, 0.42)),
    }
    fig = tradeoff.figure(by_panel)
    top_mnist, top_cifar, bottom_mnist, _ = fig.axes
    assert (top_mnist.get_title(), top_cifar.get_title()) == ("MNIST ℓ∞", f"{data.title('cifar10')} ℓ2")
    low, high = top_mnist.get_ylim()
    assert 0.9 < low < 0.970 and 0.992 < high <= 1.0, "MNIST's 2-point cost fills its panel"
    assert bottom_mnist.get_ylim() == (-0.02, 1.02)
    plt.close(fig)


def test_the_low_data_study_compares_the_fewest_and_the_most_digits():
    low = tradeoff.LowData(
        (250, 1000, 4000), {0.0: [0.868, 0.926, 0.932], 0.5: [0.881, 0.927, 0.942], 1.5: [0.905, 0.942, 0.950]}
    )
    assert low.robust_eps == [0.5, 1.5] and low.best_small == (0.905, 1.5)
    assert low.helps_small == pytest.approx(0.037) and low.costs_large == pytest.approx(-0.018)
    assert low.gains == pytest.approx([0.037, 0.016, 0.018]) and low.starts_to_cost is None
    table = low.table()
    assert table.splitlines()[0] == "| training digits | ε 0 (standard) | ε 0.5 | ε 1.5 | ε 1.5 − standard |"
    assert "| 4,000 | 93.20% | 94.20% | 95.00% | +1.80 pp |" in table


def test_the_low_data_study_says_from_which_size_adversarial_training_costs():
    sizes = (250, 1000, 4000, 16000, 60000)
    standard = [0.898, 0.951, 0.974, 0.983, 0.991]
    low = tradeoff.LowData(
        sizes, {0.0: standard, 1.5: [0.925, 0.968, 0.973, 0.984, 0.990]}, (0.004, 0.002, 0.001, 0.001, 0.001)
    )
    assert low.gains[2] < 0 < low.gains[3], "a dip below standard that recovers is not where the cost starts"
    assert low.starts_to_cost == 60000 and low.costs_large == pytest.approx(0.001)
    assert "| 60,000 | 99.10% | 99.00% | -0.10 pp ± 0.10 |" in low.table()
    later = tradeoff.LowData(sizes, {0.0: standard, 1.5: [0.925, 0.968, 0.973, 0.982, 0.989]})
    assert later.starts_to_cost == 4000
    assert tradeoff.LowData(sizes, {0.0: standard, 1.5: [s + 0.001 for s in standard]}).starts_to_cost is None


def test_the_low_data_names_are_exactly_the_registrys_low_data_models():
    for profile in ("smoke", "ci", "full"):
        names = registry.names(profile, tradeoff.LOWDATA_PATTERN)
        sizes = registry.table(profile)["lowdata"]["sizes"]
        assert len(names) == len(sizes) * len(registry.table(profile)["lowdata"].get("eps", registry.LOWDATA_EPS))
        assert "mnist/linf-0.3-no-ramp" not in names
        assert all(registry.recipe(n, profile).n_train in sizes for n in names)


def test_trades_points_frontier_and_betas():
    study = tradeoff.TradesStudy(
        0.3,
        {
            "standard": result(0.992, 0.0),
            "linf-0.1": result(0.992, 0.0),
            "linf-0.3": result(0.970, 0.718),
            "trades-6": result(0.958, 0.758),
            "trades-1": result(0.970, 0.675),
        },
    )
    assert study.points["trades-6"] == (0.958, 0.758)
    assert study.frontier == ["standard", "linf-0.1", "linf-0.3", "trades-6"]
    assert study.by_beta == [(1.0, 0.970, 0.675), (6.0, 0.958, 0.758)]
    assert [r["threat"] for r in study.rows("ci")] == ["ℓ∞ ε 0.3"] * 5


def test_eps_and_threats_are_written_as_the_book_writes_them():
    assert tradeoff.eps_text("cifar10", "linf", 2 / 255) == "2/255"
    assert tradeoff.eps_text("cifar10", "l2", 0.25) == "0.25"
    assert tradeoff.eps_text("cifar10", "linf", 0.0) == "0"
    assert tradeoff.threat_text("mnist", "l2", 3.0) == "ℓ2 ε 3"


def test_scale_and_training_summary_read_the_registry(data_dir):
    assert tradeoff.scale("mnist/linf-0.3", "ci") == "ci: mnist_cnn, 10,000 images, 3 epochs"
    assert tradeoff.training_summary("mnist/linf-0.3", "ci").endswith("; PGD-4")
    assert tradeoff.training_summary("cifar10/linf-8/255", "ci").endswith("; FGSM, random start, step 1.25 ε")
    assert tradeoff.training_summary("mnist/standard", "ci").endswith("; standard training")
    table = tradeoff.paper_table({}, "ci")
    assert table.count("| – |") == 3, "a threat model without results shows a dash"
    assert "| paper: clean / robust | AutoAttack on the released model |" in table.splitlines()[0]


def test_the_paper_numbers_give_autoattacks_figure_on_each_released_model():
    assert all(len(entry) == 6 for entry in tradeoff.PAPER_NUMBERS)
    madry = next(e for e in tradeoff.PAPER_NUMBERS if e[:3] == ("mnist", "linf", 0.3))
    assert madry[4] == "98.8% / 89.3% (PGD-100, 20 restarts)" and madry[5].startswith("98.53% / 88.50%")
    by_panel = {
        ("mnist", "linf"): tradeoff.Panel(
            "mnist",
            "linf",
            (0.0, 0.3),
            ("a", "b"),
            (result(0.99, 0.0), result(0.97, 0.71, pgd=0.72)),
            result(0.99, 0.0),
        )
    }
    row = next(line for line in tradeoff.paper_table(by_panel, "ci").splitlines() if "Madry" in line)
    assert "| 98.8% / 89.3% (PGD-100, 20 restarts) | 98.53% / 88.50% (Croce & Hein 2020) | 97.0% / 71.0% |" in row


# --- Which model to deploy when a fraction q of the inputs is attacked ---------------------------

CI_POINTS = {  # chapter 3's TRADES study at ci (400 test digits), as fractions
    "standard": (0.9925, 0.0),
    "linf-0.1": (0.9925, 0.0),
    "linf-0.2": (0.9775, 0.02),
    "linf-0.3": (0.97, 0.7175),
    "trades-1": (0.97, 0.67),
    "trades-6": (0.9575, 0.7575),
}


def piece_at(pieces, q):
    return next(p for p in pieces if p.q_from <= q <= p.q_to)


@pytest.mark.filterwarnings("ignore:.*robust accuracy above its standard:UserWarning")
@pytest.mark.parametrize("seed", range(40))
def test_the_envelope_is_the_best_expected_accuracy_at_every_q(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    grid = 400 if seed % 2 else 8  # a coarse grid of accuracies makes ties and repeated points likely
    values = rng.integers(0, grid + 1, size=(n, 2)) / grid
    points = {f"m{i}": (float(s), float(r)) for i, (s, r) in enumerate(values)}
    pieces = tradeoff.best_under_attack(points)
    assert pieces[0].q_from == 0 and pieces[-1].q_to == 1
    assert all(a.q_to == b.q_from for a, b in zip(pieces, pieces[1:]))
    assert all(p.q_from < p.q_to for p in pieces), "no piece is a single point"
    switches = [p.q_from for p in pieces[1:]]
    qs = np.linspace(0, 1, 4001)
    s, r = values[:, 0], values[:, 1]
    for q in qs:
        expected = (1 - q) * s + q * r
        piece = piece_at(pieces, q)
        assert piece.expected(q) == pytest.approx(expected.max(), abs=1e-12)
        if 0 < q < 1 and all(abs(q - w) > 1e-6 for w in switches):
            best = {f"m{i}" for i in np.flatnonzero(expected >= expected.max() - 1e-12)}
            assert set(piece.models) == best, f"q = {q}"


def test_switch_points_are_where_the_two_lines_cross():
    pieces = tradeoff.best_under_attack({"a": (0.99, 0.0), "b": (0.97, 0.72), "c": (0.96, 0.76)})
    assert [p.models for p in pieces] == [("a",), ("b",), ("c",)]
    assert pieces[0].q_to == pytest.approx(0.02 / (0.02 + 0.72), rel=1e-12)
    assert pieces[1].q_to == pytest.approx(0.01 / (0.01 + 0.04), rel=1e-12)
    for before, after in zip(pieces, pieces[1:]):
        q = after.q_from
        assert before.expected(q) == pytest.approx(after.expected(q), abs=1e-12)
        assert before.expected(q - 1e-3) > after.expected(q - 1e-3) and after.expected(q + 1e-3) > before.expected(
            q + 1e-3
        )


def test_the_book_measurements_switch_from_the_most_accurate_to_linf_0_3_to_trades():
    pieces = tradeoff.best_under_attack(CI_POINTS)
    assert [p.models for p in pieces] == [("standard", "linf-0.1"), ("linf-0.3",), ("trades-6",)]
    assert pieces[0].q_to == pytest.approx(0.0225 / 0.74) and pieces[1].q_to == pytest.approx(0.0125 / 0.0525)
    assert tradeoff.deployment_sentence(pieces) == (
        "below q = 0.0304 deploy standard or linf-0.1; from q = 0.0304 to 0.238 linf-0.3; from q = 0.238 on trades-6"
    )
    table = tradeoff.deployment_table(pieces).splitlines()
    assert table[0] == (
        "| q from | q to | best model | its standard accuracy | its robust accuracy | expected accuracy at q from "
        "| expected accuracy at q to |"
    )
    assert table[2] == "| 0 | 0.0304 | standard or linf-0.1 | 99.2% | 0.0% | 99.2% | 96.2% |"
    assert table[-1] == "| 0.238 | 1 | trades-6 | 95.8% | 75.8% | 91.0% | 75.8% |"


@pytest.mark.filterwarnings("ignore:.*robust accuracy above its standard:UserWarning")
def test_a_dominated_model_or_one_below_the_hull_is_never_chosen():
    chosen = {m for p in tradeoff.best_under_attack(CI_POINTS) for m in p.models}
    assert "trades-1" not in chosen, "linf-0.3 beats it on both accuracies"
    assert "linf-0.2" in report.pareto_front(CI_POINTS) and "linf-0.2" not in chosen, "below standard–linf-0.3"
    # b lies on the segment from a to c: the three lines meet at q = 1/3, where c takes over at once
    pieces = tradeoff.best_under_attack({"a": (1.0, 0.0), "b": (0.75, 0.5), "c": (0.5, 1.0)})
    assert [(p.models, p.q_from, p.q_to) for p in pieces] == [(("a",), 0.0, 1 / 3), (("c",), 1 / 3, 1.0)]
    # equal standard accuracy: the more robust one wins from q = 0 on; equal robust accuracy at q = 1 alike
    assert [p.models for p in tradeoff.best_under_attack({"x": (0.9, 0.1), "y": (0.9, 0.2)})] == [("y",)]
    assert [p.models for p in tradeoff.best_under_attack({"x": (0.5, 0.7), "y": (0.8, 0.7)})] == [("y",)]
    one = tradeoff.best_under_attack({"only": (0.9, 0.4)})
    assert [(p.q_from, p.q_to) for p in one] == [(0.0, 1.0)]
    assert tradeoff.deployment_sentence(one) == "at every q deploy only"


@pytest.mark.parametrize(
    "points, match",
    [
        ({}, "non-empty dict"),
        ([("a", (0.9, 0.1))], "non-empty dict"),
        ({"a": (0.9,)}, "must be a pair"),
        ({"a": 0.9}, "must be a pair"),
        ({"a": (97.0, 70.0)}, "divide a percentage by 100"),
        ({"a": (0.9, -0.1)}, r"robust accuracy of 'a' must be a fraction in \[0, 1\]"),
        ({"a": (float("nan"), 0.1)}, "standard accuracy of 'a' must be a finite number"),
        ({"a": (0.9, float("inf"))}, "must be a finite number"),
        ({"a": ("0.9", 0.1)}, "must be a finite number"),
        ({"a": (True, 0.1)}, "must be a finite number"),
    ],
)
def test_points_are_validated(points, match):
    with pytest.raises(ValueError, match=match):
        tradeoff.best_under_attack(points)


def test_expected_accuracy_mixes_the_two_accuracies_and_checks_q():
    assert tradeoff.expected_accuracy(0.9, 0.5, 0.25) == pytest.approx(0.8)
    assert tradeoff.expected_accuracy(0.9, 0.5, 0) == 0.9 and tradeoff.expected_accuracy(0.9, 0.5, 1) == 0.5
    for q in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="q, the fraction of attacked inputs"):
            tradeoff.expected_accuracy(0.9, 0.5, q)


def test_the_deployment_figure_draws_each_model_and_marks_the_switches():
    pieces = tradeoff.best_under_attack(CI_POINTS)
    fig = tradeoff.deployment_figure(CI_POINTS, pieces)
    full, zoom = fig.axes
    assert full.get_legend_handles_labels()[1] == [*CI_POINTS, "the best model (upper envelope)"]
    assert [t.get_text() for t in zoom.texts] == ["q = 0.0304: linf-0.3", "q = 0.238: trades-6"]
    for ax in (full, zoom):
        envelope = [line for line in ax.lines if line.get_linewidth() == 5]
        assert [tuple(line.get_xdata()) for line in envelope] == [(p.q_from, p.q_to) for p in pieces]
        assert envelope[-1].get_ydata()[-1] == pytest.approx(0.7575)
        (dots,) = [line for line in ax.lines if line.get_marker() == "o"]
        assert list(dots.get_xdata()) == [p.q_from for p in pieces[1:]]
    low, high = zoom.get_ylim()
    assert low < 0.7575 and 0.9925 < high <= 1.03, "the zoom shows the whole envelope"
    plt.close(fig)


def test_deployment_refuses_names_that_are_not_strings_and_tensor_accuracies():
    with pytest.raises(ValueError, match="strings"):
        tradeoff.best_under_attack({1: (0.9, 0.5), 2: (0.8, 0.8)})
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"item\(\)"):
        tradeoff.best_under_attack({"a": (torch.tensor(0.9), 0.5)})


def test_deployment_warns_when_robust_exceeds_standard():
    with pytest.warns(UserWarning, match="swapped"):
        tradeoff.best_under_attack({"a": (0.5, 0.9), "b": (0.9, 0.1)})


def test_the_sentence_table_and_figure_take_only_the_envelope():
    points = {"standard": (0.99, 0.0), "linf-0.3": (0.97, 0.7)}
    pieces = tradeoff.best_under_attack(points)
    for bad in ([], points, pieces[::-1] if len(pieces) > 1 else [pieces[0], pieces[0]]):
        with pytest.raises(ValueError, match="best_under_attack"):
            tradeoff.deployment_sentence(bad)
        with pytest.raises(ValueError, match="best_under_attack"):
            tradeoff.deployment_table(bad)
    with pytest.raises(ValueError, match="lacks"):
        tradeoff.deployment_figure({"standard": (0.99, 0.0)}, pieces)
    with pytest.raises(ValueError, match="percentage"):
        tradeoff.deployment_figure({"standard": (99.0, 0.0), "linf-0.3": (97.0, 70.0)}, pieces)
