"""Gradient maps, large-eps examples, interpolations and the alignment measures."""

import pytest
import torch

from robustutils import attacks, evaluate, perception


def test_loss_gradient_has_the_input_shape_is_deterministic_and_keeps_the_mode(make_tiny_model, mnist_eval):
    model = make_tiny_model(0).train()
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    first, second = perception.loss_gradient(model, x, y), perception.loss_gradient(model, x, y)
    assert first.shape == x.shape and torch.equal(first, second) and first.abs().sum() > 0
    assert model.training and not x.requires_grad


def test_renderings_stay_in_range():
    grad = torch.randn(4, 3, 8, 8) * 5
    signed = perception.signed_map(grad)
    assert signed.abs().amax() == pytest.approx(1.0) and signed.shape == grad.shape
    clipped = perception.clipped_map(grad)
    assert clipped.min() >= 0 and clipped.max() <= 1 and clipped.shape == grad.shape


def test_interpolation_endpoints_equal_the_inputs():
    a, b = torch.rand(1, 28, 28), torch.rand(1, 28, 28)
    path = perception.interpolate(a, b, 20)
    assert path.shape == (20, 1, 28, 28) and torch.equal(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path[10], a + (b - a) * 10 / 19, atol=1e-6)
    with pytest.raises(ValueError, match="at least its two endpoints"):
        perception.interpolate(a, b, 1)


def test_edge_alignment_ranks_an_edge_aligned_map_above_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 8:20, 8:20] = 1.0  # a bright square: its edges are the outline
    on_edges = perception.sobel_edges(x).unsqueeze(1) * torch.randn(8, 1, 28, 28, generator=gen).sign()
    noise = torch.randn(8, 1, 28, 28, generator=gen)
    aligned, random = perception.edge_alignment(on_edges, x), perception.edge_alignment(noise, x)
    assert (aligned > 0.9).all() and (random.abs() < 0.3).all()
    share_aligned = perception.edge_energy_share(on_edges, x)
    share_random = perception.edge_energy_share(noise, x)
    assert (share_aligned > 0.95).all() and (share_random - 0.2).abs().max() < 0.15, (share_aligned, share_random)


def test_toward_reaches_targets_within_eps_and_target_rate_counts_them(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:50], mnist_eval[1][:50]
    target = (y + 1) % 10
    x_t = perception.toward(mnist_model, x, target, eps=5.0, steps=20)
    assert (attacks.L2.norm(x_t - x) <= 5.0 + 1e-4).all() and x_t.min() >= 0 and x_t.max() <= 1
    assert perception.target_rate(mnist_model, x_t, target) >= 0.8
    assert perception.target_rate(mnist_model, x, target) < 0.1


def test_label_shortens_registry_names():
    assert perception.label("mnist/standard") == "standard"
    assert perception.label("mnist/linf-0.3") == "ℓ∞ 0.3"
    assert perception.label("cifar10/linf-8/255") == "ℓ∞ 8/255"
    assert perception.label("cifar10/l2-1") == "ℓ2 1"
    assert perception.label("mnist/trades-6") == "trades-6"


def test_figure_rows_start_with_the_images_and_keep_their_shape(make_tiny_model, mnist_eval):
    models = {"a": make_tiny_model(0), "b": make_tiny_model(1)}
    x, y = mnist_eval[0][:6], mnist_eval[1][:6]
    rows = perception.gradient_rows(models, x, y)
    assert list(rows) == ["image", "a", "b"] and rows["image"] is x
    assert all(r.shape == x.shape for r in rows.values()) and rows["a"].abs().amax() == pytest.approx(1.0)
    assert torch.equal(rows["b"], perception.signed_map(perception.loss_gradient(models["b"], x, y)))
    clipped = perception.gradient_rows(models, x, y, render=perception.clipped_map)
    assert all(0 <= clipped[k].min() and clipped[k].max() <= 1 for k in models)
    large = perception.large_eps_rows(models, x, y, eps=3.0, steps=5)
    assert list(large) == ["image", "a", "b"]
    assert all((attacks.L2.norm(large[k] - x) <= 3.0 + 1e-4).all() and large[k].min() >= 0 for k in models)


def test_class_grid_pairs_one_image_per_class_with_every_target(mnist_eval):
    x, y = mnist_eval
    sources, targets = perception.class_grid(x, y)
    assert sources.shape == (100, 1, 28, 28) and targets.tolist() == list(range(10)) * 10
    for c in range(10):
        first = (y == c).nonzero()[0, 0]
        assert all(torch.equal(sources[10 * c + t], x[first]) for t in range(10))
    with pytest.raises(ValueError, match=r"class\(es\) \[9\]"):
        perception.class_grid(x[y != 9], y[y != 9])


