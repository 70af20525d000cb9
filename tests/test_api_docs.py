"""The API reference (book/api.md) is generated from docstrings: every public object needs one that
says what it returns, every module needs its section, and eps is documented with its units.

Public: module-level functions and classes whose names do not start with ``_`` and that the module
defines itself (``obj.__module__ == module.__name__``), and the public methods (and properties)
that those classes define themselves.
"""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import robustutils

API_PAGE = Path(__file__).resolve().parent.parent / "book" / "api.md"
MODULES = sorted(info.name for info in pkgutil.iter_modules(robustutils.__path__))
# ```{automodule} robustutils.x``` or, inside an eval-rst block, `.. automodule:: robustutils.x`
AUTOMODULE = re.compile(r"^\s*(?:```\{automodule\}|\.\. automodule::)\s+(\S+)\s*$", re.MULTILINE)


def _module(name: str):
    return importlib.import_module(f"robustutils.{name}")


def public_objects(module):
    """Yield ``(qualified name, object)`` for the public functions, classes and methods of ``module``;
    a method or property comes as the function (or property) found in its class's ``__dict__``."""
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    yield f"{module.__name__}.{name}.{attr}", member


def own_doc(obj) -> str:
    """The object's own docstring (not one inherited from a base class, not a dataclass's generated
    signature), or ``""``."""
    if isinstance(obj, property):
        obj = obj.fget
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    doc = inspect.cleandoc(doc or "")
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):  # dataclasses write one
        return ""
    return doc


def _returns_something(func) -> bool:
    annotation = inspect.signature(func).return_annotation
    return annotation is not None and annotation != "None"


def test_every_module_has_public_objects_found():
    assert len(MODULES) >= 20, MODULES
    found = [qual for name in MODULES for qual, _ in public_objects(_module(name))]
    assert len(found) >= 200, f"only {len(found)} public objects found: the enumeration is broken"


@pytest.mark.parametrize("name", MODULES)
def test_module_has_docstring(name):
    assert inspect.cleandoc(_module(name).__doc__ or ""), f"robustutils.{name} has no module docstring"


@pytest.mark.parametrize("name", MODULES)
def test_public_objects_have_docstrings(name):
    missing = [qual for qual, obj in public_objects(_module(name)) if not own_doc(obj)]
    assert not missing, f"public objects without a docstring of their own: {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_docstrings_say_what_is_returned(name):
    silent = []
    for qual, obj in public_objects(_module(name)):
        if not inspect.isfunction(obj) or not _returns_something(obj):
            continue
        doc = own_doc(obj)
        if re.search(r"return", doc, re.IGNORECASE):
            continue
        if inspect.isgeneratorfunction(obj) and re.search(r"yield", doc, re.IGNORECASE):
            continue  # a generator says what it yields
        silent.append(qual)
    assert not silent, f"functions whose docstring does not say what they return: {silent}"


@pytest.mark.parametrize("name", MODULES)
def test_eps_is_documented_in_pixel_units(name):
    module = _module(name)
    module_says = "pixel" in (module.__doc__ or "").lower()
    unitless = [
        qual
        for qual, obj in public_objects(module)
        if inspect.isfunction(obj)
        and "eps" in inspect.signature(obj).parameters
        and not module_says
        and "pixel" not in own_doc(obj).lower()
    ]
    assert not unitless, f"functions taking eps whose docstring (or module's) does not give its units: {unitless}"


def test_api_page_documents_every_module():
    named = AUTOMODULE.findall(API_PAGE.read_text())
    expected = [f"robustutils.{name}" for name in MODULES]
    assert sorted(set(expected) - set(named)) == [], "modules missing from book/api.md"
    assert sorted(set(named) - set(expected)) == [], "book/api.md names modules that do not exist"
    assert len(named) == len(set(named)), "a module has two automodule sections in book/api.md"


def test_api_page_has_title_and_members():
    text = API_PAGE.read_text()
    assert text.startswith("# API reference: robustutils\n")
    # without :members: an automodule shows the module docstring only
    with_members = re.findall(r"automodule(?:\}|::)\s+(\S+)\s*\n\s*:members:", text)
    assert with_members == AUTOMODULE.findall(text)


@pytest.mark.parametrize("name", MODULES)
def test_attribute_doc_comments_do_not_open_with_a_napoleon_type(name):
    """Napoleon reads an attribute's doc comment ``#: words: more`` as ``type: description``, and
    ``--nitpick`` then fails the book on the "type" it cannot resolve: the first line says no ``x: ``
    before a role."""
    source = Path(_module(name).__file__).read_text().splitlines()
    openings = [
        line for before, line in zip([""] + source, source) if line.startswith("#: ") and not before.startswith("#:")
    ]
    typed = [line for line in openings if re.match(r"#: [^`]*?\w: ", line)]
    assert not typed, f"doc comments whose first line napoleon reads as a type: {typed}"
