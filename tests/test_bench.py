"""The benchmarks run end to end at tiny sizes and write records the performance appendix can
read; catastrophic overfitting is flagged from a history; the evaluation cascade reports the
per-example worst case."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustutils import attacks, bench, evaluate, models, runtime, train

ROOT = Path(__file__).resolve().parent.parent


def rows(*robust):
    return [{"epoch": i + 1, "test_robust_acc": acc} for i, acc in enumerate(robust)]


@pytest.mark.parametrize(
    "history, epoch",
    [
        (rows(0.30, 0.55, 0.70, 0.02, 0.01), 4),  # Wong et al.'s collapse: flagged at the epoch it happens
        (rows(0.30, 0.55, 0.70, 0.72), None),  # steady progress
        (rows(0.60, 0.45), None),  # a 15-point dip is noise at this threshold, not a collapse
        (rows(None, 0.5, 0.2), 3),  # epochs without a measurement are skipped
        ([{"epoch": 1, "test_robust_acc": None}], None),
    ],
)
def test_catastrophic_overfitting_is_flagged_at_the_collapse(history, epoch):
    assert train.catastrophic_overfitting(history, drop=0.2) == epoch


def test_fit_warns_when_robustness_collapses(mnist_train):
    # An evaluation attack that replaces the inputs by noise from the second epoch on makes the
    # measured robust accuracy collapse for certain: fit must say so when it happens.
    runtime.set_seed(0)
    model = models.build("mnist_cnn")
    x, y = mnist_train[0][:2_000], mnist_train[1][:2_000]
    calls = []

    def collapsing_attack(m, x_, y_):
        calls.append(1)
        return x_ if len(calls) == 1 else torch.rand_like(x_)

    with pytest.warns(RuntimeWarning, match="catastrophic overfitting at epoch 2"):
        history = train.fit(
            model,
            (x, y),
            epochs=2,
            batch_size=64,
            callbacks=[train.Monitor(x[:500], y[:500], attack=collapsing_attack)],
        )
    assert history[0]["test_robust_acc"] > 0.7 > 0.3 > history[1]["test_robust_acc"]


def test_cascade_first_is_standalone_and_last_is_the_worst_case(mnist_model, mnist_eval):
    x, y = mnist_eval
    attack_set = {
        "weak": attacks.PGD(eps=0.1, steps=2, random_start=False),
        "strong": attacks.PGD(eps=0.1, steps=10, random_start=False),
    }
    alone = evaluate.compare(mnist_model, x, y, attack_set)
    chained = evaluate.cascade(mnist_model, x, y, attack_set, batch_size=128)
    assert chained["clean_acc"] == alone["clean_acc"]
    assert chained["robust_acc"]["weak"] == alone["robust_acc"]["weak"]
    assert chained["robust_acc"]["strong"] == alone["worst_acc"]  # deterministic attacks: same per-example outcome
    assert chained["robust_acc"]["strong"] <= chained["robust_acc"]["weak"] < chained["clean_acc"]


def test_bench_command_writes_records_the_appendix_reads(data_dir, tmp_path):
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir), "ROBUSTUTILS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "records"
    command = [sys.executable, "-m", "robustutils.bench", "scaling", "p3", "evalsuite", "--quick", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "P3 clean" in done.stdout and ("PASS" in done.stdout or "FAIL" in done.stdout)
    records = {r["benchmark"]: r for r in bench.load_records(out)}
    assert set(records) == {"scaling", "p3", "evalsuite"}
    for record in records.values():
        assert set(record["machine"]) >= {"device", "device_name", "cpu_cores", "date", "commit", "torch"}
    p3 = records["p3"]
    assert [r["name"] for r in p3["recipes"]] == list(bench.P3_RECIPES) and p3["chosen"] in bench.P3_RECIPES
    assert p3["reference_step_seconds"] > 0 and p3["n"] == 200 and p3["points"]["n"] == len(p3["points"]["index"])
    for row in p3["recipes"]:
        assert 0 <= row["pgd_acc"] <= row["clean_acc"] <= 1 and row["train_seconds"] > 0
    # the worst case is per digit: never above either attack on the same points
    assert p3["worst_acc"] <= min(p3["pgd_on_points"], p3["autoattack"]["worst_acc"])
    assert set(bench.p3_verdict(p3)) == {"clean", "robust", "seconds", "no catastrophic overfitting"}
    for record in (p3, records["evalsuite"]):
        assert set(record["suites"]) == set(bench.p3_suites(0.3))
        for suite in record["suites"].values():
            assert suite["time_ratio"] == pytest.approx(suite["seconds"] / record["autoattack"]["seconds"])
            assert suite["both_acc"] <= min(suite["worst_acc"], record["autoattack"]["worst_acc"])
    restarts = records["evalsuite"]["restarts"]
    assert restarts["passes"]["attacked"] <= restarts["batched"]["attacked"], "passes attack only what stands"
    assert len(bench.suite_rows(bench.record_index(out))) == 4  # two models, two suites
    assert {r["axis"] for r in records["scaling"]["rows"]} == {"width", "batch_size", "steps"}
    assert all(r["epoch_seconds"] > 0 for r in records["scaling"]["rows"])


def test_gpu_check_runs_end_to_end_on_a_cpu_at_tiny_sizes(data_dir, tmp_path):
    env = {
        **os.environ,
        "ROBUSTUTILS_DATA": str(data_dir),
        "ROBUSTUTILS_CACHE": str(tmp_path / "cache"),
        "ROBUSTUTILS_KERNEL": "robustbook",
    }
    command = [
        sys.executable,
        "-m",
        "robustutils.bench",
        "gpu-check",
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    index = bench.record_index(tmp_path)
    assert set(index) == {("gpucheck", "cpu"), ("p1", "cpu"), ("p3", "cpu")}
    check = index["gpucheck", "cpu"]
    assert check["tests"]["returncode"] == 0, check["tests"]["tail"]
    assert check["chapter"]["returncode"] == 0 and check["chapter"]["profile"] == "colab-smoke", check["chapter"]
    gpu_like = {("gpucheck", "cuda"): {**check, "machine": {**check["machine"], "device": "cuda"}}}
    note = bench.gpu_note(gpu_like)
    assert note.startswith("GPU records: gpucheck.") and "the device tests passed" in note


def test_p1_times_every_variant_against_torchattacks(data_dir):
    record = bench.p1(torch.device("cpu"), quick=True)
    assert {(r["model"], r["norm"]) for r in record["rows"]} == {
        (m, n) for m in ("MNIST CNN (Madry)", "PreAct-ResNet-18") for n in ("linf", "l2")
    }
    for row in record["rows"]:
        assert row["torchattacks_s"] > 0 and row["torchattacks_loss"] > 0
        assert set(row["variants"]) == set(bench.variants(torch.device("cpu")))
        strong = [v for v in row["variants"].values() if v["loss"] >= 0.98 * row["variants"]["float32"]["loss"]]
        name, best = bench.best_variant(row)
        assert best["speedup"] == max(v["speedup"] for v in strong or row["variants"].values())
        for v in row["variants"].values():
            # a PGD step runs the model forward and back: it cannot take much less than a bare pass
            assert v["forward_backward_s"] > 0 and v["step_cost"] > 0.5
            assert v["step_cost"] == pytest.approx(v["seconds"] / row["steps"] / v["forward_backward_s"])
        assert json.dumps(row)  # plain data, ready for the record


def test_forward_backward_is_the_input_gradient_pgd_uses(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    grad = bench.forward_backward(mnist_model, x, y)
    x_req = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(mnist_model(x_req), y).backward()
    assert torch.allclose(grad, x_req.grad) and not x.requires_grad


def test_records_in_the_repository_are_readable():
    for record in bench.load_records():
        assert record["benchmark"] in {*bench.BENCHMARKS, "gpucheck"} and record["machine"]["commit"]


# --- the performance appendix reads the records -------------------------------------------------


def _p1_record(device="cpu", weak=False):
    variants = {
        "float32": {"seconds": 1.0, "speedup": 1.0, "speedup_same_settings": 1.0, "loss": 2.0, "step_cost": 1.04},
        "bf16": {"seconds": 0.5, "speedup": 2.0, "speedup_same_settings": 0.95, "loss": 1.0 if weak else 1.99},
    }
    variants["bf16"]["step_cost"] = 1.2
    for v in variants.values():
        v["torchattacks_step_cost"], v["forward_backward_s"] = 1.05, v["seconds"] / 10 / v["step_cost"]
    row = {
        "model": "MNIST CNN (Madry)",
        "norm": "linf",
        "eps": 0.3,
        "batch": 256,
        "steps": 10,
        "torchattacks_s": 1.0,
        "torchattacks_loss": 2.01,
        "variants": variants,
    }
    return {
        "benchmark": "p1",
        "target": 1.0,
        "rows": [row, {**row, "norm": "l2"}],
        "machine": {
            "device": device,
            "device_name": "test CPU",
            "cpu_cores": 2,
            "torch": "2",
            "date": "today",
            "commit": "abc",
        },
    }


def _table_widths(markdown: str) -> list[int]:
    return [line.count("|") - 1 for line in markdown.splitlines() if line.startswith("|---")]


def test_repository_records_give_every_appendix_table():
    index = bench.record_index()
    assert all(key == (r["benchmark"], r["machine"]["device"]) for key, r in index.items())
    assert bench.records_verdict(index)["held"], "book/perf/ lacks a CPU record: run make bench"
    p1 = bench.p1_markdown(index["p1", "cpu"])
    n = len(index["p1", "cpu"]["rows"][0]["variants"])
    assert _table_widths(p1) == [2 + n, 1 + n, 3 + n]  # like for like, step cost, then plain float32
    assert "ℓ∞" in p1 and "linf" not in p1 and "**Like for like**" in p1.split("\n\n")[2]
    assert bench.p1_strength_verdict([index["p1", "cpu"]])["held"]
    assert "passes" in bench.p1_step_cost_verdict([index["p1", "cpu"]], 1.1)["measured"]
    p3 = index["p3", "cpu"]
    markdown = bench.p3_markdown(p3)
    assert _table_widths(markdown) == [7, 4] and markdown.count("(kept)") == 1
    assert p3["points"]["n"] == bench.P3_AUTOATTACK_POINTS["n"] and p3["n"] == 10_000
    rows = bench.suite_rows(index)
    assert {r["model"] for r in rows} == {"MNIST, P3's model", index["evalsuite", "cpu"]["model"]}
    assert _table_widths(bench.suite_markdown(rows)) == [7]
    assert "image attacks" in bench.restarts_markdown(index["evalsuite", "cpu"])
    fits = bench.scaling_fits(index["scaling", "cpu"])
    assert set(fits) == {"float32", "bf16+channels_last"} and bench.scaling_verdict(fits)["held"]
    assert bench.scaling_summary(fits).count("R² = ") == 2


def test_records_verdict_names_what_is_missing(tmp_path):
    (tmp_path / "p1-cpu.json").write_text(json.dumps(_p1_record()))
    verdict = bench.records_verdict(bench.record_index(tmp_path))
    assert not verdict["held"]
    assert verdict["measured"] == "records: p1 on cpu; missing on cpu: p3, evalsuite, scaling, headline"
    assert bench.gpu_note(bench.record_index(tmp_path)).startswith("No GPU record yet")
    assert bench.gpu_note({("p1", "cuda"): _p1_record("cuda")}) == "GPU records: p1."


def test_p1_headlines_the_like_for_like_ratio():
    assert bench.p1_strength_verdict([_p1_record()]) == {"measured": "2 of 2 cases", "held": True}
    # a variant far weaker than float32 is never kept, so the kept one is float32 and the check holds
    assert bench.best_variant(_p1_record(weak=True)["rows"][0])[0] == "float32"
    summary = bench.p1_summary(_p1_record())
    assert summary.startswith("**CPU**, like for like: our float32 attack runs at 1.00x torchattacks' float32")
    assert "the variant kept at 0.95x torchattacks' speed under the same settings, meeting the target" in summary
    assert "in 0 of 2 cases" in summary and "reads 2.00x; that gain is the settings'" in summary
    assert "costs 1.04x a bare forward+backward pass in float32 (torchattacks' 1.05x) and 1.20x" in summary
    assert bench.p1_like_for_like_verdict([_p1_record()]) == {"measured": "cpu: 0.95x (target 1x)", "held": False}
    assert bench.p1_step_cost_verdict([_p1_record()], 1.1) == {"measured": "cpu: 1.04 to 1.20 passes", "held": False}
    assert bench.p1_step_cost_verdict([_p1_record()], 1.25)["held"]
    markdown = bench.p1_markdown(_p1_record())
    assert "MNIST CNN (Madry): batch 256, PGD-10." in markdown and "| 1.04 / 1.05 |" in markdown


def _p3_record(**changes):
    recipe = {**bench.P3_NETWORK, "steps": 1, "epochs": 8, "eps_ramp": 0.0, "lr": 5e-3, "eps": 0.3}
    row = {"recipe": {**recipe, "norm": "linf", "n_train": 59_000}, "history": [], "pgd_seconds": 9.0}
    rows = [
        {
            **row,
            "name": "fast",
            "train_seconds": 200.0,
            "clean_acc": 0.99,
            "pgd_acc": 0.91,
            "catastrophic_overfitting_epoch": None,
        },
        {
            **row,
            "name": "robust but slow",
            "train_seconds": 700.0,
            "clean_acc": 0.99,
            "pgd_acc": 0.95,
            "catastrophic_overfitting_epoch": None,
        },
        {
            **row,
            "name": "robust, less clean",
            "train_seconds": 250.0,
            "clean_acc": 0.982,
            "pgd_acc": 0.93,
            "catastrophic_overfitting_epoch": None,
        },
        {
            **row,
            "name": "collapsed",
            "train_seconds": 100.0,
            "clean_acc": 0.99,
            "pgd_acc": 0.96,
            "catastrophic_overfitting_epoch": 3,
        },
    ]
    aa = {"n": 2_000, "worst_acc": 0.885, "seconds": 3000.0}
    suites = {"s": {"worst_acc": 0.887, "seconds": 600.0, "gap_pp": 0.2, "time_ratio": 0.2}}
    record = {
        "benchmark": "p3",
        "machine": _p1_record()["machine"],
        "targets": {**bench.P3_TARGET, "seconds": 300},
        "recipes": rows,
        "chosen": bench._pick_recipe(rows, {**bench.P3_TARGET, "seconds": 300}),
        "n": 10_000,
        "points": {"n": 2_000, "seed": 0, "index": []},
        "pgd_on_points": 0.905,
        "worst_acc": 0.88,
        "autoattack": aa,
        "suites": suites,
    }
    return {**record, **changes}


def test_p3_keeps_the_most_robust_recipe_that_met_time_clean_and_no_collapse():
    record = _p3_record()
    # the slow one took too long, the most robust one collapsed; the clean target does not filter
    assert record["chosen"] == "robust, less clean"
    verdict = bench.p3_verdict(record)
    assert verdict == {"clean": False, "robust": False, "seconds": True, "no catastrophic overfitting": True}
    lines = [line for line in bench.p3_markdown(record).splitlines() if line.startswith("| ")]
    assert "| robust, less clean (kept) | 8 |" in lines[3]
    assert "| worst case of the two, per digit | 88.00% | >= 89.3% | **no** |" in lines
    measured = bench.p3_targets_verdict([record])
    assert not measured["held"] and "missed: clean, robust" in measured["measured"]
    rows = [{**r, "clean_acc": 0.99} for r in _p3_record()["recipes"]]
    assert bench.p3_targets_verdict([_p3_record(worst_acc=0.90, recipes=rows)])["held"]


def test_suite_rows_and_the_goal_of_a_third_of_autoattacks_time():
    p3 = _p3_record()
    cifar = {**p3, "benchmark": "evalsuite", "model": "cifar10/linf-8/255 at ci"}
    cifar["suites"] = {"s": {**p3["suites"]["s"], "gap_pp": 0.5}}
    index = {("p3", "cpu"): p3, ("evalsuite", "cpu"): cifar}
    rows = bench.suite_rows(index)
    assert [r["model"] for r in rows] == ["cifar10/linf-8/255 at ci", "MNIST, P3's model"]
    assert [bench.suite_meets(r) for r in rows] == [False, True]  # 0.5 points above AutoAttack is too far
    verdict = bench.suite_verdict(rows)
    assert not verdict["held"]
    assert verdict["measured"] == "s: gap +0.20 to +0.50 points, time ratio up to 0.200 on 2 model(s)"
    cifar["suites"]["s"]["gap_pp"] = -1.5  # below AutoAttack: the suite found more adversarial examples
    assert bench.suite_verdict(bench.suite_rows(index))["held"]
    cifar["suites"]["s"]["time_ratio"] = 0.34
    assert not bench.suite_verdict(bench.suite_rows(index))["held"], "over a third of AutoAttack's time"
    assert not bench.suite_verdict(bench.suite_rows({("p3", "cpu"): p3}))["held"], "one model is not both"
