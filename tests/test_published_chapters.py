"""Chapters 3, 4 and 6's sections on the papers' own published models (the ``colab`` and ``full`` profiles),
offline: stand-in checkpoints (RobustBench's architectures, seeded random weights) are written where
the chapters read the published models, :data:`robustutils.published.MODEL_DIR_ENV` and
``TORCH_HOME`` point there, and each chapter's library path runs at ``colab-smoke``: chapter 3's
evaluation, chapter 4's models and Restricted ImageNet sample (downloaded from a local server laid
out like the sample's GitHub repository), chapter 6's D_R and D_NR with the models trained on them.

The stand-ins come from tests/published_standins.py, which tests/conftest.py also uses for the
chapters' own runs at ``colab-smoke`` and ``full-smoke``.
"""

import functools
import http.server
import shutil
import threading

import gdown
import published_standins
import pytest
import requests
import torch

from robustutils import (
    constructed,
    data,
    io,
    perception,
    profiles,
    published,
    published_datasets,
    report,
    tradeoff,
    zoo,
)

PROFILE = "colab-smoke"


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """A folder of stand-ins, removed after this module's tests."""
    folder = tmp_path_factory.mktemp("published")
    published_standins.write_standins(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def chapter_env(standins, tmp_path, monkeypatch, data_dir):
    """The chapters' environment: the stand-ins, a private cache, the offline data."""
    for key, value in published_standins.environment(standins).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv(io.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_published_sections_only_at_colab_and_full():
    for profile in ("smoke", "ci"):
        for chapter in ("tradeoff", "features", "constructed"):
            assert "published" not in profiles.config(profile, chapter)
    for profile in ("colab", "full", "colab-smoke", "full-smoke"):
        for chapter in ("tradeoff", "features", "constructed"):
            assert profiles.config(profile, chapter)["published"]
    assert profiles.config("full", "constructed")["published"]["n"] is None  # all 50,000, as Ilyas et al.
    with pytest.raises(ValueError, match="use 'colab' or 'full'"):
        tradeoff.published_study("ci")
    with pytest.raises(ValueError, match="use 'colab' or 'full'"):
        published_datasets.published_study("ci")


def test_the_chapters_load_each_published_model_from_the_folder_the_variable_names(chapter_env):
    cifar = perception.published_models("cifar10", device="cpu")
    assert list(cifar) == ["standard", "ℓ∞ 8/255", "ℓ2 0.5"]
    assert [m.entry.name for m in cifar.values()] == ["Standard", "Engstrom2019Robustness", "Engstrom2019Robustness"]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(m(x).shape == (2, 10) for m in cifar.values())
    imagenet = perception.published_models("imagenet", device="cpu")
    assert list(imagenet) == ["standard", "ℓ∞ 4/255"]
    with torch.no_grad():
        assert all(m(torch.rand(1, 3, 64, 64)).shape == (1, 9) for m in imagenet.values())
    with pytest.raises(ValueError, match="choose among"):
        perception.published_models("cifar10", ["ℓ2 1"])


def test_without_the_variable_a_missing_model_names_the_file_to_place(monkeypatch, tmp_path):
    published._robustbench()

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("offline test: drive.google.com cannot be resolved")

    monkeypatch.setattr(gdown, "download", offline)
    monkeypatch.delenv(published.MODEL_DIR_ENV, raising=False)
    monkeypatch.setenv(io.CACHE_ENV, str(tmp_path))
    with pytest.raises(published.PublishedModelMissingError, match=str(tmp_path / "published" / "cifar10" / "L2")):
        published.load("Engstrom2019Robustness", threat_model="L2", device="cpu")


def test_weights_fingerprint_tells_weights_apart(chapter_env):
    a = published.load("Engstrom2019Robustness", device="cpu")
    b = published.load("Engstrom2019Robustness", device="cpu")
    assert published.weights_fingerprint(a) == published.weights_fingerprint(b)
    with torch.no_grad():
        b.head.weight[0, 0] += 1
    assert published.weights_fingerprint(a) != published.weights_fingerprint(b)


def test_chapter_3_evaluates_the_published_rows_once_and_caches_them(chapter_env):
    rows = tradeoff.published_study(PROFILE, device="cpu")
    assert [(r.entry.name, r.entry.threat_model, r.norm) for r in rows] == [
        ("Standard", "Linf", "linf"),
        ("Standard", "Linf", "l2"),
        ("Engstrom2019Robustness", "Linf", "linf"),
        ("Engstrom2019Robustness", "L2", "l2"),
    ]
    n = profiles.config(PROFILE, "tradeoff")["published"]["n_test"]
    suite = profiles.config(PROFILE, "eval")["suite"]
    for r in rows:
        assert r.result["n"] == n and 0 <= r.result["worst_acc"] <= r.result["clean_acc"] <= 1
        assert list(r.result["robust_acc"])[-1] == "aa-square" and r.result["attacks"]
    table = tradeoff.robustness_table(tradeoff.published_rows(rows, PROFILE), PROFILE)
    assert "Engstrom2019Robustness (ℓ2 0.5)" in table and "Engstrom2019Robustness (ℓ∞ 8/255)" in table
    assert "| Standard | ℓ2 ε 0.5 |" in table
    assert report.robustness_columns(suite)[0]["aa-square"] in table
    paper = tradeoff.published_table(rows)
    assert "87.03% / 49.25%" in paper and "90.83% / 69.24%" in paper and "94.78% / 0.00%" in paper
    cached = sorted((chapter_env / "evaluations").glob("published-*.json"))
    assert len(cached) == 4
    again = tradeoff.published_study(PROFILE, device="cpu")
    assert [r.result for r in again] == [r.result for r in rows]
    assert sorted((chapter_env / "evaluations").glob("published-*.json")) == cached


def test_the_evaluation_attacks_a_published_model_with_every_stage(chapter_env):
    """The chapters' random-weight stand-ins classify few test images correctly, so their cascades may
    attack nothing: here the labels are the model's own predictions, and every stage runs."""
    model = published.load("Engstrom2019Robustness", threat_model="L2", device="cpu")
    x, _ = data.test_set("cifar10", 1)
    with torch.no_grad():
        y = model(x).argmax(1)
    attacks = tradeoff.zoo.eval_attacks(PROFILE, "l2", 0.5)
    result = zoo.cached_cascade(model, x, y, attacks, {"model": "own predictions"}, name="standin")
    assert result["clean_acc"] == 1 and list(result["robust_acc"]) == list(attacks)
    assert result["worst_acc"] == list(result["robust_acc"].values())[-1] <= 1
    with pytest.raises(ValueError, match="robustutils.attacks.Attack"):
        zoo.cached_cascade(model, x, y, {"pgd": print}, {}, name="standin")


def test_chapter_4_draws_with_the_published_models(chapter_env):
    s = profiles.config(PROFILE, "features")["published"]
    models = perception.published_models("cifar10", device="cpu")
    x, y = data.test_set("cifar10", s["n_images"])
    rows = perception.gradient_rows(models, x, y, render=perception.clipped_map)
    rows |= perception.large_eps_rows(models, x, y, eps=4.0, steps=s["large_steps"])
    assert all(v.shape == x.shape for v in rows.values())
    x_i, y_i = perception.imagenet_sample(s["image_size"], fetch=False)
    assert x_i.shape == (9, 3, 64, 64) and y_i.tolist() == list(range(9))
    nets = perception.published_models("imagenet", device="cpu")
    grads = perception.gradient_rows(nets, x_i[:2], y_i[:2], render=perception.clipped_map)
    assert all(v.shape == (2, 3, 64, 64) for v in grads.values())


def test_chapter_5_builds_d_r_and_d_nr_from_the_published_models_and_trains_on_them(chapter_env):
    study = published_datasets.published_study(PROFILE, device="cpu")
    s = profiles.config(PROFILE, "constructed")["published"]
    x, y = study.real
    assert len(y) == s["n"] and list(study.sets) == ["D", "D_R", "D_NR"]
    for x_s, y_s in study.sets.values():
        assert x_s.shape == x.shape and torch.equal(y_s, y) and 0 <= x_s.min() and x_s.max() <= 1
    assert not torch.equal(study.sets["D_R"][0], study.sets["D_NR"][0])
    assert [r["set"] for r in study.rows] == ["D", "D_R", "D_NR"]
    assert study.rows[1]["paper_robust"] == constructed.PAPER["D_R"][1]
    assert list(study.robust) == ["standard on D", "standard on D_R", "standard on D_NR"]
    assert study.trained["D"]["recipe"]["epochs"] == published_datasets.published_recipe(PROFILE, s["n"]).epochs
    claims = study.verdicts()["claims"]
    assert [c["key"] for c in claims] == ["ch06-published-dr-beats-dnr", "ch06-published-dr-beats-d"]
    assert not any(c["checked"] for c in claims)
    assert len(list((chapter_env / "datasets").glob("cifar10-published-*.pt"))) == 2
    again = published_datasets.published_study(
        PROFILE, device="cpu"
    )  # from the cache: nothing is built or trained again
    assert again.rows == study.rows and again.built == study.built


def test_published_recipe_takes_as_many_steps_as_the_books_recipe():
    base = constructed.registry.recipe("cifar10/standard", "colab")
    rec = published_datasets.published_recipe("colab", 200)
    assert (rec.arch, rec.optimizer, rec.lr, rec.attack, rec.train_data) == (
        base.arch,
        base.optimizer,
        base.lr,
        None,
        None,
    )
    assert rec.epochs == base.epochs * (len(data.split("cifar10", True)[1]) // 200)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def sample_server(imagenet_sample_dir, tmp_path):
    """A local server laid out like the sample's GitHub repository: its gallery.md (one link per file,
    as the repository's) and the 203 JPEGs at the top level, copied from the offline sample."""
    served = tmp_path / "repository"
    served.mkdir()
    links = []
    for line in (imagenet_sample_dir / "restricted_imagenet_subset.tsv").read_text().splitlines()[1:]:
        *_, wnid, name = line.split("\t")
        shutil.copy(imagenet_sample_dir / "val" / wnid / name, served / name)
        links.append(f"| ![{name[10:-5]}]({name}) <br/> `{wnid}` |")
    (served / "gallery.md").write_text("# Gallery\n\n" + "\n".join(links) + "\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


def test_the_restricted_imagenet_sample_downloads_where_the_loader_reads_it(sample_server, tmp_path, monkeypatch):
    root = tmp_path / "data"
    folder = perception.fetch_imagenet_sample(root, base_url=sample_server)
    assert folder == root / perception.SAMPLE_FOLDER
    assert len(list(folder.glob("val/*/*.JPEG"))) == len(data.restricted_imagenet_wnids()) == 203
    monkeypatch.setenv(data.DATA_ENV, str(root))
    assert len(data.restricted_imagenet("val", size=32)) == 203
    x, y = perception.imagenet_sample(32)
    assert x.shape == (9, 3, 32, 32) and y.tolist() == list(range(9))


def test_a_failed_sample_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(data.DataMissingError, match="restricted-imagenet-sample/val/<wnid>"):
        perception.fetch_imagenet_sample(tmp_path, base_url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="links no image of 203"):
        perception.sample_files("| ![tench](n01440764_tench.JPEG) |")
