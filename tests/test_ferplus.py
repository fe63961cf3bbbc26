"""FER+ votes: both forms read and join, bad input fails naming file and line, the statistics match hand counts."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_helpers.core import paths
from fer_helpers.data import ferplus
from fer_helpers.data.fer2013 import CLASS_NAMES, SPLITS, FERData, FERDataError
from fer_helpers.data.ferplus import (
    FERPLUS_TO_FER,
    VOTE_COLUMNS,
    VOTES_KEY,
    attach_votes,
    crowd_plurality,
    find_ferplus,
    join_votes,
    read_votes,
    synthetic_votes,
    vote_distribution,
    vote_entropy,
)
from fer_helpers.scoring.label_noise import (
    agreement,
    boundary_shift,
    crowd_outcomes,
    disagreement_toward,
    label_confusion,
    reference_points,
    vote_share_reference,
)

VOTES = ",".join(VOTE_COLUMNS)
ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def ten(**counts: int) -> str:
    """The ten vote counts in file order, e.g. ten(happiness=8, unknown=2)."""
    return ",".join(str(counts.get(name, 0)) for name in VOTE_COLUMNS)


def fake_data(ids: list[str], usage: list[str], labels: list[int], form: str, source: str = "fake") -> FERData:
    """A FERData with blank images, as load_fer2013 gives for the form."""
    return FERData(
        images=np.zeros((len(ids), 48, 48), dtype=np.uint8),
        labels=np.array(labels, dtype=np.int64),
        usage=np.array(usage),
        source=source,
        sha256="0" * 64,
        form=form,
        ids=np.array(ids),
    )


# Six faces of a Kaggle zip: two per split.
ZIP_IDS = [
    "train/angry/Training_1.jpg",
    "train/happy/Training_2.jpg",
    "test/sad/PublicTest_3.jpg",
    "test/fear/PublicTest_4.jpg",
    "test/neutral/PrivateTest_5.jpg",
    "test/happy/PrivateTest_6.jpg",
]
ZIP_USAGE = ["Training", "Training", "PublicTest", "PublicTest", "PrivateTest", "PrivateTest"]
ZIP_LABELS = [ANGRY, HAPPY, SAD, FEAR, NEUTRAL, HAPPY]


def zip_data() -> FERData:
    return fake_data(ZIP_IDS, ZIP_USAGE, ZIP_LABELS, "kaggle-zip", "fer2013.zip")


def csv_data() -> FERData:
    """Five rows of a fer2013.csv: ids fer2013.csv:2 .. fer2013.csv:6 are rows 0..4."""
    return fake_data(
        [f"fer2013.csv:{line}" for line in range(2, 7)],
        ["Training", "Training", "PublicTest", "PrivateTest", "PrivateTest"],
        [ANGRY, HAPPY, SAD, NEUTRAL, HAPPY],
        "fer2013-csv",
        "fer2013.csv",
    )


# ---------------------------------------------------------------- reading both forms


def test_reads_the_joined_form(tmp_path):
    path = write(
        tmp_path / "ferplus_votes.csv",
        f"entry,fer2013_row,ferplus_image,{VOTES}\n"
        f"train/angry/Training_1.jpg,0,fer0000000.png,{ten(anger=6, neutral=4)}\n"
        f"test/happy/PrivateTest_6.jpg,7,fer0000007.png,{ten(happiness=10)}\n\n",
    )
    votes = read_votes(path)
    assert votes.form == "ferplus-votes" and len(votes) == 2 and votes.dropped == 0
    assert votes.keys.tolist() == ["train/angry/Training_1.jpg", "test/happy/PrivateTest_6.jpg"]
    assert votes.rows.tolist() == [0, 7] and votes.lines.tolist() == [2, 3]
    assert votes.usage.tolist() == ["Training", "PrivateTest"]
    np.testing.assert_array_equal(votes.votes[0], [4, 0, 0, 0, 6, 0, 0, 0, 0, 0])
    assert votes.votes.dtype == np.int64 and votes.source == str(path)
    assert votes.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_reads_microsofts_form_and_leaves_out_rows_without_an_image_name(tmp_path):
    path = write(
        tmp_path / "fer2013new.csv",
        f"Usage,Image name,{VOTES}\n"
        f"Training,fer0000000.png,{ten(anger=6, neutral=4)}\n"
        f"Training,,{ten(NF=10)}\n"
        f"PublicTest,fer0000002.png,{ten(sadness=9, unknown=1)}\n",
    )
    votes = read_votes(path)
    assert votes.form == "fer2013new" and votes.dropped == 1 and votes.rows is not None
    assert votes.keys.tolist() == [0, 2] and votes.rows.tolist() == [0, 2] and votes.lines.tolist() == [2, 4]
    assert votes.usage.tolist() == ["Training", "PublicTest"]
    np.testing.assert_array_equal(votes.votes[1], [0, 0, 0, 9, 0, 0, 0, 0, 1, 0])


ENTRY = f"entry,fer2013_row,{VOTES}"
GOOD = f"train/angry/Training_1.jpg,0,{ten(anger=10)}"
BAD_INPUTS = {  # name: (file content, line named, what the message says)
    "missing column": ("entry," + ",".join(VOTE_COLUMNS[:-1]) + f"\nx.jpg,{ten()[:-2]}\n", 1, "no column NF"),
    "unknown column": (f"entry,smile,{VOTES}\nx.jpg,1,{ten(anger=10)}\n", 1, "unknown column 'smile'"),
    "no known form": ("a,b\n1,2\n", 1, "not a FER+ votes header"),
    "negative count": (
        f"{ENTRY}\n{GOOD}\ntrain/sad/Training_2.jpg,1,{ten(sadness=11, fear=-1)}\n",
        3,
        "fear count '-1' is negative",
    ),
    "non-integer count": (
        f"{ENTRY}\ntrain/sad/Training_2.jpg,1,{ten(sadness=8)}".replace(",8,", ",7.5,") + "\n",
        2,
        "sadness count '7.5' is not an integer",
    ),
    "non-numeric count": (
        f"{ENTRY}\n{GOOD}\n\ntrain/sad/Training_2.jpg,1,{ten(sadness=8)}".replace(",8,", ",x,") + "\n",
        4,
        "sadness count 'x' is not a number",
    ),
    "empty count": (
        f"{ENTRY}\ntrain/sad/Training_2.jpg,1,{ten(sadness=8)}".replace(",8,", ",,") + "\n",
        2,
        "sadness count '' is empty",
    ),
    "no votes": (f"{ENTRY}\n{GOOD}\ntrain/sad/Training_2.jpg,1,{ten()}\n", 3, "no votes (all ten counts are 0)"),
    "repeated entry": (
        f"{ENTRY}\n{GOOD}\ntrain/sad/Training_2.jpg,1,{ten(sadness=10)}\n"
        f"TRAIN/Angry/Training_1.jpg,2,{ten(anger=10)}\n",
        4,
        "repeats line 2",
    ),
    "repeated row": (
        f"{ENTRY}\n{GOOD}\ntrain/sad/Training_2.jpg,0,{ten(sadness=10)}\n",
        3,
        "fer2013_row '0' repeats line 2",
    ),
    "bad row number": (f"{ENTRY}\ntrain/sad/Training_2.jpg,-3,{ten(sadness=10)}\n", 2, "is not a row number"),
    "empty entry": (f"{ENTRY}\n{GOOD}\n,1,{ten(sadness=10)}\n", 3, "empty entry"),
    "unknown usage": (
        f"Usage,Image name,{VOTES}\nTraining,a.png,{ten(anger=10)}\nTest,b.png,{ten(anger=10)}\n",
        3,
        "unknown Usage 'Test'",
    ),
    "microsoft no votes": (f"Usage,Image name,{VOTES}\nTraining,a.png,{ten()}\n", 2, "no votes"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_names_the_file_and_line(tmp_path, kind):
    text, line, message = BAD_INPUTS[kind]
    path = write(tmp_path / "votes.csv", text)
    with pytest.raises(FERDataError) as error:
        read_votes(path)
    assert f"{path} line {line}: " in str(error.value) and message in str(error.value)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(FERDataError, match="empty file"):
        read_votes(write(tmp_path / "empty.csv", ""))
    with pytest.raises(FERDataError, match="a header but no rows"):
        read_votes(write(tmp_path / "header.csv", f"entry,{VOTES}\n\n"))
    with pytest.raises(FERDataError, match="cannot read"):
        read_votes(tmp_path / "absent.csv")
    with pytest.raises(FERDataError, match="no row has an Image name"):
        read_votes(write(tmp_path / "dropped.csv", f"Usage,Image name,{VOTES}\nTraining,,{ten(NF=10)}\n"))


# ---------------------------------------------------------------- joining


def test_join_by_entry_reports_faces_without_votes_per_split(tmp_path):
    path = write(
        tmp_path / "ferplus_votes.csv",
        f"entry,{VOTES}\n"
        f"test/happy/PrivateTest_6.jpg,{ten(happiness=9, surprise=1)}\n"
        f"TRAIN/angry/Training_1.jpg,{ten(anger=7, disgust=3)}\n"
        f"test/sad/PublicTest_3.jpg,{ten(sadness=5, neutral=5)}\n",
    )
    joined = join_votes(zip_data(), read_votes(path))
    assert joined.votes.shape == (6, 10) and joined.votes.dtype == np.int64
    np.testing.assert_array_equal(joined.has_votes, [True, False, True, False, False, True])
    np.testing.assert_array_equal(joined.votes[0], [0, 0, 0, 0, 7, 3, 0, 0, 0, 0])
    np.testing.assert_array_equal(joined.votes[5], [0, 9, 1, 0, 0, 0, 0, 0, 0, 0])
    assert not joined.votes[[1, 3, 4]].any()
    assert joined.missing_by_split == {"Training": 1, "PublicTest": 1, "PrivateTest": 1}
    assert joined.missing_ids.tolist() == [ZIP_IDS[1], ZIP_IDS[3], ZIP_IDS[4]] and joined.unmatched == 0
    assert joined.summary() == (
        "FER+ votes for 3 of 6 faces; without votes: Training 1, PublicTest 1, "
        "PrivateTest 1; vote rows matching no face: 0"
    )


def test_vote_rows_without_a_face_fail_for_a_whole_data_set_and_count_for_a_subsample(tmp_path):
    path = write(
        tmp_path / "ferplus_votes.csv",
        f"entry,{VOTES}\n"
        f"train/angry/Training_1.jpg,{ten(anger=10)}\n"
        f"train/happy/Training_2.jpg,{ten(happiness=10)}\n"
        f"test/happy/PrivateTest_6.jpg,{ten(happiness=10)}\n"
        f"test/happy/PrivateTest_99.jpg,{ten(happiness=10)}\n",
    )
    votes = read_votes(path)
    with pytest.raises(FERDataError) as error:
        join_votes(zip_data(), votes)
    assert f"{path} line 5: 'test/happy/PrivateTest_99.jpg' matches no face of fer2013.zip" in str(error.value)
    assert "whole data set, not a subsample" in str(error.value)
    both = fake_data(
        ZIP_IDS + ["test/happy/PrivateTest_99.jpg"],
        ZIP_USAGE + ["PrivateTest"],
        ZIP_LABELS + [HAPPY],
        "kaggle-zip",
        "fer2013.zip",
    )
    subsample = both.subsample(train_per_class=None, eval_per_class=0)  # Training only
    joined = join_votes(subsample, votes)
    assert joined.unmatched == 2 and joined.has_votes.tolist() == [True, True]
    assert joined.missing_by_split == {"Training": 0, "PublicTest": 0, "PrivateTest": 0}


def test_join_by_row_onto_fer2013_csv_from_either_form(tmp_path):
    microsoft = write(
        tmp_path / "fer2013new.csv",
        f"Usage,Image name,{VOTES}\n"
        f"Training,fer0000000.png,{ten(anger=10)}\n"
        f"Training,fer0000001.png,{ten(happiness=8, neutral=2)}\n"
        f"PublicTest,,{ten(NF=10)}\n"
        f"PrivateTest,fer0000003.png,{ten(neutral=6, sadness=4)}\n"
        f"PrivateTest,fer0000004.png,{ten(happiness=10)}\n",
    )
    joined = join_votes(csv_data(), read_votes(microsoft))
    np.testing.assert_array_equal(joined.has_votes, [True, True, False, True, True])
    np.testing.assert_array_equal(joined.votes[1], [2, 8, 0, 0, 0, 0, 0, 0, 0, 0])
    assert joined.missing_by_split == {"Training": 0, "PublicTest": 1, "PrivateTest": 0}
    assert joined.missing_ids.tolist() == ["fer2013.csv:4"]
    by_entry = write(
        tmp_path / "ferplus_votes.csv",
        f"entry,fer2013_row,ferplus_image,{VOTES}\n"
        f"test/happy/PrivateTest_6.jpg,4,fer0000004.png,{ten(happiness=10)}\n"
        f"train/angry/Training_1.jpg,0,fer0000000.png,{ten(anger=10)}\n",
    )
    joined = join_votes(csv_data(), read_votes(by_entry))
    np.testing.assert_array_equal(joined.has_votes, [True, False, False, False, True])
    np.testing.assert_array_equal(joined.votes[4], [0, 10, 0, 0, 0, 0, 0, 0, 0, 0])
    assert joined.missing_by_split == {"Training": 1, "PublicTest": 1, "PrivateTest": 1}


def test_join_refuses_votes_in_another_order_or_form(tmp_path, synth):
    shuffled = write(
        tmp_path / "fer2013new.csv",
        f"Usage,Image name,{VOTES}\n"
        f"Training,fer0000000.png,{ten(anger=10)}\n"
        f"PublicTest,fer0000001.png,{ten(happiness=10)}\n",
    )
    with pytest.raises(
        FERDataError,
        match=r"fer2013new.csv line 3: FER\+ puts this face in PublicTest, but "
        r"fer2013.csv has fer2013.csv:3 in Training",
    ):
        join_votes(csv_data(), read_votes(shuffled))
    with pytest.raises(FERDataError, match="keyed by fer2013.csv's row order"):
        join_votes(zip_data(), read_votes(shuffled))
    no_rows = write(tmp_path / "votes.csv", f"entry,{VOTES}\ntrain/angry/Training_1.jpg,{ten(anger=10)}\n")
    with pytest.raises(FERDataError, match="no fer2013_row column"):
        join_votes(csv_data(), read_votes(no_rows))
    torchvision = fake_data(["train.csv:2"], ["Training"], [ANGRY], "torchvision-csv")
    with pytest.raises(FERDataError, match="not onto the torchvision-csv form"):
        join_votes(torchvision, read_votes(no_rows))
    with pytest.raises(ValueError, match="synthetic_votes"):
        join_votes(synth, read_votes(no_rows))


def test_attached_votes_stay_aligned_through_subsample(tmp_path):
    path = write(
        tmp_path / "ferplus_votes.csv",
        f"entry,{VOTES}\n"
        f"test/happy/PrivateTest_6.jpg,{ten(happiness=10)}\n"
        f"train/happy/Training_2.jpg,{ten(happiness=7, surprise=3)}\n",
    )
    attached = attach_votes(zip_data(), read_votes(path))
    assert attached.extras["per_image"] == (VOTES_KEY,)
    np.testing.assert_array_equal(attached.extras[VOTES_KEY], join_votes(zip_data(), read_votes(path)).votes)
    training = attached.subsample(train_per_class=None, eval_per_class=0)
    np.testing.assert_array_equal(training.extras[VOTES_KEY], [[0] * 10, [0, 7, 3, 0, 0, 0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"\(6,10\)"):
        attach_votes(zip_data(), np.zeros((5, 10), dtype=np.int64))


# ---------------------------------------------------------------- finding the votes


def test_find_ferplus_looks_where_documented(tmp_path, monkeypatch, no_fer):
    monkeypatch.delenv("FERPLUS_PATH", raising=False)
    assert find_ferplus() is None
    with pytest.raises(FERDataError, match="no FER\\+ votes found"):
        read_votes()
    beside = tmp_path / "elsewhere"
    beside.mkdir()
    write(beside / "fer2013.zip", "not read here")
    votes = write(beside / "fer2013new.csv", f"Usage,Image name,{VOTES}\nTraining,a.png,{ten(anger=10)}\n")
    assert find_ferplus(data_path=beside / "fer2013.zip") == votes
    monkeypatch.setenv("FER2013_PATH", str(beside / "fer2013.zip"))
    assert find_ferplus() == votes and read_votes().form == "fer2013new"
    in_data = write(paths.DATA_DIR / "ferplus_votes.csv", f"entry,{VOTES}\nx.jpg,{ten(anger=10)}\n")
    assert find_ferplus() == in_data
    monkeypatch.setenv("FERPLUS_PATH", str(beside))
    assert find_ferplus() == votes
    assert find_ferplus(in_data) == in_data
    with pytest.raises(FERDataError, match="no ferplus_votes.csv or fer2013new.csv in this folder"):
        find_ferplus(tmp_path)
    monkeypatch.setenv("FERPLUS_PATH", str(tmp_path / "absent.csv"))
    with pytest.raises(FERDataError, match="absent.csv: no such file or folder \\(from FERPLUS_PATH\\)"):
        find_ferplus()


# ---------------------------------------------------------------- statistics, against hand counts

# Columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
HAND_VOTES = np.array(
    [
        [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],  # a: Happy
        [4, 0, 0, 4, 2, 0, 0, 0, 0, 0],  # b: Neutral and Sad tied; "first" gives Neutral
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 9],  # c: not a face
        [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],  # d: contempt, and no vote for a FER-2013 emotion
        [0, 0, 3, 0, 0, 0, 7, 0, 0, 0],  # e: Fear
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # f: no votes (a face FER+ left out)
    ]
)
HAND_LABELS = np.array([HAPPY, SAD, NEUTRAL, ANGRY, SURPRISE, ANGRY])
HAND_USAGE = np.array(["Training"] * 3 + ["PrivateTest"] * 3)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    centre, half = (k + z * z / 2) / (n + z * z), z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return centre - half, centre + half


def test_mapping_covers_seven_emotions_and_keeps_the_rest():
    assert {CLASS_NAMES[c] for c in FERPLUS_TO_FER.values()} == set(CLASS_NAMES)
    assert set(VOTE_COLUMNS) - set(FERPLUS_TO_FER) == {"contempt", "unknown", "NF"}
    assert FERPLUS_TO_FER["anger"] == ANGRY and FERPLUS_TO_FER["neutral"] == NEUTRAL


def test_crowd_plurality_and_its_tie_rules():
    assert crowd_plurality(HAND_VOTES).tolist() == [HAPPY, NEUTRAL, -1, -1, FEAR, -1]
    assert crowd_plurality(HAND_VOTES, ties="exclude").tolist() == [HAPPY, -1, -1, -1, FEAR, -1]
    with pytest.raises(ValueError, match="tie rule"):
        crowd_plurality(HAND_VOTES, ties="random")
    with pytest.raises(ValueError, match="whole numbers"):
        crowd_plurality(HAND_VOTES - 1)


def test_vote_distribution_and_entropy():
    p = vote_distribution(HAND_VOTES)
    expected = np.full((6, 7), np.nan)
    expected[[0, 1, 2, 4]] = 0.0
    expected[0, [HAPPY, SURPRISE]] = [8 / 9, 1 / 9]
    expected[1, [NEUTRAL, SAD, ANGRY]] = [0.4, 0.4, 0.2]
    expected[2, NEUTRAL] = 1.0
    expected[4, [FEAR, SURPRISE]] = [0.7, 0.3]
    np.testing.assert_allclose(p, expected)
    # By hand: 8/9 log2(9/8) + 1/9 log2 9; 2 * 0.4 log2 2.5 + 0.2 log2 5; 0; 0.7 log2(1/0.7) + 0.3 log2(1/0.3).
    np.testing.assert_allclose(vote_entropy(HAND_VOTES), [0.503258, 1.521928, 0.0, np.nan, 0.881291, np.nan], atol=1e-6)


def test_agreement_per_split_and_class_with_wilson_intervals():
    table = agreement(HAND_LABELS, HAND_VOTES, HAND_USAGE)
    assert list(table.columns) == ["n", "agree", "rate", "ci_low", "ci_high", "undecided"]
    assert list(table.index.get_level_values("split").unique()) == ["Training", "PrivateTest"]
    training = table.loc[("Training", "all")]
    assert (training["n"], training["agree"], training["rate"], training["undecided"]) == (2, 1, 0.5, 1)
    assert (training["ci_low"], training["ci_high"]) == pytest.approx(wilson(1, 2))
    assert (training["ci_low"], training["ci_high"]) == pytest.approx((0.094531, 0.905469), abs=1e-6)
    private = table.loc[("PrivateTest", "all")]
    assert (private["n"], private["agree"], private["rate"], private["undecided"]) == (1, 0, 0.0, 2)
    assert (private["ci_low"], private["ci_high"]) == pytest.approx(wilson(0, 1))
    assert table.loc[("Training", "Sad"), ["n", "agree"]].tolist() == [1, 0]
    neutral = table.loc[("Training", "Neutral")]
    assert neutral["n"] == 0 and neutral["undecided"] == 1 and np.isnan(neutral["rate"])
    assert int(table.xs("all", level="class")["n"].sum()) == int(table.drop("all", level="class")["n"].sum())
    excluded = agreement(HAND_LABELS, HAND_VOTES, HAND_USAGE, ties="exclude").loc[("Training", "all")]
    assert (excluded["n"], excluded["agree"], excluded["rate"], excluded["undecided"]) == (1, 1, 1.0, 2)


def test_crowd_outcomes_count_every_face_once():
    table = crowd_outcomes(HAND_VOTES, HAND_USAGE)
    assert table.loc["Training"].to_dict() == {
        "emotion": 2,
        "contempt": 0,
        "unknown": 0,
        "NF": 1,
        "tie": 0,
        "no votes": 0,
    }
    assert table.loc["PrivateTest"].to_dict() == {
        "emotion": 1,
        "contempt": 1,
        "unknown": 0,
        "NF": 0,
        "tie": 0,
        "no votes": 1,
    }
    excluded = crowd_outcomes(HAND_VOTES, HAND_USAGE, ties="exclude")
    assert excluded.loc["Training", "tie"] == 1 and excluded.loc["Training", "emotion"] == 1


def test_label_confusion():
    table = label_confusion(HAND_LABELS, crowd_plurality(HAND_VOTES))
    assert table.shape == (7, 7) and table.index.name == "FER-2013 label" and table.columns.name == "crowd plurality"
    assert int(table.to_numpy().sum()) == 3
    assert table.loc["Happy", "Happy"] == 1 and table.loc["Sad", "Neutral"] == 1 and table.loc["Surprise", "Fear"] == 1


def test_reference_points():
    ceiling = reference_points(HAND_LABELS, HAND_VOTES)
    assert ceiling.n == 4  # a, b, c and e have votes for a FER-2013 emotion
    assert ceiling.plurality == pytest.approx((1 + 0.5 + 1 + 0) / 4)  # b: the label is one of two tied classes
    assert ceiling.label_draw == pytest.approx((8 / 9 + 0.4 + 1.0 + 0.3) / 4)
    assert ceiling.best_if_drawn == pytest.approx((8 / 9 + 0.4 + 1.0 + 0.7) / 4)


def _labelled_like_fer(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces whose crowd reads each class as FER+ does, while the labeller calls 60% of the crowd's Neutral faces
    Sad: a systematic boundary shift that a predictor of the label from the votes can learn."""
    rng = np.random.default_rng(seed)
    crowd_class = rng.integers(0, 7, n)
    votes = np.zeros((n, len(VOTE_COLUMNS)), dtype=np.int64)
    column_of = {label: VOTE_COLUMNS.index(name) for name, label in FERPLUS_TO_FER.items()}
    for i, c in enumerate(crowd_class):
        votes[i, column_of[c]] = rng.integers(6, 9)
        votes[i, column_of[int(rng.integers(0, 7))]] += 10 - votes[i].sum()
    labels = crowd_class.copy()
    relabelled = (crowd_class == NEUTRAL) & (rng.random(n) < 0.6)
    labels[relabelled] = SAD
    usage = np.where(np.arange(n) < n // 2, "Training", "PrivateTest")
    return labels, votes, usage


def test_vote_share_reference_learns_the_labellers_boundary_and_beats_the_plurality():
    labels, votes, usage = _labelled_like_fer(0, 4000)
    test = usage == "PrivateTest"
    reference = vote_share_reference(labels, votes, usage)
    plurality = reference_points(labels[test], votes[test]).plurality
    assert reference.n == test.sum() and reference.n_fit == (~test).sum() and reference.fit_split == "Training"
    low, high = reference.accuracy_ci95
    assert low <= reference.accuracy <= high and high - low < 0.06
    # the plurality answers Neutral where the labeller wrote Sad 60% of the time; the regression learns Sad there
    assert reference.accuracy > plurality + 0.015  # (0.6 - 0.4) / 7 of the faces: the crowd's Neutral faces
    assert reference.accuracy == pytest.approx(np.mean(reference.preds == labels[test][reference.scored]))
    # fitted on Training only: changing PrivateTest's labels changes its score, never its answers
    shuffled = labels.copy()
    shuffled[test] = np.random.default_rng(1).permutation(labels[test])
    again = vote_share_reference(shuffled, votes, usage)
    np.testing.assert_array_equal(again.preds, reference.preds)
    assert again.accuracy < 0.5


def test_vote_share_reference_needs_votes_on_both_splits():
    labels, votes, usage = _labelled_like_fer(0, 100)
    votes[usage == "Training"] = 0
    with pytest.raises(ValueError, match="Training and PrivateTest faces with emotion votes"):
        vote_share_reference(labels, votes, usage)


def test_boundary_shift_and_disagreement_toward_neutral():
    labels, votes, usage = _labelled_like_fer(2, 3000)
    shift = boundary_shift(labels, votes)
    assert list(shift.index) == list(CLASS_NAMES) and shift["n"].sum() == len(labels)
    sad = shift.loc["Sad"]
    assert sad["ci_low"] <= sad["to_Neutral"] <= sad["ci_high"]
    # about 60% of the crowd's Neutral faces are labelled Sad, half of the Sad labels then: the crowd calls them Neutral
    assert sad["to_Neutral"] == pytest.approx(0.6 / 1.6, abs=0.06)
    assert shift.loc["Happy", "to_Neutral"] < 0.1
    assert shift["label_share"].sum() == pytest.approx(1) and shift["plurality_share"].sum() == pytest.approx(1)
    assert shift.loc["Neutral", "plurality_share"] > shift.loc["Neutral", "label_share"]
    moved = disagreement_toward(labels, votes)
    assert moved["share"] == 1.0 and moved["toward"] == moved["disagree"] > 0  # every disagreement is toward Neutral


# ---------------------------------------------------------------- the synthetic stand-in


def test_synthetic_votes_follow_the_stated_noise_model(synth):
    noise = 0.3
    votes = synthetic_votes(synth, seed=1, noise=noise)
    assert votes.shape == (len(synth), 10) and (votes.sum(axis=1) == 10).all()
    np.testing.assert_array_equal(votes, synthetic_votes(synth, seed=1, noise=noise))
    column_of_class = {label: VOTE_COLUMNS.index(name) for name, label in FERPLUS_TO_FER.items()}
    true_column = np.array([column_of_class[label] for label in synth.labels])
    shares = votes.sum(axis=0) / votes.sum()
    tolerance = 4 * math.sqrt(noise * (1 - noise) / votes.sum())
    assert abs(votes[np.arange(len(synth)), true_column].sum() / votes.sum() - (1 - noise)) < tolerance
    assert abs(shares[VOTE_COLUMNS.index("unknown")] - noise * ferplus.UNKNOWN_SHARE) < tolerance
    assert shares[VOTE_COLUMNS.index("contempt")] == 0 and shares[VOTE_COLUMNS.index("NF")] == 0
    # The whole chain runs on them: with 10 annotators at 70%, the plurality almost always names the expression.
    data = attach_votes(synth, votes)
    table = agreement(data.labels, data.extras[VOTES_KEY], data.usage)
    assert (table.xs("all", level="class")["rate"] > 0.97).all()
    assert reference_points(data.labels, votes).plurality > 0.97
    assert np.all(agreement(synth.labels, synthetic_votes(synth, noise=0.0), synth.usage)["rate"].dropna() == 1.0)
    with pytest.raises(ValueError, match="not synthetic"):
        synthetic_votes(zip_data())


# ---------------------------------------------------------------- the real FER-2013 and FER+ votes


def test_real_votes_join_onto_the_real_zip(real_data, ferplus_path):
    votes = read_votes(ferplus_path)
    assert len(votes) == 35710 and votes.form == "ferplus-votes"
    joined = join_votes(real_data, votes)
    print(joined.summary())
    assert joined.missing_by_split == {"Training": 151, "PublicTest": 10, "PrivateTest": 16}
    assert int((~joined.has_votes).sum()) == 177 and joined.unmatched == 0
    table = agreement(real_data.labels, joined.votes, real_data.usage).xs("all", level="class")
    print(table.round(4).to_string())
    assert table.loc["PrivateTest", "rate"] * 100 == pytest.approx(63.3, abs=0.2)
    outcomes = crowd_outcomes(joined.votes, real_data.usage)
    assert outcomes.loc["PrivateTest", "no votes"] == 16
    assert outcomes.sum(axis=1).tolist() == [int((real_data.usage == split).sum()) for split in SPLITS]
    assert isinstance(label_confusion(real_data.labels, crowd_plurality(joined.votes)), pd.DataFrame)
