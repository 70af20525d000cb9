"""The three scales the book runs at, as plain data.

``smoke``: seconds per chapter, for the tests. ``ci``: the rendered book on a 2-core CPU.
``full``: paper scale on one GPU. A chapter asks for its section of one profile::

    cfg = profiles.config(PROFILE, "toy")
"""

import copy

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "toy": {},
        "mnist": {},
    },
    "ci": {
        "toy": {},
        "mnist": {},
    },
    "full": {
        "toy": {},
        "mnist": {},
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
