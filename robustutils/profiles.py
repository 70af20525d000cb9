"""The three scales the book runs at, as plain data.

``smoke``: seconds per chapter, for the tests. ``ci``: the rendered book on a 2-core CPU.
``full``: paper scale on one GPU. A chapter asks for its section of one profile::

    cfg = profiles.config(PROFILE, "toy")
"""

import copy

# Settings a chapter keeps at every scale; each profile below adds only what changes with scale.
_TOY = {
    "d": 100, "c": 3.0, "p": 0.95, "z": 5.0,
    "eta_fixed": 0.1, "d_grid": [1, 3, 10, 30, 100, 300, 1000],
    "eta_grid": [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5],
    "mixture_q": [0.25, 0.5, 0.75], "lr": 0.05, "weight_decay": 0.0,
}

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "toy": {**_TOY, "n_sweep": 1_000, "n_test": 2_000, "n_train": 1_000, "steps": 200},
    },
    "ci": {
        "toy": {**_TOY, "n_sweep": 10_000, "n_test": 20_000, "n_train": 5_000, "steps": 400},
    },
    "full": {
        "toy": {**_TOY, "n_sweep": 50_000, "n_test": 200_000, "n_train": 20_000, "steps": 1_000},
    },
}


def names() -> list[str]:
    """Return the profile names, smallest first."""
    return list(PROFILES)


def config(profile: str, chapter: str) -> dict:
    """Return a fresh copy of ``chapter``'s settings at ``profile`` (a dict of sizes, epochs, steps)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {names()}")
    sections = PROFILES[profile]
    if chapter not in sections:
        raise ValueError(f"profile {profile!r} has no section {chapter!r}: it has {sorted(sections)}")
    return copy.deepcopy(sections[chapter])
