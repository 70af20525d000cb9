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


@pytest.mark.parametrize("history, epoch", [
    (rows(0.30, 0.55, 0.70, 0.02, 0.01), 4),  # Wong et al.'s collapse: flagged at the epoch it happens
    (rows(0.30, 0.55, 0.70, 0.72), None),  # steady progress
    (rows(0.60, 0.45), None),  # a 15-point dip is noise at this threshold, not a collapse
    (rows(None, 0.5, 0.2), 3),  # epochs without a measurement are skipped
    ([{"epoch": 1, "test_robust_acc": None}], None),
])
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
        history = train.fit(model, (x, y), epochs=2, batch_size=64, test_data=(x[:500], y[:500]),
                            eval_attack=collapsing_attack, progress=False)
    assert history[0]["test_robust_acc"] > 0.7 > 0.3 > history[1]["test_robust_acc"]


def test_cascade_first_is_standalone_and_last_is_the_worst_case(mnist_model, mnist_eval):
    x, y = mnist_eval
    attack_set = {"weak": attacks.PGD(eps=0.1, steps=2, random_start=False),
                  "strong": attacks.PGD(eps=0.1, steps=10, random_start=False)}
    alone = evaluate.compare(mnist_model, x, y, attack_set)
    chained = evaluate.cascade(mnist_model, x, y, attack_set, batch_size=128)
    assert chained["clean_acc"] == alone["clean_acc"]
    assert chained["robust_acc"]["weak"] == alone["robust_acc"]["weak"]
    assert chained["robust_acc"]["strong"] == alone["worst_acc"]  # deterministic attacks: same per-example outcome
    assert chained["robust_acc"]["strong"] <= chained["robust_acc"]["weak"] < chained["clean_acc"]


def test_bench_command_writes_records_the_appendix_reads(data_dir, tmp_path):
    env = {**os.environ, "ROBUSTUTILS_DATA": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "robustutils.bench", "scaling", "p3", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
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
        (m, n) for m in ("MNIST CNN (Madry)", "PreAct-ResNet-18") for n in ("linf", "l2")}
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
