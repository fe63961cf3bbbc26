"""FER+ crowd votes: reading, validating and joining them onto FER-2013 (their statistics are `label_noise`'s).

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

from fer_helpers.core import paths
from fer_helpers.core.paths import FERPLUS_ENV
from fer_helpers.data import fer2013 as fer_data
from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES, SPLITS, FERData, FERDataError, read_csv_text

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
VOTE_FILE_NAMES: tuple[str, ...] = ("ferplus_votes.csv", "fer2013new.csv")
VOTES_KEY = "ferplus_votes"  # FERData.extras key of the votes that attach_votes aligns with the faces
TIE_RULES: tuple[str, ...] = ("first", "exclude")
UNKNOWN_SHARE = 0.1  # synthetic_votes: the share of wrong votes that are "unknown"

_CLASS_OF_COLUMN = np.array([FERPLUS_TO_FER.get(name, -1) for name in VOTE_COLUMNS])  # -1: no FER-2013 class
_EMOTION_COLUMNS = np.flatnonzero(_CLASS_OF_COLUMN >= 0)
_COLUMN_OF_CLASS = np.array([VOTE_COLUMNS.index(name) for name in sorted(FERPLUS_TO_FER, key=FERPLUS_TO_FER.get)])
NO_VOTES, TIE = -1, -2  # top_column's answers besides a column index
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
    names: np.ndarray | None = None  # FER+'s image name of each (Image name, or ferplus_image), where given

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
    folders = [paths.DATA_DIR]
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
                f"{' or '.join(VOTE_FILE_NAMES)} into {paths.DATA_DIR} or beside FER-2013."
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
        names = frame["Image name"].to_numpy().astype(str)
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
        names = frame["ferplus_image"].to_numpy().astype(str) if "ferplus_image" in frame.columns else None
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
        names=names,
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
    aligned = join_votes(data, votes).votes if isinstance(votes, FERPlusVotes) else check_votes(votes, len(data))
    per_image = tuple(dict.fromkeys((*data.extras.get("per_image", ()), VOTES_KEY)))
    return replace(data, extras={**data.extras, VOTES_KEY: aligned, "per_image": per_image})


# ---------------------------------------------------------------- statistics


def check_votes(votes: np.ndarray, n: int | None = None) -> np.ndarray:
    """votes as an (N,10) int64 array of counts >= 0 (N = n where given)."""
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS) or (n is not None and len(votes) != n):
        rows = "N" if n is None else str(n)
        raise ValueError(f"votes must be ({rows},{len(VOTE_COLUMNS)}) counts in VOTE_COLUMNS order, got {votes.shape}")
    if not np.issubdtype(votes.dtype, np.integer) or (votes.size and votes.min() < 0):
        raise ValueError("votes must be whole numbers >= 0")
    return votes.astype(np.int64, copy=False)


def top_column(votes: np.ndarray, ties: str) -> np.ndarray:
    """Each face's most-voted column, NO_VOTES without votes, TIE for a tie under ties="exclude"."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {TIE_RULES}")
    votes = check_votes(votes)
    top = votes.max(axis=1, initial=0)
    column = np.where(top > 0, votes.argmax(axis=1), NO_VOTES)
    if ties == "exclude":
        column[(top > 0) & ((votes == top[:, None]).sum(axis=1) > 1)] = TIE
    return column


def crowd_plurality(votes: np.ndarray, ties: str = "first") -> np.ndarray:
    """FER-2013 class of each face's most-voted column, -1 where that is contempt, unknown, NF, a tie or nothing.

    ties="first": a tie goes to the first tied column in VOTE_COLUMNS order (neutral, happiness, surprise,
    sadness, anger, disgust, fear, contempt, unknown, NF), the convention of the data README's numbers;
    ties="exclude": any tie for the most votes gives -1.
    """
    column = top_column(votes, ties)
    return np.where(column >= 0, _CLASS_OF_COLUMN[np.maximum(column, 0)], -1)


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N,7) share of each face's votes per FER-2013 class, from the seven emotion columns only; NaN without any.

    Contempt, unknown and NF votes are left out, so each row with an emotion vote sums to 1.
    """
    votes = check_votes(votes)
    counts = np.zeros((len(votes), NUM_CLASSES))
    counts[:, _CLASS_OF_COLUMN[_EMOTION_COLUMNS]] = votes[:, _EMOTION_COLUMNS]
    with np.errstate(invalid="ignore"):
        return counts / counts.sum(axis=1, keepdims=True)


def vote_entropy(votes: np.ndarray) -> np.ndarray:
    """(N,) entropy in bits of vote_distribution (0: unanimous, log2(7) at most); NaN without emotion votes."""
    p = vote_distribution(votes)
    return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=1)


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
