"""Tables and summaries of results."""

import pytest
from hypothesis import given, strategies as st

from robustutils import report

KERNEL = "robustbook"  # the virtualenv's kernel that the Makefile registers


def test_markdown_table_formats_and_marks_missing_values():
    text = report.markdown_table([{"m": "a", "acc": 0.5}, {"m": "b"}], {"m": "model", "acc": "accuracy"}, {"acc": ".1%"})
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
        assert not any(q[0] >= points[name][0] and q[1] >= points[name][1] and q != points[name] for q in points.values())


def test_is_non_increasing_allows_the_stated_noise():
    assert report.is_non_increasing([0.99, 0.98, 0.985, 0.97], tolerance=0.01)
    assert not report.is_non_increasing([0.99, 0.98, 0.995], tolerance=0.01)
    assert report.is_non_increasing([], 0.0) and report.is_non_increasing([0.5], 0.0)


def test_robustness_row_flattens_a_comparison_and_measures_the_gap():
    result = {"n": 10, "clean_acc": 0.9, "robust_acc": {"pgd": 0.6, "apgd": 0.5}, "worst_acc": 0.45, "attacks": {}}
    row = report.robustness_row("m", "linf 0.3", result, "pgd")
    assert row == {"model": "m", "threat": "linf 0.3", "clean": 0.9, "pgd": 0.6, "apgd": 0.5, "worst": 0.45,
                   "gap": pytest.approx(15.0)}


def test_claim_returns_held_and_asserts_only_when_checked(capsys):
    assert report.claim("k", "robust models are robust", paper="89%", measured="91%", held=True, checked=True)
    assert not report.claim("k", "robust models are robust", paper="89%", measured="12%", held=False, checked=False)
    assert "not asserted" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="did not reproduce"):
        report.claim("k", "robust models are robust", paper="89%", measured="12%", held=False, checked=True)


def test_claims_glued_by_an_executed_notebook_are_collected(tmp_path):
    """A real kernel runs a notebook through papermill, as `make book` does; the records come back
    out of the executed copy with its chapter name and profile."""
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    params = nbformat.v4.new_code_cell('PROFILE = "smoke"')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from robustutils import report\n"
        "report.claim('a', 'first claim', paper='1%', measured='2%', held=True, checked=True)\n"
        "report.claim('b', 'second claim', paper='3%', measured='4%', held=False, checked=False)")
    source, executed = tmp_path / "02_chapter.ipynb", tmp_path / "out" / "02_chapter.ipynb"
    executed.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nb.metadata["kernelspec"] = {"name": KERNEL, "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(executed), parameters={"PROFILE": "ci"},
                               kernel_name=KERNEL, progress_bar=False)
    records = report.collect_claims([executed])
    assert [(r["key"], r["held"], r["checked"], r["chapter"], r["profile"]) for r in records] == \
        [("a", True, True, "02_chapter", "ci"), ("b", False, False, "02_chapter", "ci")]
    assert records[0]["paper"] == "1%" and records[1]["measured"] == "4%"
    assert report.collect_claims([source]) == []  # an unexecuted notebook has nothing glued


def test_claims_table_links_chapters_and_gives_each_verdict():
    base = {"claim": "c", "paper": "p", "measured": "m", "profile": "ci", "chapter": "02_x"}
    records = [{**base, "held": True, "checked": True}, {**base, "held": False, "checked": True},
               {**base, "held": True, "checked": False}, {**base, "held": False, "checked": False}]
    lines = report.claims_table(records).splitlines()
    assert len(lines) == 2 + len(records)
    assert lines[2] == "| {doc}`02_x` | c | p | m (ci) | held |"
    assert [line.rsplit("|", 2)[1].strip() for line in lines[2:]] == \
        ["held", "FAILED", "not asserted (held)", "not asserted (did not hold)"]
