"""The book's models and constructed datasets by name, at each profile, in the manner of
RobustBench's model zoo: ``"mnist/standard"``, ``"mnist/linf-0.3"``, ``"mnist/trades-6"``,
``"cifar10/linf-8/255"``, ``"mnist/D_R(l2-2)"`` (a dataset), ``"mnist/standard-on-D_R(l2-2)"``.

A name stands for a :class:`Recipe` (a model: everything that changes its weights) or a
:class:`Construction` (one of Ilyas et al.'s datasets), and the same name means the same object in
every chapter: chapters ask :func:`robustutils.zoo.get` for a name and never build recipes. The
recipes of each profile are the tables below; ``colab-smoke`` and ``full-smoke`` cut their sizes to
seconds as :func:`robustutils.profiles.smoke_sized` does for the chapters' settings.

Names: ``<dataset>/<model>`` with ``standard``, ``<norm>-<eps>`` (adversarially trained, PGD at
training ε ``eps``, pixel units; CIFAR-10 ℓ∞ in 255ths, e.g. ``linf-8/255``), ``trades-<beta>``
(TRADES at ℓ∞ 0.3), ``linf-0.3-no-ramp``, ``linf-0.3-headline`` (:data:`HEADLINE`), a ``-seed1``
suffix (the same recipe, another seed), an ``-n<images>`` suffix (the low-data models),
``D_R(<source>)``, ``D_NR``, ``D_rand``, ``D_det`` (the constructed datasets) and
``<arch>-on-<dataset>`` (a standard model trained on a constructed dataset, or on the ``D`` its
images come from).
"""

import copy
import dataclasses
import difflib
import fnmatch
import functools
import json
import math
from typing import Any

from . import profiles

