"""Tables of results for the chapters: Markdown text (the book renders it), and small summaries."""

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
