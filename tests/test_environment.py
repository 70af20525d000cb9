"""The environment is the lock: every package that ``make`` installs is at the exact version that
``.ci/requirements.lock`` (and ``.ci/requirements-nodeps.lock``) names, and the lock covers every
dependency that ``pyproject.toml`` declares. A rebuild on a fresh machine is then the same book."""

import importlib.metadata
import re
from pathlib import Path

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = [ROOT / ".ci" / "requirements.lock", ROOT / ".ci" / "requirements-nodeps.lock"]
EXTRAS = ("book", "test", "browser")


def read_lock(path: Path) -> dict[str, tuple[str, str | None]]:
    """``{canonical name: (version, marker or None)}`` for each ``name==version ; marker`` line."""
    pins = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in "# -":
            continue
        requirement, _, marker = line.partition(";")
        name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", requirement.strip()).groups()
        pins[canonicalize_name(name)] = (version, marker.strip() or None)
    return pins


@pytest.fixture(scope="module")
def pins() -> dict[str, tuple[str, str | None]]:
    merged = {}
    for path in LOCKS:
        merged.update(read_lock(path))
    return merged


def test_every_lock_line_is_an_exact_pin(pins):
    assert (
        len(pins) > 100
        and {"torch", "torchvision", "numpy", "jupyter-book", "papermill", "nbval", "torchattacks"} <= pins.keys()
    )


def test_the_lock_covers_every_declared_dependency(pins):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [r for extra in EXTRAS for r in project["optional-dependencies"][extra]]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but missing from the lock: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"the lock pins {name}=={pins[name][0]}, outside pyproject.toml's {requirement.specifier}: run `make lock`"
        )


def test_installed_versions_are_the_locked_ones(pins):
    """Run in the virtualenv that ``make`` built; a package at another version means the venv drifted
    from the lock (delete .venv and run ``make test`` again)."""
    wrong = {}
    for name, (version, marker) in pins.items():
        if marker is not None and not Marker(marker).evaluate():
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        # A local version label (torch's "+cu132") names the build of the same release.
        if installed is None or installed.split("+")[0] != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}"
