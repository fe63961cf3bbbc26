"""FER+ crowd votes: reading, validating and joining them onto FER-2013, and the agreement statistics.

FER+ (Barsoum, Zhang, Canton Ferrer and Zhang, ICMI 2016; microsoft/FERPlus, MIT licence) had ten crowd annotators
label each FER-2013 face as one of eight emotions (neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt), "unknown" or "NF" (not a face). Seven of the eight emotions are FER-2013's classes (FERPLUS_TO_FER);
contempt, unknown and NF have no FER-2013 class and stay what they are.

Where the votes come from: the ``path`` argument, else the environment variable ``FERPLUS_PATH``, else
``ferplus_votes.csv`` or ``fer2013new.csv`` in the repository's ``data/`` folder, else beside the FER-2013 that
``find_fer2013`` finds. Forms, told apart by the header:

- ``ferplus-votes``: ``entry`` (the Kaggle zip entry, e.g. ``train/angry/Training_1426440.jpg``), optionally
  ``fer2013_row`` (0-based row of fer2013.csv) and ``ferplus_image``, then the ten vote columns; keyed by entry.
- ``fer2013new``: Microsoft's ``fer2013new.csv``, ``Usage,Image name`` then the ten vote columns, one row per row of
  fer2013.csv in the same order; keyed by row. Rows with an empty Image name (faces FER+ dropped) are not read.

Joining: onto a Kaggle zip or folder FERData by entry name (ignoring case; only the ``ferplus-votes`` form has
them), onto a fer2013.csv or icml_face_data.csv FERData by row (its id ``<file>:<line>`` is row line - 2). Faces
without votes get a row of zeros and are counted per split; a vote row that matches no face is an error for a whole
data set (the votes belong to another copy) and only counted for a subsample.

The crowd's plurality of a face is its most-voted column of all ten; by default a tie goes to the first tied column
in VOTE_COLUMNS order (numpy's argmax, the convention of the data README's agreement numbers), and ties="exclude"
makes a tie undecided instead. A face whose plurality is contempt, unknown or NF, or that has no votes, has no
emotion plurality (-1). The vote distribution and entropy use the votes for FER-2013's seven emotions only.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from fer_helpers import data as fer_data
from fer_helpers.data import CLASS_NAMES, NUM_CLASSES, SPLITS, FERData, FERDataError, read_csv_text
from fer_helpers.metrics import confusion
from fer_helpers.statistics import SIGNIFICANCE, mcnemar

VOTE_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
# FER+'s emotions that are FER-2013 classes -> FER-2013 class index; contempt, unknown and NF have none.
FERPLUS_TO_FER: dict[str, int] = {
    "neutral": CLASS_NAMES.index("Neutral"),
    "happiness": CLASS_NAMES.index("Happy"),
    "surprise": CLASS_NAMES.index("Surprise"),
    "sadness": CLASS_NAMES.index("Sad"),
    "anger": CLASS_NAMES.index("Angry"),
    "disgust": CLASS_NAMES.index("Disgust"),
    "fear": CLASS_NAMES.index("Fear"),
}
FERPLUS_ENV = "FERPLUS_PATH"
VOTE_FILE_NAMES: tuple[str, ...] = ("ferplus_votes.csv", "fer2013new.csv")
VOTES_KEY = "ferplus_votes"  # FERData.extras key of the votes that attach_votes aligns with the faces
TIE_RULES: tuple[str, ...] = ("first", "exclude")
OUTCOMES: tuple[str, ...] = ("emotion", "contempt", "unknown", "NF", "tie", "no votes")
UNKNOWN_SHARE = 0.1  # synthetic_votes: the share of wrong votes that are "unknown"

_CLASS_OF_COLUMN = np.array([FERPLUS_TO_FER.get(name, -1) for name in VOTE_COLUMNS])  # -1: no FER-2013 class
_EMOTION_COLUMNS = np.flatnonzero(_CLASS_OF_COLUMN >= 0)
_COLUMN_OF_CLASS = np.array([VOTE_COLUMNS.index(name) for name in sorted(FERPLUS_TO_FER, key=FERPLUS_TO_FER.get)])
_NO_VOTES, _TIE = -1, -2  # _top_column's answers besides a column index
_FORMS = {  # form -> (required columns before the votes, optional columns)
    "ferplus-votes": (("entry",), ("fer2013_row", "ferplus_image")),
    "fer2013new": (("Usage", "Image name"), ()),
}
_BY_ENTRY = ("kaggle-zip", "kaggle-folder")
_BY_ROW = ("fer2013-csv", "icml-csv")
_SPLIT_IN_NAME = re.compile(r"(?:^|/)(Training|PublicTest|PrivateTest)_[^/]*$")


@dataclass(frozen=True, eq=False)
class FERPlusVotes:
    """FER+ votes as read: votes (N,10) int64 in VOTE_COLUMNS order, one row per key."""

    votes: np.ndarray
    keys: np.ndarray  # zip entry names ("ferplus-votes") or 0-based fer2013.csv rows ("fer2013new")
    rows: np.ndarray | None  # 0-based fer2013.csv row of each, where the file gives it
    usage: np.ndarray  # FER+'s split of each (from Usage or the entry's file name; "" where unknown)
    lines: np.ndarray  # line of each in the file (the header is line 1)
    form: str  # "ferplus-votes" or "fer2013new"
    source: str
    sha256: str  # checksum of the file
    dropped: int = 0  # fer2013new.csv rows without an Image name, not read

    def __len__(self) -> int:
        return len(self.votes)


@dataclass(frozen=True, eq=False)
class JoinedVotes:
    """FER+ votes aligned with a FERData's faces, and what did not match."""

    votes: np.ndarray  # (N,10) int64 in VOTE_COLUMNS order; zeros where a face has no votes
    has_votes: np.ndarray  # (N,) bool
    missing_by_split: dict[str, int]  # faces without votes, per split
    missing_ids: np.ndarray  # ids of the faces without votes
    unmatched: int  # vote rows that match no face (only a subsample leaves any)

    def summary(self) -> str:
        """One line: faces with votes, faces without them per split, vote rows without a face."""
        missing = ", ".join(f"{split} {count:,}" for split, count in self.missing_by_split.items())
        return (
            f"FER+ votes for {int(self.has_votes.sum()):,} of {len(self.has_votes):,} faces; without votes: "
            f"{missing}; vote rows matching no face: {self.unmatched:,}"
        )


