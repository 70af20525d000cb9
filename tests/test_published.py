"""The papers' published models (robustutils.published), offline: each test writes a stand-in
checkpoint (the real architecture, seeded random weights) where RobustBench's ``load_model`` or
MadryLab/robustness's loader would find the real one, loads it by name, and checks the book's
convention, one attack and one representation inversion. The network is cut off for every test
(the download calls raise as they do offline), so nothing can hang on a download.
"""

import shutil
import sys
import urllib.error
from pathlib import Path

import gdown
import published_standins
import pytest
import requests
import torch
import torch.nn.functional as F
import torchvision

from robustutils import attacks, constructed, data, io, published
from robustutils.models import CIFAR10_MEAN, IMAGENET_MEAN, IMAGENET_STD

# MadryLab/robustness's CIFAR-10 normalisation (its datasets.CIFAR), also RobustBench's for Engstrom2019Robustness.
MADRY_CIFAR_STD = (0.2023, 0.1994, 0.2010)
EPS = 8 / 255
# Image sides the tests use. ImageNet ResNet-50s pool adaptively, so any side works; 64 instead of the
# published 224 makes their attack and inversion about 12 times cheaper on a CPU. The Restricted
# ImageNet test runs the published 224.
SIZE = {"cifar10": 32, "imagenet": 64, "restricted_imagenet": 64}
ROBUSTBENCH = [pytest.param(e, id=f"{e.dataset}-{e.threat_model}-{e.name}") for e in published.MODELS]


def _offline(*args, **kwargs):
    raise requests.exceptions.ConnectionError("offline test: drive.google.com cannot be resolved")


def _offline_hub(*args, **kwargs):
    raise urllib.error.URLError("offline test: download.pytorch.org cannot be resolved")


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Make the two download calls fail as they do offline, and point the torch hub cache (where
    ``Standard_R50``'s weights live) into ``tmp_path``."""
    published._robustbench()
    monkeypatch.setattr(gdown, "download", _offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline_hub)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def folder(tmp_path):
    """``tmp_path``, emptied after the test: the stand-ins are 100-150 MB each."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def write_robustbench_standin(entry: published.Entry, model_dir: Path) -> torch.nn.Module:
    """Write a seeded random-weight checkpoint of ``entry`` where ``load`` reads it; return the network
    RobustBench builds with those weights (the reference the loaded model must equal)."""
    net = published_standins.network(entry.name, entry.dataset, entry.threat_model)
    target = published.checkpoint_path(
        entry.name, dataset=entry.dataset, threat_model=entry.threat_model, model_dir=model_dir
    )
    published_standins.save(net, entry.dataset, target)
    return net


def write_madry_standin(path: Path, dataset: str) -> tuple[torch.nn.Module, tuple, tuple]:
    """Write a seeded random-weight ResNet-50 in MadryLab/robustness's format (``module.model.*``,
    ``module.normalizer.*``, ``module.attacker.*`` sharing the same tensors, and the training state);
    return ``(network, mean, std)``."""
    from robustbench.model_zoo.architectures.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    if dataset == "cifar10":
        network, mean, std = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10), CIFAR10_MEAN, MADRY_CIFAR_STD
    else:
        network, mean, std = torchvision.models.resnet50(num_classes=9), IMAGENET_MEAN, IMAGENET_STD
    normalizer = {"new_mean": torch.tensor(mean)[:, None, None], "new_std": torch.tensor(std)[:, None, None]}
    state = {}
    for prefix in ("module.", "module.attacker."):
        state |= {f"{prefix}normalizer.{k}": v for k, v in normalizer.items()}
        state |= {f"{prefix}model.{k}": v for k, v in network.state_dict().items()}
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9).state_dict()
    torch.save({"model": state, "optimizer": optimizer, "schedule": {"last_epoch": 150}, "epoch": 150}, path)
    return network.eval(), mean, std


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def check_convention(model, reference, x, num_classes: int, dim: int) -> None:
    """Eval mode, logits equal to the reference network's, ``head(representation(x)) == forward(x)``
    for two images ``x``; PGD on both stays in the eps-ball and [0, 1]; inverting the second image's
    representation towards the first's does not move away from it."""
    assert not model.training
    with torch.no_grad():
        logits, features = model(x), model.representation(x)
        assert logits.shape == (len(x), num_classes) and features.shape == (len(x), dim)
        torch.testing.assert_close(model.head(features), logits)
        torch.testing.assert_close(logits[:1], reference(x[:1]), rtol=1e-4, atol=1e-4)
    x_adv = attacks.PGD(eps=EPS, steps=2)(model, x, logits.argmax(1))
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    x_r = constructed.invert_representation(model, x[:1], x[1:], steps=2, step_size=0.1)
    with torch.no_grad():
        after = (model.representation(x_r) - features[:1]).norm()
    assert x_r.min() >= 0 and x_r.max() <= 1 and after <= (features[1] - features[0]).norm() * (1 + 1e-5)


