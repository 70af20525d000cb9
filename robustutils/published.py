"""The papers' own published models, in the book's model convention.

:func:`load` reads a model of RobustBench's model zoo (Croce et al. 2021, "RobustBench: a
standardized adversarial robustness benchmark", NeurIPS Datasets and Benchmarks, arXiv 2010.09670;
the ``robustbench`` package) through RobustBench's own ``load_model``: its cache layout
``<model_dir>/<dataset>/<threat_model>/<name>.pt`` and its download from Google Drive.
:func:`from_madry` reads a checkpoint file of MadryLab/robustness, the library behind Ilyas et al.
(2019) and Tsipras et al. (2019). Both return a :class:`PublishedClassifier`: inputs are images in
[0, 1] [N, 3, H, W] (normalisation inside), the output is logits, and ``representation(x)`` is the
penultimate layer [N, D] with ``forward(x) == head(representation(x))``, as for
:class:`robustutils.models.Classifier`, so the attacks and chapter 6's inversions accept them.

Every eps is in pixel units of inputs in [0, 1]. The packages are optional:
``pip install "robustutils[published]"``.
"""

import dataclasses
import os
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from . import data, io, runtime

INSTALL = 'pip install "robustutils[published]"  (or: pip install robustbench)'
DATASETS = ("cifar10", "imagenet")
THREAT_MODELS = ("Linf", "L2")


#: The environment variable that names the folder of published checkpoints (RobustBench's layout),
#: when they are kept apart from the book's cache (``make test`` points it at stand-ins).
MODEL_DIR_ENV = "ROBUSTUTILS_PUBLISHED"


def _model_dir(model_dir) -> Path:
    if model_dir is not None:
        return Path(model_dir).expanduser()
    folder = os.environ.get(MODEL_DIR_ENV)
    return Path(folder).expanduser() if folder else io.cache_dir() / "published"


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Return a 16-hex-digit hash of ``model``'s state dict (names, shapes, dtypes and values): two
    models share it only when their weights are the same, whichever file they came from. Cached
    results computed with published weights are keyed by it, so that stand-in weights and the real
    ones never share a cache entry."""
    state = model.state_dict()
    return io.tensor_digest(*state.values(), names=list(state))


class PublishedModelMissingError(FileNotFoundError):
    """A published model's checkpoint is not on disk and could not be downloaded; the message names
    the file to place and where to download it from."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One published model the book uses, with RobustBench's published figures.

    ``clean`` and ``autoattack`` are accuracies in percent from RobustBench's leaderboard as shipped
    in the README of ``robustbench`` 1.1.1 (CIFAR-10: the 10,000 test images; ImageNet: RobustBench's
    5,000 validation images at 224x224), AutoAttack at radius ``eps`` (pixel units) in
    ``threat_model``. ``head`` is the attribute path of the network's last linear layer;
    ``input_size`` the side in pixels the model is evaluated at.
    """

    name: str
    dataset: str
    threat_model: str
    eps: float
    architecture: str
    paper: str
    clean: float
    autoattack: float
    head: str
    input_size: int


_MADRY_LAB = "Engstrom et al. 2019, Robustness (Python library), github.com/MadryLab/robustness"
_SALMAN = "Salman et al. 2020, Do Adversarially Robust ImageNet Models Transfer Better? (NeurIPS, arXiv 2007.08489)"
_STANDARD = "standard training (RobustBench's Standard model)"
_TORCHVISION = "torchvision's standard ResNet-50 (IMAGENET1K_V1 weights)"
_R50 = "ResNet-50"

#: The published models the book uses, RobustBench's figures beside each.
MODELS = (
    Entry("Standard", "cifar10", "Linf", 8 / 255, "WideResNet-28-10", _STANDARD, 94.78, 0.00, "fc", 32),
    Entry("Engstrom2019Robustness", "cifar10", "Linf", 8 / 255, _R50, _MADRY_LAB, 87.03, 49.25, "linear", 32),
    Entry("Engstrom2019Robustness", "cifar10", "L2", 0.5, _R50, _MADRY_LAB, 90.83, 69.24, "linear", 32),
    Entry("Engstrom2019Robustness", "imagenet", "Linf", 4 / 255, _R50, _MADRY_LAB, 62.56, 29.22, "model.fc", 224),
    Entry("Salman2020Do_R50", "imagenet", "Linf", 4 / 255, _R50, _SALMAN, 64.02, 34.96, "model.fc", 224),
    Entry("Standard_R50", "imagenet", "Linf", 4 / 255, _R50, _TORCHVISION, 76.52, 0.00, "model.fc", 224),
)
_BY_KEY = {(e.dataset, e.threat_model, e.name): e for e in MODELS}


def _known() -> str:
    return ", ".join(f"{e.name!r} ({e.dataset}, {e.threat_model})" for e in MODELS)


def entry(name: str, *, dataset: str = "cifar10", threat_model: str = "Linf") -> Entry:
    """Return the :class:`Entry` of ``name`` under ``dataset`` and ``threat_model``; raise
    ``ValueError`` naming the known models when there is none."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} (RobustBench's names); got {dataset!r}")
    if threat_model not in THREAT_MODELS:
        raise ValueError(f"threat_model must be one of {THREAT_MODELS} (RobustBench's names); got {threat_model!r}")
    found = _BY_KEY.get((dataset, threat_model, name))
    if found is None:
        raise ValueError(
            f"no published model {name!r} for dataset={dataset!r}, threat_model={threat_model!r}; the book's "
            f"published models are: {_known()}. Other RobustBench models load with robustbench.utils.load_model, "
            "without the representation() this module adds"
        )
    return found