@dataclass(frozen=True)
class ReferencePoints:
    """Accuracies against the FER-2013 labels of simple crowd-based predictors, over the n faces with emotion votes
    (see reference_points). Reference points, not bounds: a predictor that uses more of the votes can score higher."""

    plurality: float  # a predictor that answers each face's most-voted emotion (ties split evenly)
    label_draw: float  # mean p_crowd(label): one random emotion vote agreeing with the label
    best_if_drawn: float  # mean max p_crowd: the most-voted answer's accuracy if labels were crowd draws
    n: int


@dataclass(frozen=True, eq=False)
class VoteShareReference:
    """A multinomial logistic regression from each face's ten vote shares to its FER-2013 label (vote_share_reference)."""

    accuracy: float  # on the scored split's faces with emotion votes
    accuracy_ci95: tuple[float, float]  # percentile bootstrap over those faces
    n: int  # faces scored
    n_fit: int  # faces it was fitted on
    fit_split: str
    split: str
    preds: np.ndarray  # (n,) its answer for each scored face
    scored: np.ndarray  # (faces of split,) bool: which faces of the split were scored (those with emotion votes)


# ---------------------------------------------------------------- finding and reading the votes


def find_ferplus(path: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None) -> Path | None:
    """Where the FER+ votes are: path, else FERPLUS_PATH, else data/, else beside FER-2013 (None: nowhere).

    A folder (given or from FERPLUS_PATH) is searched for VOTE_FILE_NAMES; data_path is passed to find_fer2013.
    """
    origin = "the given path"
    if path is None and os.environ.get(FERPLUS_ENV):
        path, origin = os.environ[FERPLUS_ENV], FERPLUS_ENV
    if path is not None:
        located = Path(path).expanduser()
        if not located.exists():
            raise FERDataError(f"{located}: no such file or folder (from {origin})")
        if located.is_dir():
            found = _votes_in(located)
            if found is None:
                raise FERDataError(f"{located}: no {' or '.join(VOTE_FILE_NAMES)} in this folder (from {origin})")
            return found
        return located
    folders = [fer_data.DATA_DIR]
    fer2013 = fer_data.find_fer2013(data_path)
    if fer2013 is not None:
        folders += [fer2013.parent] if fer2013.is_file() else [fer2013, fer2013.parent]
    for folder in folders:
        found = _votes_in(folder)
        if found is not None:
            return found
    return None


def _votes_in(folder: Path) -> Path | None:
    return next((folder / name for name in VOTE_FILE_NAMES if (folder / name).is_file()), None)