DATASETS = ("mnist", "cifar10", "restricted_imagenet")
#: The name of chapter 2's headline model, which reproduces Madry et al.'s (2018) MNIST ℓ∞ 0.3 result
#: trained on all 60,000 digits.
HEADLINE = "mnist/linf-0.3-headline"
CONSTRUCTIONS = ("invert", "rand", "det")
NUM_CLASSES = {"mnist": 10, "cifar10": 10}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that changes a model's weights (Madry et al. 2018 adversarial training, TRADES,
    standard training), hashed whole into its cache key (:func:`robustutils.zoo.key`).

    ``n_train=None``: the whole training set. ``attack=None``: standard training; else a dict
    ``{"norm", "eps", "steps", "step_size"}`` (pixel units; ``step_size=None``: ``2.5 * eps / steps``).
    ``eps_ramp``: the fraction of training over which ε grows from 0. ``trades_beta``: TRADES'
    weight (Zhang et al. 2019), ``None`` for the cross-entropy of Madry et al. ``monitor_n``: test
    examples checked under PGD-20 each epoch. ``train_data``: a :class:`Construction` to train on
    instead of the real training set. ``augment``: a name of :data:`robustutils.data.AUGMENTATIONS`.
    ``amp``: the training loss under bf16 autocast (the attack has its own ``amp`` key);
    ``channels_last``: the weights in channels-last memory format, for speed.
    """

    dataset: str = "mnist"
    n_train: int | None = None
    arch: str = "mnist_cnn"
    arch_kwargs: dict = dataclasses.field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    attack: dict | None = None
    eps_ramp: float = 0.0
    trades_beta: float | None = None
    monitor_n: int = 0
    seed: int = 0
    train_data: "Construction | None" = None
    image_size: int = 224
    train_split: str = "train"
    augment: str | None = None
    amp: bool = False
    channels_last: bool = False

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {DATASETS}")
        if isinstance(self.train_data, dict):
            object.__setattr__(self, "train_data", Construction.from_dict(self.train_data))

    def as_dict(self) -> dict:
        """Return the recipe as a plain dict (a copy), the form :func:`robustutils.zoo.key` hashes."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if self.train_data is not None:
            out["train_data"] = self.train_data.as_dict()
        return out

    @classmethod
    def from_dict(cls, rec: dict) -> "Recipe":
        """Return the recipe of a plain dict (keys as :meth:`as_dict`; missing keys take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(rec) - names
        if unknown:
            raise ValueError(f"unknown recipe keys {sorted(unknown)}: a recipe has {sorted(names)}")
        return cls(**copy.deepcopy(rec))

    def replace(self, **changes) -> "Recipe":
        """Return a copy with ``changes`` (as ``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def __hash__(self):
        return hash(json.dumps(self.as_dict(), sort_keys=True))


@dataclasses.dataclass(frozen=True)
class Construction:
    """One of Ilyas et al.'s (2019, section 3) constructed datasets, made from the first ``n``
    training images of ``source``'s dataset (``None``: all): ``kind="invert"`` (D_R through a robust
    ``source`` model, D_NR through a standard one; representation inversion, sec. 3.1), ``"rand"`` or
    ``"det"`` (targeted ℓ2 PGD within ``eps`` toward a random or the next class, relabelled with
    it; sec. 3.2), with ``steps`` steps of ``step_size`` (pixel units)."""

    kind: str
    source: Recipe
    n: int | None
    steps: int
    step_size: float
    eps: float | None = None
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.source, dict):
            object.__setattr__(self, "source", Recipe.from_dict(self.source))
        if self.kind not in CONSTRUCTIONS:
            raise ValueError(f"unknown construction {self.kind!r}: choose one of {CONSTRUCTIONS}")
        if self.source.dataset not in NUM_CLASSES:
            raise ValueError(
                f"constructions need an in-memory dataset ({sorted(NUM_CLASSES)}); got {self.source.dataset!r}"
            )
        if (self.eps is None) != (self.kind == "invert"):
            raise ValueError("eps bounds the relabelling attacks only: give it for 'rand' and 'det', not for 'invert'")

    @property
    def label(self) -> str:
        """The name Ilyas et al. give it (``D_R``, ``D_NR``, ``D_rand`` or ``D_det``)."""
        if self.kind == "invert":
            return "D_NR" if self.source.attack is None else "D_R"
        return f"D_{self.kind}"

    def as_dict(self) -> dict:
        """Return the spec as a plain dict (the source as :meth:`Recipe.as_dict`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**out, "source": self.source.as_dict()}

    @classmethod
    def from_dict(cls, spec: dict) -> "Construction":
        """Return the construction of a plain dict (keys as :meth:`as_dict`)."""
        return cls(**spec)

    def __hash__(self):
        return hash(json.dumps(self.as_dict(), sort_keys=True))


Entry = Recipe | Construction


def _fmt_eps(dataset: str, norm: str, eps: float) -> str:
    if dataset == "cifar10" and norm == "linf":
        return f"{round(eps * 255):g}/255"
    return f"{eps:g}"


def model_name(dataset: str, norm: str | None = None, eps: float = 0.0) -> str:
    """Return the registry name of a dataset's model trained at ``norm`` and ``eps`` (pixel units):
    ``model_name("mnist", "linf", 0.3) == "mnist/linf-0.3"``, ``model_name("cifar10", "linf", 8 / 255)
    == "cifar10/linf-8/255"``; ``eps == 0`` (or no norm) names the standard model."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {DATASETS}")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps is a training radius in pixel units, a finite number >= 0; got {eps!r}")
    if norm is None and eps != 0:
        raise ValueError(f"eps {eps:g} needs a norm: 'linf' or 'l2'")
    if norm is None or eps == 0:
        return f"{dataset}/standard"
    if norm not in ("linf", "l2"):
        raise ValueError(f"unknown norm {norm!r}: choose 'linf' or 'l2'")
    if norm == "linf" and eps > 1:
        raise ValueError(
            f"an l_inf eps above 1 covers every image in [0, 1]; eps is in pixel units: for {eps:g}/255 "
            f"give {eps:g} / 255"
        )
    return f"{dataset}/{norm}-{_fmt_eps(dataset, norm, eps)}"