def _robustbench():
    """Import and return ``robustbench.utils``, with ``pyautoattack`` registered under the module name
    ``autoattack`` that robustbench imports (the package on PyPI installs it as ``pyautoattack``)."""
    try:
        import pyautoattack
        import pyautoattack.state
    except ImportError as err:
        raise ImportError(f"robustutils.published needs Croce & Hein's AutoAttack (pyautoattack): {INSTALL}") from err
    sys.modules.setdefault("autoattack", pyautoattack)
    sys.modules.setdefault("autoattack.state", pyautoattack.state)
    try:
        with warnings.catch_warnings():
            # Deprecation notices of timm, setuptools and torch raised while robustbench imports, not about
            # its models, and tqdm's note that a notebook without ipywidgets gets text progress bars.
            for message in (
                "pkg_resources is deprecated",
                "Importing from timm",
                "`torch.jit.interface` is deprecated",
                "IProgress not found",
            ):
                warnings.filterwarnings("ignore", message=message)
            import robustbench.utils
    except ImportError as err:
        raise ImportError(f"robustutils.published needs RobustBench ({err}): {INSTALL}") from err
    return robustbench.utils


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, mean and std as buffers of shape [1, C, 1, 1]."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` [N, C, H, W] normalised."""
        return (x - self.mean) / self.std


class SuperclassLogits(nn.Module):
    """Sum the probabilities of groups of classes: logits [N, K] become [N, G], the logsumexp of
    each group's member logits, so that ``softmax`` of the output is each group's summed probability
    renormalised over the groups.

    ``groups`` maps a group name to an inclusive class-index range ``(lo, hi)``; the output follows
    its order. With ``robustutils.data.RESTRICTED_IMAGENET_RANGES`` this is Restricted ImageNet's
    nine superclasses (Tsipras et al. 2019, MadryLab/robustness) from ImageNet's 1,000 classes.
    """

    def __init__(self, groups: dict):
        super().__init__()
        self.names = tuple(groups)
        self.ranges = tuple((int(lo), int(hi)) for lo, hi in groups.values())

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Return the group logits [N, G] of class logits [N, K]."""
        return torch.stack([logits[:, lo : hi + 1].logsumexp(dim=1) for lo, hi in self.ranges], dim=1)


class PublishedClassifier(nn.Module):
    """A published network in the book's convention: ``forward(x) = head(representation(x))``.

    ``body`` maps images in [0, 1] [N, 3, H, W] to the penultimate features [N, D] (normalisation
    inside), ``head`` maps them to logits. ``entry`` is the :class:`Entry` of a RobustBench model
    (``None`` for a MadryLab/robustness file), ``source`` says where the weights came from, and
    ``input_size`` is the side in pixels the network needs (``None``: any size, e.g. the ImageNet
    ResNets, whose published figures are at 224). Inputs that are not [N, 3, H, W] (or not
    ``input_size`` square) raise ``ValueError``.
    """

    def __init__(self, body: nn.Module, head: nn.Module, *, source: str, entry=None, input_size=None):
        super().__init__()
        self.body, self.head = body, head
        self.source, self.entry, self.input_size = source, entry, input_size

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.source} takes RGB images in [0, 1] [N, 3, H, W]; got shape {tuple(x.shape)}")
        size = self.input_size
        if size is not None and tuple(x.shape[2:]) != (size, size):
            raise ValueError(f"{self.source} takes {size}x{size} images; got {x.shape[2]}x{x.shape[3]}")

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Return the penultimate-layer features [N, D] of images ``x`` in [0, 1] [N, 3, H, W]."""
        self._check(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits [N, classes] of images ``x`` in [0, 1] [N, 3, H, W]."""
        return self.head(self.representation(x))


def _split_head(network: nn.Module, path: str) -> tuple[nn.Module, nn.Module]:
    """Return ``(body, head)``: the network with its last linear layer (at attribute ``path``)
    replaced by the identity, so that it returns the layer's input, and that layer."""
    *parents, last = path.split(".")
    owner = network
    for name in parents:
        owner = getattr(owner, name)
    head = getattr(owner, last)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"expected the last layer {path!r} to be nn.Linear; got {type(head).__name__}")
    setattr(owner, last, nn.Identity())
    return network, head


