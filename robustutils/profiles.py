"""The four scales the book runs at, as plain data.

``smoke``: seconds per chapter, for the tests. ``ci``: the rendered book on a 2-core CPU.
``colab``: a free Colab GPU session: the ``ci`` models trained on the full MNIST and CIFAR-10
training sets (which Colab downloads) for more epochs and attack steps, evaluated on more test
images. ``full``: paper scale on one GPU. A chapter asks for its section of one profile::

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
             "n_train": None, "epochs": 30, "optimizer": "sgd", "lr": 0.2, "weight_decay": 5e-4},
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