def _recipe(base: dict, **changes) -> Recipe:
    return Recipe.from_dict({**base, **changes})


def adversarial(base: Recipe, norm: str, eps: float, steps: int, step_factor: float | None = None) -> Recipe:
    """Return ``base`` trained against PGD-``steps`` in ``norm`` at ``eps`` (``eps == 0``: standard
    training). The step is ``step_factor * eps`` (pixel units), with ``None`` ``2.5 * eps / steps``;
    ``steps=1, step_factor=1.25`` is Wong et al.'s (2020) FGSM with random start."""
    if eps == 0:
        return base.replace(attack=None, eps_ramp=0.0, trades_beta=None)
    step_size = None if step_factor is None else step_factor * eps
    return base.replace(attack={"norm": norm, "eps": eps, "steps": steps, "step_size": step_size})


def standard_on(base: Recipe, train_data: Construction | None = None, n_train: int | None = None, **changes) -> Recipe:
    """Return a standard model like ``base`` (no attack, no monitoring) trained on all of the
    constructed ``train_data`` or, when None, on ``n_train`` real images (the images a construction
    with ``n = n_train`` starts from: the seeded subsets are nested). D_det models train without
    augmentation, as Ilyas et al. 2019 did, unless ``changes`` sets it."""
    if train_data is not None and train_data.kind == "det":
        changes = {"augment": None, **changes}
    return base.replace(
        train_data=train_data, n_train=n_train, attack=None, eps_ramp=0.0, trades_beta=None, monitor_n=0, **changes
    )


