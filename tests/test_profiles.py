"""The derived smoke profiles: ``colab-smoke`` and ``full-smoke`` keep every setting of ``colab`` and
``full`` that chooses the code that runs and cut every size, so that ``make test`` runs those code
paths in seconds; the four profiles of the book are left as they are."""

import copy

import pytest

from robustutils import models, profiles, registry

DERIVED = {"colab-smoke": "colab", "full-smoke": "full"}


def _leaves(node, path=()):
    """Yield ``(path, value)`` for every leaf of nested dicts (lists and None are leaves)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    else:
        yield path, node


def _differences(a, b, path=()):
    """Yield the paths where two nested dicts differ: a leaf that differs, or a key only one side has."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                yield path + (key,)
            else:
                yield from _differences(a[key], b[key], path + (key,))
    elif a != b:
        yield path


def _is_size(path, sizes=None) -> bool:
    """Whether :data:`profiles.SMOKE_SIZES` (or ``sizes``) sets the value at ``path`` (or a value above it)."""
    node = profiles.SMOKE_SIZES if sizes is None else sizes
    for key in path:
        if not isinstance(node, dict):
            return True
        if key not in node:
            return False
        node = node[key]
    return not isinstance(node, dict)


def _is_width(derived_section, path) -> bool:
    """Whether ``path`` is in the ``arch_kwargs`` of an architecture that :data:`profiles.SMOKE_WIDTHS` thins."""
    if "arch_kwargs" not in path:
        return False
    node = derived_section
    for key in path[: path.index("arch_kwargs")]:
        node = node[key]
    return node.get("arch") in profiles.SMOKE_WIDTHS


def test_the_book_keeps_its_four_profiles_and_the_derived_ones_are_for_tests():
    assert profiles.names() == ["smoke", "ci", "colab", "full"]
    assert profiles.derived_names() == list(DERIVED) == list(profiles.DERIVED_FROM)
    assert profiles.DERIVED_FROM == DERIVED
    with pytest.raises(
        ValueError,
        match=r"unknown profile 'huge': choose one of \['smoke', 'ci', 'colab', 'full'\] "
        r"\(or, in tests, \['colab-smoke', 'full-smoke'\]\)",
    ):
        profiles.config("huge", "toy")
    for name in DERIVED:
        for chapter, section in profiles.DERIVED[name].items():
            cfg = profiles.config(name, chapter)
            assert cfg == section and cfg is not section


def test_deriving_leaves_the_four_profiles_as_they_were():
    before = copy.deepcopy(profiles.PROFILES)
    for base in DERIVED.values():
        assert profiles.smoke_sized(base) == profiles.DERIVED[f"{base}-smoke"]
    assert profiles.PROFILES == before


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_profile_differs_from_its_base_only_in_sizes(name):
    """Everything but the sizes (and the widths of the thinned architectures) is the base profile's:
    architectures, datasets, losses, optimisers, augmentation, which models and datasets are built."""
    base, derived = profiles.PROFILES[DERIVED[name]], profiles.DERIVED[name]
    for chapter in base:
        assert set(derived[chapter]) == set(base[chapter]) | {"smoke_sized"} and derived[chapter]["smoke_sized"] is True
        for path in _differences(base[chapter], derived[chapter]):
            assert (
                _is_size((chapter,) + path)
                or _is_width(derived[chapter], path)
                or path in {("assert_claims",), ("smoke_sized",)}
            ), f"{name} changes {chapter}.{'.'.join(map(str, path))}"


