"""Label noise (notebook 08): training on the crowd's vote distributions, the crowd step, scores and figures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fer_helpers.analysis import plots
from fer_helpers.core.config import CNNConfig, result_name
from fer_helpers.core.profiles import PROFILES, get_profile
from fer_helpers.data import ferplus
from fer_helpers.data.fer2013 import CLASS_NAMES, FERData, FERDataError
from fer_helpers.data.ferplus import VOTE_COLUMNS, VOTES_KEY, attach_votes, synthetic_votes
from fer_helpers.data.results import RunResult, find_results, run_key
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.models import recipes, registry
from fer_helpers.orchestrate import steps
from fer_helpers.orchestrate.study import Study
from fer_helpers.scoring import label_noise
from fer_helpers.scoring.label_noise import crowd_scores
from fer_helpers.scoring.statistics import mcnemar
from fer_helpers.train.plan import plan_runs
from fer_helpers.train.training import FERClassifier, crowd_targets, fit_cnn

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "runs" / "full" / "results"
TINY = CNNConfig(
    model="model_b",
    model_kwargs={"widths": (8, 16, 32, 32), "hidden": 32},
    lr=1e-3,
    max_epochs=3,
    batch_size=32,
    patience=None,
    rotate_deg=0.0,
    seed=0,
)
ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)


@pytest.fixture(scope="module")
def small() -> FERData:
    return make_synthetic_fer(n_train=280, n_public=140, n_private=140, seed=0)


@pytest.fixture(scope="module")
def voted(small) -> FERData:
    """The small faces with simulated votes, the first five Training faces without any."""
    votes = synthetic_votes(small, seed=0)
    votes[np.flatnonzero(small.usage == "Training")[:5]] = 0
    return attach_votes(small, votes)


def ten(**counts: int) -> list[int]:
    return [counts.get(name, 0) for name in VOTE_COLUMNS]


# ---------------------------------------------------------------- configuration and cache keys


def test_targets_are_validated_and_enter_the_key_only_when_not_the_default():
    with pytest.raises(ValueError, match="unknown targets 'votes'"):
        CNNConfig(targets="votes")
    labels, crowd = CNNConfig(), CNNConfig(targets="crowd")
    assert "targets" not in labels.to_dict() and "targets" not in labels.experiment()
    assert crowd.to_dict()["targets"] == "crowd" and CNNConfig.from_dict(crowd.to_dict()) == crowd
    assert CNNConfig.from_dict(labels.to_dict()) == labels
    assert run_key("m", labels.experiment(), "x") != run_key("m", crowd.experiment(), "x")
    assert (result_name(labels), result_name(crowd)) == ("baseline_cnn", "baseline_cnn_crowd")


def test_crowd_config_changes_the_targets_and_nothing_else():
    config = recipes.model_b_config("smoke", 1)
    twin = recipes.crowd_config(config)
    assert recipes.config_changes(config, twin) == {"targets": "crowd"}
    assert registry.main_config("model_b", "smoke", 1) == config
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        registry.main_config("vgg", "smoke")


@pytest.mark.parametrize(
    "profile, models",
    [("smoke", ("baseline_cnn",)), ("classroom", ("baseline_cnn",)), ("full", ("baseline_cnn", "model_b"))],
)
def test_profiles_name_their_crowd_models(profile, models):
    assert PROFILES[profile].crowd_models == models
    for model in models:
        registry.main_config(model, profile)


def test_the_full_baseline_keeps_its_committed_key():
    path = COMMITTED / "baseline_cnn-9204c086d40e" / "result.json"
    if not path.exists():
        pytest.skip("the committed full-profile baseline is not in runs/full/results")
    stored = json.loads(path.read_text())
    config = recipes.baseline_config("full", 0)
    assert run_key(config.model, config.experiment(), stored["data_sha256"]) == stored["key"] == "9204c086d40e"


def test_every_committed_cnn_result_keeps_its_key():
    checked = 0
    for path in sorted(COMMITTED.glob("*/result.json")):
        stored = json.loads(path.read_text())
        if "max_epochs" not in stored["config"]:  # HOG + SVM
            continue
        config = CNNConfig.from_dict(stored["config"])
        assert run_key(stored["model"], config.experiment(), stored["data_sha256"]) == stored["key"], path.parent.name
        checked += 1
    if not checked:
        pytest.skip("no committed CNN results in runs/full/results")


# ---------------------------------------------------------------- the soft targets


def test_crowd_targets_are_the_vote_shares_of_the_training_faces_with_votes(voted):
    targets, has = crowd_targets(voted)
    n_train = int((voted.usage == "Training").sum())
    assert targets.shape == (n_train, 7) and targets.dtype == np.float32 and has.shape == (n_train,)
    assert not has[:5].any() and has[5:].all()
    np.testing.assert_allclose(targets[has].sum(axis=1), 1.0, rtol=1e-6)
    assert (targets[~has] == 0).all()
    agree = targets[has].argmax(axis=1) == voted.split("Training")[1][has]
    assert agree.mean() > 0.9  # the simulated crowd mostly votes the face's own expression


def test_crowd_targets_refuse_data_without_votes(small):
    with pytest.raises(ValueError, match="attach_votes"):
        crowd_targets(small)
    no_emotion = np.zeros((len(small), len(VOTE_COLUMNS)), dtype=np.int64)
    no_emotion[:, VOTE_COLUMNS.index("unknown")] = 10
    with pytest.raises(ValueError, match="no Training face"):
        crowd_targets(attach_votes(small, no_emotion))


def test_soft_loss_on_one_hot_targets_is_the_label_loss():
    module = FERClassifier(torch.nn.Identity(), CNNConfig())
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(16) % 7
    assert torch.allclose(module._loss(logits, F.one_hot(labels, 7).float()), module._loss(logits, labels))
    uniform = torch.full((16, 7), 1 / 7)
    assert torch.allclose(module._loss(logits, uniform), -F.log_softmax(logits, 1).mean(1).mean())


@pytest.mark.trains
def test_a_tiny_soft_target_run_trains_apart_from_its_label_twin(small, voted, tmp_path):
    config = replace(TINY, targets="crowd")
    crowd = fit_cnn(voted, config, tmp_path)
    label = fit_cnn(small, TINY, tmp_path)
    assert crowd.model == "model_b_crowd" and crowd.run_dir.name == f"model_b_crowd-{crowd.key}"
    assert crowd.key != label.key and crowd.run_dir != label.run_dir
    n_train = int((small.usage == "Training").sum())
    assert crowd.extra["targets"] == "crowd" and crowd.extra["crowd_left_out"] == 5
    assert crowd.extra["crowd_train_faces"] == n_train - 5 and len(crowd.extra["votes_sha256"]) == 64
    assert "targets" not in label.extra and crowd.config["targets"] == "crowd"
    history = crowd.history
    assert len(history) == TINY.max_epochs and np.isfinite(history["train_loss"]).all()
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    for split in ("PublicTest", "PrivateTest"):  # scored against FER-2013's labels, as the label run
        np.testing.assert_array_equal(crowd.labels[split], label.labels[split])
        assert crowd.logits[split].shape == (len(crowd.labels[split]), 7)
    assert crowd.metrics["PublicTest"]["accuracy"] > 1 / 7
    again = fit_cnn(voted, config, tmp_path)
    assert again.from_cache and again.key == crowd.key
    with pytest.raises(ValueError, match="has none attached"):
        fit_cnn(small, config, tmp_path)  # refused even though a cached result exists


# ---------------------------------------------------------------- the training step


def _study(data: FERData, tmp_path: Path, **overrides) -> Study:
    profile = get_profile("smoke", epochs={"baseline_cnn": 1}, **overrides)
    return Study(profile=profile, data=data, full_data=data, run_dir=tmp_path / "run", reports_dir=tmp_path / "r")


def test_crowd_step_comes_after_the_first_seeds_and_the_ablation():
    names = [run.step for run in plan_runs("full")]
    assert names.index("resnet_fer") < names.index("ablation") < names.index("crowd")


@pytest.mark.trains
def test_crowd_runs_train_each_profile_model_beside_its_label_twin(small, tmp_path, capsys):
    study = _study(small, tmp_path)
    twin = steps.cnn_runs(study, "baseline_cnn")[0]
    assert steps.crowd_runs(study, train=False) == {}  # the crowd twin is not saved yet, and is not trained
    assert [r.model for r in find_results(study.run_dir)] == ["baseline_cnn"]
    runs = steps.crowd_runs(study)
    assert "SIMULATED CROWD VOTES" in capsys.readouterr().err
    assert list(runs) == ["baseline_cnn"] and set(runs["baseline_cnn"]) == {"labels", "crowd"}
    label, crowd = runs["baseline_cnn"]["labels"], runs["baseline_cnn"]["crowd"]
    assert label.key == twin.key and label.from_cache
    assert crowd.model == "baseline_cnn_crowd" and crowd.seed == study.profile.seeds[0]
    assert crowd.extra["crowd_left_out"] == 0  # the simulated crowd always votes some emotion here
    assert steps.crowd_runs(study)["baseline_cnn"]["crowd"].from_cache
    saved = steps.crowd_runs(study, train=False)["baseline_cnn"]
    assert (saved["labels"].key, saved["crowd"].key) == (label.key, crowd.key)
    with pytest.raises(ValueError, match="choose one"):
        steps.crowd_runs(study, fresh=True, train=False)


def test_crowd_runs_on_fer2013_without_votes_say_where_to_put_them(small, tmp_path, monkeypatch, no_fer):
    monkeypatch.delenv("FERPLUS_PATH", raising=False)
    source = tmp_path / "fer2013.zip"
    source.write_bytes(b"")
    fer = replace(small, form="kaggle-zip", source=str(source), ids=np.array([f"f{i}" for i in range(len(small))]))
    with pytest.raises(FERDataError, match=r"no FER\+ crowd votes.*ferplus_votes\.csv.*FERPLUS_PATH"):
        steps.crowd_runs(_study(fer, tmp_path))


# ---------------------------------------------------------------- scores against the crowd


def test_crowd_scores_by_hand():
    votes = np.array(
        [
            ten(happiness=8, neutral=2),  # plurality Happy
            ten(anger=6, disgust=4),  # Angry
            ten(sadness=5, neutral=3, unknown=2),  # Sad
            ten(unknown=7, fear=3),  # no emotion plurality
            ten(surprise=9, fear=1),
        ]
    )  # Surprise
    labels = np.array([HAPPY, DISGUST, SAD, FEAR, FEAR])
    preds = np.array([HAPPY, ANGRY, NEUTRAL, FEAR, SURPRISE])
    scores = crowd_scores(labels, preds, votes)
    assert scores["n"] == 5 and scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["n_crowd"] == 4 and scores["crowd_accuracy"] == pytest.approx(3 / 4)
    assert scores["n_agreed"] == 2 and scores["agreed_accuracy"] == pytest.approx(1 / 2)
    assert scores["errors"] == 3 and scores["crowd_sides_with_model"] == 2
    assert scores["crowd_share_of_errors"] == pytest.approx(2 / 3)
    before = labels.copy(), preds.copy(), votes.copy()
    crowd_scores(labels, preds, votes)
    for a, b in zip(before, (labels, preds, votes)):
        np.testing.assert_array_equal(a, b)


def test_a_model_that_answers_the_plurality_scores_full_marks_against_the_crowd(small):
    votes = synthetic_votes(small, seed=1)
    plurality = ferplus.crowd_plurality(votes)
    decided = plurality >= 0
    preds = np.where(decided, plurality, small.labels)
    scores = crowd_scores(small.labels, preds, votes)
    assert scores["crowd_accuracy"] == 1.0 and scores["agreed_accuracy"] == 1.0
    assert scores["errors"] == scores["crowd_sides_with_model"] == int(np.sum(preds != small.labels))


def _run(model: str, preds: dict[str, np.ndarray], labels: dict[str, np.ndarray], seed: int = 0) -> RunResult:
    """A saved-result stand-in whose logits answer preds."""
    logits = {split: np.eye(7, dtype=np.float32)[p] for split, p in preds.items()}
    return RunResult(
        model=model,
        config={},
        key="k",
        run_dir=Path("."),
        data_sha256="x",
        logits=logits,
        labels=labels,
        metrics={},
        seed=seed,
    )


def test_crowd_score_table_averages_each_models_seeds(small):
    votes = synthetic_votes(small, seed=1)
    private = small.usage == "PrivateTest"
    labels, votes = small.labels[private], votes[private]
    plurality = ferplus.crowd_plurality(votes)
    crowd_like = np.where(plurality >= 0, plurality, labels)
    runs = {
        "perfect": [_run("perfect", {"PrivateTest": labels}, {"PrivateTest": labels})],
        "mixed": [
            _run("mixed", {"PrivateTest": labels}, {"PrivateTest": labels}),
            _run("mixed", {"PrivateTest": crowd_like}, {"PrivateTest": labels}, seed=1),
        ],
    }
    table = label_noise.crowd_score_table(runs, labels, votes)
    assert list(table.index) == ["perfect", "mixed"] and list(table["seeds"]) == [1, 2]
    assert table.loc["perfect", "accuracy"] == 1.0 and table.loc["perfect", "errors"] == 0
    second = crowd_scores(labels, crowd_like, votes)
    assert table.loc["mixed", "crowd_accuracy"] == pytest.approx((table.loc["perfect", "crowd_accuracy"] + 1) / 2)
    assert table.loc["mixed", "errors"] == pytest.approx(second["errors"] / 2)
    assert table["n"].dtype.kind == "i"  # the same faces for every seed: a count, printed as one
    assert table["errors"].dtype.kind == ("i" if second["errors"] % 2 == 0 else "f")  # a mean of two seeds' counts
    with pytest.raises(ValueError, match="scored other PrivateTest faces"):
        label_noise.crowd_score_table(runs, labels[::-1].copy(), votes)


def test_target_comparison_scores_both_runs_on_both_label_sets(small):
    votes = synthetic_votes(small, seed=1)
    labels, preds_label, preds_crowd = {}, {}, {}
    for split in ("PublicTest", "PrivateTest"):
        in_split = small.usage == split
        labels[split] = small.labels[in_split]
        plurality = ferplus.crowd_plurality(votes[in_split])
        preds_label[split] = labels[split]
        preds_crowd[split] = np.where(plurality >= 0, plurality, labels[split])
    pairs = {
        "baseline_cnn": {
            "labels": _run("baseline_cnn", preds_label, labels),
            "crowd": _run("baseline_cnn_crowd", preds_crowd, labels),
        }
    }
    table = label_noise.target_comparison(pairs, votes, small.usage)
    assert list(table.index) == [("baseline_cnn", "PublicTest"), ("baseline_cnn", "PrivateTest")]
    row = table.loc[("baseline_cnn", "PrivateTest")]
    assert row["label_run"] == 1.0 and row["crowd_run"] < 1.0 and row["delta"] < 0
    assert row["crowd_crowd_run"] == 1.0 and row["crowd_delta"] > 0
    expected = mcnemar(labels["PrivateTest"], preds_label["PrivateTest"], preds_crowd["PrivateTest"])
    assert row["mcnemar_p"] == pytest.approx(expected["p_value"])
    assert row["n"] == len(labels["PrivateTest"]) and row["n_crowd"] <= row["n"]


# ---------------------------------------------------------------- figures


def test_vote_entropy_figure_leaves_out_faces_without_votes(voted):
    entropy = ferplus.vote_entropy(voted.extras[VOTES_KEY])
    usage = voted.usage.copy()
    fig = plots.plot_vote_entropy(entropy, usage)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_train = int((usage == "Training").sum())
    assert len(labels) == 3 and labels[0].startswith(f"Training ({n_train - 5:,} faces")
    np.testing.assert_array_equal(usage, voted.usage)
    matplotlib.pyplot.close(fig)


def test_label_confusion_figure_shows_counts_and_row_shares():
    labels = np.array([HAPPY, HAPPY, SAD, ANGRY, DISGUST])
    plurality = np.array([HAPPY, NEUTRAL, SAD, -1, ANGRY])
    table = label_noise.label_confusion(labels, plurality)
    fig = plots.plot_label_confusion(table, title="PrivateTest")
    counts, shares = fig.axes[0], fig.axes[1]  # the two heatmaps; their colour bars come after them
    assert counts.get_ylabel() == "FER-2013 label" and counts.get_xlabel() == "crowd plurality"
    assert [t.get_text() for t in counts.get_xticklabels()] == list(CLASS_NAMES)
    values = [t.get_text() for t in counts.texts]
    assert len(values) == 49 and values.count("0") == 45
    assert shares.get_xlabel() == "crowd plurality"
    matplotlib.pyplot.close(fig)


def test_reference_points_figure_draws_every_model_and_reference():
    accuracies = pd.DataFrame(
        {
            "accuracy": [0.41, 0.6, 0.65, 0.7328],
            "group": ["paper", "ours", "field", "field"],
            "low": [0.41, np.nan, np.nan, np.nan],
            "high": [0.42, np.nan, np.nan, np.nan],
        },
        index=["paper baseline", "Model B", "humans", "best single network"],
    )
    fig = plots.plot_reference_points(accuracies, {"crowd plurality": 0.8, "one annotator": 0.6})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "paper baseline",
        "Model B",
        "humans",
        "best single network",
    ]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "crowd plurality: 80.0%" in legend and "one annotator: 60.0%" in legend and "paper" in legend
    assert "ceiling" not in ax.get_title() and "not bounds" in ax.get_title()
    matplotlib.pyplot.close(fig)


def test_boundary_shift_figure_shows_each_label_and_both_shares():
    labels = np.array([CLASS_NAMES.index(c) for c in ("Sad", "Sad", "Fear", "Neutral", "Happy")])
    votes = np.zeros((5, len(VOTE_COLUMNS)), dtype=np.int64)
    votes[[0, 2, 3], VOTE_COLUMNS.index("neutral")] = 6  # two non-Neutral faces the crowd calls Neutral
    votes[1, VOTE_COLUMNS.index("sadness")] = 6
    votes[4, VOTE_COLUMNS.index("happiness")] = 6
    shift = label_noise.boundary_shift(labels, votes)
    fig = plots.plot_boundary_shift(shift)
    left, right = fig.axes
    assert len(left.patches) == len(CLASS_NAMES) - 1  # every label but Neutral itself
    assert len(right.patches) == 2 * len(CLASS_NAMES)
    assert "Neutral" in left.get_xlabel()
    matplotlib.pyplot.close(fig)