# The recipes at each profile. MNIST: a small CNN on CPU profiles, Madry et al.'s CNN at full.
_MNIST = {
    "smoke": {
        "dataset": "mnist",
        "arch": "mnist_cnn",
        "arch_kwargs": {"channels": [8, 16], "hidden": 32},
        "n_train": 1_000,
        "epochs": 1,
        "lr": 6e-3,
        "eps_ramp": 0.4,
        "monitor_n": 100,
    },
    "ci": {
        "dataset": "mnist",
        "arch": "mnist_cnn",
        "arch_kwargs": {"channels": [16, 32], "hidden": 128},
        "n_train": 10_000,
        "epochs": 3,
        "lr": 6e-3,
        "eps_ramp": 0.4,
        "monitor_n": 200,
    },
    "colab": {
        "dataset": "mnist",
        "arch": "mnist_cnn",
        "arch_kwargs": {"channels": [16, 32], "hidden": 128},
        "n_train": None,
        "epochs": 5,
        "lr": 6e-3,
        "eps_ramp": 0.4,
        "monitor_n": 1_000,
    },
    "full": {
        "dataset": "mnist",
        "arch": "madry_mnist_cnn",
        "arch_kwargs": {},
        "n_train": None,
        "epochs": 20,
        "lr": 2e-3,
        "eps_ramp": 0.3,
        "monitor_n": 2_000,
    },
}
_CIFAR = {
    "smoke": {
        "dataset": "cifar10",
        "arch": "cifar_cnn",
        "arch_kwargs": {"channels": [8, 16], "hidden": 32, "convs_per_block": 1},
        "n_train": 500,
        "epochs": 1,
        "lr": 4e-3,
    },
    "ci": {
        "dataset": "cifar10",
        "arch": "cifar_cnn",
        "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1},
        "n_train": None,
        "epochs": 3,
        "lr": 4e-3,
        "augment": "crop-flip",
    },
    "colab": {
        "dataset": "cifar10",
        "arch": "cifar_cnn",
        "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1},
        "n_train": None,
        "epochs": 10,
        "lr": 4e-3,
        "augment": "crop-flip",
    },
    "full": {
        "dataset": "cifar10",
        "arch": "preact_resnet18",
        "arch_kwargs": {},
        "n_train": None,
        "epochs": 30,
        "optimizer": "sgd",
        "lr": 0.2,
        "weight_decay": 5e-4,
        "augment": "crop-flip",
    },
}
# Chapter 2's headline model, Madry et al.'s (2018, Table 1) MNIST l_inf 0.3 result reproduced on all
# 60,000 digits: the fastest recipes the performance appendix found (robustutils.bench's P3 trains them
# too), PGD-5 under bf16 autocast with an eps ramp over 30% of the steps and a one-cycle Adam schedule.
# ci: a 3x3-kernel CNN for the 2-core CPU; colab: Madry et al.'s channel widths and 5x5 kernels with
# larger batches; full: Madry et al.'s own recipe, the "mnist/linf-0.3" of full.
#: The ℓ∞ training ε of the headline model (pixel units), Madry et al.'s 0.3.
HEADLINE_EPS = 0.3
_HEADLINE_STEPS = 5
_HEADLINE_BASE = {
    "dataset": "mnist",
    "arch": "mnist_cnn",
    "n_train": None,
    "epochs": 12,
    "eps_ramp": 0.3,
    "amp": True,
    "channels_last": True,
}
_HEADLINE = {
    "smoke": {
        **_HEADLINE_BASE,
        "arch_kwargs": {"channels": [8, 16], "hidden": 32, "kernel": 3},
        "n_train": 1_000,
        "epochs": 1,
        "batch_size": 256,
        "lr": 2e-3,
        "monitor_n": 100,
    },
    "ci": {
        **_HEADLINE_BASE,
        "arch_kwargs": {"channels": [32, 64], "hidden": 256, "kernel": 3},
        "batch_size": 256,
        "lr": 2e-3,
        "monitor_n": 200,
    },
    "colab": {
        **_HEADLINE_BASE,
        "arch_kwargs": {"channels": [32, 64], "hidden": 1024, "kernel": 5},
        "batch_size": 512,
        "lr": 3e-3,
        "monitor_n": 1_000,
    },
    "full": None,
}


def headline_attack(rec: Recipe) -> dict:
    """Return the training attack of the headline recipes: l_inf PGD-5 at :data:`HEADLINE_EPS` (step
    ``2.5 * eps / 5``), under bf16 autocast when ``rec.amp``, keeping the last iterate."""
    return {
        "norm": "linf",
        "eps": HEADLINE_EPS,
        "steps": _HEADLINE_STEPS,
        "step_size": None,
        "amp": rec.amp,
        "use_best": False,
    }


