"""Tables of results for the chapters: Markdown text (the book renders it), small summaries, and
the claims each chapter tests, recorded in its executed notebook for the summary of results."""

import ast
import json
from pathlib import Path

from . import independent
from .evaluate import overestimate_pp


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def markdown_table(rows: list[dict], columns: dict[str, str], formats: dict[str, str] | None = None) -> str:
    """Return a Markdown table: one line per row, ``columns`` maps a row key to its header,
    ``formats`` a key to a format spec (e.g. ``".1%"``); missing values show as a dash."""
    formats = formats or {}
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), formats.get(k, "")) for k in columns) + " |")
    return "\n".join(lines)


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Return the names of the points no other point beats on both coordinates (higher is better)."""

    def dominated(a):
        return any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in points.values())

    return [name for name, p in points.items() if not dominated(p)]


def is_non_increasing(values: list[float], tolerance: float) -> bool:
    """Return whether each value is at most ``tolerance`` above the one before it."""
    return all(b <= a + tolerance for a, b in zip(values, values[1:]))


def _check_suite(suite) -> None:
    if not isinstance(suite, dict) or "pgd_steps" not in suite or "autoattack" not in suite:
        raise ValueError(
            "suite is a profile's evaluation suite, profiles.config(profile, 'eval')['suite'] (with "
            f"'pgd_steps' and 'autoattack'); got {suite!r}"
        )
    independent.check_autoattack(suite["autoattack"])


def robustness_columns(suite: dict) -> tuple[dict[str, str], dict[str, str]]:
    """Return ``(columns, formats)`` for :func:`markdown_table` of :func:`robustness_row` rows
    measured with a profile's evaluation ``suite`` (``profiles.config(profile, "eval")["suite"]``):
    model, attack, clean, our PGD, then one column per AutoAttack attack in the order they ran, each
    the accuracy left after it and every column to its left (the last is the worst case), and PGD's
    gap to the worst case (percentage points)."""
    _check_suite(suite)
    pgd = independent.pgd_key(suite["pgd_steps"], suite.get("pgd_restarts", 1))
    order = independent.order(suite["autoattack"]["attacks"])
    stages = {
        independent.stage_key(a): f"+ {independent.TITLES[a]}" + (" = worst case" if a == order[-1] else "")
        for a in order
    }
    columns = {"model": "model", "threat": "attack", "clean": "clean", pgd: pgd.upper(), **stages}
    columns["gap"] = "PGD − worst (pp)"
    return columns, {k: ".1%" for k in ("clean", pgd, *stages)} | {"gap": ".1f"}


def autoattack_note(suite: dict, points: str = "points") -> str:
    """Return the sentence that says what the AutoAttack columns of :func:`robustness_columns` ran."""
    _check_suite(suite)
    pgd = independent.pgd_key(suite["pgd_steps"], suite.get("pgd_restarts", 1)).upper()
    what = independent.describe(suite["autoattack"]).removeprefix("AutoAttack ")
    return (
        f"The AutoAttack columns run Croce & Hein's own code (pyautoattack {independent.package_version()}): "
        f"{what}, after {pgd}, on the {points} it left robust. Each column is the accuracy left after it and "
        "every column to its left, so the last is the per-example worst case."
    )


def robustness_row(model: str, threat: str, result: dict, reference: str) -> dict:
    """Return one table row of a :func:`robustutils.zoo.robustness` result (or of
    :func:`robustutils.evaluate.compare`'s): model, threat, clean, each attack's robust accuracy,
    the worst case, ``gap``, how far attack ``reference`` overestimates the worst case (percentage
    points), and ``flags``, the warnings of AutoAttack's sanity checks (:func:`flag_report`)."""
    return {
        "model": model,
        "threat": threat,
        "clean": result["clean_acc"],
        **result["robust_acc"],
        "worst": result["worst_acc"],
        "gap": overestimate_pp(result, reference),
        "flags": result.get("flags", []),
    }


def robustness_report(results: dict[str, tuple[str, dict]], suite: dict, points: str = "points") -> str:
    """Return Markdown: the table (:func:`robustness_columns`) of ``results``, ``{model: (threat,
    result)}`` with :func:`robustutils.zoo.robustness` results measured with ``suite``, then what the
    AutoAttack columns ran (:func:`autoattack_note`) and AutoAttack's flags (:func:`flag_report`)."""
    _check_suite(suite)
    pgd = independent.pgd_key(suite["pgd_steps"], suite.get("pgd_restarts", 1))
    for model, pair in results.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], dict)):
            raise ValueError(f"results maps a model to (threat, result); got {pair!r} for {model!r}")
        if pgd not in pair[1].get("robust_acc", {}):
            raise ValueError(
                f"{model!r}: its result has no {pgd!r}, so it was measured with another suite than this one: "
                "pass the suite of the profile that evaluated it"
            )
    rows = [robustness_row(model, threat, result, pgd) for model, (threat, result) in results.items()]
    return "\n\n".join(
        [markdown_table(rows, *robustness_columns(suite)), autoattack_note(suite, points), flag_report(rows)]
    )


