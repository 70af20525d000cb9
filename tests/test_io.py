"""Checkpoints: plain state_dicts that round-trip, load with ``weights_only=True``, carry no wrapper
prefixes, and fail with :class:`io.CheckpointError` when corrupt or for the wrong model."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustutils import io, models, runtime

META = {
    "history": [{"epoch": 1, "train_loss": 0.25, "test_robust_acc": None}],
    "profile": "smoke",
    "eps": 0.3,
    "seed": 0,
    "tags": ("pgd", "linf"),
}


def small_model(seed: int = 0):
    runtime.set_seed(seed)
    return models.build("mnist_cnn", channels=(4, 8), hidden=16)


def outputs(model, seed: int = 0):
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def test_save_then_load_gives_identical_outputs_and_meta(tmp_path):
    model = small_model()
    path = io.save(model, tmp_path / "nested" / "model.pt", meta=META)
    loaded, meta = io.load(path)
    assert loaded.spec == {"arch": "mnist_cnn", "kwargs": {"channels": (4, 8), "hidden": 16}}
    assert torch.equal(outputs(loaded), outputs(model))
    assert meta == META
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was moved into place


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path):
    path = io.save(small_model(), tmp_path / "model.pt", meta=META)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"arch", "kwargs", "state_dict", "meta"}
    assert payload["arch"] == "mnist_cnn" and payload["meta"] == META
    assert {"mean", "std"} <= payload["state_dict"].keys()  # normalisation travels with the weights


@pytest.mark.parametrize("wrap", [torch.nn.DataParallel, torch.compile], ids=["DataParallel", "torch.compile"])
def test_state_dict_keys_carry_no_wrapper_prefix(tmp_path, wrap):
    model = small_model()
    wrapped = wrap(model)
    assert any(k.startswith(("module.", "_orig_mod.")) for k in wrapped.state_dict())  # what io must strip
    path = io.save(wrapped, tmp_path / "model.pt")
    keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert keys == model.state_dict().keys()
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in keys)
    assert torch.equal(outputs(io.load(path)[0]), outputs(model))


def test_load_or_train_trains_once_then_loads(tmp_path):
    path = tmp_path / "cache" / "mnist_cnn-smoke-seed0.pt"
    calls = []

    def train_a_little(model):  # a real (tiny) training run: three Adam steps on random digits
        calls.append(1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return {"steps": 3}

    first, meta1 = io.load_or_train(path, small_model, train_a_little)
    assert calls == [1] and path.is_file() and meta1 == {"steps": 3}
    assert not torch.equal(outputs(first), outputs(small_model()))  # it did train
    second, meta2 = io.load_or_train(path, small_model, train_a_little)
    assert calls == [1] and meta2 == meta1  # loaded, not trained again
    assert torch.equal(outputs(second), outputs(first))


# --- bad checkpoints -----------------------------------------------------------------------


@given(junk=st.binary(max_size=512))
def test_random_bytes_raise_checkpoint_error(tmp_path_factory, junk):
    path = tmp_path_factory.mktemp("junk") / "model.pt"
    path.write_bytes(junk)
    with pytest.raises(io.CheckpointError, match=r"not a (readable|robustutils) checkpoint"):
        io.read(path)


# Byte strings on which torch's weights-only unpickler raises KeyError / IndexError rather than
# UnpicklingError; io.read let those escape before it caught every exception.
@pytest.mark.parametrize(
    "junk",
    [
        b"h\xa6\x97\x96\xcdP\xa0\xbb",
        b"K\x9b\x86\xfd\xf1\x82\x03\xc3",
        b"R\xb0J\x10\xe6b\xf4\x99",
        b"j\x98\xf9\x83\xb8\xc8\x00\x15",
        b"",
    ],
)
def test_corrupt_checkpoint_raises_checkpoint_error(tmp_path, junk):
    path = tmp_path / "model.pt"
    path.write_bytes(junk)
    with pytest.raises(io.CheckpointError, match=r"is not a readable checkpoint .* delete it and train or save again"):
        io.load(path)


def test_truncated_checkpoint_raises_checkpoint_error(tmp_path):
    path = io.save(small_model(), tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(io.CheckpointError, match=r"is not a readable checkpoint"):
        io.load(path)


def test_a_plain_tensor_is_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(
        io.CheckpointError, match=r"is not a robustutils checkpoint \(expected keys arch, kwargs, state_dict\)"
    ):
        io.load(tmp_path / "tensor.pt")


class Payload:  # any class: a weights-only load must refuse to run its code
    def __init__(self):
        self.note = "not plain data"


def test_pickled_objects_are_refused_rather_than_executed(tmp_path):
    model = small_model()
    torch.save(
        {"arch": "mnist_cnn", "kwargs": {}, "state_dict": model.state_dict(), "meta": Payload()}, tmp_path / "model.pt"
    )
    with pytest.raises(io.CheckpointError, match=r"is not a readable checkpoint"):
        io.load(tmp_path / "model.pt")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(io.CheckpointError, match=r"no checkpoint at .*absent\.pt"):
        io.load(tmp_path / "absent.pt")


def test_wrong_architecture_raises_checkpoint_error(tmp_path):
    path = io.save(models.build("mnist_cnn"), tmp_path / "mnist.pt")
    state_dict = io.read(path)["state_dict"]
    with pytest.raises(io.CheckpointError, match=r"does not fit a cifar_cnn model: .* check the architecture"):
        io.load_weights(models.build("cifar_cnn"), state_dict, source=str(path))
    with pytest.raises(io.CheckpointError, match=r"does not fit a mnist_cnn model"):  # same arch, other widths
        io.load_weights(models.build("mnist_cnn", channels=(8, 16)), state_dict)


def test_saving_a_model_not_built_by_build_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"save needs a model made by robustutils\.models\.build"):
        io.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt")


def test_numpy_and_torch_scalars_in_meta_are_stored_as_plain_numbers(tmp_path):
    import numpy as np

    meta = {"acc": np.float64(0.5), "n": np.int64(3), "loss": torch.tensor(0.25), "curve": torch.tensor([1.0, 2.0])}
    _, loaded = io.load(io.save(small_model(), tmp_path / "model.pt", meta=meta))
    assert loaded == {"acc": 0.5, "n": 3, "loss": 0.25, "curve": [1.0, 2.0]}
    assert all(type(v) in (float, int, list) for v in loaded.values())


def test_subclasses_of_plain_types_in_meta_are_stored_as_their_base_type(tmp_path):
    # torch.__version__ is a TorchVersion, a str subclass that weights_only loading refuses.
    _, loaded = io.load(io.save(small_model(), tmp_path / "model.pt", meta={"torch": torch.__version__}))
    assert loaded == {"torch": str(torch.__version__)} and type(loaded["torch"]) is str


def test_meta_that_is_not_plain_data_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="checkpoint metadata must be plain data"):
        io.save(small_model(), tmp_path / "model.pt", meta={"model": object()})
    assert not (tmp_path / "model.pt").exists()
