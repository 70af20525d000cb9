"""The four scales the book runs at, as plain data.

``smoke``: seconds per chapter, for the tests. ``ci``: the rendered book on a 2-core CPU.
``colab``: a free Colab GPU session: the ``ci`` models trained on the full MNIST and CIFAR-10
training sets (which Colab downloads) for more epochs and attack steps, evaluated on more test
images. ``full``: paper scale on one GPU. A chapter asks for its section of one profile::

    cfg = profiles.config(PROFILE, "toy")

For the tests, :func:`smoke_sized` derives ``colab-smoke`` and ``full-smoke`` from ``colab`` and
``full``: their code paths (architectures, datasets, losses, optimisers, branches) at smoke sizes.
"""

import copy

# Settings a chapter keeps at every scale; each profile below adds only what changes with scale.
_TOY = {
    "d": 100, "c": 3.0, "p": 0.95, "z": 5.0,
    "eta_fixed": 0.1, "d_grid": [1, 3, 10, 30, 100, 300, 1000],
    "eta_grid": [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5],
    "mixture_q": [0.25, 0.5, 0.75], "lr": 0.05, "weight_decay": 0.0,
}

# The MNIST and CIFAR-10 training recipes (see robustutils.zoo) at each scale. The adversarial
# training and trade-off chapters share them, so the trade-off chapter loads the models the
# adversarial-training chapter trained, and later chapters load both.
_MNIST = {
    "smoke": {"dataset": "mnist", "arch": "mnist_cnn", "arch_kwargs": {"channels": [8, 16], "hidden": 32},
              "n_train": 1_000, "epochs": 1, "lr": 6e-3, "eps_ramp": 0.4, "monitor_n": 100},
    "ci": {"dataset": "mnist", "arch": "mnist_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128},
           "n_train": 10_000, "epochs": 3, "lr": 6e-3, "eps_ramp": 0.4, "monitor_n": 200},
    "colab": {"dataset": "mnist", "arch": "mnist_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128},
              "n_train": None, "epochs": 5, "lr": 6e-3, "eps_ramp": 0.4, "monitor_n": 1_000},
    "full": {"dataset": "mnist", "arch": "madry_mnist_cnn", "arch_kwargs": {},
             "n_train": None, "epochs": 20, "lr": 2e-3, "eps_ramp": 0.3, "monitor_n": 2_000},
}
_MNIST_ATTACK = {"smoke": {"steps": 2}, "ci": {"steps": 4}, "colab": {"steps": 7}, "full": {"steps": 10}}
_CIFAR = {
    "smoke": {"dataset": "cifar10", "arch": "cifar_cnn",
              "arch_kwargs": {"channels": [8, 16], "hidden": 32, "convs_per_block": 1},
              "n_train": 500, "epochs": 1, "lr": 4e-3},
    "ci": {"dataset": "cifar10", "arch": "cifar_cnn",
           "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1},
           "n_train": None, "epochs": 4, "lr": 4e-3},
    "colab": {"dataset": "cifar10", "arch": "cifar_cnn",
              "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1},
              "n_train": None, "epochs": 10, "lr": 4e-3},
    "full": {"dataset": "cifar10", "arch": "preact_resnet18", "arch_kwargs": {},
             "n_train": None, "epochs": 30, "optimizer": "sgd", "lr": 0.2, "weight_decay": 5e-4, "augment": "crop-flip"},
}
# CPU profiles train CIFAR-10 with FGSM plus random start (Wong et al. 2020); full uses PGD-7.
_CIFAR_ATTACK = {"smoke": {"steps": 1, "step_factor": 1.25}, "ci": {"steps": 1, "step_factor": 1.25},
                 "colab": {"steps": 1, "step_factor": 1.25}, "full": {"steps": 7, "step_factor": None}}
# Every robust accuracy is measured by PGD and re-checked by APGD-CE and APGD-DLR (torchattacks).
# full: Madry et al.'s strongest white-box figure is PGD-100 with 20 restarts. The evaluation PGD's
# step is eps / 4 whatever the number of steps (the iterate with the highest loss is kept): the
# default 2.5 eps / steps left l2 PGD-40 up to 10 points above APGD on the ci models.
_EVAL = {"smoke": {"n_test": 100, "n_sweep": 100, "sweep_steps": 5,
                   "suite": {"pgd_steps": 10, "pgd_restarts": 1, "apgd_steps": 10, "pgd_step_factor": 0.25}},
         "ci": {"n_test": 400, "n_sweep": 300, "sweep_steps": 10,
                "suite": {"pgd_steps": 40, "pgd_restarts": 1, "apgd_steps": 25, "pgd_step_factor": 0.25}},
         "colab": {"n_test": 2_000, "n_sweep": 1_000, "sweep_steps": 20,
                   "suite": {"pgd_steps": 50, "pgd_restarts": 2, "apgd_steps": 50, "pgd_step_factor": 0.25}},
         "full": {"n_test": 10_000, "n_sweep": 2_000, "sweep_steps": 40,
                  "suite": {"pgd_steps": 100, "pgd_restarts": 20, "apgd_steps": 100, "pgd_step_factor": 0.25}}}
