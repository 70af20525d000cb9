"""A fix to the rendered pages, loaded by _config.yml (sphinx: local_extensions).

jupyter-book 1.x with Sphinx 7 registers sphinx-thebe's inline configuration script twice, so every
page declared ``const THEBE_JS_URL`` twice and the browser logged "Identifier 'THEBE_JS_URL' has
already been declared" (found by `make browser`). Identical scripts are kept once.
"""


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []  # entries are sphinx's _JavaScript(filename, priority, **attributes)
    for script in context.get("script_files", []):
        # An inline script is registered once with filename None and once with "".
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
