"""Every architecture builds, maps [0, 1] images to logits through its representation, and
normalises inside itself with mean/std buffers."""

import pytest
import torch

from robustutils import models, profiles, runtime

# arch -> (input shape [C, H, W], default classes, mean, representation width with defaults).
# resnet50 runs on 64x64 inputs to stay fast; it is a fully convolutional body with global pooling.
SPECS = {
    "mnist_cnn": ((1, 28, 28), 10, models.MNIST_MEAN, 128),
    "madry_mnist_cnn": ((1, 28, 28), 10, models.MNIST_MEAN, 1024),
    "mlp": ((1, 28, 28), 10, models.MNIST_MEAN, 256),
    "cifar_cnn": ((3, 32, 32), 10, models.CIFAR10_MEAN, 256),
    "preact_resnet18": ((3, 32, 32), 10, models.CIFAR10_MEAN, 512),
    "resnet50": ((3, 64, 64), 9, models.IMAGENET_MEAN, 2048),
}


def test_every_architecture_is_covered_here():
    assert set(SPECS) == set(models.ARCHITECTURES)


@pytest.fixture(scope="module", params=sorted(SPECS))
def built(request):
    runtime.set_seed(0)
    return request.param, models.build(request.param).eval()


def test_forward_representation_and_head_agree(built):
    arch, model = built
    shape, classes, _, width = SPECS[arch]
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, features = model(x), model.representation(x)
        assert logits.shape == (2, classes) and features.shape == (2, width)
        assert torch.allclose(model.head(features), logits, atol=1e-6)
    assert model.spec == {"arch": arch, "kwargs": {}}


def test_normalisation_is_inside_as_buffers(built):
    arch, model = built
    shape, _, mean, _ = SPECS[arch]
    buffers, parameters = dict(model.named_buffers()), dict(model.named_parameters())
    assert "mean" in buffers and "std" in buffers and "mean" not in parameters
    assert torch.allclose(model.mean.flatten(), torch.tensor(mean))
    assert {"mean", "std"} <= model.state_dict().keys()  # saved with the weights
    # The buffers are what the model uses: shifting the mean by d equals shifting the input by -d.
    # The original buffer is restored by copy, not by subtracting d again (float32 does not round-trip).
    x = 0.25 + 0.5 * torch.rand(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(x)
        original = model.mean.clone()
        model.mean += 0.1
        try:
            shifted = model(x)
            assert (shifted - before).abs().amax() > 1e-3
            assert torch.allclose(shifted, model.head(model.body((x - model.mean) / model.std)), rtol=1e-5, atol=1e-5)
        finally:
            model.mean.copy_(original)
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("arch", ["mnist_cnn", "cifar_cnn", "preact_resnet18"])
def test_build_passes_its_arguments_on(arch):
    shape = SPECS[arch][0]
    kwargs = {"num_classes": 3, **({"width": 8} if arch == "preact_resnet18" else {})}
    model = models.build(arch, **kwargs)
    assert model.spec == {"arch": arch, "kwargs": kwargs}
    with torch.no_grad():
        assert model.eval()(torch.rand(2, *shape)).shape == (2, 3)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet51': choose one of \['cifar_cnn', "):
        models.build("resnet51")


def test_unknown_profile_or_chapter_is_refused():
    chapter = next(iter(profiles.PROFILES["smoke"]))
    with pytest.raises(ValueError, match=r"unknown profile 'huge': choose one of \['smoke', 'ci', 'colab', 'full'\]"):
        profiles.config("huge", chapter)
    with pytest.raises(ValueError, match=r"profile 'smoke' has no section 'chapter9'"):
        profiles.config("smoke", "chapter9")


def test_profile_config_is_a_fresh_deep_copy():
    for name in profiles.names():
        for chapter, section in profiles.PROFILES[name].items():
            cfg = profiles.config(name, chapter)
            assert cfg == section and cfg is not section
            assert all(cfg[k] is not v for k, v in section.items() if isinstance(v, (list, dict)))


def test_cifar_cnn_with_one_conv_per_block_is_smaller_and_same_shaped():
    runtime.set_seed(0)
    one = models.build("cifar_cnn", channels=(16, 32), hidden=128, convs_per_block=1)
    two = models.build("cifar_cnn", channels=(16, 32), hidden=128)
    x = torch.rand(2, 3, 32, 32)
    assert one(x).shape == two(x).shape == (2, 10)
    assert sum(p.numel() for p in one.parameters()) < sum(p.numel() for p in two.parameters())
    with pytest.raises(ValueError, match="convs_per_block must be >= 1"):
        models.cifar_cnn(convs_per_block=0)


def test_mlp_on_colour_images_normalises_with_cifar_statistics():
    model = models.build("mlp", hidden=[64], in_shape=[3, 32, 32])
    assert torch.allclose(model.mean.flatten(), torch.tensor(models.CIFAR10_MEAN))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10) and model.representation(
        torch.rand(1, 3, 32, 32)
    ).shape == (1, 64)