_SWEEPS = {"linf_sweep": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4], "l2_sweep": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]}
_GRIDS = {"mnist_linf": [0.0, 0.1, 0.2, 0.3], "mnist_l2": [0.0, 1.0, 2.0, 3.0],
          "cifar_linf": [0.0, 2 / 255, 4 / 255, 8 / 255], "cifar_l2": [0.0, 0.25, 0.5, 1.0]}


def _advtrain(profile: str) -> dict:
    return {"mnist": _MNIST[profile], "attack": _MNIST_ATTACK[profile], "eval": _EVAL[profile],
            "robust_linf": 0.3, "robust_l2": 2.0, **_SWEEPS,
            "strength_steps": {"smoke": [1, 5, 10], "ci": [1, 5, 10, 40], "colab": [1, 5, 10, 40, 100],
                               "full": [1, 5, 10, 40, 100, 200]}[profile],
            "strength_restarts": {"smoke": [1, 2], "ci": [1, 5], "colab": [1, 5, 10], "full": [1, 5, 20]}[profile],
            "assert_claims": profile != "smoke"}


def _tradeoff(profile: str) -> dict:
    return {"mnist": _MNIST[profile], "mnist_attack": _MNIST_ATTACK[profile],
            "cifar": _CIFAR[profile], "cifar_attack": _CIFAR_ATTACK[profile], "eval": _EVAL[profile], **_GRIDS,
            "lowdata_sizes": {"smoke": [100, 300], "ci": [250, 1_000, 4_000], "colab": [250, 1_000, 4_000, 16_000],
                              "full": [250, 1_000, 4_000, 16_000, 60_000]}[profile],
            "lowdata_eps": [0.0, 0.5, 1.5],
            "lowdata_images": {"smoke": 1_000, "ci": 8_000, "colab": 32_000, "full": 240_000}[profile],
            "lowdata_n_test": {"smoke": 200, "ci": 2_000, "colab": 5_000, "full": 10_000}[profile],
            "trades_eps": 0.3, "trades_betas": {"smoke": [1.0], "ci": [1.0, 6.0], "colab": [1.0, 6.0],
                                                "full": [0.5, 1.0, 3.0, 6.0, 12.0]}[profile],
            "assert_claims": profile != "smoke"}


# Restricted ImageNet at paper scale (Tsipras et al.: ResNet-50, l2 eps 3, 7 PGD steps); the CPU
# profiles only show the sample gallery, since the data is one image per class here.
_IMAGENET = {"dataset": "restricted_imagenet", "arch": "resnet50", "arch_kwargs": {"num_classes": 9},
             "image_size": 224, "epochs": 110, "batch_size": 256, "optimizer": "sgd", "lr": 0.1,
             "weight_decay": 1e-4, "schedule": "step"}


def _features(profile: str) -> dict:
    return {"mnist": _MNIST[profile], "mnist_attack": _MNIST_ATTACK[profile],
            "cifar": _CIFAR[profile], "cifar_attack": _CIFAR_ATTACK[profile],
            "mnist_robust": {"linf": 0.3, "l2": 2.0}, "cifar_robust": {"linf": 8 / 255, "l2": 1.0},
            # Large-eps l2 examples: several times the training eps (the released ImageNet code used
            # eps 40 on 224-pixel images, about 5 on 28 or 32 pixels).
            "mnist_large_eps": 6.0, "cifar_large_eps": 4.0,
            # The judges' test uses a smaller and a larger eps: at 6 even a standard model redraws digits.
            "judge_eps": [4.0, 6.0],
            "large_steps": {"smoke": 10, "ci": 40, "colab": 60, "full": 100}[profile],
            "interp_points": 20,
            "n_measure": {"smoke": 100, "ci": 500, "colab": 2_000, "full": 10_000}[profile],
            "n_target": {"smoke": 50, "ci": 200, "colab": 500, "full": 2_000}[profile],
            "imagenet": {**_IMAGENET, "attack": {"norm": "l2", "eps": 3.0, "steps": 7, "step_size": 0.5}}
            if profile == "full" else None,
            "imagenet_large_eps": {"eps": 40.0, "steps": 40, "step_size": 1.5},
            "assert_claims": profile != "smoke"}