# The training attacks: PGD on MNIST; on CIFAR-10 the CPU profiles train with FGSM plus random start
# (Wong et al. 2020) and full with PGD-7. The step is step_factor * eps (None: 2.5 * eps / steps).
_ATTACK = {
    "mnist": {"smoke": {"steps": 2}, "ci": {"steps": 4}, "colab": {"steps": 7}, "full": {"steps": 10}},
    "cifar10": {
        "smoke": {"steps": 1, "step_factor": 1.25},
        "ci": {"steps": 1, "step_factor": 1.25},
        "colab": {"steps": 1, "step_factor": 1.25},
        "full": {"steps": 7, "step_factor": None},
    },
}
#: The training ε (pixel units) of the adversarially trained models, per dataset and norm, the
#: trade-off chapter's grids; the other chapters use some of these models.
TRAINING_EPS = {
    "mnist": {"linf": [0.1, 0.2, 0.3], "l2": [1.0, 2.0, 3.0]},
    "cifar10": {"linf": [2 / 255, 4 / 255, 8 / 255], "l2": [0.25, 0.5, 1.0]},
}
#: TRADES (Zhang et al. 2019) is trained at ℓ∞ ε = 0.3 on MNIST with these betas.
TRADES_EPS = 0.3
_TRADES_BETAS = {"smoke": [1.0], "ci": [1.0, 6.0], "colab": [1.0, 6.0], "full": [0.5, 1.0, 3.0, 6.0, 12.0]}
# The low-data models (Schmidt et al. 2018; Tsipras et al. 2019, Fig. 1): each size trains for about `images`
# training images in all, within `epochs` (fewest, most; default 1, no limit): many passes over the small sets
# and several over the large ones, so that the curves compare what each training-set size can teach rather
# than how long each model trained. `eps`
# (default LOWDATA_EPS) are the training eps; ci keeps standard training and the largest eps only, to fit all
# 60,000 digits in its budget.
_LOWDATA = {
    "smoke": {"sizes": [100, 300], "images": 1_000},
    "ci": {"sizes": [250, 1_000, 4_000, 16_000, 60_000], "images": 48_000, "epochs": (4, 40), "eps": [0.0, 1.5]},
    "colab": {"sizes": [250, 1_000, 4_000, 16_000, 60_000], "images": 48_000, "epochs": (4, 40)},
    "full": {"sizes": [250, 1_000, 4_000, 16_000, 60_000], "images": 240_000, "epochs": (8, 200)},
}
LOWDATA_EPS = [0.0, 0.5, 1.5]
# Restricted ImageNet at paper scale: ResNet-50 against l2 PGD-7 at eps 3, Ilyas et al.'s (2019) and Engstrom et
# al.'s robustness library's setting (Tsipras et al.'s released models use l2 eps 1.0 and l_inf 0.005); full only.
_IMAGENET = {
    "dataset": "restricted_imagenet",
    "arch": "resnet50",
    "arch_kwargs": {"num_classes": 9},
    "image_size": 224,
    "epochs": 110,
    "batch_size": 256,
    "optimizer": "sgd",
    "lr": 0.1,
    "weight_decay": 1e-4,
    "schedule": "step",
    "attack": {"norm": "l2", "eps": 3.0, "steps": 7, "step_size": 0.5},
}
# Ilyas et al.'s constructed datasets. Paper (CIFAR-10): inversion 1000 normalised steps of 0.1;
# relabelling eps 0.5, 100 steps of 0.1. MNIST needs a larger relabelling eps: its standard models
# are harder to fool (at l2 eps 3 the standard ci model takes the target on most images while a
# robust model still reads the original digit). "train" changes the recipe of the models trained on
# the constructed sets and on D (default: the base recipe).
_CONSTRUCT = {
    "mnist": {
        "smoke": {
            "n": 200,
            "invert": {"steps": 5, "step_size": 0.2},
            "relabel": {"eps": 3.0, "steps": 5, "step_size": 1.0},
        },
        "ci": {
            "n": 4_000,
            "invert": {"steps": 60, "step_size": 0.2},
            "relabel": {"eps": 3.0, "steps": 30, "step_size": 0.25},
        },
        "colab": {
            "n": 20_000,
            "invert": {"steps": 200, "step_size": 0.2},
            "relabel": {"eps": 3.0, "steps": 50, "step_size": 0.15},
        },
        "full": {
            "n": None,
            "invert": {"steps": 1_000, "step_size": 0.1},
            "relabel": {"eps": 3.0, "steps": 100, "step_size": 0.1},
        },
    },
    "cifar10": {
        "smoke": {
            "n": 200,
            "invert": {"steps": 5, "step_size": 0.2},
            "relabel": {"eps": 0.5, "steps": 5, "step_size": 0.2},
        },
        # The paper's relabelling radius and step (l2 0.5, 0.1) with half its steps; the fresh models see
        # the 4,000 images for 20 epochs (the base recipe's few epochs suit 50,000).
        "ci": {
            "n": 4_000,
            "invert": {"steps": 40, "step_size": 0.3},
            "relabel": {"eps": 0.5, "steps": 50, "step_size": 0.1},
            "train": {"epochs": 20},
        },
        "full": {
            "n": None,
            "invert": {"steps": 1_000, "step_size": 0.1},
            "relabel": {"eps": 0.5, "steps": 100, "step_size": 0.1},
        },
    },
}
# D_R's robust sources: l2 models of the earlier chapters.
_ROBUST_SOURCES = {"mnist": [2.0, 3.0], "cifar10": [0.5]}
# Architectures trained on D and D_det for the transferability plot (Ilyas et al. section 3.3).
_TRANSFER = {
    "mnist": {
        "mlp-256-256": {"arch": "mlp", "arch_kwargs": {"hidden": [256, 256]}, "lr": 2e-3},
        "cnn-8-16": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [8, 16], "hidden": 32}},
        "cnn-16-32": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128}},
        "cnn-32-64": {"arch": "mnist_cnn", "arch_kwargs": {"channels": [32, 64], "hidden": 256}},
        "madry-cnn": {"arch": "madry_mnist_cnn", "arch_kwargs": {}, "lr": 2e-3},
    },
    "cifar10": {
        "mlp-512-512": {"arch": "mlp", "arch_kwargs": {"hidden": [512, 512], "in_shape": [3, 32, 32]}, "lr": 1e-3},
        "cnn-16-32": {"arch": "cifar_cnn", "arch_kwargs": {"channels": [16, 32], "hidden": 128, "convs_per_block": 1}},
        "cnn-32-64": {"arch": "cifar_cnn", "arch_kwargs": {}},
        "preact-resnet18": {"arch": "preact_resnet18", "arch_kwargs": {}},
    },
}