def flag_report(rows: list[dict]) -> str:
    """Return one line per warning of AutoAttack's sanity checks in :func:`robustness_row` rows
    (``"AutoAttack flagged <model> at <threat>: <warning>"``), or a line saying there was none."""
    lines = [f"AutoAttack flagged {r['model']} at {r['threat']}: {flag}" for r in rows for flag in r.get("flags", [])]
    return "\n".join(lines) or "AutoAttack's sanity checks flagged none of these models."


# Claims: what a chapter tests, recorded in its executed notebook for the summary page.
CLAIM_PREFIX = "claim:"
_GLUE_MIME = "application/papermill.record/text/plain"
THIS_BOOK = "this book"  # the "paper" column of a statement the book checks of itself


def _verdict(record: dict) -> str:
    if record["checked"]:
        return "held" if record["held"] else "FAILED"
    return "not asserted (held)" if record["held"] else "not asserted (did not hold)"


def _glue(record: dict) -> None:
    try:
        from myst_nb import glue
    except ImportError:  # e.g. on Colab: the record only matters to the rendered book
        return
    glue(CLAIM_PREFIX + record["key"], json.dumps(record), display=False)


def _boolean(name: str, value) -> bool:
    """``value`` as a bool: a Python or NumPy bool, or a one-element tensor of one; anything else
    (a string such as "False", a number, a tensor of several values) raises ``ValueError``."""
    if hasattr(value, "numel") and value.numel() == 1 and str(value.dtype) == "torch.bool":
        return bool(value.item())
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ValueError(
        f"{name} must be a boolean, e.g. held=acc > 0.9; got {type(value).__name__} {value!r}"
        + (" (a string is always true: compare numbers instead)" if isinstance(value, str) else "")
    )


def _record(
    key: str, text: str, paper, measured: str, held: bool, checked: bool, kind: str, chapter: int | None = None
) -> dict:
    record = {
        "key": key,
        "claim": text,
        "paper": paper,
        "measured": measured,
        "held": _boolean("held", held),
        "checked": _boolean("checked", checked),
        "kind": kind,
    }
    if chapter is not None:
        record["number"] = chapter
    _glue(record)
    return record


def _print_claim(text: str, paper: str, measured: str, held: bool, checked: bool) -> None:
    print(
        f"Claim {'holds' if held else 'does NOT hold'}"
        + ("" if checked else " (not asserted at this profile)")
        + f": {text.rstrip()}{'' if text.rstrip().endswith(('.', '!', '?')) else '.'} "
        f"This run: {measured}; paper: {paper}."
    )


def _raise_if_failed(record: dict) -> None:
    if record["checked"] and not record["held"]:
        source = f"paper {record['paper']}" if record["paper"] is not None else "checked by this book"
        raise AssertionError(
            f"{record['kind']} {record['key']!r} did not hold: {record['claim']} "
            f"(measured {record['measured']}; {source})"
        )