def read_votes(path: str | os.PathLike | None = None) -> FERPlusVotes:
    """FER+ votes from ferplus_votes.csv or fer2013new.csv (told apart by the header), validated.

    Without a path, from where find_ferplus finds them. Every problem is a FERDataError naming the file and line:
    a missing or unknown column, a vote count that is empty, negative, not an integer or not a number, a row whose
    ten counts are all 0, an empty or repeated entry, a repeated fer2013_row, an unknown Usage.
    """
    if path is None:
        path = find_ferplus()
        if path is None:
            raise FERDataError(
                f"no FER+ votes found. Pass a path, set {FERPLUS_ENV}, or put "
                f"{' or '.join(VOTE_FILE_NAMES)} into {fer_data.DATA_DIR} or beside FER-2013."
            )
    path = Path(path).expanduser()
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise FERDataError(f"{where}: cannot read ({error.strerror})") from None
    frame, lines = _read_table(raw, where)
    form = _detect_form(list(frame.columns), where)
    dropped = 0
    if form == "fer2013new":
        rows = np.arange(len(frame), dtype=np.int64)
        kept = (frame["Image name"] != "").to_numpy()
        dropped = int((~kept).sum())
        frame, rows, lines = frame[kept], rows[kept], lines[kept]
        if frame.empty:
            raise FERDataError(f"{where}: no row has an Image name (FER+ dropped every face)")
        usage = frame["Usage"].to_numpy().astype(str)
        unknown = ~np.isin(usage, SPLITS)
        if unknown.any():
            bad = int(np.argmax(unknown))
            raise FERDataError(
                f"{where} line {lines[bad]}: unknown Usage {str(usage[bad])!r} (expected {', '.join(SPLITS)})"
            )
        keys = rows
    else:
        keys = frame["entry"].to_numpy().astype(str)
        empty = keys == ""
        if empty.any():
            raise FERDataError(f"{where} line {lines[int(np.argmax(empty))]}: empty entry")
        _check_unique(np.char.lower(keys), keys, lines, "entry", where)
        rows = None
        if "fer2013_row" in frame.columns:
            text = frame["fer2013_row"].to_numpy().astype(str)
            rows = _parse_rows(text, lines, where)
            _check_unique(rows, text, lines, "fer2013_row", where)
        usage = np.array([match.group(1) if match else "" for match in map(_SPLIT_IN_NAME.search, keys)])
    votes = _parse_counts(frame, lines, where)
    return FERPlusVotes(
        votes=votes,
        keys=keys,
        rows=rows,
        usage=usage,
        lines=lines,
        form=form,
        source=where,
        sha256=hashlib.sha256(raw).hexdigest(),
        dropped=dropped,
    )


