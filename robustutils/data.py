"""Datasets as tensors in [0, 1], read from ``$ROBUSTUTILS_DATA``.

MNIST and CIFAR-10 are small enough to live whole on the device: their loaders return
``(x, y)`` with ``x`` float32 in [0, 1] of shape [N, C, H, W] and ``y`` int64 labels.
Restricted ImageNet is an image folder read lazily (a ``torch.utils.data.Dataset``).
Online, torchvision downloads what is missing; offline, a missing dataset raises
:class:`DataMissingError` naming the variable and the layout expected.
"""

import functools
import hashlib
import numbers
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

DATA_ENV = "ROBUSTUTILS_DATA"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Inclusive ImageNet class-index ranges of the nine superclasses (Tsipras et al.; MadryLab/robustness).
RESTRICTED_IMAGENET_RANGES = {
    "dog": (151, 268),
    "cat": (281, 285),
    "frog": (30, 32),
    "turtle": (33, 37),
    "bird": (80, 100),
    "primate": (365, 382),
    "fish": (389, 397),
    "crab": (118, 121),
    "insect": (300, 319),
}
RESTRICTED_IMAGENET_CLASSES = tuple(RESTRICTED_IMAGENET_RANGES)


class DataMissingError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return ``root`` if given, else ``$ROBUSTUTILS_DATA``, else ``./data``."""
    return Path(root if root is not None else os.environ.get(DATA_ENV, "data")).expanduser()


def _missing(name: str, root: Path, layout: str, cause: Exception) -> DataMissingError:
    return DataMissingError(
        f"{name} is not under {root} and could not be downloaded ({type(cause).__name__}: {cause}).\n"
        f"Point the environment variable {DATA_ENV} at a folder laid out as\n  {layout}\n"
        f"or run once with a network connection so that torchvision can download it there."
    )


def _to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float32 in [0, 1]."""
    return images_uint8.float().div_(255)