def _superclass_head(head: nn.Module) -> nn.Module:
    return nn.Sequential(OrderedDict(linear=head, superclasses=SuperclassLogits(data.RESTRICTED_IMAGENET_RANGES)))


def _torchvision_file() -> tuple[Path, str]:
    """Where torchvision keeps the ResNet-50 weights that ``resnet50(pretrained=True)`` loads (RobustBench's
    ``Standard_R50``), and their address."""
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name, url


def checkpoint_path(name: str, *, dataset: str = "cifar10", threat_model: str = "Linf", model_dir=None) -> Path:
    """Return the file that :func:`load` reads for ``name``: RobustBench's
    ``<model_dir>/<dataset>/<threat_model>/<name>.pt``, or for ImageNet ``Standard_R50`` torchvision's
    ResNet-50 weights in the torch hub cache (``torch.hub.get_dir()/checkpoints``, under ``$TORCH_HOME``).
    Raise ``ValueError`` for a model the book does not use."""
    entry(name, dataset=dataset, threat_model=threat_model)
    if dataset == "imagenet" and name == "Standard_R50":
        return _torchvision_file()[0]
    root = _model_dir(model_dir)
    return root / dataset / threat_model / f"{name}.pt"


def _download_hint(rb_utils, found: Entry, path: Path) -> str:
    if found.name == "Standard_R50":
        return f"download {_torchvision_file()[1]}"
    zoo = rb_utils.all_models[rb_utils.BenchmarkDataset(found.dataset)][rb_utils.ThreatModel(found.threat_model)]
    gdrive_id = zoo[found.name]["gdrive_id"]
    return f"download it from https://drive.google.com/uc?id={gdrive_id} (e.g. gdown {gdrive_id} -O {path})"


