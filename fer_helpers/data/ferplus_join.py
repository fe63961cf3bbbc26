"""FER+ votes keyed by Kaggle zip entry, built from the files people have: ``fer2013new.csv`` + ``fer2013.csv`` + a zip.

FER+'s ``fer2013new.csv`` keeps the row order of the original ``fer2013.csv``, but the Kaggle zip (or folder) names
its faces by entry, in another order. The zip's JPEGs were encoded from ``fer2013.csv``'s pixels, so each row finds
its entry by its pixels: the nearest entry of the same split and label by mean absolute difference in grey levels
(MAD, after decoding). A lossless copy matches exactly (MAD 0); Kaggle's JPEGs (quality 95) lie about 1.3 grey
levels away, and distinct faces tens of levels apart (the data README gives the distributions measured on
FER-2013). A row is matched when its nearest entry lies within ``tolerance`` and every other entry lies more than
``margin`` further away; a row with a rival inside that margin (identical twins: one face stored twice, whose
votes cannot be told apart) is ambiguous, a row without an entry within the tolerance unmatched, and an entry
that two rows would both take is ambiguous for both. Ambiguous and unmatched rows are counted per split and left
out, never guessed.

The search is exact, not approximate: each face is summarised by its 8x8 block means, whose mean absolute
difference is never larger than the faces' own (the mean of differences is at most the mean of their absolute
values), so a radius search on these 64 numbers (scikit-learn's NearestNeighbors, Manhattan distance) finds every
entry that could lie within ``tolerance + margin``, and only those are compared pixel by pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.core.files import atomic_open
from fer_helpers.data.fer2013 import IMAGE_SIZE, NUM_CLASSES, SPLITS, FERData, FERDataError, load_fer2013
from fer_helpers.data.ferplus import VOTE_COLUMNS, FERPlusVotes, read_votes

TOLERANCE = 3.0  # grey levels (MAD): the farthest a row's entry may lie; JPEG quality 95 gives about 1.3
MARGIN = 3.0  # grey levels: how much farther every other entry must lie; >= TOLERANCE, so no match is wrong
STATUSES: tuple[str, ...] = ("exact", "within tolerance", "ambiguous", "unmatched")
OUTPUT_COLUMNS: tuple[str, ...] = ("entry", "fer2013_row", "ferplus_image", *VOTE_COLUMNS)
_BLOCK = 6  # pixels per side of the coarse key's blocks: 48 / 6 = 8x8 block means
_ROW_FORMS = ("fer2013-csv", "icml-csv")
_ENTRY_FORMS = ("kaggle-zip", "kaggle-folder")


@dataclass(frozen=True, eq=False)
class PixelMatch:
    """For each face of one set (rows), its entry in another (entries) by pixels, and how sure that is."""

    entry: np.ndarray  # (R,) int64 index into the entries, -1 where ambiguous or unmatched
    status: np.ndarray  # (R,) one of STATUSES
    nearest: np.ndarray  # (R,) MAD to the nearest entry within reach (inf: none within tolerance + margin)
    second: np.ndarray  # (R,) MAD to the next nearest entry within reach (inf: none)


@dataclass(frozen=True, eq=False)
class PixelJoin:
    """fer2013new.csv's votes joined onto a Kaggle zip's entries, and what could not be joined."""

    table: pd.DataFrame  # OUTPUT_COLUMNS, one row per matched fer2013.csv row with votes, in row order
    counts: pd.DataFrame  # per split (rows) and STATUSES plus the rows FER+ dropped and the entries left over
    match: PixelMatch  # of every fer2013.csv row (with or without votes)
    tolerance: float
    margin: float

    def summary(self) -> str:
        """The counts per split as a table, with the tolerance and the distances measured."""
        matched = self.match.status == STATUSES[1]
        spread = ""
        if matched.any():
            nearest = self.match.nearest[matched]
            spread = (
                f"; the matches within tolerance lie {np.median(nearest):.2f} grey levels away (median), "
                f"{nearest.max():.2f} at most"
            )
        rivals = self.match.second[self.match.status != STATUSES[3]]
        rivals = rivals[np.isfinite(rivals) & (rivals > 0)]
        closest = f"; the nearest rival entry of a matched or ambiguous row {rivals.min():.2f}" if len(rivals) else ""
        return (
            f"{self.counts.to_string()}\n"
            f"Mean absolute difference after decoding: tolerance {self.tolerance:g}, margin {self.margin:g} grey "
            f"levels{spread}{closest}. Ambiguous and unmatched rows are left out."
        )


def coarse_key(images: np.ndarray) -> np.ndarray:
    """(N,64) float64 means of each face's 6x6-pixel blocks: their mean absolute difference bounds the faces' from below."""
    n = len(images)
    side = IMAGE_SIZE // _BLOCK
    blocks = images.reshape(n, side, _BLOCK, side, _BLOCK).astype(np.float64)
    return blocks.mean(axis=(2, 4)).reshape(n, side * side)


def match_by_pixels(
    rows: np.ndarray, entries: np.ndarray, tolerance: float = TOLERANCE, margin: float = MARGIN
) -> PixelMatch:
    """Each face of rows (R,48,48) uint8 matched to its nearest face of entries (E,48,48) uint8 by MAD, or not.

    Matched: the nearest entry lies within tolerance and every other more than margin further; each entry goes
    to one row at most (two rows that both take it are ambiguous). Exact search, see the module's docstring.
    """
    from sklearn.neighbors import NearestNeighbors

    if tolerance < 0 or margin <= 0:
        raise ValueError(f"need tolerance >= 0 and margin > 0, got tolerance={tolerance}, margin={margin}")
    n_rows = len(rows)
    entry = np.full(n_rows, -1, dtype=np.int64)
    status = np.full(n_rows, STATUSES[3], dtype=object)
    nearest = np.full(n_rows, np.inf)
    second = np.full(n_rows, np.inf)
    if n_rows == 0 or len(entries) == 0:
        return PixelMatch(entry, status.astype(str), nearest, second)
    reach = tolerance + margin
    blocks = (IMAGE_SIZE // _BLOCK) ** 2
    # the block means' Manhattan distance / blocks <= MAD; a hair more radius keeps rounding on the safe side
    index = NearestNeighbors(radius=reach * blocks * (1 + 1e-9) + 1e-6, metric="manhattan")
    index.fit(coarse_key(entries))
    candidates = index.radius_neighbors(coarse_key(rows), return_distance=False)
    flat_entries = entries.reshape(len(entries), -1).astype(np.int16)
    for row, (face, found) in enumerate(zip(rows.reshape(n_rows, -1).astype(np.int16), candidates, strict=True)):
        if len(found) == 0:
            continue
        distances = np.abs(flat_entries[found] - face).mean(axis=1)
        found, distances = found[distances <= reach], distances[distances <= reach]  # the bound's false alarms out
        if len(found) == 0:
            continue
        order = np.argsort(distances, kind="stable")
        nearest[row] = distances[order[0]]
        second[row] = distances[order[1]] if len(order) > 1 else np.inf
        if nearest[row] > tolerance:
            continue
        if second[row] <= nearest[row] + margin:
            status[row] = STATUSES[2]
            continue
        entry[row] = found[order[0]]
        status[row] = STATUSES[0] if nearest[row] == 0 else STATUSES[1]
    taken = entry[entry >= 0]
    shared = np.isin(entry, taken[pd.Index(taken).duplicated(keep=False)]) & (entry >= 0)
    entry[shared] = -1
    status[shared] = STATUSES[2]
    return PixelMatch(entry, status.astype(str), nearest, second)


def join_by_pixels(
    votes: FERPlusVotes, table: FERData, kaggle: FERData, tolerance: float = TOLERANCE, margin: float = MARGIN
) -> PixelJoin:
    """fer2013new.csv's votes (keyed by fer2013.csv row) keyed by the Kaggle zip's entries instead, by pixels.

    table is the fer2013.csv (or icml_face_data.csv) that fer2013new.csv follows row for row; kaggle is the zip or
    folder. Every row of table is matched within its split and label; only rows with votes are written.
    """
    _check_forms(votes, table, kaggle)
    table_rows = _csv_rows(table)
    if len(votes) + votes.dropped != len(table) or not np.array_equal(table_rows, np.arange(len(table))):
        raise FERDataError(
            f"{votes.source} has {len(votes) + votes.dropped:,} rows but {table.source} has {len(table):,}: "
            f"fer2013new.csv follows the original fer2013.csv row for row, so these are not the same copy"
        )
    split_differs = votes.usage != table.usage[votes.keys]
    if split_differs.any():
        bad = int(np.argmax(split_differs))
        raise FERDataError(
            f"{votes.source} line {votes.lines[bad]}: Usage {votes.usage[bad]}, but row {votes.keys[bad]} of "
            f"{table.source} is {table.usage[votes.keys[bad]]}: the two files do not follow the same row order"
        )
    entry = np.full(len(table), -1, dtype=np.int64)
    status = np.full(len(table), STATUSES[3], dtype=object)
    nearest, second = np.full(len(table), np.inf), np.full(len(table), np.inf)
    for split in SPLITS:
        for label in range(NUM_CLASSES):
            mine = np.flatnonzero((table.usage == split) & (table.labels == label))
            theirs = np.flatnonzero((kaggle.usage == split) & (kaggle.labels == label))
            found = match_by_pixels(table.images[mine], kaggle.images[theirs], tolerance, margin)
            entry[mine] = np.where(found.entry >= 0, theirs[np.maximum(found.entry, 0)], -1)
            status[mine], nearest[mine], second[mine] = found.status, found.nearest, found.second
    match = PixelMatch(entry, status.astype(str), nearest, second)
    has_votes = np.zeros(len(table), dtype=bool)
    has_votes[votes.keys] = True
    counts = pd.DataFrame(0, index=pd.Index(SPLITS, name="split"), columns=[*STATUSES, "no votes", "entries left"])
    for split in SPLITS:
        in_split = table.usage == split
        for name in STATUSES:
            counts.loc[split, name] = int(np.sum(in_split & has_votes & (match.status == name)))
        counts.loc[split, "no votes"] = int(np.sum(in_split & ~has_votes))
        joined = entry[in_split & has_votes & (entry >= 0)]
        counts.loc[split, "entries left"] = int(np.sum(kaggle.usage == split)) - len(joined)
    joined_rows = votes.keys[entry[votes.keys] >= 0]
    position = pd.Index(votes.keys).get_indexer(joined_rows)
    frame = pd.DataFrame(
        {
            "entry": kaggle.ids[entry[joined_rows]].astype(str),
            "fer2013_row": joined_rows,
            "ferplus_image": votes.names[position] if votes.names is not None else "",
        }
    )
    frame[list(VOTE_COLUMNS)] = votes.votes[position]
    return PixelJoin(table=frame, counts=counts, match=match, tolerance=tolerance, margin=margin)


def _check_forms(votes: FERPlusVotes, table: FERData, kaggle: FERData) -> None:
    if votes.form != "fer2013new":
        raise FERDataError(
            f"{votes.source}: already keyed by entry ({votes.form}); the pixel join needs fer2013new.csv"
        )
    if table.form not in _ROW_FORMS:
        raise FERDataError(f"{table.source}: a {table.form}, not the original fer2013.csv that fer2013new.csv follows")
    if kaggle.form not in _ENTRY_FORMS:
        raise FERDataError(f"{kaggle.source}: a {kaggle.form}, not a Kaggle zip or folder with entry names")


def _csv_rows(table: FERData) -> np.ndarray:
    """The 0-based data row of each face of a CSV FERData (its id is ``<file>:<line>``, the header line 1)."""
    return np.char.rpartition(table.ids.astype(str), ":")[:, 2].astype(np.int64) - 2


def write_join(join: PixelJoin, path: str | os.PathLike) -> Path:
    """Write the joined votes as a ferplus_votes.csv (OUTPUT_COLUMNS), atomically; returns the path."""
    with atomic_open(path, "w") as out:
        join.table.to_csv(out, index=False, lineterminator="\n")
    return Path(path)


def build_ferplus_votes(
    fer2013new: str | os.PathLike,
    fer2013_csv: str | os.PathLike,
    kaggle: str | os.PathLike,
    out: str | os.PathLike,
    tolerance: float | None = None,
    margin: float | None = None,
) -> PixelJoin:
    """Read the three files, join them by pixels and write out as ferplus_votes.csv; returns the join.

    tolerance and margin default to TOLERANCE and MARGIN.
    """
    tolerance = TOLERANCE if tolerance is None else tolerance
    margin = MARGIN if margin is None else margin
    join = join_by_pixels(read_votes(fer2013new), load_fer2013(fer2013_csv), load_fer2013(kaggle), tolerance, margin)
    write_join(join, out)
    return join
