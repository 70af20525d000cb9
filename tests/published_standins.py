"""Stand-in checkpoints of the papers' published models, for offline tests: RobustBench's own
architectures with seeded random weights, saved where RobustBench's ``load_model`` (or torchvision,
for ImageNet ``Standard_R50``) reads the real files. Used by tests/test_published.py,
tests/test_published_chapters.py and, for the chapters' ``colab-smoke`` and ``full-smoke`` runs in
``make test``, by tests/conftest.py. ``python tests/published_standins.py FOLDER`` writes the
chapters' set into FOLDER.
"""

import sys
from pathlib import Path

import torch

from robustutils import published

#: The published models the chapters load, as ``(name, dataset, threat_model)``.
CHAPTER_MODELS = (
    ("Standard", "cifar10", "Linf"),
    ("Engstrom2019Robustness", "cifar10", "Linf"),
    ("Engstrom2019Robustness", "cifar10", "L2"),
    ("Engstrom2019Robustness", "imagenet", "Linf"),
    ("Standard_R50", "imagenet", "Linf"),
)


def network(name: str, dataset: str, threat_model: str, seed: int = 0) -> torch.nn.Module:
    """Return RobustBench's own network for a published model, with weights drawn from ``seed``
    (``Standard_R50``: the same network as the other ImageNet ResNet-50s, without torchvision's
    download of its weights), in eval mode."""
    published._robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]
    torch.manual_seed(seed)
    return zoo["Engstrom2019Robustness" if name == "Standard_R50" else name]["model"]().eval()


def path(folder: Path, name: str, dataset: str, threat_model: str) -> Path:
    """Where the stand-in goes: RobustBench's layout under ``folder``; ``Standard_R50`` in the torch
    hub cache under ``folder/torch`` (``TORCH_HOME``, :func:`environment`)."""
    if name == "Standard_R50":
        return Path(folder) / "torch" / "hub" / "checkpoints" / published.checkpoint_path(name, dataset=dataset).name
    return published.checkpoint_path(name, dataset=dataset, threat_model=threat_model, model_dir=folder)


def save(net: torch.nn.Module, dataset: str, target: Path) -> Path:
    """Save ``net``'s weights as the published file holds them: torchvision's keys for ImageNet
    (RobustBench adds its normaliser itself), the network's weights without the normalisation buffers
    for CIFAR-10. Written atomically; return ``target``."""
    if dataset == "imagenet":
        weights = net.model.state_dict()
    else:
        weights = {k: v for k, v in net.state_dict().items() if k not in ("mu", "sigma")}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights, target.with_suffix(".tmp"))
    target.with_suffix(".tmp").replace(target)
    return target


def write_standins(folder) -> list[Path]:
    """Write a stand-in of each model of :data:`CHAPTER_MODELS` into ``folder`` (about 520 MB), each
    seeded by its index in the list so that no two are the same; a file already there is kept.
    Return the paths."""
    paths = []
    for seed, (name, dataset, threat_model) in enumerate(CHAPTER_MODELS):
        target = path(Path(folder), name, dataset, threat_model)
        if not target.is_file():
            save(network(name, dataset, threat_model, seed), dataset, target)
        paths.append(target)
    return paths


def environment(folder) -> dict[str, str]:
    """Return the environment variables under which :func:`robustutils.published.load` reads the
    stand-ins of :func:`write_standins` in ``folder``."""
    folder = Path(folder).resolve()
    return {published.MODEL_DIR_ENV: str(folder), "TORCH_HOME": str(folder / "torch")}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/published_standins.py FOLDER")
    print(*write_standins(sys.argv[1]), sep="\n")