def load(
    name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir=None,
    device=None,
    restricted_imagenet: bool = False,
) -> PublishedClassifier:
    """Return RobustBench's published model ``name`` (its ``dataset`` and ``threat_model`` names) as a
    :class:`PublishedClassifier` in eval mode on ``device`` (default: a CUDA GPU when present).

    The weights come through ``robustbench.utils.load_model``, which reads
    ``<model_dir>/<dataset>/<threat_model>/<name>.pt`` and downloads it (Google Drive, with ``gdown``)
    only when it is missing; ``model_dir`` defaults to the folder ``$ROBUSTUTILS_PUBLISHED`` names
    (:data:`MODEL_DIR_ENV`), else ``robustutils.io.cache_dir() / "published"``.
    ImageNet ``Standard_R50`` is torchvision's ResNet-50 with its pretrained weights, read from (or
    downloaded to) the torch hub cache (see :func:`checkpoint_path`). The models are listed in
    :data:`MODELS`: CIFAR-10 models take 32x32 images, ImageNet models 224x224 (RobustBench's
    resize to 256 and centre crop, which is :func:`robustutils.data.imagenet_transform` at 224).

    ``restricted_imagenet=True`` (ImageNet models only) adds :class:`SuperclassLogits` to the head:
    9 logits, Restricted ImageNet's superclasses in ``robustutils.data.RESTRICTED_IMAGENET_CLASSES``
    order (the labels of :func:`robustutils.data.restricted_imagenet`), the softmax of which is the
    summed probability of each superclass's ImageNet classes, renormalised over the nine.

    Raises ``ValueError`` for an unknown name, dataset or threat model, ``ImportError`` (naming the
    install) without robustbench, :class:`PublishedModelMissingError` (naming the file to place and
    its download address) when the checkpoint is missing and cannot be downloaded, and
    :class:`robustutils.io.CheckpointError` when a file is there but cannot be read.

    Examples::

        model = load("Engstrom2019Robustness", dataset="cifar10", threat_model="L2")
        x_adv = attacks.PGD(eps=0.5, norm="l2", steps=20)(model, x, y)
    """
    found = entry(name, dataset=dataset, threat_model=threat_model)
    if restricted_imagenet and dataset != "imagenet":
        raise ValueError(
            f"restricted_imagenet=True sums ImageNet's 1,000 classes: it needs dataset='imagenet'; got {dataset!r}"
        )
    device = runtime.pick_device(device)
    rb_utils = _robustbench()
    root = _model_dir(model_dir)
    path = checkpoint_path(name, dataset=dataset, threat_model=threat_model, model_dir=root)
    was_there = path.is_file()
    try:
        with warnings.catch_warnings():
            # Standard_R50 is torchvision's resnet50(pretrained=True), whose arguments torchvision deprecates.
            warnings.filterwarnings("ignore", message="The parameter 'pretrained' is deprecated")
            warnings.filterwarnings("ignore", message="Arguments other than a weight enum")
            network = rb_utils.load_model(name, model_dir=str(root), dataset=dataset, threat_model=threat_model)
    except Exception as err:
        if not was_there and not path.is_file():
            raise PublishedModelMissingError(
                f"the published model {name!r} ({dataset}, {threat_model}) is not at {path} and could not be "
                f"downloaded ({type(err).__name__}: {err}). Place its checkpoint at {path}: "
                f"{_download_hint(rb_utils, found, path)}"
            ) from err
        raise io.CheckpointError(
            f"RobustBench could not read {path} for {name!r} ({dataset}, {threat_model}): {type(err).__name__}: "
            f"{err}. If a download was interrupted, delete the file and call load again"
        ) from err
    body, head = _split_head(network, found.head)
    if restricted_imagenet:
        head = _superclass_head(head)
    source = f"RobustBench {dataset}/{threat_model}/{name}"
    size = found.input_size if dataset == "cifar10" else None  # CIFAR nets pool a fixed 4x4 or 8x8 map
    model = PublishedClassifier(body, head, source=source, entry=found, input_size=size)
    return model.to(device).eval()


MADRY_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MADRY_DATASETS = ("cifar10", "imagenet", "restricted_imagenet")
_MADRY_EXPECTED = (
    "a dict whose 'model' entry is a state dict with 'module.model.*', 'module.normalizer.new_mean', "
    "'module.normalizer.new_std' (and 'module.attacker.*') keys, as MadryLab/robustness saves"
)


def _madry_state_dict(checkpoint, path) -> tuple[dict, dict]:
    """Return ``(weights of the classifier, {"new_mean", "new_std"})`` of a MadryLab/robustness checkpoint."""
    if not isinstance(checkpoint, dict):
        raise io.CheckpointError(
            f"{path} is not a MadryLab/robustness checkpoint: expected {_MADRY_EXPECTED}; "
            f"found a {type(checkpoint).__name__}"
        )
    # MadryLab/robustness's make_and_restore_model reads 'model', or 'state_dict' in its older files.
    key = "model" if "model" in checkpoint else "state_dict"
    sd = checkpoint.get(key)
    if not isinstance(sd, dict):
        raise io.CheckpointError(
            f"{path} is not a MadryLab/robustness checkpoint: expected {_MADRY_EXPECTED}; found top-level keys "
            f"{sorted(map(str, checkpoint))[:12]}"
        )
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    weights = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
    norm = {k: sd.get(f"normalizer.{k}") for k in ("new_mean", "new_std")}
    if not weights or any(v is None for v in norm.values()):
        raise io.CheckpointError(
            f"{path} is not a MadryLab/robustness checkpoint: expected {_MADRY_EXPECTED}; found the keys "
            f"{sorted(map(str, sd))[:12]}{' ...' if len(sd) > 12 else ''} in its {key!r} entry"
        )
    return weights, norm