def _read_table(raw: bytes, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell as stripped text, blank lines left out, and the line of each row (the header is line 1)."""
    frame = read_csv_text(raw, where, skip_blank_lines=False)
    frame = frame.apply(lambda column: column.str.strip())
    filled = (frame != "").any(axis=1).to_numpy()  # blank lines are read as rows, so row r is line r + 2
    if not filled.any():
        raise FERDataError(f"{where}: empty file (a header but no rows)")
    return frame[filled], np.flatnonzero(filled) + 2


def _detect_form(columns: list[str], where: str) -> str:
    """The form that the header names, after checking it has every column it needs and no other."""
    if "entry" in columns:
        form = "ferplus-votes"
    elif "Usage" in columns or "Image name" in columns:
        form = "fer2013new"
    else:
        raise FERDataError(
            f"{where} line 1: not a FER+ votes header: expected an entry column "
            f"(ferplus_votes.csv) or Usage and Image name (fer2013new.csv); found: {', '.join(columns)}"
        )
    required, optional = _FORMS[form]
    required += VOTE_COLUMNS
    missing = [column for column in required if column not in columns]
    if missing:
        raise FERDataError(f"{where} line 1: no column {', '.join(missing)} ({form} form; found: {', '.join(columns)})")
    unknown = [column for column in columns if column not in required + optional]
    if unknown:
        raise FERDataError(
            f"{where} line 1: unknown column {', '.join(map(repr, unknown))} "
            f"(the {form} form has {', '.join(required + optional)})"
        )
    return form


def _parse_counts(frame: pd.DataFrame, lines: np.ndarray, where: str) -> np.ndarray:
    """The ten vote columns as (N,10) int64, each a whole number >= 0, no row all zeros."""
    cells = frame[list(VOTE_COLUMNS)]
    valid = cells.apply(lambda column: column.str.fullmatch(r"\+?[0-9]{1,9}")).to_numpy(dtype=bool)
    if not valid.all():
        row = int(np.argmin(valid.all(axis=1)))
        column = int(np.argmin(valid[row]))
        value = cells.iat[row, column]
        raise FERDataError(f"{where} line {lines[row]}: {VOTE_COLUMNS[column]} count {value!r} {_count_problem(value)}")
    votes = cells.to_numpy().astype(np.int64)
    silent = votes.sum(axis=1) == 0
    if silent.any():
        raise FERDataError(f"{where} line {lines[int(np.argmax(silent))]}: no votes (all ten counts are 0)")
    return votes


def _count_problem(value: str) -> str:
    """What is wrong with a vote count that is not a whole number >= 0."""
    if not value:
        return "is empty"
    try:
        number = float(value)
    except ValueError:
        return "is not a number"
    if not np.isfinite(number):
        return "is not a number"
    if number < 0:
        return "is negative"
    return "is too large" if re.fullmatch(r"\+?[0-9]+", value) else "is not an integer"


def _parse_rows(values: np.ndarray, lines: np.ndarray, where: str) -> np.ndarray:
    valid = np.array([re.fullmatch(r"[0-9]{1,9}", value) is not None for value in values])
    if not valid.all():
        bad = int(np.argmin(valid))
        raise FERDataError(
            f"{where} line {lines[bad]}: fer2013_row {str(values[bad])!r} is not a row number (0, 1, ...)"
        )
    return values.astype(np.int64)


def _check_unique(values: np.ndarray, shown: np.ndarray, lines: np.ndarray, what: str, where: str) -> None:
    """No value twice; the message names the repeat as shown (the file's text) and both lines."""
    repeated = pd.Index(values).duplicated()
    if repeated.any():
        bad = int(np.argmax(repeated))
        first = int(np.argmax(values == values[bad]))
        raise FERDataError(f"{where} line {lines[bad]}: {what} {str(shown[bad])!r} repeats line {lines[first]}")


# ---------------------------------------------------------------- joining onto FER-2013


def join_votes(data: FERData, votes: FERPlusVotes) -> JoinedVotes:
    """The votes of each face of data (zeros where it has none), matched by entry name or fer2013.csv row.

    A vote row that matches no face is an error when data is a whole data set as loaded (then the votes are for
    another copy), and is counted in JoinedVotes.unmatched when data is a subsample (FERData.subsample).
    Where FER+ gives a face's split, it must equal the split in data.
    """
    face_keys, vote_keys = _join_keys(data, votes)
    position = pd.Index(vote_keys).get_indexer(face_keys)
    has_votes = position >= 0
    matched = position[has_votes]
    split_differs = (votes.usage[matched] != "") & (votes.usage[matched] != data.usage[has_votes])
    if split_differs.any():
        bad = int(np.argmax(split_differs))
        face = int(np.flatnonzero(has_votes)[bad])
        raise FERDataError(
            f"{votes.source} line {votes.lines[matched[bad]]}: FER+ puts this face in "
            f"{votes.usage[matched[bad]]}, but {data.source} has {data.ids[face]} in "
            f"{data.usage[face]}: the two do not list the faces in the same order"
        )
    unmatched = np.ones(len(votes), dtype=bool)
    unmatched[matched] = False
    if unmatched.any() and "source_sha256" not in data.extras:
        first = int(np.argmax(unmatched))
        key = f"row {votes.keys[first]}" if votes.form == "fer2013new" else repr(str(votes.keys[first]))
        raise FERDataError(
            f"{votes.source} line {votes.lines[first]}: {key} matches no face of "
            f"{data.source} ({int(unmatched.sum()):,} of {len(votes):,} vote rows match none). "
            f"It is a whole data set, not a subsample, so these votes are for another copy."
        )
    aligned = np.zeros((len(data), len(VOTE_COLUMNS)), dtype=np.int64)
    aligned[has_votes] = votes.votes[matched]
    missing = {split: int(np.sum(~has_votes & (data.usage == split))) for split in SPLITS}
    return JoinedVotes(
        votes=aligned,
        has_votes=has_votes,
        missing_by_split=missing,
        missing_ids=data.ids[~has_votes],
        unmatched=int(unmatched.sum()),
    )


def _join_keys(data: FERData, votes: FERPlusVotes) -> tuple[np.ndarray, np.ndarray]:
    """The keys that match data's faces to the vote rows: lower-cased entry names, or fer2013.csv rows."""
    if not data.is_fer2013:
        raise ValueError("synthetic faces have no FER+ votes; draw stand-in votes with synthetic_votes(data)")
    if data.ids is None:
        raise ValueError(f"{data.source}: the faces have no ids, so FER+ votes cannot be matched to them")
    if data.form in _BY_ENTRY:
        if votes.form != "ferplus-votes":
            raise FERDataError(
                f"{votes.source}: keyed by fer2013.csv's row order, which {data.source} ({data.form}) "
                f"does not keep; join ferplus_votes.csv (keyed by zip entry) instead"
            )
        return np.char.lower(data.ids.astype(str)), np.char.lower(votes.keys.astype(str))
    if data.form in _BY_ROW:
        if votes.rows is None:
            raise FERDataError(
                f"{votes.source}: no fer2013_row column, so it cannot be joined by row onto {data.source} ({data.form})"
            )
        return np.char.rpartition(data.ids.astype(str), ":")[:, 2].astype(np.int64) - 2, votes.rows
    raise FERDataError(
        f"{data.source}: FER+ votes join onto the Kaggle zip or folder (by entry) or onto "
        f"fer2013.csv or icml_face_data.csv (by row), not onto the {data.form} form"
    )


def attach_votes(data: FERData, votes: FERPlusVotes | np.ndarray) -> FERData:
    """data with the votes of its faces in extras[VOTES_KEY], (N,10), kept aligned by FERData.subsample.

    FERPlusVotes are joined with join_votes; an array (e.g. from synthetic_votes) must already be aligned.
    """
    aligned = join_votes(data, votes).votes if isinstance(votes, FERPlusVotes) else _check_votes(votes, len(data))
    per_image = tuple(dict.fromkeys((*data.extras.get("per_image", ()), VOTES_KEY)))
    return replace(data, extras={**data.extras, VOTES_KEY: aligned, "per_image": per_image})


# ---------------------------------------------------------------- statistics


def _check_votes(votes: np.ndarray, n: int | None = None) -> np.ndarray:
    """votes as an (N,10) int64 array of counts >= 0 (N = n where given)."""
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS) or (n is not None and len(votes) != n):
        rows = "N" if n is None else str(n)
        raise ValueError(f"votes must be ({rows},{len(VOTE_COLUMNS)}) counts in VOTE_COLUMNS order, got {votes.shape}")
    if not np.issubdtype(votes.dtype, np.integer) or (votes.size and votes.min() < 0):
        raise ValueError("votes must be whole numbers >= 0")
    return votes.astype(np.int64, copy=False)


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    valid = labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer)
    if not valid or np.any((labels < 0) | (labels >= NUM_CLASSES)):
        raise ValueError(f"labels must be ({n},) FER-2013 class indices 0..{NUM_CLASSES - 1}")
    return labels


