"""The ablation of Model B: the table against the full model, its sentences, the claims' verdicts, the runs."""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from fer_helpers.analysis.ablation import ABLATION_CHANGES, ABLATION_CLAIMS, ablation_table, describe_ablation
from fer_helpers.analysis.claims import NO_CLASS_WEIGHTS, ablation_claims
from fer_helpers.data.fer2013 import CLASS_NAMES, FER2013_COUNTS, NUM_CLASSES
from fer_helpers.data.results import RunResult, run_key
from fer_helpers.scoring.metrics import classification_metrics
from fer_helpers.scoring.runs import ensemble_logits
from fer_helpers.scoring.statistics import bootstrap_ci, mcnemar

matplotlib.use("Agg")

SPLITS = ("PublicTest", "PrivateTest")
N_BOOT = 400


def fer_labels(split: str) -> np.ndarray:
    """Labels with FER-2013's per-class counts of one test split (3,589 faces)."""
    return np.repeat(np.arange(NUM_CLASSES), FER2013_COUNTS[split])


def with_errors(labels: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """The labels, except that the faces in `wrong` are predicted as the next class."""
    preds = labels.copy()
    preds[wrong] = (labels[wrong] + 1) % NUM_CLASSES
    return preds


def nested_errors(n: int, shares: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """For each name, the first share of one random order of n faces: a model with a larger share errs on a superset."""
    order = np.random.default_rng(seed).permutation(n)
    return {name: order[: round(share * n)] for name, share in shares.items()}


def make_run(tmp_path: Path, model: str, preds: dict[str, np.ndarray], seed: int = 0) -> RunResult:
    """A saved and reloaded RunResult whose logits make `preds` the argmax."""
    labels = {s: fer_labels(s) for s in preds}
    config = {"seed": seed, "model": model}
    key = run_key(model, config, "abc")
    rng = np.random.default_rng(seed)
    logits = {
        s: (5 * np.eye(NUM_CLASSES)[p] + rng.normal(0, 0.3, (len(p), NUM_CLASSES))).astype(np.float32)
        for s, p in preds.items()
    }
    result = RunResult(
        model=model,
        config=config,
        key=key,
        run_dir=tmp_path / "results" / f"{model}-{key}",
        data_sha256="abc",
        logits=logits,
        labels=labels,
        metrics={s: classification_metrics(labels[s], p) for s, p in preds.items()},
        seed=seed,
        params=1000,
    )
    result.save()
    return RunResult.load(result.run_dir)


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory) -> tuple[list[RunResult], dict[str, list[RunResult]]]:
    """Full model right on 60% of the faces; no BN wrong on a superset (50% right), ReLU identical, flatten better."""
    tmp_path = tmp_path_factory.mktemp("ablation")
    shares = {"model_b": 0.40, "model_b_no_bn": 0.50, "model_b_relu": 0.40, "model_b_flatten": 0.35}
    errors = {s: nested_errors(len(fer_labels(s)), shares, seed=i) for i, s in enumerate(SPLITS)}
    runs = {
        name: [make_run(tmp_path, name, {s: with_errors(fer_labels(s), errors[s][name]) for s in SPLITS})]
        for name in shares
    }
    return runs.pop("model_b"), runs


@pytest.fixture(scope="module")
def table(study_runs) -> pd.DataFrame:
    reference, variants = study_runs
    return ablation_table(reference, variants, n_boot=N_BOOT)


def test_ablation_changes_name_every_recipe_ablation():
    from fer_helpers.models.recipes import MODEL_B_ABLATIONS

    assert set(ABLATION_CHANGES) == set(MODEL_B_ABLATIONS)
    assert set(ABLATION_CLAIMS) | {NO_CLASS_WEIGHTS, "model_b_no_augment"} == set(MODEL_B_ABLATIONS)


def test_table_rows_reference_first_and_its_deltas_empty(table):
    assert list(table.index) == [
        (m, s) for m in ("model_b", "model_b_no_bn", "model_b_relu", "model_b_flatten") for s in SPLITS
    ]
    reference = table.loc["model_b"]
    assert reference[["delta_accuracy", "delta_macro_f1", "mcnemar_p"]].isna().all().all()
    assert (reference["change"] == "full Model B (reference)").all()
    assert table.loc[("model_b_no_bn", "PublicTest"), "change"] == ABLATION_CHANGES["model_b_no_bn"]
    assert table.loc[("model_b_no_bn", "PublicTest"), "seeds"] == (0,)


def test_table_numbers_match_a_direct_computation(study_runs, table):
    reference, variants = study_runs
    for split in SPLITS:
        labels = reference[0].labels[split]
        ref, bn = reference[0].preds(split), variants["model_b_no_bn"][0].preds(split)
        row = table.loc[("model_b_no_bn", split)]
        assert row["accuracy"] == pytest.approx(np.mean(bn == labels))
        assert row["macro_f1"] == pytest.approx(f1_score(labels, bn, average="macro"))
        assert row["delta_accuracy"] == pytest.approx(100 * (np.mean(bn == labels) - np.mean(ref == labels)))
        assert row["delta_accuracy"] == pytest.approx(-10, abs=0.05)  # by construction: 10% more faces wrong
        assert row["delta_macro_f1"] == pytest.approx(
            100 * (f1_score(labels, bn, average="macro") - f1_score(labels, ref, average="macro"))
        )
        assert np.isnan(row["accuracy_std"])  # one seed
        assert row["accuracy_ci95"] == pytest.approx(bootstrap_ci(labels, bn, "accuracy", N_BOOT), abs=1e-4)
        assert row["mcnemar_p"] == pytest.approx(mcnemar(labels, bn, ref)["p_value"])
        sad = CLASS_NAMES.index("Sad")
        assert row["f1_Sad"] == pytest.approx(f1_score(labels, bn, labels=[sad], average=None)[0])


def test_paired_intervals_are_significant_where_the_errors_nest(table):
    bn = table.loc[("model_b_no_bn", "PublicTest")]
    low, high = bn["delta_accuracy_ci95"]
    assert low <= bn["delta_accuracy"] <= high < 0
    assert bn["mcnemar_p"] < 1e-6
    relu = table.loc[("model_b_relu", "PublicTest")]  # the same predictions as the reference
    assert relu["delta_accuracy"] == 0 and relu["delta_accuracy_ci95"] == (0, 0) and relu["mcnemar_p"] == 1.0
    flatten = table.loc[("model_b_flatten", "PublicTest")]
    assert flatten["delta_accuracy"] == pytest.approx(5, abs=0.05) and flatten["delta_accuracy_ci95"][0] > 0


def test_paired_interval_is_narrower_than_the_separate_ones():
    labels = fer_labels("PublicTest")
    errors = nested_errors(len(labels), {"a": 0.40, "b": 0.42})
    a, b = with_errors(labels, errors["a"]), with_errors(labels, errors["b"])
    low, high = bootstrap_ci(labels, a, n_boot=N_BOOT, minus=b)
    assert 0 < low < 0.02 < high  # the true gap is 2 points; it rests on 72 faces where only a is right
    single_low, single_high = bootstrap_ci(labels, a, n_boot=N_BOOT)
    assert high - low < (single_high - single_low) / 2  # the faces both get right or wrong cancel out
    assert bootstrap_ci(labels, a, n_boot=N_BOOT, minus=b) == (low, high)  # seeded
    assert bootstrap_ci(labels, a, "macro_f1", n_boot=N_BOOT, minus=a) == (0.0, 0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(labels, a, "top5", minus=b)
    with pytest.raises(ValueError, match="different images"):
        bootstrap_ci(labels, a[:-1], minus=b)


def test_several_seeds_give_mean_std_and_an_ensemble_mcnemar(tmp_path):
    labels = {s: fer_labels(s) for s in SPLITS}
    shares = {"ref0": 0.40, "ref1": 0.44, "var0": 0.50, "var1": 0.46}
    errors = {s: nested_errors(len(labels[s]), shares, seed=3) for s in SPLITS}
    preds = {name: {s: with_errors(labels[s], errors[s][name]) for s in SPLITS} for name in shares}
    reference = [make_run(tmp_path, "model_b", preds[f"ref{i}"], seed=i) for i in (1, 0)]  # any order
    variant = [make_run(tmp_path, "model_b_no_dropout", preds[f"var{i}"], seed=i) for i in (0, 1)]
    table = ablation_table(reference, {"model_b_no_dropout": variant}, n_boot=N_BOOT)
    row = table.loc[("model_b_no_dropout", "PublicTest")]
    accuracies = [np.mean(preds[f"var{i}"]["PublicTest"] == labels["PublicTest"]) for i in (0, 1)]
    assert row["seeds"] == (0, 1)
    assert row["accuracy"] == pytest.approx(np.mean(accuracies))
    assert row["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert row["delta_accuracy"] == pytest.approx(-6, abs=0.05)  # 52% right on average against 58%
    ensembles = [ensemble_logits(r)["PublicTest"].argmax(axis=1) for r in (variant, reference)]
    assert row["mcnemar_p"] == pytest.approx(mcnemar(labels["PublicTest"], *ensembles)["p_value"])


def test_table_rejects_other_faces_and_missing_runs(tmp_path, study_runs):
    reference, variants = study_runs
    other = make_run(tmp_path, "model_b_no_bn", {s: np.roll(fer_labels(s), 1) for s in SPLITS})
    other.labels = {s: np.roll(v, 1) for s, v in other.labels.items()}
    with pytest.raises(ValueError, match="not scored on the reference's PublicTest faces"):
        ablation_table(reference, {"model_b_no_bn": [other]}, n_boot=N_BOOT)
    with pytest.raises(ValueError, match="no runs"):
        ablation_table(reference, {"model_b_no_bn": []}, n_boot=N_BOOT)
    with pytest.raises(ValueError, match="full model"):
        ablation_table([], variants, n_boot=N_BOOT)


def test_table_does_not_mutate_the_runs(study_runs):
    reference, variants = study_runs
    before = copy.deepcopy([(r.logits, r.labels, r.metrics) for r in reference + variants["model_b_no_bn"]])
    ablation_table(reference, {"model_b_no_bn": variants["model_b_no_bn"]}, n_boot=50)
    after = [(r.logits, r.labels, r.metrics) for r in reference + variants["model_b_no_bn"]]
    for (logits_a, labels_a, metrics_a), (logits_b, labels_b, metrics_b) in zip(before, after):
        assert all(
            np.array_equal(logits_a[s], logits_b[s]) and np.array_equal(labels_a[s], labels_b[s]) for s in SPLITS
        )
        assert metrics_a == metrics_b


def test_sentences_are_written_from_the_numbers(table):
    sentences = describe_ablation(table)
    assert len(sentences) == 4
    assert sentences[0].startswith("The full Model B reaches 60.0% PublicTest accuracy")
    assert "on PrivateTest, 60.0%" in sentences[0]
    assert sentences[1].startswith("Removing BatchNorm costs 10.0 points of PublicTest accuracy (95% CI -")
    assert "McNemar p < 0.001)" in sentences[1] and "on PrivateTest it costs 10.0 points of accuracy" in sentences[1]
    assert sentences[2].startswith("ReLU instead of LeakyReLU leaves PublicTest accuracy unchanged")
    assert "p = 1, within chance" in sentences[2]
    assert sentences[3].startswith("Flatten + dense instead of global average pooling adds 5.0 points")
    changed = table.copy()
    changed.loc[("model_b_no_bn", "PublicTest"), "delta_accuracy"] = -4.1
    assert describe_ablation(changed)[1].startswith("Removing BatchNorm costs 4.1 points of PublicTest accuracy")


def test_claim_verdicts_follow_sign_and_significance(table):
    claims = ablation_claims(table, is_fer2013=True, profile="full").set_index("claim")
    assert claims.loc["Batch Normalization helps", "verdict"] == "reproduced"
    assert claims.loc["Batch Normalization helps", "ours"] == pytest.approx(10, abs=0.05)
    assert claims.loc["LeakyReLU helps (over ReLU)", "verdict"] == "not reproduced"  # no gain at all
    assert claims.loc["LeakyReLU helps (over ReLU)", "detail"].startswith("+0.0 accuracy points with it (95% CI +0.0")
    assert claims.loc["Global Average Pooling helps (over flatten + dense)", "verdict"] == "not reproduced"
    assert claims.loc["Dropout helps", "verdict"] == "not testable without the ablation's model_b_no_dropout"
    assert claims.loc["Class weights lift Sad F1 by 12–16 points", "verdict"] == (
        "not testable without the ablation's model_b_no_class_weights"
    )
    chance = table.copy()
    chance.loc[("model_b_no_bn", "PublicTest"), "mcnemar_p"] = 0.2
    claims = ablation_claims(chance, is_fer2013=True, profile="classroom").set_index("claim")
    assert claims.loc["Batch Normalization helps", "verdict"] == "not reproduced"  # a loss within chance


def test_verdicts_are_withheld_when_the_reference_has_not_learned(table):
    under_trained = table.copy()
    under_trained.loc[("model_b", "PublicTest"), "accuracy"] = 0.295
    claims = ablation_claims(under_trained, is_fer2013=True, profile="classroom").set_index("claim")
    bn = claims.loc["Batch Normalization helps"]
    assert bn["verdict"] == "withheld: the reference model did not learn"
    assert (
        "Model B reached 29.5% on PublicTest, under the 45%" in bn["detail"]
        and "would read 'reproduced'" in bn["detail"]
    )
    assert claims.loc["Dropout helps", "verdict"].startswith("not testable without")  # nothing to withhold
    learned = ablation_claims(table, is_fer2013=True, profile="classroom").set_index("claim")
    assert learned.loc["Batch Normalization helps", "verdict"] == "reproduced"


def test_class_weight_claim_measures_the_lift(study_runs):
    reference, variants = study_runs
    table = ablation_table(reference, {NO_CLASS_WEIGHTS: variants["model_b_no_bn"]}, n_boot=50)
    table.loc[("model_b", "PublicTest"), ["f1_Sad", "f1_Surprise"]] = [0.50, 0.60]
    table.loc[(NO_CLASS_WEIGHTS, "PublicTest"), ["f1_Sad", "f1_Surprise"]] = [0.36, 0.55]
    claims = ablation_claims(table, is_fer2013=True, profile="full").set_index("claim")
    sad = claims.loc["Class weights lift Sad F1 by 12–16 points"]
    assert sad["verdict"] == "reproduced" and sad["ours"] == pytest.approx(14)
    assert "0.360 → 0.500" in sad["detail"] and NO_CLASS_WEIGHTS in sad["basis"]
    assert claims.loc["Class weights lift Surprise F1 by 12–16 points", "verdict"] == "direction reproduced, size not"


@pytest.mark.parametrize("is_fer2013, profile", [(False, "full"), (True, "smoke")])
def test_claims_outside_their_scope_are_not_testable_but_say_what_they_would_read(table, is_fer2013, profile):
    claims = ablation_claims(table, is_fer2013=is_fer2013, profile=profile).set_index("claim")
    assert claims["verdict"].str.startswith("not testable").all()
    assert "would read 'reproduced'" in claims.loc["Batch Normalization helps", "detail"]
    assert claims["data"].str.contains(profile).all()


def test_ablation_figure_has_one_row_per_ablation(table):
    from fer_helpers.analysis.plots import plot_ablation_deltas

    fig = plot_ablation_deltas(table)
    ticks = sorted(fig.axes[0].get_yticklabels(), key=lambda t: -t.get_position()[1])  # top first
    assert [t.get_text() for t in ticks] == [
        ABLATION_CHANGES[m] for m in ("model_b_no_bn", "model_b_relu", "model_b_flatten")
    ]
    assert len(fig.axes) == 2


@pytest.mark.trains
def test_ablation_runs_reuse_the_full_model_b(tmp_path, monkeypatch):
    """A shrunken run: the reference comes from the model_b step's cache, the ablation is saved under its own name."""
    from fer_helpers.core.profiles import get_profile
    from fer_helpers.data.synthetic import make_synthetic_fer
    from fer_helpers.models import recipes
    from fer_helpers.orchestrate import steps
    from fer_helpers.orchestrate.study import Study

    data = make_synthetic_fer(n_train=280, n_public=140, n_private=140, seed=0)
    profile = get_profile("smoke", epochs={"model_b": 1})
    study = Study(profile=profile, data=data, full_data=data, run_dir=tmp_path, reports_dir=tmp_path / "reports")
    monkeypatch.setattr(recipes, "MODEL_B_ABLATIONS", {"model_b_no_bn": recipes.MODEL_B_ABLATIONS["model_b_no_bn"]})
    full = steps.cnn_runs(study, "model_b")
    runs = steps.ablation_runs(study, fresh=True)
    assert list(runs) == ["model_b", "model_b_no_bn"]
    assert [r.key for r in runs["model_b"]] == [r.key for r in full] and runs["model_b"][0].from_cache
    variant = runs["model_b_no_bn"][0]
    assert not variant.from_cache and variant.run_dir.name == f"model_b_no_bn-{variant.key}"
    assert variant.config["model_kwargs"]["batchnorm"] is False and variant.params < full[0].params
