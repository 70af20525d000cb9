"""No import cycle among the modules of robustutils, function-level imports included: a cycle
hidden inside a function still ties the modules together and breaks as soon as someone moves
the import to the top. Read from the source with ``ast``, without importing anything."""

import ast
from pathlib import Path

import robustutils

PACKAGE = Path(robustutils.__file__).parent
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py"))


def imported_modules(module: str) -> set[str]:
    """The modules of the package that ``module`` imports anywhere in its source (``__init__`` for
    a name that ``from . import name`` takes from the package itself)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == robustutils.__name__:
                    found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom):
            absolute = node.level == 0 and (node.module or "").split(".")[0] == robustutils.__name__
            if node.level > 1 or not (node.level == 1 or absolute):
                continue
            inner = (node.module or "").split(".")
            inner = inner[1:] if absolute else inner
            if inner and inner[0]:
                found.add(inner[0])
            else:  # from . import x: a module, or a name of the package's __init__
                found.update(alias.name if alias.name in MODULES else "__init__" for alias in node.names)
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    return {module: imported_modules(module) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle ``[a, b, ..., a]`` of ``graph``, or None when it is acyclic (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_is_read_from_every_module_with_function_level_imports():
    graph = import_graph()
    assert {"attacks", "train", "zoo", "launch", "__main__"} <= set(graph)
    assert {"train", "zoo"} <= graph["launch"] and "launch" in graph["__main__"]
    assert "attacks" in graph["train"] and "distributed" in graph["trades"]


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    hidden = {"train": {"launch"}, "launch": {"zoo"}, "zoo": {"train"}}
    assert find_cycle(hidden) == ["launch", "zoo", "train", "launch"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_robustutils_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle among robustutils modules: {' -> '.join(cycle)}"


def test_training_does_not_reach_the_command_line_or_the_model_zoo():
    # zoo imports train; the command line (__main__, launch) sits above both
    below_train = reachable(import_graph(), "train")
    assert not below_train & {"launch", "zoo", "__main__"}, sorted(below_train)