# Ilyas et al.'s constructed datasets. Paper (CIFAR-10): inversion 1000 normalised steps of 0.1;
# relabelling eps 0.5, 100 steps of 0.1. MNIST needs a larger relabelling eps: its standard models
# are harder to fool, and at l2 eps 3 (30 steps, measured) the standard ci model takes the target
# on ~85% of the images while a robust model still reads the original digit on ~89%.
_CONSTRUCT = {
    "mnist": {"smoke": {"n": 200, "invert": {"steps": 5, "step_size": 0.2}, "relabel": {"eps": 3.0, "steps": 5, "step_size": 1.0}},
              "ci": {"n": 4_000, "invert": {"steps": 60, "step_size": 0.2}, "relabel": {"eps": 3.0, "steps": 30, "step_size": 0.25}},
              "colab": {"n": 20_000, "invert": {"steps": 200, "step_size": 0.2}, "relabel": {"eps": 3.0, "steps": 50, "step_size": 0.15}},
              "full": {"n": None, "invert": {"steps": 1_000, "step_size": 0.1}, "relabel": {"eps": 3.0, "steps": 100, "step_size": 0.1}}},
    "cifar": {"smoke": {"n": 200, "invert": {"steps": 5, "step_size": 0.2}, "relabel": {"eps": 0.5, "steps": 5, "step_size": 0.2}},
              "full": {"n": None, "invert": {"steps": 1_000, "step_size": 0.1}, "relabel": {"eps": 0.5, "steps": 100, "step_size": 0.1}}},
}
# D_R's robust sources (l2 models of the earlier chapters), the eps of the robustness table (CIFAR:
# Ilyas et al.'s Table 7) and of the sweep.
_CONSTRUCT_EVAL = {
    "mnist": {"robust_sources": [2.0, 3.0], "eval_eps": 2.0, "sweep": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]},
    "cifar": {"robust_sources": [0.5], "eval_eps": 0.25, "sweep": [0.0, 0.125, 0.25, 0.5, 1.0]},
}
# Architectures trained on D and D_det for the transferability plot (Ilyas et al. section 3.3).
_TRANSFER = {
    "mnist": {"mlp 256-256": {"arch": "mlp", "arch_kwargs": {"hidden": [256, 256]}, "lr": 2e-3},
              "cnn 8/16": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [8, 16], "hidden": 32}},
              "cnn 16/32": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128}},
              "cnn 32/64": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [32, 64], "hidden": 256}},
              "Madry CNN": {"arch": "madry_mnist_cnn", "arch_kwargs": {}, "lr": 2e-3}},
    "cifar": {"mlp 512-512": {"arch": "mlp", "arch_kwargs": {"hidden": [512, 512], "in_shape": [3, 32, 32]}, "lr": 1e-3},
              "cnn 16/32": {"arch": "cifar_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1}},
              "cnn 32/64": {"arch": "cifar_cnn", "arch_kwargs": {}},
              "PreAct-ResNet-18": {"arch": "preact_resnet18", "arch_kwargs": {}}},
}


def _constructed(profile: str) -> dict:
    # ci builds MNIST only: on the ci CIFAR-10 models (57% clean) the constructions did not separate;
    # colab, which trains the same small CIFAR-10 model, follows ci.
    names = {"smoke": ["mnist", "cifar"], "ci": ["mnist"], "colab": ["mnist"], "full": ["mnist", "cifar"]}[profile]
    bases = {"mnist": (_MNIST, _MNIST_ATTACK), "cifar": (_CIFAR, _CIFAR_ATTACK)}
    datasets = {name: {"base": bases[name][0][profile], "attack": bases[name][1][profile],
                       **_CONSTRUCT[name][profile], **_CONSTRUCT_EVAL[name], "transfer": copy.deepcopy(_TRANSFER[name])}
                for name in names}
    if profile == "smoke":  # the ResNet at a quarter of its width keeps the chapter's test in seconds
        datasets["cifar"]["transfer"]["PreAct-ResNet-18"]["arch_kwargs"] = {"width": 16}
    return {"datasets": datasets, "eval": _EVAL[profile],
            "n_measure": {"smoke": 100, "ci": 1_000, "colab": 5_000, "full": 10_000}[profile],  # clean accuracy, transfer
            "assert_claims": profile != "smoke"}


