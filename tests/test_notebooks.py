"""The chapters' sources follow the book's contract: no outputs, an install cell for Colab first,
then a papermill parameters cell."""

import ast
import json
from pathlib import Path

import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

from robustutils import profiles

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "robustbook"  # the virtualenv's kernel that the Makefile registers

# Every chapter's first code cell, word for word; the address is _config.yml's repository, the one
# the launch buttons open the chapter from.
INSTALL_CELL = """# On Colab (or wherever robustutils is missing) install the book's package; elsewhere: nothing.
import importlib.util

if importlib.util.find_spec("robustutils") is None:
    %pip install --quiet "robustutils[published] @ git+{url}@{branch}"
    %pip install --quiet --no-deps "torchattacks>=3.5.1,<4"  # its pinned requests is never imported"""


def _install_cell() -> str:
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return INSTALL_CELL.format(url=repository["url"], branch=repository["branch"])


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in _code_cells(path):
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
            f"{path.name}: strip outputs before committing (e.g. jupyter nbconvert --clear-output --inplace)"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_install_cell(path):
    first = _code_cells(path)[0]
    assert "install" in first["metadata"].get("tags", []), f"{path.name}: first code cell must be tagged 'install'"
    assert "".join(first["source"]) == _install_cell(), (
        f"{path.name}: the install cell must read exactly as tests/test_notebooks.py's INSTALL_CELL"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_second_code_cell_is_parameters_with_a_known_profile(path):
    params = _code_cells(path)[1]
    assert "parameters" in params["metadata"].get("tags", []), (
        f"{path.name}: second code cell must be tagged 'parameters'"
    )
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse("".join(params["source"])).body
        if isinstance(node, ast.Assign)
    }
    assert assigned.get("PROFILE") in profiles.names()
    assert isinstance(assigned.get("SEED"), int)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_function_defined_in_a_chapter(path):
    for cell in _code_cells(path):
        tree = ast.parse(TransformerManager().transform_cell("".join(cell["source"])))
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{path.name} defines {defs}: move them into robustutils"


def test_install_cell_is_valid_ipython_that_installs_from_the_configured_repository():
    python = TransformerManager().transform_cell(_install_cell())
    compile(python, "install cell", "exec")
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f"run_line_magic('pip', 'install --quiet \"robustutils[published] @ git+{url}@" in python


def test_install_cell_does_nothing_where_robustutils_is_installed():
    """In this virtualenv's kernel the cell must not call pip (which would print its note about
    restarting the kernel): it prints nothing."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_install_cell())])
    nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120).execute()
    assert nb.cells[0].outputs == [], nb.cells[0].outputs
