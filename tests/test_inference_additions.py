"""What inference adds: the greedy mix chosen on PublicTest alone, test-time augmentation of a run's weights with
its cache, and their entries in metrics.json beside the single models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_metrics import fer_labels, make_preds, make_result
from test_report import fake_study

from fer_helpers.analysis import tta
from fer_helpers.core.config import CNNConfig
from fer_helpers.data.fer2013 import FERData, near_duplicates
from fer_helpers.data.results import WEIGHTS_FILE
from fer_helpers.models import registry
from fer_helpers.publish.report import inference_table, write_report_md
from fer_helpers.publish.summary import build_metrics, check_metrics
from fer_helpers.scoring.runs import MIX_NAME, best_mix, cnn_pool, ensemble_result, greedy_selection
from fer_helpers.train.inference import predict_logits
from fer_helpers.train.weights import save_weights

# ---- greedy selection ----------------------------------------------------------------------------------------


def _faces(probs_a, probs_b, n):
    return [np.tile(probs_a, (n, 1)), np.tile(probs_b, (n, 1))]


def test_greedy_selection_adds_a_run_twice_when_that_helps_and_stops_when_nothing_does():
    """Every face is class 0. A is right on 60 faces, B on 50; A+B on 70; A+B+A on all 100, A+B+B on 70."""
    groups = [
        _faces([0.45, 0.55], [0.9, 0.1], 40),  # only B right; A+B and 2A+B right
        _faces([0.8, 0.2], [0.1, 0.9], 30),  # only A right; A+B wrong, 2A+B right
        _faces([1.0, 0.0], [0.3, 0.7], 20),  # only A right; A+B right
        _faces([0.9, 0.1], [0.9, 0.1], 10),  # both right
    ]
    a, b = (np.concatenate([g[i] for g in groups]) for i in (0, 1))
    labels = np.zeros(100, dtype=int)
    assert greedy_selection([a, b], labels) == [0, 1, 0]
    assert greedy_selection([b, a], labels) == [1, 0, 1]  # the same mix, whatever the order of the candidates
    assert greedy_selection([a], labels) == [0]  # adding A again changes nothing: it stops
    assert greedy_selection([a, b], labels, max_members=2) == [0, 1]


def test_greedy_selection_breaks_ties_by_order_and_checks_its_input():
    labels = np.array([0, 1, 0])
    same = np.eye(2)[[0, 1, 1]]
    assert greedy_selection([same, same.copy()], labels) == [0]
    with pytest.raises(ValueError, match="at least one"):
        greedy_selection([], labels)
    with pytest.raises(ValueError, match="2 faces of probabilities for 3 labels"):
        greedy_selection([same[:2]], labels)


@pytest.fixture(scope="module")
def cnn_root(tmp_path_factory) -> Path:
    """A run folder with three CNNs' seeds (best_epoch recorded, so they are CNN runs) and HOG + SVM."""
    root = tmp_path_factory.mktemp("cnns")
    labels = {s: fer_labels(s) for s in ("PublicTest", "PrivateTest")}
    for i, (model, acc) in enumerate((("baseline_cnn", 0.58), ("model_b", 0.66), ("resnet_fer", 0.62))):
        for seed in range(2):
            preds = {s: make_preds(y, acc, seed=10 * i + seed + (s == "PrivateTest")) for s, y in labels.items()}
            make_result(root, model, preds, labels, seed=seed, extra={"best_epoch": 3})
    make_result(root, "hog_svm", {s: make_preds(y, 0.4) for s, y in labels.items()}, labels, seed=None)
    return root