def test_grid_rows_split_the_grid_by_source_and_count_what_the_judge_reads_as_the_target(mnist_model, mnist_eval):
    sources, targets = perception.class_grid(*mnist_eval)
    plain = perception.grid_rows(sources)
    assert list(plain) == [f"{c} →" for c in range(10)] and all(
        torch.equal(v, sources[10 * c : 10 * c + 10]) for c, v in enumerate(plain.values())
    )
    judged = perception.grid_rows(sources, mnist_model)
    seen = (evaluate.predict(mnist_model, sources) == targets).view(10, 10)
    for c, title in enumerate(judged):
        assert title == f"{c} →\n{int(seen[c].sum()) - int(seen[c, c])}/9 target"
    correct = [c for c in range(10) if seen[c, c]]
    assert correct and all(title.endswith("0/9 target") for c, title in enumerate(judged) if c in correct), (
        "an image left unchanged shows its own class: the judge reads it as no other target"
    )
    with pytest.raises(ValueError, match="holds 100 images; got 99"):
        perception.grid_rows(sources[:99])


def test_judged_rows_count_the_images_the_judge_reads_as_another_class(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:10], mnist_eval[1][:10]
    wrong = int((evaluate.predict(mnist_model, x) != y).sum())
    rows = perception.judged_rows({"image": x, "same": x, "blank": torch.zeros_like(x)}, mnist_model, y)
    blank = int((evaluate.predict(mnist_model, torch.zeros_like(x)) != y).sum())
    assert list(rows) == ["image", f"same\n{wrong}/10 not y", f"blank\n{blank}/10 not y"]
    assert rows["image"] is x
    with pytest.raises(ValueError, match="has 9 images for 10 labels"):
        perception.judged_rows({"short": x[:9]}, mnist_model, y)


def test_gradient_alignment_averages_the_two_measures(make_tiny_model, mnist_eval):
    models = {"standard": make_tiny_model(0), "other": make_tiny_model(1)}
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    got = perception.gradient_alignment(models, x, y)
    grad = perception.loss_gradient(models["other"], x, y)
    assert got["share"]["other"] == pytest.approx(perception.edge_energy_share(grad, x).mean().item())
    assert got["pearson"]["other"] == pytest.approx(perception.edge_alignment(grad, x).mean().item())
    report = perception.alignment_report({"MNIST": got}, n=32)
    assert report.count("\n| MNIST |") == 2 and "32 test images per row." in report
    ranks = "ranks" if got["pearson"]["other"] > got["pearson"]["standard"] else "does NOT rank"
    assert f"On MNIST the Pearson correlation {ranks} the other model above the standard one" in report


def test_verdicts_compare_every_robust_model_with_the_standard_one():
    values = {"standard": 0.5, "ℓ∞ 0.3": 0.8, "ℓ2 2": 0.56}
    assert perception.min_lead(values) == pytest.approx(0.06)
    assert perception.separation(values) == "separates every robust model"
    assert perception.separation({**values, "ℓ2 2": 0.4}) == "separates some robust models"
    assert perception.separation({"standard": 0.5, "x": 0.5}) == "does NOT separate"
    assert perception.listing(values) == "standard model 0.500, ℓ∞ 0.3 model 0.800, ℓ2 2 model 0.560"
    table = perception.summary_table({"edges": values})
    assert "| edges | 0.500 | ℓ∞ 0.3 0.800 / ℓ2 2 0.560 | 0 | separates every robust model |" in table
    assert perception.separation(values, margin=0.1) == "separates some robust models"  # 0.06 is not a 0.1 lead
    table = perception.summary_table({"edges": values}, margins={"edges": 0.1})
    assert "| edges | 0.500 | ℓ∞ 0.3 0.800 / ℓ2 2 0.560 | 0.1 | separates some robust models |" in table
    with pytest.raises(KeyError, match="margins for measures not in rows"):
        perception.summary_table({"edges": values}, margins={"edge": 0.1})
    with pytest.raises(KeyError, match="standard="):
        perception.min_lead({"robust": 1.0})


def test_edge_shares_of_a_blind_gradient_equal_top_and_grow_with_it(make_tiny_model, mnist_eval):
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    tops = [0.05, 0.2, 0.4]
    shares = perception.edge_shares({"tiny": make_tiny_model(0)}, x, y, tops)
    assert list(shares) == [perception.BLIND, "tiny"]
    assert shares[perception.BLIND] == pytest.approx(tops, abs=0.01)
    assert all(b >= a - 1e-6 for a, b in zip(shares["tiny"], shares["tiny"][1:]))
    table = perception.shares_table(shares, tops)
    assert "| top 5% | top 20% | top 40% |" in table and table.count(f"| {perception.BLIND} |") == 1