class Chapter:
    """One chapter page: numbers its figures, records its claims and checks for the summary page,
    and ends the page with their table. Create it once, in the chapter's setup cell.

    Args:
        number: the chapter's number (1 for ``notebooks/01_toy_model.ipynb``); figures are
            numbered ``{number}.{k}``.
        profile: the profile the chapter runs at (its ``PROFILE`` parameter), named in every
            figure caption and table row.
        checked: whether the paper's claims are asserted at this profile (a chapter passes its
            profile's ``assert_claims``); small profiles only record them.

    Examples:
        >>> page = report.Chapter(2, PROFILE, checked=cfg["assert_claims"])  # doctest: +SKIP
        >>> page.claim("ch02-brittle", "A standard model is brittle", paper="0% at ε 0.3 (Madry et al.)",
        ...            measured=f"{acc:.1%}", held=acc < 0.05)                # doctest: +SKIP
        >>> page.check("ch02-clean", "The standard model learns the digits", measured=f"{clean:.1%}",
        ...            held=clean > 0.9, checked=True)                        # doctest: +SKIP
        >>> page.figure(fig, "Robust accuracy against ε, one line per model.")  # doctest: +SKIP
        >>> page.table()                                                     # doctest: +SKIP
    """

    def __init__(self, number: int, profile: str, checked: bool):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"number must be the chapter's number, an integer >= 0 (got {number!r})")
        from . import profiles

        known = profiles.names() + profiles.derived_names()
        if profile not in known:
            raise ValueError(f"unknown profile {profile!r}: choose one of {known}")
        self.number, self.profile, self.checked = number, str(profile), _boolean("checked", checked)
        self.records: dict[str, dict] = {}  # by key: a cell run twice replaces its record
        self.figures = 0

    def claim(self, key: str, text: str, *, paper: str, measured: str, held: bool, checked: bool | None = None) -> None:
        """Record a claim of a paper as this run tested it, and assert it when the page is checked.

        Args:
            key: a name unique in the book, e.g. ``"ch02-brittle"``; the glued record's name is
                ``claim:<key>``, where :func:`collect_claims` finds it.
            text: the claim in one sentence, as the chapter tests it.
            paper: the paper's number with its source, e.g. ``"89.3% (Madry et al. 2018, Table 1)"``.
            measured: this run's number, as a display string.
            held: whether this run supports the claim.
            checked: whether to assert it; by default ``self.checked``. Pass ``False`` for a claim
                the chapter reports without asserting (e.g. one that needs more data than the
                profile has), or a condition for one asserted only on some branches.

        Prints one line with the verdict and returns None (a cell that ends with the call shows no
        stray ``True``). Raises ``AssertionError`` when checked and not ``held`` (the build
        stops at the claim that did not reproduce); ``ValueError`` when ``paper`` is empty.
        """
        checked = self.checked if checked is None else _boolean("checked", checked)
        if not paper:
            raise ValueError(
                f"claim {key!r}: give the paper's number and source as paper=...; "
                "a statement of the book itself is page.check(...)"
            )
        record = _record(key, text, paper, measured, held, checked, "claim", self.number)
        self.records[key] = record
        _print_claim(text, paper, measured, held, checked)
        _raise_if_failed(record)

    def check(self, key: str, text: str, *, measured: str, held: bool, checked: bool | None = None) -> None:
        """Record a statement the book checks of its own run (no paper behind it), and assert it.

        Args:
            key: a name unique in the book, e.g. ``"ch02-clean-accuracy"``.
            text: what is checked, in one sentence (it shows in the chapter's table, not in the output).
            measured: this run's number, as a display string.
            held: whether the statement holds in this run.
            checked: whether to assert it; by default ``self.checked``. Pass ``True`` for a check
                that holds at every profile (e.g. a sanity check of the code).

        Prints one short line (key, verdict, measured) and returns None. Raises ``AssertionError``
        when checked and not ``held``.
        """
        checked = self.checked if checked is None else _boolean("checked", checked)
        record = _record(key, text, None, measured, held, checked, "check", self.number)
        self.records[key] = record
        print(
            f"Check {key}: {'holds' if held else 'does NOT hold'} ({measured})"
            + ("" if checked else " [not asserted at this profile]")
        )
        _raise_if_failed(record)

    def figure(self, fig, caption: str) -> None:
        """Show a matplotlib figure as the page's next numbered figure, captioned
        "Figure {number}.{k}. {caption} Profile: {profile}.", then close it (so that the inline
        backend does not draw it a second time).

        The output is an HTML ``<figure>`` with the PNG inline and a ``<figcaption>`` (the rendered
        book and Jupyter/Colab show it alike; the image scales to the page's width), with the
        caption as its plain-text fallback. Math in the caption is written ``$...$`` and typeset
        where the page has MathJax.
        """
        import base64
        import html
        import io
        import re

        import matplotlib.pyplot as plt
        from IPython.display import display

        if not hasattr(fig, "savefig"):
            raise ValueError(
                f"page.figure takes a matplotlib Figure (e.g. fig = plots.accuracy_vs_eps(...); for "
                f"an Axes, ax.figure); got {type(fig).__name__}"
            )
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError("every figure needs a caption: say what it shows, e.g. 'Robust accuracy against ε'")
        self.figures += 1
        label = f"Figure {self.number}.{self.figures}."
        caption = caption.strip()
        full = f"{caption} Profile: {self.profile}."
        buffer = io.BytesIO()
        # Twice the figure's resolution, shown at its size: sharp on high-density screens.
        fig.savefig(buffer, format="png", dpi=2 * fig.dpi, bbox_inches="tight")
        plt.close(fig)
        data = buffer.getvalue()
        width = int.from_bytes(data[16:20], "big") // 2  # the PNG header's width, in pixels
        png = base64.b64encode(data).decode("ascii")
        # MathJax (the book, JupyterLab) reads \( \) as inline math; a $ in a caption would stay raw.
        text = re.sub(r"\$([^$]+)\$", lambda m: r"\(" + m.group(1) + r"\)", html.escape(full, quote=False))
        ident = f"figure-{self.number}-{self.figures}"
        markup = (
            f'<figure id="{ident}" class="robustbook-figure" style="margin: 1em 0; max-width: 100%">'
            f'<img src="data:image/png;base64,{png}" alt="{html.escape(label + " " + caption)}" '
            f'width="{width}" style="max-width: 100%; height: auto">'
            f'<figcaption class="mathjax_process" style="font-size: 0.9em; margin-top: 0.4em">'
            f"<strong>{label}</strong> {text}</figcaption></figure>"
        )
        display({"text/html": markup, "text/plain": f"{label} {full}"}, raw=True)

    def table(self) -> None:
        """Display the table of this page's claims and checks (Markdown): claim, paper ("this book"
        for a check), this run's number, and the verdict. The same table ends every chapter."""
        from IPython.display import Markdown, display

        display(Markdown(chapter_table(list(self.records.values()))))