# The toy model's sample sizes and training steps at each scale.
_TOY_SIZES = {"smoke": {"n_sweep": 1_000, "n_test": 2_000, "n_train": 1_000, "steps": 200},
              "ci": {"n_sweep": 10_000, "n_test": 20_000, "n_train": 5_000, "steps": 400},
              "colab": {"n_sweep": 20_000, "n_test": 50_000, "n_train": 10_000, "steps": 400},
              "full": {"n_sweep": 50_000, "n_test": 200_000, "n_train": 20_000, "steps": 1_000}}


def _profile(profile: str) -> dict[str, dict]:
    # The performance appendix shows `make bench` records and the summary of results reads the
    # claims the executed chapters recorded: neither scales, but both assert only where the book's
    # folders are (not at smoke, and not on Colab, where the package is installed without them).
    book_pages = {"assert_claims": profile in ("ci", "full")}
    return {"advtrain": _advtrain(profile), "tradeoff": _tradeoff(profile), "features": _features(profile),
            "constructed": _constructed(profile), "performance": dict(book_pages), "results": dict(book_pages),
            "toy": {**_TOY, **_TOY_SIZES[profile]}}


PROFILES: dict[str, dict[str, dict]] = {name: _profile(name) for name in ("smoke", "ci", "colab", "full")}


# Smoke-sized copies of colab and full, for the tests: `make test` runs every chapter at `smoke` and
# also at `colab-smoke` and `full-smoke`, so that the architectures, datasets, losses, optimisers and
# branches of the two GPU profiles run in CI with every size cut to seconds. What a derived profile
# keeps from its base is everything below that is not a size.


def _at_most(n: int):
    """A size capped at ``n``: a larger value, or ``None`` (all of the data), becomes ``n``."""
    return lambda value: n if value is None else min(value, n)


def _ends(values: list) -> list:
    """A list of settings to try shortened to its first and last (the smallest and the largest)."""
    return [values[0], values[-1]] if len(values) > 1 else list(values)


_SMOKE_MNIST = {"n_train": _at_most(500), "epochs": _at_most(1), "monitor_n": _at_most(20)}
_SMOKE_CIFAR = {"n_train": _at_most(200), "epochs": _at_most(1)}
_SMOKE_ATTACK = {"steps": _at_most(2)}  # training attacks: full's PGD-7 becomes PGD-2, FGSM stays FGSM
_SMOKE_EVAL = {"n_test": _at_most(32), "n_sweep": _at_most(50), "sweep_steps": _at_most(5),
               "suite": {"pgd_steps": _at_most(3), "pgd_restarts": _at_most(2), "apgd_steps": _at_most(3)}}
# Ilyas et al.'s constructions: the smoke profile's steps, with step sizes that still cross the l2 ball.
_SMOKE_CONSTRUCT = {"mnist": {"base": _SMOKE_MNIST, "attack": _SMOKE_ATTACK, "n": _at_most(100),
                              "invert": {"steps": 5, "step_size": 0.2}, "relabel": {"steps": 5, "step_size": 1.0}},
                    "cifar": {"base": _SMOKE_CIFAR, "attack": _SMOKE_ATTACK, "n": _at_most(100),
                              "invert": {"steps": 5, "step_size": 0.2}, "relabel": {"steps": 5, "step_size": 0.2}}}
#: The sizes of a profile, laid out like the profile (only the sections and keys that are sizes), at
#: the scale of a derived smoke profile. A function caps or shortens the base profile's value where it
#: has one; a constant replaces (or adds) it; a section that the base profile lacks, or has as None,
#: stays so (colab constructs no CIFAR-10 datasets and trains no ImageNet model).
#:
#: :meta hide-value:
SMOKE_SIZES = {
    "advtrain": {"mnist": _SMOKE_MNIST, "attack": _SMOKE_ATTACK, "eval": _SMOKE_EVAL,
                 "strength_steps": [1, 5, 10], "strength_restarts": [1, 2]},  # the chapter reads PGD-10
    "tradeoff": {"mnist": _SMOKE_MNIST, "mnist_attack": _SMOKE_ATTACK, "cifar": _SMOKE_CIFAR,
                 "cifar_attack": _SMOKE_ATTACK, "eval": _SMOKE_EVAL, "lowdata_sizes": [50, 100],
                 "lowdata_images": _at_most(300), "lowdata_n_test": _at_most(100), "trades_betas": _ends},
    "features": {"mnist": _SMOKE_MNIST, "mnist_attack": _SMOKE_ATTACK, "cifar": _SMOKE_CIFAR,
                 "cifar_attack": _SMOKE_ATTACK, "large_steps": _at_most(5),
                 # The chapter draws a test digit of each class from these: the first 50 lack an 8.
                 "n_measure": _at_most(100), "n_target": _at_most(20),
                 # The offline Restricted ImageNet sample has only a val split (one image per class):
                 # a smoke-sized ResNet-50 trains on a few of those images, at 64 pixels.
                 "imagenet": {"train_split": "val", "n_train": 18, "batch_size": 9, "image_size": 64,
                              "epochs": _at_most(1), "attack": {"steps": _at_most(2)}},
                 "imagenet_large_eps": {"steps": _at_most(5)}},
    "constructed": {"datasets": _SMOKE_CONSTRUCT, "eval": _SMOKE_EVAL, "n_measure": _at_most(50)},
    "toy": {"n_sweep": _at_most(1_000), "n_test": _at_most(2_000), "n_train": _at_most(1_000), "steps": _at_most(200)},
}
#: Widths are sizes too, so the architecture keeps its layers at a fraction of its channels (the
#: smoke profile already thins chapter 5's transfer ResNet the same way).
SMOKE_WIDTHS = {"preact_resnet18": {"width": 8}}
#: The settings that change with scale but that a derived profile keeps from its base, because they
#: choose the code that runs (architectures, optimisers, schedules, augmentation, which datasets and models
#: a chapter builds). A key whose value changes with scale is a size (:data:`SMOKE_SIZES`) or one of
#: these; tests/test_profiles.py fails on a key that is neither.
KEPT_SETTINGS = ("arch", "arch_kwargs", "optimizer", "lr", "weight_decay", "schedule", "eps_ramp",
                 "step_factor", "augment", "imagenet", "datasets")
