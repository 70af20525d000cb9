"""Tables and summaries of results."""

from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustutils import independent, report

KERNEL = "robustbook"  # the virtualenv's kernel that the Makefile registers


def test_markdown_table_formats_and_marks_missing_values():
    text = report.markdown_table(
        [{"m": "a", "acc": 0.5}, {"m": "b"}], {"m": "model", "acc": "accuracy"}, {"acc": ".1%"}
    )
    assert text.splitlines() == ["| model | accuracy |", "|---|---|", "| a | 50.0% |", "| b | – |"]


def test_pareto_front_keeps_only_undominated_points():
    points = {"a": (0.99, 0.0), "b": (0.97, 0.6), "c": (0.96, 0.5), "d": (0.90, 0.8)}
    assert report.pareto_front(points) == ["a", "b", "d"]


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=8))
def test_no_point_off_the_front_beats_a_point_on_it(pairs):
    points = {str(i): p for i, p in enumerate(pairs)}
    front = report.pareto_front(points)
    assert front, "a non-empty set has a non-empty front"
    for name in front:
        assert not any(
            q[0] >= points[name][0] and q[1] >= points[name][1] and q != points[name] for q in points.values()
        )


def test_is_non_increasing_allows_the_stated_noise():
    assert report.is_non_increasing([0.99, 0.98, 0.985, 0.97], tolerance=0.01)
    assert not report.is_non_increasing([0.99, 0.98, 0.995], tolerance=0.01)
    assert report.is_non_increasing([], 0.0) and report.is_non_increasing([0.5], 0.0)


def cascade_result(flags=()):
    """A zoo.robustness() result of the smoke profile's suite: PGD-10, then APGD-CE and APGD-T."""
    return {
        "n": 10,
        "clean_acc": 0.9,
        "robust_acc": {"pgd-10": 0.6, "aa-apgd-ce": 0.5, "aa-apgd-t": 0.45},
        "worst_acc": 0.45,
        "attacks": {},
        "flags": list(flags),
    }


def test_robustness_row_flattens_a_result_and_measures_the_gap():
    row = report.robustness_row("m", "linf 0.3", cascade_result(["a flag"]), "pgd-10")
    assert row == {
        "model": "m",
        "threat": "linf 0.3",
        "clean": 0.9,
        "pgd-10": 0.6,
        "aa-apgd-ce": 0.5,
        "aa-apgd-t": 0.45,
        "worst": 0.45,
        "gap": pytest.approx(15.0),
        "flags": ["a flag"],
    }
    compared = {"n": 10, "clean_acc": 0.9, "robust_acc": {"pgd": 0.6, "apgd": 0.5}, "worst_acc": 0.45, "attacks": {}}
    assert report.robustness_row("m", "linf 0.3", compared, "pgd")["flags"] == [], "compare() results have none"


SMOKE_SUITE = {
    "pgd_steps": 10,
    "pgd_restarts": 1,
    "autoattack": {"attacks": ["apgd-t", "apgd-ce"], "n_iter": 10, "n_target_classes": 3},
}


def test_robustness_columns_name_each_autoattack_stage_in_the_order_it_ran():
    columns, formats = report.robustness_columns(SMOKE_SUITE)
    assert list(columns.values()) == [
        "model",
        "attack",
        "clean",
        "PGD-10",
        "+ APGD-CE",
        "+ APGD-T = worst case",
        "PGD − worst (pp)",
    ]
    assert formats == {"clean": ".1%", "pgd-10": ".1%", "aa-apgd-ce": ".1%", "aa-apgd-t": ".1%", "gap": ".1f"}
    standard = {"pgd_steps": 100, "pgd_restarts": 20, "autoattack": {"attacks": list(independent.STANDARD)}}
    assert list(report.robustness_columns(standard)[0].values())[3:-1] == [
        "PGD-100X20",
        "+ APGD-CE",
        "+ APGD-T",
        "+ FAB-T",
        "+ Square = worst case",
    ]


def test_the_autoattack_note_says_what_ran_and_with_which_code():
    note = report.autoattack_note(SMOKE_SUITE, points="digits")
    assert f"pyautoattack {independent.package_version()}" in note
    assert "APGD-CE, APGD-T (10 iterations, 3 target classes)" in note and "PGD-10" in note and "digits" in note
    assert "(standard)" in report.autoattack_note(
        {**SMOKE_SUITE, "autoattack": {"attacks": list(independent.STANDARD)}}
    )