def claim(key: str, text: str, paper: str, measured: str, held: bool, checked: bool) -> bool:
    """Record one claim of a paper as this run tested it, then assert it when ``checked``; the
    record and verdict are those of :meth:`Chapter.claim` (prefer it: it also numbers the page's
    figures and builds the chapter's table). Returns ``held``; raises ``AssertionError`` when
    ``checked`` and not ``held``."""
    record = _record(key, text, paper, measured, held, checked, "claim")
    _print_claim(text, paper, measured, held, checked)
    _raise_if_failed(record)
    return bool(held)


def _chapter_number(stem: str) -> int | None:
    return int(stem[:2]) if stem[:2].isdigit() else None


def collect_claims(paths) -> list[dict]:
    """Return the records glued by :meth:`Chapter.claim`, :meth:`Chapter.check` and :func:`claim`
    into the executed notebooks at ``paths``, in path then cell order. Each record has ``key``,
    ``claim`` (the text), ``paper`` (None for a check), ``measured``, ``held``, ``checked``, ``kind``
    (``"claim"`` or ``"check"``), and gains ``chapter`` (the notebook's file stem), ``number`` (the
    chapter's number, from the record or the stem's leading digits) and ``profile`` (the ``PROFILE``
    papermill ran it with, None if the notebook was not run by papermill)."""
    import nbformat

    records = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        profile = nb.metadata.get("papermill", {}).get("parameters", {}).get("PROFILE")
        stem = Path(path).stem
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                name = out.get("metadata", {}).get("scrapbook", {}).get("name", "")
                if name.startswith(CLAIM_PREFIX) and _GLUE_MIME in out.get("data", {}):
                    record = json.loads(ast.literal_eval(out["data"][_GLUE_MIME]))
                    record.setdefault("kind", "claim" if record.get("paper") is not None else "check")
                    record.setdefault("number", _chapter_number(stem))
                    records.append({**record, "chapter": stem, "profile": profile})
    return records