@pytest.mark.parametrize("entry", ROBUSTBENCH)
def test_each_published_model_loads_by_name_into_the_book_convention(entry, folder):
    reference = write_robustbench_standin(entry, folder)
    model = published.load(
        entry.name, dataset=entry.dataset, threat_model=entry.threat_model, model_dir=folder, device="cpu"
    )
    assert model.entry is entry and entry.name in model.source
    num_classes, dim = (10, 640 if entry.name == "Standard" else 2048) if entry.dataset == "cifar10" else (1000, 2048)
    check_convention(model, reference, images(SIZE[entry.dataset]), num_classes, dim)


@pytest.mark.parametrize("dataset", ["cifar10", "restricted_imagenet"])
def test_a_madry_checkpoint_loads_into_the_book_convention(dataset, folder):
    network, mean, std = write_madry_standin(folder / "madry.pt", dataset)
    model = published.from_madry(folder / "madry.pt", arch="resnet50", dataset=dataset, device="cpu")

    def reference(x):
        return network((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))

    check_convention(model, reference, images(SIZE[dataset]), 10 if dataset == "cifar10" else 9, 2048)


def test_restricted_imagenet_head_sums_the_member_probabilities_of_nine_superclasses(folder):
    entry = published.entry("Salman2020Do_R50", dataset="imagenet")
    write_robustbench_standin(entry, folder)
    full = published.load(entry.name, dataset="imagenet", model_dir=folder, device="cpu")
    restricted = published.load(
        entry.name, dataset="imagenet", model_dir=folder, device="cpu", restricted_imagenet=True
    )
    assert restricted.head.superclasses.names == data.RESTRICTED_IMAGENET_CLASSES
    x = images(224, n=1)
    with torch.no_grad():
        logits, p = restricted(x), F.softmax(full(x).double(), dim=1)
        torch.testing.assert_close(restricted.head(restricted.representation(x)), logits)
    summed = torch.stack([p[:, lo : hi + 1].sum(1) for lo, hi in data.RESTRICTED_IMAGENET_RANGES.values()], dim=1)
    assert logits.shape == (1, 9)
    torch.testing.assert_close(
        F.softmax(logits.double(), dim=1), summed / summed.sum(1, keepdim=True), atol=1e-5, rtol=1e-4
    )