def test_the_robustness_report_shows_the_table_the_note_and_every_flag():
    clean = report.robustness_report({"m": ("ℓ∞ 0.3", cascade_result())}, SMOKE_SUITE)
    table, note, flags = clean.split("\n\n")
    assert table.splitlines()[2] == "| m | ℓ∞ 0.3 | 90.0% | 60.0% | 50.0% | 45.0% | 15.0 |"
    assert note == report.autoattack_note(SMOKE_SUITE)
    assert flags == "AutoAttack's sanity checks flagged none of these models."
    flagged = report.robustness_report({"m": ("ℓ∞ 0.3", cascade_result(["it seems", "and more"]))}, SMOKE_SUITE)
    assert flagged.splitlines()[-2:] == [
        "AutoAttack flagged m at ℓ∞ 0.3: it seems",
        "AutoAttack flagged m at ℓ∞ 0.3: and more",
    ]


def test_claim_returns_held_and_asserts_only_when_checked(capsys):
    assert report.claim("k", "robust models are robust", paper="89%", measured="91%", held=True, checked=True)
    assert not report.claim("k", "robust models are robust", paper="89%", measured="12%", held=False, checked=False)
    assert "not asserted" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="did not hold"):
        report.claim("k", "robust models are robust", paper="89%", measured="12%", held=False, checked=True)


