"""The chapters' sources follow the book's contract: no outputs, a papermill parameters cell first."""

import ast
import json
from pathlib import Path

import pytest

from robustutils import profiles

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in _code_cells(path):
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
            f"{path.name}: strip outputs before committing (e.g. jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_parameters_with_a_known_profile(path):
    first = _code_cells(path)[0]
    assert "parameters" in first["metadata"].get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assigned = {node.targets[0].id: ast.literal_eval(node.value)
                for node in ast.parse("".join(first["source"])).body if isinstance(node, ast.Assign)}
    assert assigned.get("PROFILE") in profiles.names()
    assert isinstance(assigned.get("SEED"), int)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_function_defined_in_a_chapter(path):
    for cell in _code_cells(path):
        tree = ast.parse("\n".join(line for line in "".join(cell["source"]).splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{path.name} defines {defs}: move them into robustutils"