def _table(profile: str) -> dict:
    constructed = {
        "smoke": ["mnist", "cifar10"],
        "ci": ["mnist", "cifar10"],
        "colab": ["mnist"],
        "full": ["mnist", "cifar10"],
    }[profile]
    transfer = copy.deepcopy(_TRANSFER)
    if profile == "smoke":  # the ResNet at a quarter of its width keeps the chapter's test in seconds
        transfer["cifar10"]["preact-resnet18"]["arch_kwargs"] = {"width": 16}
    if profile == "ci":  # four more architectures on CIFAR-10 do not fit the CPU budget: no transfer study there
        transfer["cifar10"] = {}
    return {
        "mnist": {"base": _MNIST[profile], "attack": _ATTACK["mnist"][profile]},
        "cifar10": {"base": _CIFAR[profile], "attack": _ATTACK["cifar10"][profile]},
        "trades_betas": _TRADES_BETAS[profile],
        "lowdata": _LOWDATA[profile],
        "imagenet": _IMAGENET if profile == "full" else None,
        "headline": _HEADLINE[profile],
        "constructed": {d: {**_CONSTRUCT[d][profile], "transfer": transfer[d]} for d in constructed},
    }


_at_most = profiles.at_most
_SMOKE_ATTACK = {"steps": _at_most(2)}  # full's PGD-7 becomes PGD-2, FGSM stays FGSM
_SMOKE_MNIST = {
    "base": {"n_train": _at_most(500), "epochs": _at_most(1), "monitor_n": _at_most(20)},
    "attack": _SMOKE_ATTACK,
}
_SMOKE_HEADLINE = {
    "n_train": _at_most(500),
    "epochs": _at_most(1),
    "monitor_n": _at_most(20),
    "batch_size": _at_most(256),
}
_SMOKE_CIFAR = {"base": {"n_train": _at_most(200), "epochs": _at_most(1)}, "attack": _SMOKE_ATTACK}
#: The sizes of the tables at the scale of a derived smoke profile (see
#: :data:`robustutils.profiles.SMOKE_SIZES`): a function caps the base profile's value, a constant
#: replaces it.
#:
#: :meta hide-value:
SMOKE_SIZES = {
    "mnist": _SMOKE_MNIST,
    "cifar10": _SMOKE_CIFAR,
    "headline": _SMOKE_HEADLINE,
    "trades_betas": profiles.ends,
    "lowdata": {"sizes": [50, 100], "images": _at_most(300), "epochs": (1, None)},
    # The offline Restricted ImageNet sample has only a val split (one image per class): a
    # smoke-sized ResNet-50 trains on a few of those images, at 64 pixels.
    "imagenet": {
        "train_split": "val",
        "n_train": 18,
        "batch_size": 9,
        "image_size": 64,
        "epochs": _at_most(1),
        "attack": {"steps": _at_most(2)},
    },
    # The constructions: the smoke profile's steps, with step sizes that still cross the l2 ball.
    "constructed": {
        "mnist": {
            "n": _at_most(100),
            "invert": {"steps": 5, "step_size": 0.2},
            "relabel": {"steps": 5, "step_size": 1.0},
        },
        "cifar10": {
            "n": _at_most(100),
            "invert": {"steps": 5, "step_size": 0.2},
            "relabel": {"steps": 5, "step_size": 0.2},
        },
    },
}