#: The derived profiles and the profile each one follows.
DERIVED_FROM = {"colab-smoke": "colab", "full-smoke": "full"}


def _smoke_sized(base, sizes):
    if callable(sizes):
        return sizes(base)
    if not isinstance(sizes, dict):
        return copy.deepcopy(sizes)
    if not isinstance(base, dict):
        return base  # a section the base profile does not have (None): nothing to size
    out = dict(base)
    for key, size in sizes.items():
        if isinstance(size, dict):
            if key in base:
                out[key] = _smoke_sized(base[key], size)
        elif callable(size):
            if key in base:
                out[key] = size(base[key])
        else:
            out[key] = copy.deepcopy(size)
    return out


def _thin(node):
    if isinstance(node, dict):
        node = {k: _thin(v) for k, v in node.items()}
        if node.get("arch") in SMOKE_WIDTHS:
            node["arch_kwargs"] = {**node.get("arch_kwargs", {}), **SMOKE_WIDTHS[node["arch"]]}
    return node


def smoke_sized(profile: str) -> dict[str, dict]:
    """Return the sections of ``profile`` (``colab`` or ``full``) with its code paths and the sizes of
    a smoke test: the same architectures, datasets, losses, optimisers and branches, with every size of
    :data:`SMOKE_SIZES` (examples, epochs, attack steps and restarts, images, pixels) and the widths of
    :data:`SMOKE_WIDTHS` cut to seconds on a CPU. Claims are not asserted (they need scale), as at smoke,
    and every section says ``"smoke_sized": True``: its models train for seconds, so a chapter does not
    assert what only trained models show (e.g. that a standard model is brittle)."""
    sections = {chapter: _thin(_smoke_sized(section, SMOKE_SIZES.get(chapter, {})))
                for chapter, section in copy.deepcopy(PROFILES[profile]).items()}
    return {chapter: {**section, **({"assert_claims": False} if "assert_claims" in section else {}), "smoke_sized": True}
            for chapter, section in sections.items()}


#: ``colab-smoke`` and ``full-smoke``: what :func:`smoke_sized` derives from ``colab`` and ``full``.
#:
#: :meta hide-value:
DERIVED: dict[str, dict[str, dict]] = {name: smoke_sized(base) for name, base in DERIVED_FROM.items()}


def names() -> list[str]:
    """Return the profile names, smallest first."""
    return list(PROFILES)


def derived_names() -> list[str]:
    """Return the names of the smoke-sized profiles that follow ``colab`` and ``full`` (for the tests)."""
    return list(DERIVED)


def config(profile: str, chapter: str) -> dict:
    """Return a fresh copy of ``chapter``'s settings at ``profile`` (a dict of sizes, epochs, steps):
    one of :func:`names`, or of :func:`derived_names`."""
    sections = PROFILES.get(profile, DERIVED.get(profile))
    if sections is None:
        raise ValueError(f"unknown profile {profile!r}: choose one of {names()} (or, in tests, {derived_names()})")
    if chapter not in sections:
        raise ValueError(f"profile {profile!r} has no section {chapter!r}: it has {sorted(sections)}")
    return copy.deepcopy(sections[chapter])