def _madry_network(arch: str, dataset: str, num_classes: int) -> tuple[nn.Module, str]:
    """Return ``(network, head path)``: MadryLab/robustness's CIFAR ResNets have the layer names of
    RobustBench's ``ResNet`` (last layer ``linear``), its ImageNet ResNets torchvision's (``fc``)."""
    if dataset == "cifar10":
        _robustbench()
        from robustbench.model_zoo.architectures import resnet as rb_resnet

        blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3]}
        blocks |= {"resnet101": [3, 4, 23, 3], "resnet152": [3, 8, 36, 3]}
        block = rb_resnet.BasicBlock if arch in ("resnet18", "resnet34") else rb_resnet.Bottleneck
        return rb_resnet.ResNet(block, blocks[arch], num_classes=num_classes), "linear"
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes), "fc"


def from_madry(
    path, *, arch: str = "resnet50", dataset: str = "cifar10", device=None, weights_only: bool = True
) -> PublishedClassifier:
    """Return the classifier of a MadryLab/robustness checkpoint file as a :class:`PublishedClassifier`
    in eval mode on ``device`` (default: a CUDA GPU when present).

    The file is the library's own format (Engstrom et al. 2019, github.com/MadryLab/robustness; the
    released models of Ilyas et al. 2019 and Tsipras et al. 2019): a dict whose ``model`` entry holds
    ``module.model.*`` (the network), ``module.normalizer.new_mean``/``new_std`` (the normalisation,
    applied inside the returned model) and ``module.attacker.*`` (a copy, ignored), besides
    ``epoch``, ``optimizer``, ``schedule``. ``arch`` is one of ``MADRY_ARCHS``; ``dataset``
    ``"cifar10"`` (the library's CIFAR ResNets, 32x32 inputs) or ``"imagenet"`` /
    ``"restricted_imagenet"`` (torchvision's ResNets, 224x224 inputs); the number of classes is read
    from the last layer's weight. ``weights_only=False`` unpickles any object in the file: only for a
    file you trust.

    Raises ``ValueError`` for bad arguments, ``FileNotFoundError`` for a missing file, and
    :class:`robustutils.io.CheckpointError` for a file not in this format (naming the keys found and
    expected) or whose weights do not fit ``arch``.
    """
    if arch not in MADRY_ARCHS:
        raise ValueError(f"arch must be one of {MADRY_ARCHS} (MadryLab/robustness's names); got {arch!r}")
    if dataset not in MADRY_DATASETS:
        raise ValueError(f"dataset must be one of {MADRY_DATASETS}; got {dataset!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no MadryLab/robustness checkpoint at {path}: download it (e.g. from the library's README)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        hint = " (if you trust the file, pass weights_only=False)" if weights_only else ""
        raise io.CheckpointError(f"cannot read {path}: {type(err).__name__}: {err}{hint}") from err
    weights, norm = _madry_state_dict(checkpoint, path)
    head_key = "linear.weight" if dataset == "cifar10" else "fc.weight"
    if head_key not in weights:
        raise io.CheckpointError(
            f"{path} has no 'module.model.{head_key}': its network is not a {dataset} ResNet of MadryLab/robustness "
            f"(found e.g. {sorted(weights)[:6]}); check dataset={dataset!r}"
        )
    network, head_path = _madry_network(arch, dataset, num_classes=weights[head_key].shape[0])
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise io.CheckpointError(f"the weights in {path} do not fit arch={arch!r}, dataset={dataset!r}: {err}") from err
    body, head = _split_head(network, head_path)
    body = nn.Sequential(OrderedDict(normalize=Normalize(norm["new_mean"], norm["new_std"]), network=body))
    size = 32 if dataset == "cifar10" else None
    model = PublishedClassifier(body, head, source=f"MadryLab/robustness checkpoint {path.name}", input_size=size)
    return model.to(runtime.pick_device(device)).eval()
