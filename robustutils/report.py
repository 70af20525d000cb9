"""Tables of results for the chapters: Markdown text (the book renders it), small summaries, and
the claims each chapter tests, recorded in its executed notebook for the summary of results."""

import ast
import json
from pathlib import Path

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


def robustness_row(model: str, threat: str, result: dict, reference: str) -> dict:
    """Return one table row of a :func:`robustutils.evaluate.compare` result: model, threat, clean,
    each attack's robust accuracy, the worst case, and ``gap``, how far attack ``reference``
    overestimates the worst case (percentage points)."""
    return {"model": model, "threat": threat, "clean": result["clean_acc"], **result["robust_acc"],
            "worst": result["worst_acc"], "gap": overestimate_pp(result, reference)}


# Claims: what a chapter tests of a paper, recorded in its executed notebook for the summary page.
CLAIM_PREFIX = "claim:"
_GLUE_MIME = "application/papermill.record/text/plain"


def claim(key: str, text: str, paper: str, measured: str, held: bool, checked: bool) -> bool:
    """Record one claim of a paper as this run tested it, then assert it when ``checked``.

    ``text`` states the claim, ``paper`` the paper's number (with its source), ``measured`` this
    run's number, both as display strings; ``held`` says whether this run supports the claim,
    ``checked`` whether the profile is large enough for it to be asserted (the chapters pass
    ``cfg["assert_claims"]``). The record is glued into the executed notebook under
    ``claim:<key>`` (myst-nb's ``glue``, where installed), where :func:`collect_claims` finds it.
    Returns ``held``; raises ``AssertionError`` when ``checked`` and not ``held``.
    """
    record = {"key": key, "claim": text, "paper": paper, "measured": measured,
              "held": bool(held), "checked": bool(checked)}
    try:
        from myst_nb import glue
    except ImportError:  # e.g. on Colab: the record only matters to the rendered book
        glue = None
    if glue is not None:
        glue(CLAIM_PREFIX + key, json.dumps(record), display=False)
    verdict = "holds" if held else "does NOT hold"
    print(f"Claim: {text} — {verdict} here ({measured}; paper: {paper})"
          + ("" if checked else " [not asserted at this profile]"))
    if checked and not held:
        raise AssertionError(f"claim {key!r} did not reproduce: {text} (measured {measured}; paper {paper})")
    return bool(held)


def collect_claims(paths) -> list[dict]:
    """Return the claim records glued by :func:`claim` into the executed notebooks at ``paths``,
    in path then cell order; each record gains ``chapter`` (the notebook's file stem) and
    ``profile`` (the ``PROFILE`` papermill ran it with, None if the notebook was not run by papermill)."""
    import nbformat

    records = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        profile = nb.metadata.get("papermill", {}).get("parameters", {}).get("PROFILE")
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                name = out.get("metadata", {}).get("scrapbook", {}).get("name", "")
                if name.startswith(CLAIM_PREFIX) and _GLUE_MIME in out.get("data", {}):
                    record = json.loads(ast.literal_eval(out["data"][_GLUE_MIME]))
                    records.append({**record, "chapter": Path(path).stem, "profile": profile})
    return records


def claims_table(records: list[dict]) -> str:
    """Return a Markdown table of claim records (:func:`collect_claims`): chapter (a link to its
    page), claim, the paper's number, this run's number with its profile, and the verdict: "held",
    "FAILED" (asserted and not held, which stops the build), or "not asserted" when the profile was
    too small to assert it (with whether it held anyway)."""
    def verdict(r):
        if r["checked"]:
            return "held" if r["held"] else "FAILED"
        return "not asserted (held)" if r["held"] else "not asserted (did not hold)"

    rows = [{"chapter": f"{{doc}}`{r['chapter']}`", "claim": r["claim"], "paper": r["paper"],
             "run": f"{r['measured']} ({r['profile']})", "verdict": verdict(r)} for r in records]
    return markdown_table(rows, {"chapter": "chapter", "claim": "claim", "paper": "paper",
                                 "run": "this run (profile)", "verdict": "assert"})