def test_superclass_logits_sum_probabilities_in_the_order_given():
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    head = published.SuperclassLogits({"b": (5, 9), "a": (0, 1)})
    p = F.softmax(logits, dim=1)
    summed = torch.stack([p[:, 5:10].sum(1), p[:, 0:2].sum(1)], dim=1)
    torch.testing.assert_close(F.softmax(head(logits), dim=1), summed / summed.sum(1, keepdim=True))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "Madry2018"}, "Engstrom2019Robustness"),
        ({"name": "Salman2020Do_R50"}, "no published model 'Salman2020Do_R50' for dataset='cifar10'"),
        ({"name": "Standard", "dataset": "cifar100"}, "dataset must be one of"),
        ({"name": "Standard", "threat_model": "linf"}, "threat_model must be one of"),
        ({"name": "Standard", "restricted_imagenet": True}, "needs dataset='imagenet'"),
    ],
)
def test_load_refuses_bad_arguments_and_names_the_choices(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        published.load(model_dir=tmp_path, device="cpu", **kwargs)


def test_missing_checkpoint_offline_names_the_file_to_place_and_where_to_get_it(tmp_path):
    with pytest.raises(published.PublishedModelMissingError) as err:
        published.load("Engstrom2019Robustness", threat_model="L2", model_dir=tmp_path, device="cpu")
    path = tmp_path / "cifar10" / "L2" / "Engstrom2019Robustness.pt"
    assert str(path) in str(err.value) and "drive.google.com/uc?id=1O8rGa6xOUIRwQ-M4ESrCjzknby8TM2ZE" in str(err.value)
    assert not path.exists()


def test_missing_torchvision_weights_offline_names_the_hub_file(tmp_path):
    with pytest.raises(published.PublishedModelMissingError) as err:
        published.load("Standard_R50", dataset="imagenet", model_dir=tmp_path, device="cpu")
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert published.checkpoint_path("Standard_R50", dataset="imagenet") == path
    assert str(path) in str(err.value) and "https://download.pytorch.org/models/resnet50-0676ba61.pth" in str(err.value)


def test_an_unreadable_checkpoint_is_a_checkpoint_error_not_a_download_hint(tmp_path):
    path = published.checkpoint_path("Standard", model_dir=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(io.CheckpointError, match="delete the file"):
        published.load("Standard", model_dir=tmp_path, device="cpu")


def test_from_madry_names_the_keys_found_and_expected(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    with pytest.raises(
        io.CheckpointError, match=r"module\.normalizer\.new_mean.*found top-level keys \['conv1.weight'\]"
    ):
        published.from_madry(plain)
    no_normalizer = tmp_path / "no_normalizer.pt"
    torch.save({"model": {"module.model.linear.weight": torch.zeros(10, 2048)}, "epoch": 1}, no_normalizer)
    with pytest.raises(io.CheckpointError, match=r"found the keys \['model.linear.weight'\] in its 'model' entry"):
        published.from_madry(no_normalizer)
    wrong_arch = tmp_path / "wrong_arch.pt"
    state = {"module.model.linear.weight": torch.zeros(10, 2048), "module.normalizer.new_mean": torch.zeros(3, 1, 1)}
    torch.save({"model": state | {"module.normalizer.new_std": torch.ones(3, 1, 1)}}, wrong_arch)
    with pytest.raises(io.CheckpointError, match="do not fit arch='resnet50'"):
        published.from_madry(wrong_arch, device="cpu")
    with pytest.raises(io.CheckpointError, match="check dataset='imagenet'"):
        published.from_madry(wrong_arch, dataset="imagenet", device="cpu")


def test_from_madry_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="arch must be one of"):
        published.from_madry(tmp_path / "x.pt", arch="wrn28")
    with pytest.raises(ValueError, match="dataset must be one of"):
        published.from_madry(tmp_path / "x.pt", dataset="cifar")
    with pytest.raises(FileNotFoundError, match="no MadryLab/robustness checkpoint at"):
        published.from_madry(tmp_path / "x.pt")


def test_published_models_check_their_input_shape(folder):
    entry = published.entry("Engstrom2019Robustness")
    write_robustbench_standin(entry, folder)
    model = published.load(entry.name, model_dir=folder, device="cpu")
    with pytest.raises(ValueError, match="takes 32x32 images; got 28x28"):
        model(torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model(torch.rand(1, 1, 32, 32))


def test_without_robustbench_the_error_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(ImportError, match=r'pip install "robustutils\[published\]"'):
        published._robustbench()