def test_judge_agreement_asks_each_judge_about_the_same_images(mnist_model, make_tiny_model, mnist_eval):
    x, y = mnist_eval[0][:40], mnist_eval[1][:40]
    target = (y + 1) % 10
    rows = perception.judge_agreement(
        {"m": mnist_model}, {"same": mnist_model, "tiny": make_tiny_model(0)}, x, target, eps=[1.0, 5.0], steps=10
    )
    assert [(r["eps"], r["model"]) for r in rows] == [(1.0, "m"), (5.0, "m")]
    assert all(r["self"] == r["same"] and 0 <= r["tiny"] <= 1 for r in rows)
    x_t = perception.toward(mnist_model, x, target, eps=5.0, steps=10)
    assert rows[1]["self"] == perception.target_rate(mnist_model, x_t, target) >= rows[0]["self"]
    assert perception.agreement_at(rows, 5.0, "tiny") == {"m": rows[1]["tiny"]}
    with pytest.raises(KeyError, match="no row at eps 3"):
        perception.agreement_at(rows, 3.0, "self")
    assert "seen as the target by the tiny" in perception.agreement_table(rows, ["same", "tiny"])


def test_interpolation_rows_run_from_each_image_to_its_example(make_tiny_model, mnist_eval):
    models = {"a": make_tiny_model(0), "b": make_tiny_model(1)}
    x, y = mnist_eval[0][:2], mnist_eval[1][:2]
    target = (y + 1) % 10
    names = [f"digit {c}" for c in range(10)]
    rows = perception.interpolation_rows(models, x, y, target, names, eps=2.0, steps=3, points=5)
    first = f"a: digit {int(y[0])} → digit {int(target[0])}"
    assert list(rows)[:2] == [first, f"b: digit {int(y[0])} → digit {int(target[0])}"] and len(rows) == 4
    assert all(p.shape == (5, 1, 28, 28) for p in rows.values())
    assert torch.equal(rows[first][0], x[0])
    end = perception.toward(models["a"], x, target, eps=2.0, steps=3)[0]
    assert torch.allclose(rows[first][-1], end, atol=1e-6)


def test_gallery_groups_images_by_class_in_label_order():
    sample = [(torch.full((3, 4, 4), float(i) / 10), label) for i, label in enumerate([2, 0, 2, 2, 0])]
    rows, counts = perception.gallery(sample, per_class=2, classes=["dog", "cat", "frog"])
    assert list(rows) == ["dog", "frog"] and counts == {"dog": 2, "frog": 3}
    assert rows["frog"].shape == (2, 3, 4, 4) and torch.equal(rows["frog"][1], sample[2][0])


def test_interpolation_figure_shows_both_ends_and_labels_each_row():
    import matplotlib.pyplot as plt

    from robustutils import plots

    paths = {"ℓ2 2: cat → dog": torch.rand(20, 3, 8, 8), "standard: cat → dog": torch.rand(20, 3, 8, 8)}
    fig = plots.interpolations(paths, shown=8)
    axes = fig.axes
    assert len(axes) == 16
    assert axes[0].get_title() == "α = 0.00" and axes[7].get_title() == "α = 1.00"
    assert axes[0].get_ylabel() == "ℓ2 2\ncat → dog" and axes[8].get_ylabel() == "standard\ncat → dog"
    plt.close(fig)
    with pytest.raises(ValueError, match="at least 2"):
        plots.interpolations(paths, shown=1)


def _linear(rows: torch.Tensor) -> torch.nn.Module:
    """A bias-free linear classifier of images shaped like ``rows[0]``: logit k is <rows[k], x>, so
    its input gradient for class k is rows[k] wherever it is taken."""
    layer = torch.nn.Linear(rows[0].numel(), len(rows), bias=False)
    with torch.no_grad():
        layer.weight.copy_(rows.flatten(1))
    return torch.nn.Sequential(torch.nn.Flatten(), layer)


def test_alignment_is_one_for_a_gradient_equal_to_the_image_and_zero_for_an_orthogonal_one():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    orthogonal = x[1] - (x[1] * x[0]).sum() / x[0].pow(2).sum() * x[0]  # Gram-Schmidt against x[0]
    model = _linear(torch.stack([x[0], orthogonal]))
    first = x[:1]
    assert perception.alignment(model, first, torch.tensor([0])).item() == pytest.approx(1.0, abs=1e-6)
    assert perception.alignment(model, first, torch.tensor([1])).item() == pytest.approx(0.0, abs=1e-6)
    # a negative multiple of the image is as aligned as the image itself: the paper takes |<x, g>|
    assert perception.alignment(_linear(-2 * x[:1]), first, torch.tensor([0])).item() == pytest.approx(1.0, abs=1e-6)