def chapter_table(records: list[dict]) -> str:
    """Return the Markdown table that ends a chapter: one row per claim or check, in the order they
    were made: claim, paper (its number and source, or "this book" for a check), this run, verdict."""
    rows = [
        {
            "claim": r["claim"],
            "paper": THIS_BOOK if r["paper"] is None else r["paper"],
            "run": r["measured"],
            "verdict": _verdict(r),
        }
        for r in records
    ]
    return markdown_table(rows, {"claim": "claim", "paper": "paper", "run": "this run", "verdict": "verdict"})


def claims_table(records: list[dict]) -> str:
    """Return the summary page's Markdown table of the paper claims among ``records``
    (:func:`collect_claims`; checks of the book itself are left out, :func:`claims_summary` counts
    them). The claims that did not hold come first, then those not asserted, then those that held,
    each group in chapter order. Columns: chapter (a short link, "Ch. 3"), claim, the paper's
    number, this run's number with its profile, and the verdict: "held", "FAILED" (asserted and
    not held, which stops the build), or "not asserted" when the profile was too small to assert
    it (with whether it held anyway)."""

    def rank(r):
        return 0 if not r["held"] else 1 if not r["checked"] else 2

    claims = sorted((r for r in records if r.get("kind", "claim") == "claim"), key=rank)  # stable: chapter order
    rows = []
    for r in claims:
        number = r.get("number", _chapter_number(r["chapter"]))
        name = f"Ch. {number}" if number is not None else r["chapter"]
        rows.append(
            {
                "chapter": f"{{doc}}`{name} <{r['chapter']}>`",
                "claim": r["claim"],
                "paper": r["paper"],
                "run": f"{r['measured']} ({r['profile']})",
                "verdict": _verdict(r),
            }
        )
    return markdown_table(
        rows,
        {"chapter": "chapter", "claim": "claim", "paper": "paper", "run": "this run (profile)", "verdict": "verdict"},
    )


def claims_summary(records: list[dict]) -> str:
    """Return one sentence that counts ``records`` (:func:`collect_claims`): the paper claims that
    were asserted and held, those that were not asserted at this profile (whether they held anyway),
    and the checks the book made of itself. An asserted claim that did not hold stops its chapter, so
    a built book has none; were there any, they are counted first."""

    def count(rs):
        asserted = [r for r in rs if r["checked"]]
        loose = [r for r in rs if not r["checked"]]
        parts = [f"{sum(r['held'] for r in asserted)} of {len(asserted)} asserted held"]
        if any(not r["held"] for r in asserted):
            parts.insert(0, f"{sum(not r['held'] for r in asserted)} asserted did NOT hold")
        if loose:
            parts.append(
                f"{len(loose)} not asserted at this profile ({sum(r['held'] for r in loose)} held anyway, "
                f"{sum(not r['held'] for r in loose)} did not)"
            )
        return ", ".join(parts)

    claims = [r for r in records if r.get("kind", "claim") == "claim"]
    checks = [r for r in records if r.get("kind", "claim") == "check"]
    return (
        f"{len(claims)} claims of the papers: {count(claims)}. "
        f"{len(checks)} check{'' if len(checks) == 1 else 's'} of the book's own: {count(checks)}."
    )