def test_the_mix_is_chosen_on_publictest_and_privatetest_never_changes_it(cnn_root):
    from fer_helpers.publish.summary import collect_results

    pool = cnn_pool(collect_results(cnn_root, "abc"))
    assert [(r.model, r.seed) for r in pool] == [
        (m, s) for m in ("baseline_cnn", "model_b", "resnet_fer") for s in (0, 1)
    ]
    mix, chosen = best_mix(pool)
    assert mix.model == MIX_NAME and chosen[0] == int(np.argmax([r.metrics["PublicTest"]["accuracy"] for r in pool]))
    assert mix.metrics["PublicTest"]["accuracy"] > max(r.metrics["PublicTest"]["accuracy"] for r in pool)
    expected = ensemble_result([pool[i] for i in chosen]).logits["PrivateTest"]
    np.testing.assert_array_equal(mix.logits["PrivateTest"], expected)
    assert mix.params == sum(r.params for r in {pool[i].key: pool[i] for i in chosen}.values())

    rng = np.random.default_rng(7)
    for scrambled in (
        [replace(r, logits=r.logits | {"PrivateTest": rng.permutation(r.logits["PrivateTest"])}) for r in pool],
        [replace(r, logits=r.logits | {"PrivateTest": rng.normal(size=r.logits["PrivateTest"].shape)}) for r in pool],
    ):
        _, again = best_mix(scrambled)
        assert again == chosen
    # and PublicTest does choose: scrambling it changes the mix
    noisy = [replace(r, logits=r.logits | {"PublicTest": rng.normal(size=r.logits["PublicTest"].shape)}) for r in pool]
    assert best_mix(noisy)[1] != chosen


def test_metrics_hold_ensembles_and_the_mix_beside_the_single_models(cnn_root, tmp_path, monkeypatch):
    monkeypatch.delenv("FERPLUS_PATH", raising=False)
    study = fake_study()
    near = {split: near_duplicates(study.data, split) for split in ("PublicTest", "PrivateTest")}
    metrics = build_metrics(cnn_root, study, near_tables=near)
    check_metrics(metrics)
    models = metrics["models"]
    for name in ("baseline_cnn", "model_b", "resnet_fer"):  # the paper's models get their seed ensemble too
        ensemble = models[f"{name}_ensemble"]
        assert ensemble["inference"]["method"] == "seed ensemble" and ensemble["inference"]["of"] == name
        assert ensemble["private_test"]["accuracy_ci95"][0] <= ensemble["private_test"]["accuracy"]
        assert "private_test_dedup" in ensemble and "paper" in models[name] and "inference" not in models[name]
    mix = models[MIX_NAME]
    assert mix["inference"]["method"] == "greedy mix" and mix["inference"]["chosen_on"] == "PublicTest"
    record = metrics["inference"]["mix"]
    assert len(record["pool"]) == 6 and record["with_replacement"] is True
    assert [s["added"] for s in record["steps"]] == mix["inference"]["members"]
    assert record["steps"][-1]["accuracy"] == pytest.approx(mix["public_test"]["accuracy"])
    assert all(a["accuracy"] < b["accuracy"] for a, b in zip(record["steps"], record["steps"][1:]))
    assert metrics["inference"]["tta"] == []  # no weights kept in this run folder

    table = inference_table(metrics)
    assert "Best mix of CNN runs" in table and "Model B ensemble" in table and "mean of 2 seeds" in table
    report = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text(encoding="utf-8")
    main = report.split("## Comparison of the models")[1].split("## ")[0]
    assert "ensemble" not in main and "mix" not in main  # the main comparison stays single-model
    assert "## What inference adds" in report and "Target: an ensemble or test-time augmentation at 72%" in report

    bare = build_metrics(cnn_root, study, near_tables=near, inference=False)
    assert bare["inference"] is None and not any("inference" in e for e in bare["models"].values())


