"""The book's pages and references hang together: every paper the text relies on is in the
bibliography and cited from a chapter, and every page of the table of contents exists."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
# The papers the chapters build on (issue 7): the two reproduced, and the methods they test with.
REQUIRED = {
    "tsipras2019robustness",
    "ilyas2019adversarial",
    "madry2018towards",
    "zhang2019trades",
    "wong2020fast",
    "croce2020autoattack",
    "carlini2019evaluating",
}


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), re.M))


def _cited(paths) -> set[str]:
    keys = set()
    for path in paths:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            keys.update(k.strip() for k in group.split(","))
    return keys


def test_the_bibliography_holds_every_paper_the_book_relies_on():
    assert REQUIRED <= _bib_keys(), f"missing from book/references.bib: {sorted(REQUIRED - _bib_keys())}"


def test_every_reference_is_cited_in_a_chapter_and_every_citation_exists():
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    in_chapters = _cited(chapters)
    assert _bib_keys() <= in_chapters, f"cited by no chapter: {sorted(_bib_keys() - in_chapters)}"
    everywhere = in_chapters | _cited(sorted((ROOT / "book").glob("*.md")))
    assert everywhere <= _bib_keys(), f"cited but not in the bibliography: {sorted(everywhere - _bib_keys())}"


def test_every_page_of_the_table_of_contents_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    missing = [f for f in files if not any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb"))]
    assert not missing, missing
    chapters = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert chapters <= set(files), f"chapters left out of _toc.yml: {sorted(chapters - set(files))}"