@pytest.mark.parametrize("name", DERIVED)
def test_every_setting_that_changes_with_scale_is_a_size_or_kept(name):
    """A key whose value differs between smoke and the base profile is either a size, which the
    derived profile cuts (SMOKE_SIZES), or a setting it keeps (KEPT_SETTINGS). A new key that is
    neither fails here, rather than being left at full scale in `make test`."""
    base, smoke = profiles.PROFILES[DERIVED[name]], profiles.PROFILES["smoke"]
    unclassified = []
    for chapter in base:
        for path in _differences(smoke[chapter], base[chapter]):
            full_path = (chapter,) + path
            if not (_is_size(full_path) or set(path) & set(profiles.KEPT_SETTINGS) or path == ("assert_claims",)):
                unclassified.append(".".join(map(str, full_path)))
    assert not unclassified, f"add these to SMOKE_SIZES (a size) or KEPT_SETTINGS (a code path): {unclassified}"


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_profile_is_no_larger_than_smoke(name):
    """No count of a derived profile exceeds the largest of the smoke profile (the toy model's 2,000
    test points), and none is ``None`` (all of the data) where smoke has a number."""
    smoke, derived = profiles.PROFILES["smoke"], profiles.DERIVED[name]
    largest = max(
        v
        for _, leaf in _leaves(smoke)
        for v in (leaf if isinstance(leaf, list) else [leaf])
        if isinstance(v, int) and not isinstance(v, bool)
    )
    assert largest == 2_000
    for chapter, section in derived.items():
        for path, leaf in _leaves(section):
            values = leaf if isinstance(leaf, list) else [leaf]
            assert all(v <= largest for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), (
                name,
                chapter,
                path,
                leaf,
            )
    smoke_numbers = {(c,) + p for c, s in smoke.items() for p, v in _leaves(s) if isinstance(v, int)}
    for chapter, section in derived.items():
        for path, leaf in _leaves(section):
            assert not (leaf is None and (chapter,) + path in smoke_numbers), (name, chapter, path)


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_profile_takes_its_base_profiles_branches(name):
    base, derived = TABLES[DERIVED[name]], TABLES[name]
    for d in ("mnist", "cifar10"):
        assert derived[d]["base"]["arch"] == base[d]["base"]["arch"]
    assert list(derived["constructed"]) == list(base["constructed"])
    assert all(section.get("assert_claims") in (None, False) for section in profiles.DERIVED[name].values()), (
        "claims need scale"
    )
    if DERIVED[name] == "full":
        assert derived["cifar10"]["base"]["arch"] == "preact_resnet18"
        assert derived["cifar10"]["base"]["arch_kwargs"] == profiles.SMOKE_WIDTHS["preact_resnet18"]
        assert derived["cifar10"]["attack"] == {"steps": 2, "step_factor": None}, "PGD, not FGSM"
        assert derived["trades_betas"] == [0.5, 12.0]
        assert derived["imagenet"]["arch"] == "resnet50" and derived["imagenet"]["train_split"] == "val", (
            "the offline Restricted ImageNet sample has only a val split"
        )
    else:
        assert derived["imagenet"] is None and list(derived["constructed"]) == ["mnist"]
        assert derived["cifar10"]["attack"] == TABLES["colab"]["cifar10"]["attack"]


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_profiles_recipes_and_constructions_are_valid(name):
    for entry_name, entry in registry.entries(name).items():
        if isinstance(entry, registry.Construction):
            assert entry.n <= entry.source.n_train, "a construction starts from images of its source's training set"
            if entry.kind != "invert":
                assert entry.steps * entry.step_size >= entry.eps, f"{entry_name}: the steps must cross the ball"
        elif entry.dataset == "restricted_imagenet":
            assert entry.n_train <= 203 and entry.image_size < 224  # the sample: one image per class
        else:
            models.build(entry.arch, **entry.arch_kwargs)


# The registry's recipe tables are derived the same way (robustutils.registry.SMOKE_SIZES).
TABLES = {name: registry.table(name) for name in profiles.names() + profiles.derived_names()}


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_profiles_recipes_differ_from_the_base_only_in_sizes(name):
    base, derived = TABLES[DERIVED[name]], TABLES[name]
    assert set(base) == set(derived)
    for path in _differences(base, derived):
        assert _is_size(path, registry.SMOKE_SIZES) or _is_width(derived, path), (
            f"{name} changes {'.'.join(map(str, path))}"
        )


@pytest.mark.parametrize("name", DERIVED)
def test_every_recipe_setting_that_changes_with_scale_is_a_size_or_kept(name):
    unclassified = [
        ".".join(map(str, path))
        for path in _differences(TABLES["smoke"], TABLES[DERIVED[name]])
        if not (_is_size(path, registry.SMOKE_SIZES) or set(path) & set(profiles.KEPT_SETTINGS))
    ]
    assert not unclassified, f"add these to registry.SMOKE_SIZES (a size) or profiles.KEPT_SETTINGS: {unclassified}"
