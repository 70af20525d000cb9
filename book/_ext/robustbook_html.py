"""Fixes to the rendered pages, loaded by _config.yml (sphinx: local_extensions).

- jupyter-book 1.x with Sphinx 7 registers sphinx-thebe's inline configuration script twice, so every
  page declared ``const THEBE_JS_URL`` twice and the browser logged "Identifier 'THEBE_JS_URL' has
  already been declared" (found by `make browser`). Identical scripts are kept once.
- The papermill bookkeeping of an executed chapter (its ``parameters`` cell and the
  ``injected-parameters`` cell papermill adds) is removed from the page: the cells gain myst-nb's
  ``remove-cell`` tag as the notebook is read. The notebooks themselves are untouched, so the cells
  stay where a reader of the notebook in Jupyter or Colab sets the profile.
- Exercises are numbered per chapter, "Exercise 3.1" in ``notebooks/03_*.ipynb`` (sphinx-exercise
  numbers them across the book when the table of contents is not numbered); the solutions' and
  references' titles follow, since they read the same numbers.
- ``book/_static/robustbook.css`` and ``robustbook.js``: outputs that fit the page (text wraps, tables
  wrap their cells, images scale, display equations wider than the column are scaled down), and
  MathJax loaded on every page, for the math in figure captions that cells display.
"""

import json
import re
from pathlib import Path

STATIC = Path(__file__).parents[1] / "_static"
# Cells of an executed chapter that are bookkeeping, not part of the story.
REMOVED_TAGS = {"parameters", "injected-parameters"}
CHAPTER_DOC = re.compile(r"(?:^|/)(\d+)_[^/]*$")


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []  # entries are sphinx's _JavaScript(filename, priority, **attributes)
    for script in context.get("script_files", []):
        # An inline script is registered once with filename None and once with "".
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _remove_bookkeeping_cells(app, docname, source):
    """myst-nb parses the text this event hands on, so tags added here are the ones it honours."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    changed = False
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if REMOVED_TAGS.intersection(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        source[0] = json.dumps(notebook)


def _number_exercises_per_chapter(app, env):
    """Renumber sphinx-exercise's numbers (``env.toc_fignumbers``, assigned just before by Sphinx's
    toctree collector on the same event) to (chapter, k), in the order the page had them."""
    changed = []
    for docname, kinds in env.toc_fignumbers.items():
        match = CHAPTER_DOC.search(docname)
        if not match or "exercise" not in kinds:
            continue
        chapter = int(match.group(1))
        ordered = sorted(kinds["exercise"].items(), key=lambda item: item[1])
        renumbered = {ident: (chapter, k) for k, (ident, _) in enumerate(ordered, start=1)}
        if renumbered != kinds["exercise"]:
            kinds["exercise"] = renumbered
            changed.append(docname)
    return changed


def _add_static_files(app):
    app.config.html_static_path.append(str(STATIC))
    app.add_css_file("robustbook.css")
    app.add_js_file("robustbook.js")


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts)
    app.connect("source-read", _remove_bookkeeping_cells)
    app.connect("env-get-updated", _number_exercises_per_chapter, priority=900)
    app.connect("builder-inited", _add_static_files)
    # MathJax on every page, not only on pages with math in their text: a figure caption in a cell's
    # output (robustutils.report.Chapter.figure) may hold math too.
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
