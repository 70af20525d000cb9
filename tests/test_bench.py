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
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir)}
    command = [sys.executable, "-m", "robustutils.bench", "scaling", "p3", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "P3 clean" in done.stdout and ("PASS" in done.stdout or "FAIL" in done.stdout)
    records = {r["benchmark"]: r for r in bench.load_records(tmp_path)}
    assert set(records) == {"scaling", "p3"}
    for record in records.values():
        assert set(record["machine"]) >= {"device", "device_name", "cpu_cores", "date", "commit", "torch"}
    p3 = records["p3"]
    assert list(p3["robust_acc"])[-1].startswith("pgd-") and len(p3["robust_acc"]) == 4
    values = list(p3["robust_acc"].values())
    assert all(b <= a for a, b in zip(values, values[1:])) and values[0] <= p3["clean_acc"]
    assert set(bench.p3_verdict(p3)) == {"clean", "pgd-40", "strongest", "seconds", "no catastrophic overfitting"}
    assert {r["axis"] for r in records["scaling"]["rows"]} == {"width", "batch_size", "steps"}
    assert all(r["epoch_seconds"] > 0 for r in records["scaling"]["rows"])


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
        assert json.dumps(row)  # plain data, ready for the record


def test_records_in_the_repository_are_readable():
    for record in bench.load_records():
        assert record["benchmark"] in bench.BENCHMARKS and record["machine"]["commit"]


# --- the performance appendix reads the records -------------------------------------------------


def _p1_record(device="cpu", weak=False):
    variants = {
        "float32": {"seconds": 1.0, "speedup": 1.0, "speedup_same_settings": 1.0, "loss": 2.0},
        "bf16": {"seconds": 0.5, "speedup": 2.0, "speedup_same_settings": 0.95, "loss": 1.0 if weak else 1.99},
    }
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
    assert _table_widths(p1) == [2 + len(index["p1", "cpu"]["rows"][0]["variants"]), 4]  # narrow: split in two
    assert "ℓ∞" in p1 and "linf" not in p1
    assert bench.p1_strength_verdict([index["p1", "cpu"]])["held"]
    p3 = bench.p3_markdown(index["p3", "cpu"])
    assert _table_widths(p3) == [4] and p3.count("\n| ") == 1 + 2 + len(index["p3", "cpu"]["robust_acc"]) + 1
    fits = bench.scaling_fits(index["scaling", "cpu"])
    assert set(fits) == {"float32", "bf16+channels_last"} and bench.scaling_verdict(fits)["held"]
    assert bench.scaling_summary(fits).count("R² = ") == 2


def test_records_verdict_names_what_is_missing(tmp_path):
    (tmp_path / "p1-cpu.json").write_text(json.dumps(_p1_record()))
    verdict = bench.records_verdict(bench.record_index(tmp_path))
    assert not verdict["held"] and verdict["measured"] == "records: p1 on cpu; missing on cpu: p3, scaling, headline"
    assert bench.gpu_note(bench.record_index(tmp_path)).startswith("No GPU record yet")
    assert bench.gpu_note({("p1", "cuda"): _p1_record("cuda")}) == "GPU records: p1"


def test_p1_strength_and_summary():
    assert bench.p1_strength_verdict([_p1_record()]) == {"measured": "2 of 2 cases", "held": True}
    # a variant far weaker than float32 is never kept, so the kept one is float32 and the check holds
    assert bench.best_variant(_p1_record(weak=True)["rows"][0])[0] == "float32"
    summary = bench.p1_summary(_p1_record())
    assert "best kept variant at 2.00x to 2.00x, meeting the target of 1x in 2 of 2 cases" in summary
    assert "not a faster loop" in summary
    markdown = bench.p1_markdown(_p1_record())
    assert "2.00x (bf16)" in markdown and "MNIST CNN (Madry): batch 256, PGD-10." in markdown


def test_p3_markdown_marks_a_missed_target():
    record = {
        "benchmark": "p3",
        "machine": _p1_record()["machine"],
        "train_seconds": 700.0,
        "eval_seconds": 60.0,
        "recipe": {**bench.P3_RECIPES["cpu"], "eps": 0.3, "norm": "linf", "n_train": 59_000},
        "targets": {**bench.P3_TARGET, "seconds": 600},
        "n": 10_000,
        "clean_acc": 0.99,
        "robust_acc": {"pgd-40": 0.95, "pgd-100x20": 0.88},
        "catastrophic_overfitting_epoch": 3,
    }
    lines = [line for line in bench.p3_markdown(record).splitlines() if line.startswith("| ")]
    assert lines[1] == "| training time (s) | 700 | <= 600 | **no** |"
    assert lines[-2] == "| pgd-100x20 (worst case so far) | 88.00% | >= 89.3% | **no** |"
    assert lines[-1] == "| catastrophic overfitting | epoch 3 | none | **no** |"


def test_scaling_fits_a_line_and_flags_a_curve():
    def record(seconds_by_steps):
        rows = [{"axis": "steps", "value": k, "precision": "float32", "epoch_seconds": s} for k, s in seconds_by_steps]
        rows += [
            {"axis": "batch_size", "value": b, "precision": "float32", "epoch_seconds": s}
            for b, s in ((64, 10.0), (512, 8.0))
        ]
        return {"rows": rows}

    line = bench.scaling_fits(record([(k, 10.0 * (k + 1)) for k in (0, 1, 2, 5, 10)]))["float32"]
    assert line["r2"] == pytest.approx(1.0) and line["slope"] == pytest.approx(10.0)
    assert line["increasing"] and line["about_k_plus_1"]
    assert line["batch_ratio"] == pytest.approx(0.8) and line["batches"] == (64, 512)
    flat = bench.scaling_fits(record([(k, 10.0 + k) for k in (0, 1, 2, 5, 10)]))  # far cheaper than k + 1 epochs
    assert not bench.scaling_verdict(flat)["held"]