def _top_column(votes: np.ndarray, ties: str) -> np.ndarray:
    """Each face's most-voted column, _NO_VOTES without votes, _TIE for a tie under ties="exclude"."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {TIE_RULES}")
    votes = _check_votes(votes)
    top = votes.max(axis=1, initial=0)
    column = np.where(top > 0, votes.argmax(axis=1), _NO_VOTES)
    if ties == "exclude":
        column[(top > 0) & ((votes == top[:, None]).sum(axis=1) > 1)] = _TIE
    return column


def crowd_plurality(votes: np.ndarray, ties: str = "first") -> np.ndarray:
    """FER-2013 class of each face's most-voted column, -1 where that is contempt, unknown, NF, a tie or nothing.

    ties="first": a tie goes to the first tied column in VOTE_COLUMNS order (neutral, happiness, surprise,
    sadness, anger, disgust, fear, contempt, unknown, NF), the convention of the data README's numbers;
    ties="exclude": any tie for the most votes gives -1.
    """
    column = _top_column(votes, ties)
    return np.where(column >= 0, _CLASS_OF_COLUMN[np.maximum(column, 0)], -1)


def crowd_outcomes(votes: np.ndarray, usage: np.ndarray, ties: str = "first") -> pd.DataFrame:
    """Faces per split (rows) by what the crowd's most-voted column is (columns: OUTCOMES).

    "emotion": one of FER-2013's seven (the faces crowd_plurality decides); "contempt", "unknown", "NF"; "tie": a
    tie for the most votes under ties="exclude"; "no votes". Each row sums to the faces of its split.
    """
    column = _top_column(votes, ties)
    usage = _check_usage(usage, len(column))
    outcome = np.full(len(column), "emotion", dtype=object)
    for name in ("contempt", "unknown", "NF"):
        outcome[column == VOTE_COLUMNS.index(name)] = name
    outcome[column == _TIE] = "tie"
    outcome[column == _NO_VOTES] = "no votes"
    splits = [split for split in SPLITS if np.any(usage == split)]
    table = pd.crosstab(
        pd.Categorical(usage, categories=splits), pd.Categorical(outcome, categories=OUTCOMES), dropna=False
    )
    table.index.name, table.columns.name = "split", "crowd's top vote"
    return table


def _check_usage(usage: np.ndarray, n: int) -> np.ndarray:
    usage = np.asarray(usage).astype(str)
    if usage.shape != (n,) or not np.isin(usage, SPLITS).all():
        raise ValueError(f"usage must be ({n},) split names, each one of {', '.join(SPLITS)}")
    return usage


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N,7) share of each face's votes per FER-2013 class, from the seven emotion columns only; NaN without any.

    Contempt, unknown and NF votes are left out, so each row with an emotion vote sums to 1.
    """
    votes = _check_votes(votes)
    counts = np.zeros((len(votes), NUM_CLASSES))
    counts[:, _CLASS_OF_COLUMN[_EMOTION_COLUMNS]] = votes[:, _EMOTION_COLUMNS]
    with np.errstate(invalid="ignore"):
        return counts / counts.sum(axis=1, keepdims=True)


def vote_entropy(votes: np.ndarray) -> np.ndarray:
    """(N,) entropy in bits of vote_distribution (0: unanimous, log2(7) at most); NaN without emotion votes."""
    p = vote_distribution(votes)
    return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=1)


