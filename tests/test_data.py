"""The loaders on the real offline copies in ``$ROBUSTUTILS_DATA`` (checked against the raw files
read independently here), partial Restricted ImageNet copies, and the error when data is missing."""

import csv
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from robustutils import data

# Per-digit counts of the published MNIST label files.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

DOG, CAT, INSECT, TENCH = "n02085620", "n02123045", "n02165105", "n01440764"  # Chihuahua 151, tabby 281,
# tiger beetle 300 (Restricted ImageNet labels 0, 1, 8); tench is ImageNet class 0, outside all nine.


def read_idx(path, header: int) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint8)[header:]


def check_unit_images(x: torch.Tensor, y: torch.Tensor, shape):
    assert x.shape == shape and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert y.shape == (shape[0],) and set(y.unique().tolist()) == set(range(10))


# --- MNIST ---------------------------------------------------------------------------------


def test_mnist_train_is_the_full_published_set(mnist_train, data_dir):
    x, y = mnist_train
    check_unit_images(x, y, (60_000, 1, 28, 28))
    assert torch.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    raw = data_dir / "MNIST" / "raw"
    assert np.array_equal(y.numpy(), read_idx(raw / "train-labels-idx1-ubyte", 8))
    pixels = read_idx(raw / "train-images-idx3-ubyte", 16)[: 100 * 784].reshape(100, 1, 28, 28)
    assert torch.equal(torch.round(x[:100] * 255).to(torch.uint8), torch.from_numpy(pixels))