# ---- test-time augmentation ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_run(tmp_path):
    """A baseline CNN run on 40 random faces per test split, its weights in its folder, and the data."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 40
    labels = {s: rng.integers(0, 7, n) for s in ("PublicTest", "PrivateTest")}
    data = FERData(
        images=rng.integers(0, 256, (3 * n, 48, 48), dtype=np.uint8),
        labels=np.concatenate([rng.integers(0, 7, n), labels["PublicTest"], labels["PrivateTest"]]),
        usage=np.repeat(["Training", "PublicTest", "PrivateTest"], n),
        source="synthetic",
        sha256="abc",
        form="synthetic",
    )
    model = registry.build_model("baseline_cnn").eval()
    logits = {s: predict_logits(model, data.split(s)[0], bf16=False) for s in labels}
    run = make_result(
        tmp_path, "baseline_cnn", {s: z.argmax(1) for s, z in logits.items()}, labels, extra={"best_epoch": 1}
    )
    save_weights(model, run.run_dir / WEIGHTS_FILE, CNNConfig(model="baseline_cnn"))
    run = replace(run, logits=logits)
    return run, data, model, tmp_path


def test_tta_chooses_on_publictest_computes_privatetest_only_for_what_it_reports_and_caches(tiny_run, monkeypatch):
    run, data, model, root = tiny_run
    assert tta.tta_candidates({"baseline_cnn": [run], "hog_svm": []}) == [run]
    decisions, reported = tta.tta_runs(run, data, root)
    assert [d.tta for d in decisions] == ["flip", "flip_crop"] and [d.views for d in decisions] == [2, 10]
    flip_crop = decisions[1]
    assert decisions[0].reported and flip_crop.reported == (flip_crop.public_accuracy > decisions[0].public_accuracy)
    assert [r.model for r in reported] == ["baseline_cnn_tta_flip"] + [
        "baseline_cnn_tta_flip_crop"
    ] * flip_crop.reported

    faces = data.split("PrivateTest")[0]
    np.testing.assert_allclose(
        reported[0].logits["PrivateTest"], predict_logits(model, faces, tta="flip", bf16=False), atol=1e-5
    )
    plain = decisions[0].public_accuracy_plain
    assert plain == pytest.approx(np.mean(run.preds("PublicTest") == run.labels["PublicTest"]))

    cached = np.load(tta.cache_path(run, root))
    assert ("PrivateTest/flip_crop" in cached.files) == flip_crop.reported and "PublicTest/flip_crop" in cached.files

    def no_inference(*args, **kwargs):
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(tta, "predict_logits", no_inference)
    again, _ = tta.tta_runs(run, data, root)
    assert again == decisions


def test_tta_cache_is_remade_for_other_weights(tiny_run):
    run, data, model, root = tiny_run
    tta.tta_runs(run, data, root, modes=("flip",))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    save_weights(model, run.run_dir / WEIGHTS_FILE, CNNConfig(model="baseline_cnn"))
    _, (flipped,) = tta.tta_runs(run, data, root, modes=("flip",))
    faces = data.split("PublicTest")[0]
    np.testing.assert_allclose(
        flipped.logits["PublicTest"], predict_logits(model, faces, tta="flip", bf16=False), atol=1e-5
    )


def test_tta_needs_weights(tiny_run):
    run, data, _, root = tiny_run
    (run.run_dir / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no weights for run baseline_cnn"):
        tta.tta_runs(run, data, root)


def test_the_profile_says_which_test_time_augmentations_are_measured(cnn_root, monkeypatch):
    """The classroom profile measures the flip alone (ten views cost minutes of a lesson on a CPU); full both."""
    from fer_helpers.publish import summary

    seen = []
    monkeypatch.setattr(summary, "tta_candidates", lambda results: [results["model_b"][0]])
    monkeypatch.setattr(summary, "tta_runs", lambda run, data, root, modes: seen.append(tuple(modes)) or ([], []))
    for profile in ("full", "classroom"):
        study = fake_study(profile)
        build_metrics(
            cnn_root, study, near_tables={s: near_duplicates(study.data, s) for s in ("PublicTest", "PrivateTest")}
        )
    assert seen == [("flip", "flip_crop"), ("flip",)]