def _wilson(agree: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    interval = binomtest(agree, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def agreement(labels: np.ndarray, votes: np.ndarray, usage: np.ndarray, ties: str = "first") -> pd.DataFrame:
    """How often the FER-2013 label equals the crowd's plurality, per split and per FER-2013 label class.

    Index (split, class), class "all" first. Columns: n (faces with an emotion plurality, which alone are
    counted), agree, rate = agree / n, ci_low and ci_high (95% Wilson interval), undecided (faces left out:
    plurality contempt, unknown, NF, a tie under ties="exclude", or no votes).
    """
    plurality = crowd_plurality(votes, ties)
    labels = _check_labels(labels, len(plurality))
    usage = _check_usage(usage, len(plurality))
    decided = plurality >= 0
    agrees = decided & (plurality == labels)
    rows, index = [], []
    for split in [split for split in SPLITS if np.any(usage == split)]:
        in_split = usage == split
        groups = [("all", in_split)] + [(name, in_split & (labels == c)) for c, name in enumerate(CLASS_NAMES)]
        for name, group in groups:
            n, agree = int(np.sum(group & decided)), int(np.sum(group & agrees))
            low, high = _wilson(agree, n)
            rows.append(
                {
                    "n": n,
                    "agree": agree,
                    "rate": agree / n if n else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "undecided": int(np.sum(group & ~decided)),
                }
            )
            index.append((split, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["split", "class"]))


def label_confusion(labels: np.ndarray, plurality: np.ndarray) -> pd.DataFrame:
    """7x7 face counts: FER-2013 label (rows) by crowd plurality (columns), faces with plurality -1 left out."""
    plurality = np.asarray(plurality)
    labels = _check_labels(labels, len(plurality))
    if plurality.ndim != 1 or np.any((plurality < -1) | (plurality >= NUM_CLASSES)):
        raise ValueError("plurality must be (N,) FER-2013 class indices or -1, as crowd_plurality gives")
    decided = plurality >= 0
    return pd.DataFrame(
        confusion(labels[decided], plurality[decided]),
        index=pd.Index(CLASS_NAMES, name="FER-2013 label"),
        columns=pd.Index(CLASS_NAMES, name="crowd plurality"),
    )


def reference_points(labels: np.ndarray, votes: np.ndarray) -> ReferencePoints:
    """Expected accuracies against the single FER-2013 labels of predictors that know each face's crowd distribution p.

    Over the n faces with at least one vote for FER-2013's seven emotions (p = vote_distribution):
    - plurality: mean over faces of [label is p's most-voted class], a tie of k classes counting 1/k when the label
      is among them: the accuracy of a predictor that answers p's most-voted class (ties at random);
    - label_draw: mean over faces of p(label): the chance that one random annotator's emotion vote equals the
      label, i.e. the accuracy of a predictor that answers with one random crowd vote;
    - best_if_drawn: mean over faces of max p: the accuracy of the most-voted answer if each FER-2013 label were
      one random draw from p.
    Each is one way of reading the votes, not a bound on accuracy: FER-2013's labels are not draws from p (its
    labellers read many faces the crowd calls Neutral as Sad, Fear or Angry), so a predictor that learns how the
    votes map onto the labels scores higher (vote_share_reference).
    """
    p = vote_distribution(votes)
    labels = _check_labels(labels, len(p))
    voted = ~np.isnan(p[:, 0])
    p, labels = p[voted], labels[voted]
    if len(p) == 0:
        return ReferencePoints(plurality=float("nan"), label_draw=float("nan"), best_if_drawn=float("nan"), n=0)
    top = p.max(axis=1)
    tied = p == top[:, None]
    rows = np.arange(len(p))
    return ReferencePoints(
        plurality=float(np.mean(tied[rows, labels] / tied.sum(axis=1))),
        label_draw=float(np.mean(p[rows, labels])),
        best_if_drawn=float(np.mean(top)),
        n=len(p),
    )


VOTE_SHARE_C = 1.0  # vote_share_reference's inverse regularisation strength (scikit-learn's default), fixed, not tuned


def vote_shares(votes: np.ndarray) -> np.ndarray:
    """(N,10) share of each face's votes in each of FER+'s ten columns (contempt, unknown and NF included); zeros
    for a face without votes."""
    votes = _check_votes(votes)
    return votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)


def vote_share_reference(
    labels: np.ndarray,
    votes: np.ndarray,
    usage: np.ndarray,
    fit_split: str = "Training",
    split: str = "PrivateTest",
    seed: int = 0,
) -> VoteShareReference:
    """A reference point that learns how the crowd's votes map onto FER-2013's labels: a multinomial logistic
    regression from each face's ten vote shares (vote_shares) to its FER-2013 label, fitted on the fit_split faces
    with emotion votes and scored on the split's faces with emotion votes (the faces reference_points uses), with a
    percentile-bootstrap 95% interval over those faces. It sees only the votes, never a pixel, and is fitted
    on other faces than it is scored on; C = VOTE_SHARE_C, fixed.
    """
    from sklearn.linear_model import LogisticRegression

    from .statistics import bootstrap_ci

    votes = _check_votes(votes)
    labels = _check_labels(labels, len(votes))
    usage = _check_usage(usage, len(votes))
    voted = ~np.isnan(vote_distribution(votes)[:, 0])
    fit, scored = (usage == fit_split) & voted, (usage == split) & voted
    if not fit.any() or not scored.any():
        raise ValueError(f"vote_share_reference needs {fit_split} and {split} faces with emotion votes")
    model = LogisticRegression(C=VOTE_SHARE_C, max_iter=2000, random_state=seed)
    model.fit(vote_shares(votes[fit]), labels[fit])
    preds = model.predict(vote_shares(votes[scored])).astype(np.int64)
    truth = labels[scored]
    low, high = bootstrap_ci(truth, preds)
    return VoteShareReference(
        accuracy=float(np.mean(preds == truth)),
        accuracy_ci95=(float(low), float(high)),
        n=int(scored.sum()),
        n_fit=int(fit.sum()),
        fit_split=fit_split,
        split=split,
        preds=preds,
        scored=scored[usage == split],
    )


NEUTRAL = CLASS_NAMES.index("Neutral")


def boundary_shift(labels: np.ndarray, votes: np.ndarray, toward: int = NEUTRAL) -> pd.DataFrame:
    """Where the crowd draws the class boundaries elsewhere than FER-2013: per FER-2013 label class, over the faces
    with an emotion plurality (crowd_plurality, ties to the first column).

    Index: class. Columns: n (faces of that label with an emotion plurality); to_<toward> (share of them whose
    plurality is the class `toward`, Neutral by default) with its 95% Wilson interval (ci_low, ci_high);
    label_share (the class's share of all those faces' labels) and plurality_share (its share of their pluralities).
    """
    plurality = crowd_plurality(votes)
    labels = _check_labels(labels, len(plurality))
    decided = plurality >= 0
    labels, plurality = labels[decided], plurality[decided]
    rows = []
    for c in range(NUM_CLASSES):
        mine = labels == c
        moved = int(np.sum(plurality[mine] == toward))
        low, high = _wilson(moved, int(mine.sum()))
        rows.append(
            {
                "n": int(mine.sum()),
                f"to_{CLASS_NAMES[toward]}": moved / mine.sum() if mine.any() else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "label_share": float(np.mean(mine)) if len(labels) else float("nan"),
                "plurality_share": float(np.mean(plurality == c)) if len(labels) else float("nan"),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(CLASS_NAMES, name="class"))


def disagreement_toward(labels: np.ndarray, votes: np.ndarray, toward: int = NEUTRAL) -> dict:
    """Of the faces whose FER-2013 label differs from the crowd's emotion plurality, how many the crowd calls
    `toward` (Neutral by default): {"disagree", "toward", "share"}."""
    plurality = crowd_plurality(votes)
    labels = _check_labels(labels, len(plurality))
    disagree = (plurality >= 0) & (plurality != labels)
    toward_count = int(np.sum(disagree & (plurality == toward)))
    n = int(disagree.sum())
    return {"disagree": n, "toward": toward_count, "share": toward_count / n if n else float("nan")}


def crowd_scores(labels: np.ndarray, preds: np.ndarray, votes: np.ndarray, ties: str = "first") -> dict:
    """A model's accuracy against the FER-2013 labels, against the crowd's plurality, and where the two agree.

    - accuracy: preds == labels over all n faces;
    - crowd_accuracy: preds == crowd plurality over the n_crowd faces with an emotion plurality;
    - agreed_accuracy: over the n_agreed faces whose label equals the plurality (both judges say the same);
    - errors: faces where preds != labels; crowd_sides_with_model: those among them where the model answers the
      crowd's plurality (so the label is not it), and crowd_share_of_errors = crowd_sides_with_model / errors.
    """
    plurality = crowd_plurality(votes, ties)
    labels = _check_labels(labels, len(plurality))
    preds = _check_labels(preds, len(plurality))
    decided = plurality >= 0
    agreed = decided & (plurality == labels)
    errors = preds != labels
    sides = errors & decided & (preds == plurality)

    def rate(hits: np.ndarray, among: np.ndarray) -> float:
        return float(hits[among].mean()) if among.any() else float("nan")

    return {
        "n": len(labels),
        "accuracy": rate(preds == labels, np.ones(len(labels), dtype=bool)),
        "n_crowd": int(decided.sum()),
        "crowd_accuracy": rate(preds == plurality, decided),
        "n_agreed": int(agreed.sum()),
        "agreed_accuracy": rate(preds == labels, agreed),
        "errors": int(errors.sum()),
        "crowd_sides_with_model": int(sides.sum()),
        "crowd_share_of_errors": rate(sides, errors),
    }


def crowd_score_table(
    results_by_model: dict, labels: np.ndarray, votes: np.ndarray, split: str = "PrivateTest"
) -> pd.DataFrame:
    """crowd_scores of every model on one split, averaged over its runs (seeds); one row per model.

    results_by_model: model -> runs (RunResults, as report.collect_results gives); labels and votes: the split's
    FER-2013 labels and crowd votes, in the order the runs scored the split (a run scored on other faces is an error).
    """
    rows = {}
    for model, runs in results_by_model.items():
        per_run = []
        for run in runs:
            if not np.array_equal(run.labels[split], labels):
                raise ValueError(f"{model} (seed {run.seed}) scored other {split} faces than the votes are for")
            per_run.append(crowd_scores(labels, run.preds(split), votes))
        if per_run:
            rows[model] = {"seeds": len(per_run), **pd.DataFrame(per_run).mean().to_dict()}
    columns = [
        "seeds",
        "n",
        "accuracy",
        "n_crowd",
        "crowd_accuracy",
        "n_agreed",
        "agreed_accuracy",
        "errors",
        "crowd_sides_with_model",
        "crowd_share_of_errors",
    ]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("model")
    for column in ("seeds", "n", "n_crowd", "n_agreed", "errors", "crowd_sides_with_model"):
        if np.all(table[column] == table[column].round()):  # counts stay whole unless seeds average them
            table[column] = table[column].astype(int)
    return table


def target_comparison(
    pairs: dict, votes: np.ndarray, usage: np.ndarray, splits: tuple[str, ...] = ("PublicTest", "PrivateTest")
) -> pd.DataFrame:
    """Each crowd-target run against its label twin, per split, scored against FER-2013's labels and the crowd.

    pairs: model -> {"labels": run, "crowd": run} (train.crowd_runs); votes, usage: for all faces of the data the
    runs scored. Index (model, split); for each judge ("" = FER-2013's labels, "crowd_" = the crowd plurality, on the
    faces that have an emotion plurality): both runs' accuracies, delta (crowd run minus label run, in points) and
    McNemar's p on the same faces.
    """
    usage = _check_usage(usage, len(_check_votes(votes)))
    rows, index = [], []
    for model, runs in pairs.items():
        label_run, crowd_run = runs["labels"], runs["crowd"]
        for split in splits:
            labels = label_run.labels[split]
            if not np.array_equal(crowd_run.labels[split], labels) or int(np.sum(usage == split)) != len(labels):
                raise ValueError(f"{model}: the two runs and the votes do not cover the same {split} faces")
            plurality = crowd_plurality(votes[usage == split])
            decided = plurality >= 0
            row = {"n": len(labels), "n_crowd": int(decided.sum())}
            for judge, truth, faces in (("", labels, slice(None)), ("crowd_", plurality, decided)):
                a, b = label_run.preds(split)[faces], crowd_run.preds(split)[faces]
                acc_a, acc_b = float(np.mean(a == truth[faces])), float(np.mean(b == truth[faces]))
                row |= {
                    f"{judge}label_run": acc_a,
                    f"{judge}crowd_run": acc_b,
                    f"{judge}delta": 100 * (acc_b - acc_a),
                    f"{judge}mcnemar_p": mcnemar(truth[faces], a, b)["p_value"],
                }
            rows.append(row)
            index.append((model, split))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["model", "split"]))