def table(profile: str) -> dict:
    """Return the recipe tables of ``profile`` (one of :func:`robustutils.profiles.names` or
    :func:`robustutils.profiles.derived_names`): the base recipe and training attack per dataset, the
    TRADES betas, the low-data sizes, the ImageNet recipe (or None), the headline model's recipe
    (None: the profile's ``mnist/linf-0.3``), the constructions per dataset."""
    if profile in profiles.PROFILES:
        return _table(profile)
    if profile in profiles.DERIVED_FROM:
        return profiles.thin(profiles.sized(_table(profiles.DERIVED_FROM[profile]), SMOKE_SIZES))
    raise ValueError(
        f"unknown profile {profile!r}: choose one of {profiles.names()} (or, in tests, {profiles.derived_names()})"
    )


@functools.lru_cache(maxsize=16)
def _entries(profile: str) -> dict[str, Entry]:
    t = table(profile)
    out: dict[str, Entry] = {}
    bases = {d: (_recipe(t[d]["base"]), t[d]["attack"]) for d in ("mnist", "cifar10")}
    for d, (base, atk) in bases.items():
        out[model_name(d)] = adversarial(base, "linf", 0.0, **atk)
        for norm, grid in TRAINING_EPS[d].items():
            for eps in grid:
                out[model_name(d, norm, eps)] = adversarial(base, norm, eps, **atk)
    mnist, atk = bases["mnist"]
    out["mnist/linf-0.3-no-ramp"] = out["mnist/linf-0.3"].replace(eps_ramp=0.0)
    if t["headline"] is None:
        out[HEADLINE] = out[model_name("mnist", "linf", HEADLINE_EPS)]
    else:
        headline = _recipe(t["headline"])
        out[HEADLINE] = headline.replace(attack=headline_attack(headline))
    for beta in t["trades_betas"]:
        out[f"mnist/trades-{beta:g}"] = adversarial(mnist, "linf", TRADES_EPS, **atk).replace(trades_beta=beta)
    out["mnist/standard-seed1"] = out["mnist/standard"].replace(seed=1)
    out["mnist/l2-2-seed1"] = out["mnist/l2-2"].replace(seed=1)
    for n in t["lowdata"]["sizes"]:
        fewest, most = t["lowdata"].get("epochs", (1, None))
        epochs = max(fewest, min(most or math.inf, t["lowdata"]["images"] // n))
        small = mnist.replace(n_train=n, epochs=epochs, monitor_n=0)
        for eps in t["lowdata"].get("eps", LOWDATA_EPS):
            out[f"{model_name('mnist', 'l2', eps)}-n{n}"] = adversarial(small, "l2", eps, **atk)
    if t["imagenet"] is not None:
        out["restricted_imagenet/l2-3"] = _recipe(t["imagenet"])
    for d, c in t["constructed"].items():
        base, atk = bases[d]
        standard = adversarial(base, "l2", 0.0, **atk)
        specs = {
            f"D_R(l2-{e:g})": Construction("invert", adversarial(base, "l2", e, **atk), n=c["n"], **c["invert"])
            for e in _ROBUST_SOURCES[d]
        }
        specs["D_NR"] = Construction("invert", standard, n=c["n"], **c["invert"])
        for kind in ("rand", "det"):
            specs[f"D_{kind}"] = Construction(kind, standard, n=c["n"], **c["relabel"])
        out.update({f"{d}/{name}": spec for name, spec in specs.items()})
        fresh = c.get("train", {})
        out[f"{d}/standard-on-D"] = standard_on(base, n_train=c["n"], **fresh)
        out.update({f"{d}/standard-on-{name}": standard_on(base, spec, **fresh) for name, spec in specs.items()})
        for arch_name, arch in c["transfer"].items():
            out[f"{d}/{arch_name}-on-D"] = standard_on(base, n_train=c["n"], **fresh, **arch)
            out[f"{d}/{arch_name}-on-D_det"] = standard_on(base, specs["D_det"], **fresh, **arch)
    return out


def entries(profile: str) -> dict[str, Entry]:
    """Return every named entry of ``profile``: name -> :class:`Recipe` or :class:`Construction`."""
    return dict(_entries(profile))


def names(profile: str, pattern: str = "*") -> list[str]:
    """Return the names of ``profile``'s entries that match the shell-style ``pattern`` (e.g.
    ``"mnist/l2-*-n*"``), in registry order."""
    return [name for name in _entries(profile) if fnmatch.fnmatchcase(name, pattern)]


def entry(name: str, profile: str) -> Entry:
    """Return the entry ``name`` of ``profile``. Raises ``KeyError`` naming the closest names."""
    if not isinstance(name, str):
        raise KeyError(f"a registry name is a string such as 'mnist/linf-0.3'; got {type(name).__name__} {name!r}")
    found = _entries(profile).get(name)
    if found is None:
        close = difflib.get_close_matches(name, list(_entries(profile)), n=4, cutoff=0.4)
        raise KeyError(
            f"no entry {name!r} in the registry at profile {profile!r}"
            + (f"; did you mean {close}?" if close else "")
            + " (robustutils.registry.names(profile) lists them all)"
        )
    return found


def recipe(name: str, profile: str) -> Recipe:
    """Return the :class:`Recipe` of the model ``name``; a dataset's name raises ``ValueError``."""
    found = entry(name, profile)
    if not isinstance(found, Recipe):
        raise ValueError(f"{name!r} is a constructed dataset, not a model: use robustutils.zoo.constructed")
    return found


def construction(name: str, profile: str) -> Construction:
    """Return the :class:`Construction` of the dataset ``name``; a model's name raises ``ValueError``."""
    found = entry(name, profile)
    if not isinstance(found, Construction):
        raise ValueError(f"{name!r} is a model, not a constructed dataset: use robustutils.zoo.get")
    return found


def constructed_datasets(profile: str) -> list[str]:
    """Return the datasets whose constructions ``profile`` builds (``["mnist"]`` on ``ci``)."""
    return list(table(profile)["constructed"])


def transfer_archs(dataset: str, profile: str) -> list[str]:
    """Return the architecture names of the transferability study on ``dataset`` (the ``<arch>`` of
    ``<dataset>/<arch>-on-D`` and ``-on-D_det``)."""
    return list(table(profile)["constructed"].get(dataset, {}).get("transfer", {}))


def name_of(found: Any, profile: str) -> str | None:
    """Return the first name under which ``found`` (a :class:`Recipe` or :class:`Construction`) is
    registered at ``profile``, or None."""
    return next((name for name, e in _entries(profile).items() if e == found), None)