def test_alignment_centres_the_image_and_follows_the_predicted_class_by_default():
    gen = torch.Generator().manual_seed(1)
    c = torch.tensor([0.3, 0.5, 0.2])
    x = (c.view(1, 3, 1, 1) + 0.1 * torch.randn(4, 3, 6, 6, generator=gen)).clamp(0, 1)
    centred = x - c.view(1, 3, 1, 1)
    noise = torch.randn(3, 6, 6, generator=gen)
    model = _linear(torch.stack([centred[0], noise]))
    aligned = perception.alignment(model, x[:1], torch.tensor([0]), center=c.tolist())
    assert aligned.item() == pytest.approx(1.0, abs=1e-5)
    assert perception.alignment(model, x[:1], torch.tensor([0])).item() < 0.9  # uncentred: another vector
    predicted = evaluate.predict(model, x)
    assert torch.equal(perception.alignment(model, x, center=c), perception.alignment(model, x, predicted, center=c))


def test_alignment_does_not_change_when_the_logits_or_the_image_are_scaled():
    gen = torch.Generator().manual_seed(2)
    x, w = torch.rand(5, 1, 10, 10, generator=gen), torch.randn(3, 1, 10, 10, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1])
    base = perception.alignment(_linear(w), x, y)
    assert torch.allclose(perception.alignment(_linear(7.5 * w), x, y), base, atol=1e-6)
    assert torch.allclose(perception.alignment(_linear(w), 0.25 * x, y), base, atol=1e-6)
    assert ((base >= 0) & (base <= 1)).all() and base.shape == (5,)


def test_alignment_of_a_network_is_the_same_in_any_batch_size_and_keeps_the_mode(make_tiny_model, mnist_eval):
    model = make_tiny_model(0).train()
    x, y = mnist_eval[0][:20], mnist_eval[1][:20]
    whole, pieces = perception.alignment(model, x, y), perception.alignment(model, x, y, batch_size=7)
    assert whole.shape == (20,) and torch.allclose(whole, pieces, atol=1e-6) and model.training
    assert ((whole >= 0) & (whole <= 1)).all() and not x.requires_grad
    means = perception.image_alignments({"a": model, "b": make_tiny_model(1)}, x, y)
    assert list(means) == ["a", "b"] and means["a"] == pytest.approx(whole.mean().item(), abs=1e-6)


def test_alignment_refuses_inputs_it_cannot_measure(make_tiny_model, mnist_eval):
    model = make_tiny_model(0)
    x, y = mnist_eval[0][:4], mnist_eval[1][:4]
    with pytest.raises(ValueError, match="divide by 255"):
        perception.alignment(model, x * 255, y)
    with pytest.raises(ValueError, match="4 inputs but 3 labels"):
        perception.alignment(model, x, y[:3])
    with pytest.raises(ValueError, match="use y.long"):
        perception.alignment(model, x, y.float())
    with pytest.raises(ValueError, match="below the model's 10 classes"):
        perception.alignment(model, x, torch.full((4,), 10))
    with pytest.raises(ValueError, match="one value per channel"):
        perception.alignment(model, x, y, center=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        perception.alignment(model, x, y, center=[128.0])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        perception.alignment(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="no examples"):
        perception.alignment(model, x[:0], y[:0])


def test_chance_alignment_is_the_mean_cosine_of_a_random_direction():
    gen = torch.Generator().manual_seed(3)
    directions = torch.randn(20_000, 784, generator=gen)
    sampled = (directions[:, 0].abs() / directions.norm(dim=1)).mean().item()
    assert perception.chance_alignment(784) == pytest.approx(sampled, rel=0.02)
    assert perception.chance_alignment(1) == 1.0 and perception.chance_alignment(2) == pytest.approx(2 / torch.pi)
    with pytest.raises(ValueError, match="dims"):
        perception.chance_alignment(0)


def test_image_alignment_report_leads_each_dataset_with_the_random_line_and_ranks_the_models():
    values = {"MNIST": {"standard": 0.10, "ℓ2 2": 0.40}, "CIFAR-10": {"standard": 0.20, "ℓ∞ 8/255": 0.15}}
    text = perception.image_alignment_report(values, n=50, dims={"MNIST": 784, "CIFAR-10": 3072})
    assert "| MNIST | a random direction | 0.029 |" in text and "| CIFAR-10 | a random direction | 0.014 |" in text
    assert "On MNIST the alignment ranks the ℓ2 2 model" in text
    assert "On CIFAR-10 the alignment does NOT rank the ℓ∞ 8/255 model" in text and text.startswith("| dataset")
    with pytest.raises(KeyError, match="dims"):
        perception.image_alignment_report(values, n=50, dims={"MNIST": 784})