def target_change(delta: float, p_value: float) -> str:
    """What training on the crowd's votes did to one score, in words: better or worse where McNemar's p is under
    SIGNIFICANCE, within chance otherwise (delta in points, crowd run minus label run)."""
    if p_value >= SIGNIFICANCE:
        return f"within chance ({delta:+.1f} points, p = {p_value:.2g})"
    return f"**{'better' if delta > 0 else 'worse'}** ({delta:+.1f} points, p = {p_value:.2g})"


# ---------------------------------------------------------------- a stand-in for the synthetic faces


def synthetic_votes(data: FERData, seed: int = 0, noise: float = 0.3, annotators: int = 10) -> np.ndarray:
    """Stand-in crowd votes for synthetic faces (FER+ has none for them): (N,10) int64 in VOTE_COLUMNS order.

    Not FER+: a simple noise model, so that the FER+ statistics run on the synthetic data. Each of `annotators`
    annotators votes independently: the face's own expression (data.labels) with probability 1 - noise, else
    "unknown" with probability noise * UNKNOWN_SHARE, else one of the six other emotions, each with probability
    noise * (1 - UNKNOWN_SHARE) / 6; never contempt or NF. A fraction 1 - noise of all votes names the true class.
    """
    if data.form != "synthetic":
        raise ValueError(f"{data.source} is not synthetic: read its FER+ votes with read_votes and join_votes")
    if not 0.0 <= noise <= 1.0 or annotators < 1:
        raise ValueError(f"need 0 <= noise <= 1 and annotators >= 1, got noise={noise}, annotators={annotators}")
    chances = np.zeros((len(data), len(VOTE_COLUMNS)))
    chances[:, _EMOTION_COLUMNS] = noise * (1.0 - UNKNOWN_SHARE) / (NUM_CLASSES - 1)
    chances[:, VOTE_COLUMNS.index("unknown")] = noise * UNKNOWN_SHARE
    chances[np.arange(len(data)), _COLUMN_OF_CLASS[data.labels]] = 1.0 - noise
    return np.random.default_rng(seed).multinomial(annotators, chances).astype(np.int64)