def test_mnist_test_is_the_full_published_set(mnist_test, data_dir):
    x, y = mnist_test
    check_unit_images(x, y, (10_000, 1, 28, 28))
    assert torch.bincount(y).tolist() == MNIST_TEST_COUNTS
    pixels = read_idx(data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte", 16).reshape(10_000, 1, 28, 28)
    assert torch.equal(torch.round(x * 255).to(torch.uint8), torch.from_numpy(pixels))


# --- CIFAR-10 subset (read directly from the pickles) --------------------------------------


@pytest.fixture(scope="module")
def cifar_train(cifar_subset_dir):
    return data.cifar10(train=True, root=cifar_subset_dir, download=False)


def test_cifar10_subset_train(cifar_train, cifar_subset_dir):
    x, y = cifar_train
    check_unit_images(x, y, (8_068, 3, 32, 32))
    counts = torch.bincount(y, minlength=10)
    assert counts.sum() == 8_068 and counts.min() >= 777 and counts.max() <= 856
    # Batches concatenated in order: image 4,000 is the first of data_batch_2.
    with open(cifar_subset_dir / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    first = torch.from_numpy(batch["data"][0]).view(3, 32, 32)
    assert torch.equal(torch.round(x[4_000] * 255).to(torch.uint8), first) and y[4_000] == batch["labels"][0]


def test_cifar10_subset_test(cifar_subset_dir):
    x, y = data.cifar10(train=False, root=cifar_subset_dir, download=False)
    check_unit_images(x, y, (1_017, 3, 32, 32))
    with open(cifar_subset_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert y.tolist() == batch["labels"]
    assert torch.equal(torch.round(x * 255).to(torch.uint8), torch.from_numpy(batch["data"]).view(-1, 3, 32, 32))


def test_cifar10_reads_a_root_that_holds_the_batches_folder_itself(cifar_subset_dir):
    x, y = data.cifar10(train=False, root=cifar_subset_dir, download=False)
    assert len(y) == 1_017 and x.shape == (1_017, 3, 32, 32)


# --- CIFAR-10 JPEG copy (all 60,000 images, lossy) -------------------------------------------


@pytest.fixture(scope="session")
def cifar_jpeg_dir(data_dir):
    """``$ROBUSTUTILS_DATA/cifar-10-jpeg``; skip when it is absent."""
    return _offline_jpeg(data_dir)


def _offline_jpeg(data_dir):
    folder = data_dir / data.CIFAR10_JPEG_FOLDER
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: these tests check the JPEG copy described in ../shared/data/README.md")
    return folder


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _jpeg_root(tmp_path, jpeg_dir, subset_dir=None):
    """A data root holding links to the JPEG copy (and the subset, when given)."""
    root = tmp_path / "root"
    root.mkdir()
    (root / data.CIFAR10_JPEG_FOLDER).symlink_to(jpeg_dir)
    if subset_dir is not None:
        (root / "cifar-10-subset").symlink_to(subset_dir)
    return root


def test_the_jpeg_copy_is_all_of_cifar10_interleaved_class_by_class(cifar_jpeg_dir, private_cache, tmp_path):
    root = _jpeg_root(tmp_path, cifar_jpeg_dir)
    x, y = data.cifar10(train=False, root=root, download=False)
    check_unit_images(x, y, (10_000, 3, 32, 32))
    assert torch.bincount(y).tolist() == [1_000] * 10
    assert y[:20].tolist() == list(range(10)) * 2  # the first n test images hold every class equally
    # Image 13 is the second image of class 3 (cat), decoded here independently of the loader.
    with Image.open(cifar_jpeg_dir / "test" / "cat" / "0001.jpg") as im:
        direct = torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(torch.round(x[13] * 255).to(torch.uint8), direct)
    cached = list((private_cache / "data").glob("cifar-10-jpeg-test-*.pt"))
    assert len(cached) == 1  # decoded once; the next read comes from the cached uint8 tensor
    again, y_again = data.cifar10(train=False, root=root, download=False)
    assert torch.equal(again, x) and torch.equal(y_again, y)


def test_the_jpeg_training_split_has_5000_images_of_each_class(cifar_jpeg_dir, private_cache, tmp_path):
    x, y = data.cifar10(train=True, root=_jpeg_root(tmp_path, cifar_jpeg_dir), download=False)
    assert x.shape == (50_000, 3, 32, 32) and torch.bincount(y).tolist() == [5_000] * 10


def test_the_complete_jpeg_copy_is_preferred_to_the_shortened_one_and_says_so(
    cifar_jpeg_dir, cifar_subset_dir, tmp_path
):
    both = _jpeg_root(tmp_path, cifar_jpeg_dir, cifar_subset_dir)
    assert data.cifar10_copy(both) == "jpeg" and data.title("cifar10", both) == "CIFAR-10 (JPEG copy)"
    assert data.cifar10_copy(cifar_subset_dir) == "subset"
    assert data.title("cifar10", cifar_subset_dir) == "CIFAR-10 (shortened copy)"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert data.cifar10_copy(empty) == "download" and data.title("cifar10", empty) == "CIFAR-10"
    assert data.title("mnist") == "MNIST"
    with pytest.raises(ValueError, match="choose one of"):
        data.title("cifar100")


def test_the_jpeg_twins_are_the_subsets_exact_test_images_matched_one_to_one(
    cifar_jpeg_dir, cifar_subset_dir, tmp_path
):
    exact, jpeg, y = data.cifar10_jpeg_twins(_jpeg_root(tmp_path, cifar_jpeg_dir, cifar_subset_dir))
    assert exact.shape == jpeg.shape == (1_017, 3, 32, 32) and y.shape == (1_017,)
    diff = (exact - jpeg).abs().mean(dim=(1, 2, 3))
    # The README's measurement: 6.2/255 on average, about 10/255 at most for one image.
    assert 4 / 255 < diff.mean() < 8 / 255 and diff.max() < 16 / 255
    shifted = (exact - jpeg.roll(1, dims=0)).abs().mean(dim=(1, 2, 3))
    assert (shifted > diff).float().mean() > 0.99  # each JPEG is its own exact image's copy, not a neighbour's


def test_the_jpeg_twins_need_both_copies(cifar_subset_dir, tmp_path):
    with pytest.raises(data.DataMissingError, match="both copies"):
        data.cifar10_jpeg_twins(cifar_subset_dir)


def test_a_damaged_jpeg_copy_is_an_error_that_says_what_to_do(tmp_path, private_cache):
    root = tmp_path / "root"
    for split in ("train", "test"):
        for name in data.CIFAR10_CLASSES:
            (root / data.CIFAR10_JPEG_FOLDER / split / name).mkdir(parents=True)
            (root / data.CIFAR10_JPEG_FOLDER / split / name / "0000.jpg").write_bytes(b"not a jpeg")
    assert data.cifar10_copy(root) == "jpeg"
    with pytest.raises(ValueError, match="could not decode the CIFAR-10 JPEG copy"):
        data.cifar10(train=False, root=root, download=False)


# --- Restricted ImageNet -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_table(imagenet_sample_dir):
    """``{wnid: superclass label}`` as the sample's own TSV lists it (an independent source)."""
    with open(imagenet_sample_dir / "restricted_imagenet_subset.tsv") as f:
        return {row["wnid"]: int(row["label"]) for row in csv.DictReader(f, delimiter="\t")}


def test_wnid_mapping_matches_the_superclass_ranges(sample_table):
    mapping = data.restricted_imagenet_wnids()
    assert len(mapping) == 203 and mapping == sample_table
    assert mapping[DOG] == 0 and mapping[CAT] == 1 and mapping[INSECT] == 8 and TENCH not in mapping
    sizes = [hi - lo + 1 for lo, hi in data.RESTRICTED_IMAGENET_RANGES.values()]
    assert np.bincount(list(mapping.values())).tolist() == sizes


def test_restricted_imagenet_sample(imagenet_sample_dir, sample_table):
    ds = data.restricted_imagenet("val", root=imagenet_sample_dir.parent, size=64)
    assert len(ds) == 203 and set(ds.targets) == set(range(9))
    labels = {os.path.basename(os.path.dirname(path)): label for path, label in ds.samples}
    assert labels == sample_table  # labelled by wnid, whatever the folder's position
    assert labels[DOG] == 0 and labels[CAT] == 1 and labels[INSECT] == 8
    image, label = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and label == ds.targets[0]


@pytest.mark.parametrize("layout", ["imagenet/val", "restricted-imagenet-sample/val"])
def test_partial_copy_is_labelled_by_wnid_and_other_classes_are_ignored(imagenet_sample_dir, tmp_path, layout):
    sample = imagenet_sample_dir / "val"
    split = tmp_path / layout
    split.mkdir(parents=True)
    for wnid in (CAT, DOG, INSECT):
        (split / wnid).symlink_to(sample / wnid, target_is_directory=True)
    (split / TENCH).mkdir()  # a real ImageNet class outside Restricted ImageNet: must be ignored
    shutil.copy(next((sample / DOG).iterdir()), split / TENCH / f"{TENCH}_tench.JPEG")

    ds = data.restricted_imagenet("val", root=tmp_path, size=32)
    assert len(ds) == 3 and sorted(ds.classes) == sorted([CAT, DOG, INSECT])
    labels = {os.path.basename(os.path.dirname(path)): label for path, label in ds.samples}
    assert labels == {DOG: 0, CAT: 1, INSECT: 8}
    assert ds[0][0].shape == (3, 32, 32)


def test_a_folder_without_restricted_classes_is_refused(tmp_path):
    (tmp_path / "imagenet" / "val" / TENCH).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no Restricted ImageNet wnid folders \(e\.g\. n02085620\)"):
        data.restricted_imagenet("val", root=tmp_path)


# --- missing data, offline: a clear error naming the variable (needs no data) --------------


@pytest.mark.parametrize(
    "load",
    [
        lambda root: data.mnist(train=True, root=root, download=False),
        lambda root: data.mnist(train=False, root=root, download=False),
        lambda root: data.cifar10(train=True, root=root, download=False),
        lambda root: data.cifar10(train=False, root=root, download=False),
        lambda root: data.restricted_imagenet("val", root=root),
    ],
    ids=["mnist-train", "mnist-test", "cifar10-train", "cifar10-test", "restricted-imagenet"],
)
def test_missing_data_offline_names_the_variable(tmp_path, load):
    with pytest.raises(data.DataMissingError, match=r"Point the environment variable ROBUSTUTILS_DATA at a folder"):
        load(tmp_path)


def test_data_root_prefers_the_argument_then_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root(tmp_path / "other") == tmp_path / "other"
    monkeypatch.delenv(data.DATA_ENV)
    assert str(data.data_root()) == "data"


# --- in-memory helpers (need no data) ------------------------------------------------------


def test_subset_is_seeded_and_batches_cover_everything_once():
    x, y = torch.arange(100.0).view(100, 1), torch.arange(100)
    a = data.subset(x, y, 10, torch.Generator().manual_seed(1))
    b = data.subset(x, y, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0].view(-1).long(), a[1]) and len(a[1].unique()) == 10
    assert data.subset(x, y, None)[1] is y
    for shuffle in (False, True):
        parts = list(data.batches(x, y, 32, shuffle=shuffle, generator=torch.Generator().manual_seed(0)))
        assert [len(p[1]) for p in parts] == [32, 32, 32, 4]
        seen = torch.cat([p[1] for p in parts])
        assert sorted(seen.tolist()) == list(range(100))
        assert torch.equal(torch.cat([p[0] for p in parts]).view(-1).long(), seen)  # rows stay paired


def test_subset_refuses_sizes_the_data_cannot_meet():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    assert data.subset(x, y, 10)[1] is y, "all of them, in order"
    for n, message in (
        (11, r"asked for 11 examples but there are only 10"),
        (0, r"asked for 0 examples: give a positive"),
        (-1, r"asked for -1 examples"),
    ):
        with pytest.raises(ValueError, match=message):
            data.subset(x, y, n)


# --- the CIFAR-10 training augmentation (random crop of the zero-padded image, random flip) ----------


def windows(x: torch.Tensor, padding: int):
    """Every crop of the zero-padded ``x`` [B, C, H, W] and its mirror image: a dict
    ``(dy, dx, flipped) -> [B, C, H, W]``, enumerated one by one (independently of crop_flip)."""
    h, w = x.shape[-2:]
    padded = torch.zeros(*x.shape[:2], h + 2 * padding, w + 2 * padding)
    padded[..., padding : padding + h, padding : padding + w] = x
    out = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[..., dy : dy + h, dx : dx + w]
            out[dy, dx, False], out[dy, dx, True] = crop, crop.flip(-1)
    return out


def test_crop_flip_returns_a_shifted_window_of_the_padded_image_possibly_mirrored():
    x = torch.rand(300, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01  # no zeros
    out = data.crop_flip(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and 0 <= out.min() and out.max() <= 1
    found = []
    for image in range(len(x)):
        matches = [
            where for where, crop in windows(x[image : image + 1], 4).items() if torch.equal(out[image], crop[0])
        ]
        assert len(matches) == 1, f"image {image} is not exactly one window of its padded original"
        found.append(matches[0])
    assert {dy for dy, _, _ in found} == set(range(9)) and {dx for _, dx, _ in found} == set(range(9)), (
        "every offset from 0 to 2 * padding occurs"
    )
    assert 0.4 < sum(flipped for _, _, flipped in found) / len(found) < 0.6


def test_crop_flip_flips_half_the_images_and_without_padding_only_flips():
    x = torch.rand(4000, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    out = data.crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    flipped = (out != x).flatten(1).any(1)
    assert torch.equal(out[flipped], x[flipped].flip(-1)) and torch.equal(out[~flipped], x[~flipped])
    assert abs(flipped.float().mean().item() - 0.5) < 0.04  # 5 standard deviations of 4,000 fair coins


def test_crop_flip_is_repeatable_from_its_generator():
    x = torch.rand(64, 3, 32, 32)
    a = data.crop_flip(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, data.crop_flip(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, data.crop_flip(x, torch.Generator().manual_seed(6)))
    generator = torch.Generator().manual_seed(5)
    data.crop_flip(x, generator)
    assert not torch.equal(a, data.crop_flip(x, generator)), "the generator moves on: each batch draws afresh"
    with pytest.raises(ValueError, match=r"a batch \[B, C, H, W\]"):
        data.crop_flip(x[0], generator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crop_flip_on_the_gpu_draws_what_it_draws_on_the_cpu():
    x = torch.rand(64, 3, 32, 32)
    on_gpu = data.crop_flip(x.cuda(), torch.Generator().manual_seed(3))
    assert on_gpu.device.type == "cuda" and torch.equal(
        on_gpu.cpu(), data.crop_flip(x, torch.Generator().manual_seed(3))
    )