def test_a_chapter_asserts_claims_when_checked_and_checks_as_asked(capsys):
    page = report.Chapter(3, "ci", checked=True)
    assert page.claim("a", "robust models are robust", paper="89% (paper)", measured="91%", held=True) is None
    with pytest.raises(AssertionError, match="claim 'b' did not hold"):
        page.claim("b", "robust models are robust", paper="89% (paper)", measured="12%", held=False)
    page.check("c", "a check of small runs", measured="3", held=False, checked=False)
    with pytest.raises(AssertionError, match="check 'd' did not hold.*checked by this book"):
        page.check("d", "a sanity check", measured="0", held=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Claim holds: robust models are robust. This run: 91%; paper: 89% (paper)."
    assert len(lines) == 4 and lines[2] == "Check c: does NOT hold (3) [not asserted at this profile]"
    assert [(r["key"], r["kind"], r["paper"], r["checked"]) for r in page.records.values()] == [
        ("a", "claim", "89% (paper)", True),
        ("b", "claim", "89% (paper)", True),
        ("c", "check", None, False),
        ("d", "check", None, True),
    ]
    small = report.Chapter(3, "smoke", checked=False)
    small.claim("a", "c", paper="p", measured="m", held=False)  # recorded, not asserted
    small.check("e", "holds at every profile", measured="m", held=True, checked=True)
    assert [(r["key"], r["held"], r["checked"]) for r in small.records.values()] == [
        ("a", False, False),
        ("e", True, True),
    ]
    with pytest.raises(ValueError, match="page.check"):
        small.claim("f", "no paper", paper=None, measured="m", held=True)
    with pytest.raises(ValueError, match="chapter's number"):
        report.Chapter("3", "ci", checked=True)


def test_a_record_made_twice_is_kept_once():
    page = report.Chapter(1, "ci", checked=False)
    page.check("a", "first run", measured="1", held=False)
    page.check("a", "second run", measured="2", held=True)
    assert [r["measured"] for r in page.records.values()] == ["2"]


def test_the_chapter_table_lists_claims_and_checks_in_order():
    page = report.Chapter(1, "ci", checked=True)
    page.claim("a", "a paper's claim", paper="1% (P)", measured="2%", held=True)
    page.check("b", "the book's check", measured="3", held=True)
    shown = []
    with mock.patch("IPython.display.display", shown.append):
        page.table()
    assert shown[0].data.splitlines() == [
        "| claim | paper | this run | verdict |",
        "|---|---|---|---|",
        "| a paper's claim | 1% (P) | 2% | held |",
        "| the book's check | this book | 3 | held |",
    ]


def test_figures_are_numbered_captioned_and_closed():
    plt = pytest.importorskip("matplotlib.pyplot")
    page = report.Chapter(4, "smoke", checked=False)
    shown = []
    with mock.patch("IPython.display.display", lambda bundle, raw: shown.append(bundle)):
        for caption in ["Gradients of three models.", r"Robust accuracy against $\epsilon$."]:
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([0, 1])
            page.figure(fig, caption)
            assert not plt.fignum_exists(fig.number), "a figure left open is drawn twice by the inline backend"
    assert [b["text/plain"] for b in shown] == [
        "Figure 4.1. Gradients of three models. Profile: smoke.",
        r"Figure 4.2. Robust accuracy against $\epsilon$. Profile: smoke.",
    ]
    html = shown[1]["text/html"]
    assert html.startswith('<figure id="figure-4-2"') and html.endswith("</figcaption></figure>")
    assert '<img src="data:image/png;base64,' in html and "max-width: 100%" in html
    assert r"<strong>Figure 4.2.</strong> Robust accuracy against \(\epsilon\). Profile: smoke." in html


def test_claims_glued_by_an_executed_notebook_are_collected(tmp_path):
    """A real kernel runs a notebook through papermill, as `make book` does; the records come back
    out of the executed copy with its chapter name, number and profile."""
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    params = nbformat.v4.new_code_cell('PROFILE = "smoke"')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from robustutils import report\n"
        "page = report.Chapter(2, PROFILE, checked=False)\n"
        "page.claim('a', 'first claim', paper='1%', measured='2%', held=True)\n"
        "page.check('b', 'a check', measured='4%', held=False)\n"
        "report.claim('c', 'third claim', paper='5%', measured='6%', held=True, checked=True)"
    )
    source, executed = tmp_path / "02_chapter.ipynb", tmp_path / "out" / "02_chapter.ipynb"
    executed.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nb.metadata["kernelspec"] = {"name": KERNEL, "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, source)
    papermill.execute_notebook(
        str(source), str(executed), parameters={"PROFILE": "ci"}, kernel_name=KERNEL, progress_bar=False
    )
    records = report.collect_claims([executed])
    assert [
        (r["key"], r["kind"], r["held"], r["checked"], r["chapter"], r["number"], r["profile"]) for r in records
    ] == [
        ("a", "claim", True, False, "02_chapter", 2, "ci"),
        ("b", "check", False, False, "02_chapter", 2, "ci"),
        ("c", "claim", True, True, "02_chapter", 2, "ci"),
    ]
    assert records[0]["paper"] == "1%" and records[1]["paper"] is None and records[1]["measured"] == "4%"
    assert report.collect_claims([source]) == []  # an unexecuted notebook has nothing glued


def _records():
    base = {"paper": "p", "measured": "m", "profile": "ci", "kind": "claim"}
    return [
        {**base, "claim": "held", "chapter": "02_x", "held": True, "checked": True},
        {**base, "claim": "failed", "chapter": "03_y", "held": False, "checked": True},
        {**base, "claim": "small, held", "chapter": "02_x", "held": True, "checked": False},
        {**base, "claim": "small, not held", "chapter": "04_z", "held": False, "checked": False},
        {**base, "claim": "a check", "chapter": "02_x", "held": True, "checked": True, "kind": "check", "paper": None},
    ]


def test_claims_table_leads_with_what_did_not_hold_and_leaves_checks_out():
    lines = report.claims_table(_records()).splitlines()
    assert lines[0] == "| chapter | claim | paper | this run (profile) | verdict |"
    assert lines[2] == "| {doc}`Ch. 3 <03_y>` | failed | p | m (ci) | FAILED |"
    assert [line.split("|")[2].strip() for line in lines[2:]] == ["failed", "small, not held", "small, held", "held"]
    assert [line.rsplit("|", 2)[1].strip() for line in lines[2:]] == [
        "FAILED",
        "not asserted (did not hold)",
        "not asserted (held)",
        "held",
    ]


def test_claims_summary_counts_claims_and_checks_apart():
    assert report.claims_summary(_records()) == (
        "4 claims of the papers: 1 asserted did NOT hold, 1 of 2 asserted held, 2 not asserted at this profile "
        "(1 held anyway, 1 did not). 1 check of the book's own: 1 of 1 asserted held."
    )


def test_verdicts_must_be_booleans_and_figures_need_a_caption():
    page = report.Chapter(2, "smoke", checked=False)
    for held in ("False", "no", 1, None):
        with pytest.raises(ValueError, match="must be a boolean"):
            page.check("k", "t", measured="1", held=held)
    with pytest.raises(ValueError, match="unknown profile"):
        report.Chapter(2, "bogus", True)
    with pytest.raises(ValueError, match="takes a matplotlib Figure"):
        page.figure("not a figure", "caption")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError, match="needs a caption"):
        page.figure(fig, "  ")
    plt.close(fig)
    assert page.figures == 0, "a refused figure takes no number"


@pytest.mark.parametrize(
    "suite",
    [
        {"pgd_steps": 10},
        {"pgd_steps": 10, "autoattack": {}},
        {"suite": {}},
        {"pgd_steps": 10, "autoattack": {"attacks": ["apgd-ce"], "n_iters": 3}},
    ],
)
def test_robustness_columns_refuse_a_malformed_suite_with_the_fix(suite):
    with pytest.raises(ValueError, match="suite|attacks|AutoAttack settings"):
        report.robustness_columns(suite)


def test_robustness_report_refuses_results_of_another_suite_or_not_in_pairs():
    suite = {"pgd_steps": 10, "pgd_restarts": 1, "autoattack": {"attacks": ["apgd-ce"]}}
    result = {"clean_acc": 1.0, "robust_acc": {"pgd-40": 0.5, "aa-apgd-ce": 0.4}, "worst_acc": 0.4}
    with pytest.raises(ValueError, match="measured with another suite"):
        report.robustness_report({"m": ("ℓ∞ 0.3", result)}, suite)
    with pytest.raises(ValueError, match=r"\(threat, result\)"):
        report.robustness_report({"m": result}, suite)