def mnist(train: bool = True, root=None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST as ``(x [N,1,28,28] float32 in [0,1], y [N] int64)``; 60,000 train or 10,000 test digits."""
    root = data_root(root)
    try:
        ds = torchvision.datasets.MNIST(root, train=train, download=download)
    except (RuntimeError, OSError) as err:
        raise _missing(
            "MNIST", root, f"{root}/MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte", err
        ) from err
    return _to_unit(ds.data.unsqueeze(1)), ds.targets.long()


def _cifar_tensors(ds: torchvision.datasets.CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CIFAR-10 (HWC uint8 array, label list) -> ``(x [N,3,32,32] in [0,1], y [N] int64)``."""
    return _to_unit(torch.from_numpy(ds.data).permute(0, 3, 1, 2)), torch.tensor(ds.targets)


def _read_cifar_batches(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the original CIFAR-10 pickle batches in ``folder`` (any length per batch)."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        xs.append(torch.from_numpy(batch["data"]).view(-1, 3, 32, 32))
        ys.append(torch.tensor(batch["labels"], dtype=torch.long))
    return _to_unit(torch.cat(xs)), torch.cat(ys)


#: The copies of CIFAR-10 :func:`cifar10` can read, by the name :func:`cifar10_copy` gives, and the
#: title every table and figure made from that copy carries (:func:`title`).
CIFAR10_COPIES = {
    "original": "CIFAR-10",
    "jpeg": "CIFAR-10 (JPEG copy)",
    "subset": "CIFAR-10 (shortened copy)",
}
CIFAR10_JPEG_FOLDER = "cifar-10-jpeg"
_SUBSET_FOLDERS = ("cifar-10-batches-py", "cifar-10-subset/cifar-10-batches-py")


def _complete_original(root: Path, train: bool):
    try:
        return torchvision.datasets.CIFAR10(root, train=train, download=False)
    except RuntimeError:
        return None  # not there, or a shortened copy whose md5 torchvision rejects


def _jpeg_folder(root: Path) -> Path | None:
    folder = root / CIFAR10_JPEG_FOLDER
    if all((folder / split / name).is_dir() for split in ("train", "test") for name in CIFAR10_CLASSES):
        return folder
    return None


def _subset_folder(root: Path) -> Path | None:
    return next((root / f for f in _SUBSET_FOLDERS if (root / f / "test_batch").is_file()), None)


def cifar10_copy(root=None) -> str:
    """Return the copy of CIFAR-10 that :func:`cifar10` reads under ``root`` (default
    ``$ROBUSTUTILS_DATA``), the first of: ``"original"`` (the complete, checksummed pickle batches of
    ``<root>/cifar-10-batches-py``), ``"jpeg"`` (the complete JPEG copy ``<root>/cifar-10-jpeg``),
    ``"subset"`` (a shortened copy of the original batches), or ``"download"`` (none of them: the
    original will be downloaded). The original is always preferred, so the two complete copies are
    never mixed: both splits come from the same one."""
    return _copy_under(str(data_root(root).resolve()))


@functools.lru_cache(maxsize=8)
def _copy_under(root: str) -> str:
    root = Path(root)
    if _complete_original(root, False) is not None:
        return "original"
    if _jpeg_folder(root) is not None:
        return "jpeg"
    if _subset_folder(root) is not None:
        return "subset"
    return "download"


def title(dataset: str, root=None) -> str:
    """Return the name a table or figure gives ``dataset`` (``"mnist"``, ``"cifar10"``,
    ``"restricted_imagenet"``): for CIFAR-10 the copy it is read from, e.g. ``"CIFAR-10 (JPEG copy)"``
    (:data:`CIFAR10_COPIES`), so that a number measured on the lossy copy always says so."""
    if dataset not in NAMES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(NAMES)}")
    if dataset != "cifar10":
        return NAMES[dataset]
    return CIFAR10_COPIES.get(cifar10_copy(root), NAMES[dataset])


def _jpeg_files(folder: Path, split: str) -> list[tuple[Path, int]]:
    """The JPEG copy's files of ``split`` in the book's order: interleaved class by class (airplane 0,
    automobile 0, ..., truck 0, airplane 1, ...), so that the first ``n`` images hold every class
    equally; within a class, file k is the k-th image of that class in CIFAR-10's own order."""
    per_class = [sorted((folder / split / name).glob("*.jpg")) for name in CIFAR10_CLASSES]
    order = []
    for k in range(max(len(files) for files in per_class)):
        order += [(files[k], label) for label, files in enumerate(per_class) if k < len(files)]
    return order


def _decode(paths: list[Path]) -> torch.Tensor:
    """Decode 32x32 RGB image files into one uint8 tensor [N, 3, 32, 32] (Pillow)."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            if im.size != (32, 32):
                raise OSError(f"{path} is {im.size[0]}x{im.size[1]} pixels, not a 32x32 CIFAR-10 image")
            images.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _read_cifar_jpeg(folder: Path, train: bool, cache=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the JPEG copy's ``train`` or ``test`` split once into uint8 tensors cached under
    ``<cache>/data`` (keyed by the files' names and sizes); return them as :func:`cifar10` does."""
    from . import io  # io imports models, which imports this module's neighbours: keep the import local

    split = "train" if train else "test"
    files = _jpeg_files(folder, split)
    listing = "\n".join(f"{p.relative_to(folder)}:{p.stat().st_size}" for p, _ in files)
    digest = hashlib.sha256(listing.encode()).hexdigest()[:16]
    target = io.cache_dir(cache) / "data" / f"cifar-10-jpeg-{split}-{digest}.pt"
    if target.is_file():
        x, y, _ = io.load_data(target)
        return _to_unit(x), y
    try:
        images = _decode([p for p, _ in files])
    except OSError as err:
        raise ValueError(
            f"could not decode the CIFAR-10 JPEG copy under {folder / split} ({err}): check the files against "
            f"the digest in the data folder's README, or remove {folder} to use another copy"
        ) from err
    x, y = images, torch.tensor([label for _, label in files], dtype=torch.long)
    io.save_data(target, x, y, {"source": str(folder / split), "copy": "jpeg", "files": len(files)})
    return _to_unit(x), y


def cifar10(train: bool = True, root=None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return CIFAR-10 as ``(x [N,3,32,32] float32 in [0,1], y [N] int64)``, from the copy
    :func:`cifar10_copy` names (:func:`title` says which, for tables and figures).

    The complete original goes through torchvision (checksummed, downloaded when missing and
    ``download``). Offline without it, the complete JPEG copy ``<root>/cifar-10-jpeg/{train,test}/
    <class>/NNNN.jpg`` (lossy, about quality 75) is decoded once into a cached uint8 tensor and read in
    class-interleaved order (:func:`cifar10_jpeg_twins` matches it to the exact images). Failing both, a
    shortened copy in the original pickle format, whose checksums torchvision rejects, is read directly
    from ``<root>/cifar-10-batches-py`` or ``<root>/cifar-10-subset/cifar-10-batches-py``; check
    ``len(y)`` for its size.
    """
    root = data_root(root)
    copy = cifar10_copy(root)
    ds = _complete_original(root, train) if copy == "original" else None
    if ds is not None:
        return _cifar_tensors(ds)
    if copy == "jpeg":
        return _read_cifar_jpeg(_jpeg_folder(root), train)
    if copy == "subset":
        return _read_cifar_batches(_subset_folder(root), train)
    try:
        ds = torchvision.datasets.CIFAR10(root, train=train, download=download)
    except (RuntimeError, OSError) as err:
        raise _missing(
            "CIFAR-10", root, f"{root}/cifar-10-batches-py/{{data_batch_1..5,test_batch,batches.meta}}", err
        ) from err
    return _cifar_tensors(ds)


def cifar10_jpeg_twins(root=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the exact CIFAR-10 test images of the shortened copy under ``root`` and their JPEG
    copies, matched image by image: ``(x_exact [N,3,32,32], x_jpeg [N,3,32,32], y [N])``, float32 in
    [0, 1], in CIFAR-10's own test order (N = 1,017 for the offline subset). Test image i of class c is
    the JPEG file ``test/<c>/<k>.jpg`` where k counts the earlier test images of class c (the copy's
    numbering). Raises :class:`DataMissingError` when either copy is missing."""
    root = data_root(root)
    subset, folder = _subset_folder(root), _jpeg_folder(root)
    if subset is None or folder is None:
        raise _missing(
            "The exact CIFAR-10 test images and their JPEG copies",
            root,
            f"{root}/cifar-10-subset/cifar-10-batches-py/test_batch and {root}/{CIFAR10_JPEG_FOLDER}/test/<class>/",
            FileNotFoundError("both copies are needed to compare them"),
        )
    x, y = _read_cifar_batches(subset, False)
    seen = [0] * len(CIFAR10_CLASSES)
    paths = []
    for label in y.tolist():
        paths.append(folder / "test" / CIFAR10_CLASSES[label] / f"{seen[label]:04d}.jpg")
        seen[label] += 1
    return x, _to_unit(_decode(paths)), y


def restricted_imagenet_wnids() -> dict[str, int]:
    """Return ``{wnid: superclass label 0..8}`` for the 203 ImageNet classes of Restricted ImageNet."""
    table = Path(__file__).with_name("restricted_imagenet_wnids.tsv").read_text().splitlines()[1:]
    ranges = list(RESTRICTED_IMAGENET_RANGES.values())
    mapping = {}
    for line in table:
        idx, wnid = line.split("\t")
        mapping[wnid] = next(label for label, (lo, hi) in enumerate(ranges) if lo <= int(idx) <= hi)
    return mapping


class RestrictedImageNet(torchvision.datasets.DatasetFolder):
    """ImageNet's ``<split>/<wnid>/*.JPEG`` folders, labelled by the nine superclasses.

    Classes are mapped by wnid, not by folder position, so a partial copy (some wnid folders
    only) is labelled correctly; folders of other ImageNet classes are ignored.
    Items are ``(image tensor [3,H,W] in [0,1], superclass label)``.
    """

    superclasses = RESTRICTED_IMAGENET_CLASSES

    def find_classes(self, directory):
        """Return ``(wnids, {wnid: superclass label 0..8})`` for the Restricted ImageNet wnid folders
        present in ``directory``, sorted; raise ``FileNotFoundError`` when there are none."""
        wnid_to_label = restricted_imagenet_wnids()
        present = sorted(d.name for d in os.scandir(directory) if d.is_dir() and d.name in wnid_to_label)
        if not present:
            raise FileNotFoundError(f"no Restricted ImageNet wnid folders (e.g. n02085620) under {directory}")
        return present, {wnid: wnid_to_label[wnid] for wnid in present}


def imagenet_transform(train: bool, size: int = 224) -> transforms.Compose:
    """Return the usual ImageNet augmentation (train: random resized crop and flip) or
    resize-and-centre-crop (eval) to ``size`` x ``size`` pixels, giving [0,1] tensors [3, size, size]."""
    if train:
        return transforms.Compose(
            [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )
    return transforms.Compose(
        [transforms.Resize(int(size * 256 / 224)), transforms.CenterCrop(size), transforms.ToTensor()]
    )


def restricted_imagenet(split: str = "val", root=None, size: int = 224, transform=None) -> RestrictedImageNet:
    """Return Restricted ImageNet's ``split`` from ``<root>/imagenet/<split>`` or the sample folder
    ``<root>/restricted-imagenet-sample/<split>``, read lazily: items are images [3, size, size] in
    [0, 1] (``transform``, default :func:`imagenet_transform`) and superclass labels 0..8.
    Raise :class:`DataMissingError` when neither folder exists."""
    root = data_root(root)
    for folder in (root / "imagenet" / split, root / "restricted-imagenet-sample" / split):
        if folder.is_dir():
            transform = transform or imagenet_transform(split == "train", size)
            return RestrictedImageNet(
                str(folder),
                loader=torchvision.datasets.folder.default_loader,
                extensions=torchvision.datasets.folder.IMG_EXTENSIONS,
                transform=transform,
            )
    raise _missing(
        "Restricted ImageNet",
        root,
        f"{root}/imagenet/{split}/<wnid>/*.JPEG",
        FileNotFoundError("ImageNet cannot be downloaded automatically"),
    )


def check_size(n: int | None, available: int, what: str = "examples") -> None:
    """Raise ``ValueError`` when ``n`` (``None``: all) is not a size ``available`` examples can give:
    below 1, or above ``available``; the message names both sizes and ``what`` they count."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"the number of {what} must be a whole number or None (all {available:,}); got {n!r}")
    if n < 1:
        raise ValueError(f"asked for {n:,} {what}: give a positive number, or None for all {available:,}")
    if n > available:
        raise ValueError(
            f"asked for {n:,} {what} but there are only {available:,}: ask for at most {available:,}, "
            f"or None for all of them"
        )


#: The training and test sizes of the complete datasets, which tell a shortened copy by its size.
COMPLETE_SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "restricted_imagenet": "Restricted ImageNet"}


def check_request(
    dataset: str,
    n: int | None,
    available: int,
    train_split: bool,
    *,
    held_by: str | None = None,
    setting: str | None = None,
    fix: str | None = None,
) -> None:
    """Raise ``ValueError`` when ``n`` examples (``None``: all) of ``dataset``'s training set
    (``train_split``) or test set cannot be given from the ``available`` ones: below 1, or more than
    there are. The message names both sizes, what holds the data (``held_by``, default the folder
    ``$ROBUSTUTILS_DATA``; a copy smaller than the complete dataset is called shortened) and the fix:
    a smaller ``setting`` (default ``n_train`` or the test sizes) in :mod:`robustutils.profiles`, or
    ``fix`` (default, unless the data is already complete: point ``$ROBUSTUTILS_DATA`` at the
    complete dataset). Nothing is shrunk silently."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
        check_size(n, available, "images")  # raises: a size is a whole number
    if n is None or 1 <= n <= available:
        return
    if n < 1:
        check_size(n, available)
    name, split = NAMES[dataset], "training" if train_split else "test"
    complete = COMPLETE_SIZES.get(dataset, (None, None))[0 if train_split else 1]
    held = f"{held_by or f'the data under {data_root()}'} has {available:,}"
    if held_by is None and complete is not None and available < complete:
        held += f" (a shortened copy: the complete {name} has {complete:,})"
    setting = setting or ("n_train" if train_split else "the test size (n_test, n_sweep, n_measure, monitor_n, ...)")
    if fix is None and (complete is None or available < complete):
        fix = f"point {DATA_ENV} at the complete {name}"
    raise ValueError(
        f"asked for {n:,} {name} {split} images but {held}: lower {setting} in "
        f"robustutils/profiles.py" + (f", or {fix}" if fix else "")
    )


def split(dataset: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return all of ``"mnist"``'s or ``"cifar10"``'s training (``train``) or test split, read once per
    process and data root (:func:`mnist`, :func:`cifar10`)."""
    if dataset not in ("mnist", "cifar10"):
        raise ValueError(
            f"{dataset!r} is not held in memory: choose 'mnist' or 'cifar10' "
            "(Restricted ImageNet: restricted_imagenet())"
        )
    return _split_under(dataset, train, str(data_root().resolve()))


@functools.lru_cache(maxsize=4)
def _split_under(dataset: str, train: bool, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist(train, root) if dataset == "mnist" else cifar10(train, root)


def test_set(dataset: str, n: int | None = None, *, image_size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first ``n`` test examples (``None``: all) of ``"mnist"``, ``"cifar10"`` or
    ``"restricted_imagenet"`` (its validation images at ``image_size`` pixels) as CPU tensors: images
    [n, C, H, W] in [0, 1] and int64 labels [n]. A size the data cannot meet raises ``ValueError``
    naming the fix (:func:`check_request`), never a shorter set."""
    if dataset == "restricted_imagenet":
        folder = restricted_imagenet("val", size=image_size, transform=imagenet_transform(False, image_size))
        check_request(dataset, n, len(folder), False, held_by=f"the folder {folder.root}")
        items = [folder[i] for i in range(n or len(folder))]
        return torch.stack([im for im, _ in items]), torch.tensor([label for _, label in items])
    if dataset not in NAMES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(NAMES)}")
    x, y = split(dataset, False)
    check_request(dataset, n, len(y), False)
    return x[:n], y[:n]


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator | None = None):
    """Return ``n`` examples of ``(x, y)``: a random choice drawn with ``generator`` (a seeded one makes
    it repeatable, and a smaller ``n`` a subset of a larger one), or all of them, in order, when ``n``
    is None or ``len(y)``. Raise ``ValueError`` (:func:`check_size`) when ``n`` is below 1 or above
    ``len(y)``: a request the data cannot meet is not silently shrunk."""
    check_size(n, len(y))
    if n is None or n == len(y):
        return x, y
    idx = torch.randperm(len(y), generator=generator)[:n]
    return x[idx], y[idx]


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
):
    """Yield ``(x_batch, y_batch)`` slices of tensors already on their device (no DataLoader workers)."""
    order = torch.randperm(len(y), generator=generator).to(y.device) if shuffle else None
    for start in range(0, len(y), batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """Return the standard CIFAR-10 training augmentation of the batch ``x`` [B, C, H, W] in [0, 1]:
    each image zero-padded by ``padding`` pixels on every side, cropped back to H x W at a uniformly
    drawn offset (``2 * padding + 1`` choices per axis), then mirrored left-right with probability 1/2.

    This is torchvision's ``RandomCrop(32, padding=4)`` (zero fill) followed by
    ``RandomHorizontalFlip()``: the CIFAR-10 training transform of Wong et al. 2020 (their
    ``fast_adversarial`` code) and of MadryLab's ``robustness`` library behind Ilyas et al. 2019,
    which also adds colour jitter (0.25) and a random rotation of up to 2 degrees, not done here.
    Madry et al. 2018 (their ``cifar10_challenge`` code) pad by 2 pixels a side: ``padding=2``.
    Vectorised (one gather for the whole batch) on ``x``'s device; the offsets and flips are drawn
    on the CPU from ``generator`` (a seeded one makes it repeatable), so nothing is read back from
    the device. Returns a new tensor of ``x``'s shape and dtype, values in [0, 1] (padding is 0)."""
    if x.dim() != 4:
        raise ValueError(f"crop_flip augments a batch [B, C, H, W]; got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    offsets, flips = offsets.to(x.device, non_blocking=True), flips.to(x.device, non_blocking=True)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [B, H], into the padded image
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = offsets[1, :, None] + torch.where(flips[:, None], w - 1 - cols, cols)  # [B, W]
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


#: The training-set augmentations :func:`robustutils.train.fit` knows, by the name a recipe gives.
AUGMENTATIONS = {"crop-flip": crop_flip}
