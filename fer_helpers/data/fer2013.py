"""FER-2013 loading, validation and caching (Kaggle zip/folder, fer2013.csv, torchvision CSVs).

Where the data comes from: the ``path`` argument, else the environment variable ``FER2013_PATH``, else the
first recognisable entry of the repository's ``data/`` folder. Forms, detected automatically:

- ``kaggle-zip`` / ``kaggle-folder``: ``train/<class>/Training_*.jpg`` and
  ``test/<class>/PublicTest_*.jpg`` / ``PrivateTest_*.jpg`` (JPEG or PNG, optionally inside one top-level
  folder); the split comes from the file-name prefix, the label from the class folder's name. A zip is read
  in place. ids are the paths inside the layout, e.g. ``train/angry/Training_10118481.jpg``.
- ``fer2013-csv``: the original ``fer2013.csv`` (``emotion,pixels,Usage``), also inside a zip.
- ``icml-csv``: torchvision's ``icml_face_data.csv`` (``emotion, Usage, pixels``), also inside a zip.
- ``torchvision-csv``: ``train.csv`` (all Training) with ``test.csv``. torchvision's ``test.csv`` has no labels,
  so it is refused with a message pointing at ``icml_face_data.csv`` from the same download; a labelled
  ``test.csv`` uses its ``Usage`` column if present, else its first half is PublicTest and its second half
  PrivateTest (their order in ``fer2013.csv``).
  CSV ids are ``<file name>:<line number>`` (the header is line 1).

Parsed arrays are cached as an uncompressed ``.npz`` in ``cache_dir`` (default: ``FER_CACHE_DIR``, else
``~/.cache/fer_helpers``), keyed by the source's sha256 and the ``resize`` flag, and written atomically.
The near-duplicates of a split (`near_duplicates`) are cached beside them as CSV, keyed by the faces and settings.
``FERData.sha256`` is the sha256 of the file for a zip or a single CSV; for ``train.csv``+``test.csv`` and for a
folder it is the sha256 over the files' relative names, sizes and contents in sorted name order, so any copy of
the same files has the same checksum. A folder's cache key is instead a hash of its images' names, sizes and
modification times, so that a cached load need not read 35,887 files; its sha256 is stored in the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from fer_helpers.core import paths
from fer_helpers.core.files import atomic_open
from fer_helpers.core.paths import CACHE_ENV, FER2013_ENV
from fer_helpers.data.classes import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES, SPLITS  # noqa: F401 (re-exported)

# The paper's (and FER-2013's) counts per class, Training / PublicTest / PrivateTest.
FER2013_COUNTS = {
    "Training": (3995, 436, 4097, 7215, 4830, 3171, 4965),
    "PublicTest": (467, 56, 496, 895, 653, 415, 607),
    "PrivateTest": (491, 55, 528, 879, 594, 416, 626),
}
# The mark on every figure, table and report made from the project's synthetic faces instead of FER-2013.
SYNTHETIC_STAMP = "SYNTHETIC FACES - NOT FER-2013 RESULTS"

CACHE_VERSION = 1  # bump when the parsed arrays of an unchanged source would change
_PIXELS = IMAGE_SIZE * IMAGE_SIZE
_FOLDER_LABELS = {name.lower(): label for label, name in enumerate(CLASS_NAMES)}
_SPLIT_DIRS = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}
_SPLIT_INDEX = {name: index for index, name in enumerate(SPLITS)}
_SPLIT_PREFIX = re.compile(r"(Training|PublicTest|PrivateTest)_")
_UNSAFE_NAME = re.compile(r"(?m)^/|^[A-Za-z]:|(?:^|/)\.\.(?:/|$)")
_HIDDEN_NAME = re.compile(r"(?:^|/)(?:\.|__MACOSX/)")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
_NOT_FOUND = (
    "no FER-2013 found. Pass a path, set FER2013_PATH, or put one of these into {data}: the Kaggle "
    "fer2013.zip (train/<class>/, test/<class>/), its extracted train/ and test/ folders, fer2013.csv, "
    "icml_face_data.csv, or train.csv with a labelled test.csv."
)


class FERDataError(ValueError):
    """Bad or missing FER-2013 input; the message names the file and the row or entry."""


@dataclass(frozen=True, eq=False)
class FERData:
    """Faces with their labels and split: images (N,48,48) uint8, labels (N,) int64, usage (N,) str."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    source: str  # the path it was read from, or "synthetic"
    sha256: str  # checksum of the source file(s); the cache and run keys use it
    form: str  # "kaggle-zip", "kaggle-folder", "fer2013-csv", "icml-csv", "torchvision-csv", "synthetic"
    ids: np.ndarray | None = None  # per-image name (file name or CSV row), for reports
    extras: dict = field(default_factory=dict)  # e.g. the synthetic generator's deciding-region masks

    @property
    def is_fer2013(self) -> bool:
        return self.form != "synthetic"

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split ('Training', 'PublicTest' or 'PrivateTest')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
        mask = self.usage == name
        return self.images[mask], self.labels[mask]

    def counts(self) -> pd.DataFrame:
        """Images per class (rows, FER order) and split (columns)."""
        table = np.zeros((NUM_CLASSES, len(SPLITS)), dtype=np.int64)
        for column, name in enumerate(SPLITS):
            table[:, column] = np.bincount(self.labels[self.usage == name], minlength=NUM_CLASSES)
        return pd.DataFrame(table, index=pd.Index(CLASS_NAMES, name="class"), columns=list(SPLITS))

    def class_weights(self, split: str = "Training") -> np.ndarray:
        """Per-class weights n / (7 * n_class) of one split (scikit-learn's 'balanced'), FER order."""
        from sklearn.utils.class_weight import compute_class_weight

        _, labels = self.split(split)
        absent = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if not np.any(labels == c)]
        if absent:
            raise ValueError(f"{split} has no images of {', '.join(absent)}; balanced weights need every class")
        return compute_class_weight("balanced", classes=np.arange(NUM_CLASSES), y=labels)

    def subsample(self, train_per_class: int | None, eval_per_class: int | None, seed: int = 0) -> FERData:
        """At most train_per_class Training and eval_per_class PublicTest/PrivateTest images per class.

        None keeps a split whole. The draw for each (split, class) has its own generator seeded with
        (seed, split, class), so changing one cap leaves the others' picks alone. The original order is kept.
        The arrays that extras["per_image"] names (one row per image) are subsampled with the images; the rest
        are kept as they are, and extras["subsample"] records the caps and seed.
        """
        keep = []
        for split_index, name in enumerate(SPLITS):
            cap = train_per_class if name == "Training" else eval_per_class
            for label in range(NUM_CLASSES):
                members = np.flatnonzero((self.usage == name) & (self.labels == label))
                if cap is not None and len(members) > cap:
                    rng = np.random.default_rng([seed, split_index, label])
                    members = rng.choice(members, size=cap, replace=False)
                keep.append(members)
        index = np.sort(np.concatenate(keep))
        per_image = set(self.extras.get("per_image", ()))
        extras = {key: value[index] if key in per_image else value for key, value in self.extras.items()}
        caps = {"train_per_class": train_per_class, "eval_per_class": eval_per_class, "seed": seed}
        extras["subsample"] = caps
        sha256 = self.sha256
        if len(index) < len(self):  # a true subset gets its own checksum, so caches never mix it with the whole
            extras.setdefault("source_sha256", self.sha256)
            sha256 = hashlib.sha256(json.dumps([self.sha256, caps], sort_keys=True).encode()).hexdigest()
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            usage=self.usage[index],
            ids=None if self.ids is None else self.ids[index],
            sha256=sha256,
            extras=extras,
        )


# ---------------------------------------------------------------- finding the data


def find_fer2013(path: str | os.PathLike | None = None) -> Path | None:
    """Where FER-2013 is: path, else FER2013_PATH, else the first recognisable entry of data/ (None: nowhere)."""
    origin = "the given path"
    if path is None and os.environ.get(FER2013_ENV):
        path, origin = os.environ[FER2013_ENV], FER2013_ENV
    if path is None:
        return _recognise_folder(paths.DATA_DIR, depth=1) if paths.DATA_DIR.is_dir() else None
    located = Path(path).expanduser()
    if not located.exists():
        raise FERDataError(f"{located}: no such file or folder (from {origin})")
    if located.is_dir():
        found = _recognise_folder(located, depth=1)
        if found is None:
            raise FERDataError(
                f"{located}: no recognisable FER-2013 in this folder (expected a zip, "
                f"fer2013.csv, icml_face_data.csv, train.csv+test.csv, or train/ and test/ folders)"
            )
        return found
    if located.name.lower() in ("train.csv", "test.csv"):
        other = located.with_name("test.csv" if located.name.lower() == "train.csv" else "train.csv")
        if not other.is_file():
            raise FERDataError(f"{located}: torchvision's {located.name} needs {other.name} beside it")
        return located.parent
    return located


def _recognise_folder(folder: Path, depth: int) -> Path | None:
    """The FER-2013 source in a folder: a zip, a CSV, a CSV pair or Kaggle folders, then its subfolders."""
    zips = sorted(p for p in folder.glob("*.zip") if p.is_file() and not p.name.startswith("."))
    if zips:
        return zips[0]
    for name in _CSV_NAMES:
        if (folder / name).is_file():
            return folder / name
    if (folder / "train.csv").is_file() and (folder / "test.csv").is_file():
        return folder
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return folder
    if depth > 0:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found = _recognise_folder(sub, depth - 1)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------- loading


def load_fer2013(
    path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None, resize: bool = False
) -> FERData:
    """All of FER-2013 from a zip, folder or CSV, validated, and cached for the next call.

    resize=True turns images that are not 48x48 into 48x48 grayscale (Pillow, Lanczos) instead of refusing
    them; colour images are always converted to grayscale (ITU-R 601-2 luma, as Pillow's "L" mode).
    """
    located = find_fer2013(path)
    if located is None:
        raise FERDataError(_NOT_FOUND.format(data=paths.DATA_DIR))
    key, parse = _reader_for(located)(located)
    cache_file = _cache_file(cache_dir, key, resize)
    arrays = _read_cache(cache_file)
    if arrays is None:
        arrays = parse(resize)
        _check_splits(arrays["usage"], located)
        _write_cache(cache_file, arrays)
    return FERData(
        images=arrays["images"],
        labels=arrays["labels"],
        usage=arrays["usage"],
        source=str(located),
        sha256=str(arrays["sha256"]),
        form=str(arrays["form"]),
        ids=arrays["ids"],
    )


# A reader returns the cache key of a source and the function that parses it (given resize) into the arrays.
_Parse = Callable[[bool], dict]
_Reader = Callable[[Path], tuple[str, _Parse]]


def _reader_for(source: Path) -> _Reader:
    """The reader of a located source (a zip, a CSV, a folder with train.csv+test.csv or Kaggle folders)."""
    if source.is_dir():
        if (source / "train.csv").is_file() and (source / "test.csv").is_file():
            return _read_csv_pair
        return _read_kaggle_folder
    suffix = source.suffix.lower()
    if suffix == ".zip":
        return _read_zip
    if suffix == ".csv":
        return _read_csv_file
    raise FERDataError(f"{source}: not a FER-2013 form (expected a .zip, a .csv or a folder)")


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if not data:
        raise FERDataError(f"{path}: empty file")
    return data


def _with_sha(arrays: dict, sha: str) -> dict:
    return {**arrays, "sha256": np.array(sha)}


def _read_zip(path: Path) -> tuple[str, _Parse]:
    raw = _read_bytes(path)
    sha = hashlib.sha256(raw).hexdigest()
    return sha, lambda resize: _with_sha(_parse_zip(raw, path, resize), sha)


def _read_csv_file(path: Path) -> tuple[str, _Parse]:
    raw = _read_bytes(path)
    sha = hashlib.sha256(raw).hexdigest()
    return sha, lambda resize: _with_sha(_parse_csv(raw, path, path.name), sha)


def _read_csv_pair(folder: Path) -> tuple[str, _Parse]:
    files = {name: _read_bytes(folder / name) for name in ("train.csv", "test.csv")}
    sha = _names_and_contents_sha(files)
    return sha, lambda resize: _with_sha(_parse_csv_pair(files, folder), sha)


def _read_kaggle_folder(root: Path) -> tuple[str, _Parse]:
    """Keyed by the images' names, sizes and modification times, so a cached load reads no image; the sha256
    (of names, sizes and contents, the same for any copy of the files) is computed once and cached with them."""
    names, stats = [], []
    for top in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in _SPLIT_DIRS):
        for folder, _, files in os.walk(top):
            relative = Path(folder).relative_to(root).as_posix()
            for file_name in files:
                names.append(f"{relative}/{file_name}")
                stats.append(os.stat(os.path.join(folder, file_name)))
    entries = _kaggle_entries(names, root)
    if entries is None:
        raise FERDataError(f"{root}: no images in train/ or test/")
    fingerprint = hashlib.sha256()
    for index, *_, name in entries:
        fingerprint.update(f"{name}\0{stats[index].st_size}\0{stats[index].st_mtime_ns}\n".encode())

    def parse(resize: bool) -> dict:
        with ThreadPoolExecutor(_workers()) as pool:
            contents = dict(
                zip((e[0] for e in entries), pool.map(lambda e: (root / names[e[0]]).read_bytes(), entries))
            )
        sha = _names_and_contents_sha({e[3]: contents[e[0]] for e in entries})
        return _with_sha(_decode_entries(entries, contents.__getitem__, root, resize, "kaggle-folder"), sha)

    return "folder-" + fingerprint.hexdigest(), parse


def _names_and_contents_sha(files: dict[str, bytes]) -> str:
    """sha256 over relative name, size and content of each file, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "little"))
        digest.update(files[name])
    return digest.hexdigest()


def _check_splits(usage: np.ndarray, where: Path) -> None:
    for name in SPLITS:
        if not np.any(usage == name):
            raise FERDataError(f"{where}: no {name} images; FER-2013 needs all of {', '.join(SPLITS)}")


# ---------------------------------------------------------------- Kaggle layout (zip or folder)


def _kaggle_entries(names: list[str], where: Path) -> list[tuple[int, int, int, str]] | None:
    """(entry index, split index, label, id) of each image, by split, label and id; None without train/test."""
    joined = re.sub(r"/{2,}", "/", re.sub(r"(?m)(^|/)\./", r"\1", "\n".join(names).replace("\\", "/")))
    unsafe = _UNSAFE_NAME.search(joined)
    if unsafe:
        name = names[joined.count("\n", 0, unsafe.start())]
        raise FERDataError(f"{where}: entry {name!r} points outside its folder (absolute or '..')")
    posix = joined.split("\n")
    visible = [i for i, name in enumerate(posix) if name and not _HIDDEN_NAME.search(name)]
    parts = {i: posix[i].rstrip("/").split("/") for i in visible}

    def has_split_dirs(level: int) -> bool:
        return any(len(p) > level + 1 and p[level].lower() in _SPLIT_DIRS for p in parts.values())

    if has_split_dirs(0):
        depth = 0
    elif len({p[0] for p in parts.values()}) == 1 and has_split_dirs(1):
        depth = 1  # one wrapping folder, as when a folder was zipped
    else:
        return None
    entries = []
    for i, p in parts.items():
        rel = p[depth:]
        split_dir = rel[0].lower() if rel else ""
        if split_dir not in _SPLIT_DIRS or len(rel) == 1:
            continue  # a README or the like beside train/ and test/
        if len(rel) != 3:
            raise FERDataError(f"{where}: unexpected entry {names[i]!r} (expected {split_dir}/<class>/<image>)")
        label = _FOLDER_LABELS.get(rel[1].lower())
        if label is None:
            raise FERDataError(
                f"{where}: entry {names[i]!r} is in an unknown class folder {rel[1]!r} "
                f"(expected one of {', '.join(sorted(_FOLDER_LABELS))})"
            )
        if not rel[2].lower().endswith(_IMAGE_SUFFIXES):
            raise FERDataError(f"{where}: entry {names[i]!r} is not a .jpg or .png image")
        prefix = _SPLIT_PREFIX.match(rel[2])
        if prefix is None or prefix.group(1) not in _SPLIT_DIRS[split_dir]:
            allowed = " or ".join(f"{s}_" for s in _SPLIT_DIRS[split_dir])
            raise FERDataError(
                f"{where}: entry {names[i]!r}: images in {split_dir}/ must be named {allowed}*, which gives their split"
            )
        entries.append((i, _SPLIT_INDEX[prefix.group(1)], label, "/".join(rel)))
    entries.sort(key=operator.itemgetter(1, 2, 3))
    return entries


def _parse_zip(raw: bytes, path: Path, resize: bool) -> dict:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as error:
        raise FERDataError(f"{path}: not a readable zip archive ({error})") from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        entries = _kaggle_entries([info.filename for info in infos], path)
        if entries is not None:
            return _decode_entries(entries, lambda i: _zip_member(raw, infos[i], path), path, resize, "kaggle-zip")
        csvs = sorted(
            (info.filename.count("/"), info.filename)
            for info in infos
            if info.filename.rsplit("/", 1)[-1].lower() in _CSV_NAMES
        )
        if csvs:
            member = csvs[0][1]
            try:
                data = archive.read(member)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as error:
                raise FERDataError(f"{path}: entry {member}: corrupt or unsupported entry ({error})") from None
            if not data:
                raise FERDataError(f"{path}: entry {member}: empty file")
            return _parse_csv(data, f"{path}: entry {member}", member.rsplit("/", 1)[-1])
        shown = sorted({info.filename.split("/")[0] for info in infos})[:10]
        raise FERDataError(
            f"{path}: no recognisable FER-2013 layout (expected train/<class>/ and test/<class>/, "
            f"optionally in one folder, or fer2013.csv / icml_face_data.csv); top-level "
            f"entries: {shown}"
        )


def _zip_member(raw: bytes, info: zipfile.ZipInfo, path: Path) -> bytes:
    """The bytes of one zip member, sliced from the archive in memory (thread-safe, no extraction)."""
    where = f"{path}: entry {info.filename}"
    if info.flag_bits & 0x1:
        raise FERDataError(f"{where}: encrypted entries are not supported")
    start = info.header_offset
    if raw[start : start + 4] != b"PK\x03\x04":
        raise FERDataError(f"{where}: corrupt archive (no local header)")
    name_length, extra_length = struct.unpack("<HH", raw[start + 26 : start + 30])
    start += 30 + name_length + extra_length
    stored = raw[start : start + info.compress_size]
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            data = stored
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            data = zlib.decompress(stored, -15)
        else:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                data = archive.read(info)
    except (zlib.error, zipfile.BadZipFile, NotImplementedError, RuntimeError) as error:
        raise FERDataError(f"{where}: corrupt or unsupported entry ({error})") from None
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise FERDataError(f"{where}: corrupt entry (size or CRC does not match the archive's record)")
    return data


def _workers() -> int:
    return min(8, os.cpu_count() or 1)


def _decode_entries(
    entries: list[tuple[int, int, int, str]], read: Callable[[int], bytes], where: Path, resize: bool, form: str
) -> dict:
    """Decode every image with a thread pool (OpenCV releases the GIL while it decodes)."""
    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)

    def decode_range(start: int, stop: int) -> None:
        for k in range(start, stop):
            index, _, _, name = entries[k]
            images[k] = _decode_image(read(index), f"{where}: entry {name}", resize)

    chunk = 1024
    with ThreadPoolExecutor(_workers()) as pool:
        jobs = [pool.submit(decode_range, s, min(s + chunk, len(entries))) for s in range(0, len(entries), chunk)]
        for job in jobs:  # in order, so the first bad image is the one reported
            job.result()
    return {
        "images": images,
        "labels": np.array([e[2] for e in entries], dtype=np.int64),
        "usage": np.array([SPLITS[e[1]] for e in entries], dtype=f"<U{max(map(len, SPLITS))}"),
        "ids": np.array([e[3] for e in entries], dtype=str),
        "form": np.array(form),
    }


def _looks_complete(data: bytes) -> bool:
    """Whether a JPEG/PNG ends with its end marker (some OpenCV builds decode a truncated one, only warning)."""
    if data[:2] == b"\xff\xd8":
        return data[-2:] == b"\xff\xd9"
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND"


def _decode_image(data: bytes, where: str, resize: bool) -> np.ndarray:
    """One 48x48 uint8 face from JPEG/PNG bytes: OpenCV for the common case, Pillow for everything else."""
    if _looks_complete(data):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is not None and image.dtype == np.uint8 and image.shape == (IMAGE_SIZE, IMAGE_SIZE):
            return image
    try:
        with Image.open(io.BytesIO(data)) as opened:
            gray = opened.convert("L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise FERDataError(f"{where}: corrupt or truncated image ({error})") from None
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        if not resize:
            raise FERDataError(
                f"{where}: image is {gray.width}x{gray.height}, not {IMAGE_SIZE}x{IMAGE_SIZE} "
                f"(load with resize=True to resize such images)"
            )
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(gray)


# ---------------------------------------------------------------- CSV forms


def read_csv_text(data: bytes, where: str, **read_csv: object) -> pd.DataFrame:
    """A CSV file's cells as text (nothing parsed as a number or NaN), column names stripped; an empty or
    unreadable file is a FERDataError naming it. Keyword arguments go to pandas.read_csv."""
    if not data or data.isspace():
        raise FERDataError(f"{where}: empty file")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, **read_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise FERDataError(f"{where}: not a readable CSV ({error})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_frame(data: bytes, where: str) -> pd.DataFrame:
    frame = read_csv_text(data, where, skipinitialspace=True)
    if frame.empty:
        raise FERDataError(f"{where}: empty file (a header but no rows)")
    return frame


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FERDataError(f"{where}: no column {', '.join(missing)} (found: {', '.join(frame.columns)})")


def _parse_csv(data: bytes, where: str | Path, file_name: str) -> dict:
    """fer2013.csv or icml_face_data.csv: every row with its label and Usage."""
    frame = _read_frame(data, str(where))
    _require_columns(frame, ("emotion", "pixels", "Usage"), str(where))
    header = data[: data.find(b"\n")]
    form = "icml-csv" if b", " in header or header.startswith(b" ") else "fer2013-csv"
    return _frame_arrays(frame, _parse_usage(frame["Usage"], str(where)), str(where), file_name, form)


def _parse_csv_pair(files: dict[str, bytes], folder: Path) -> dict:
    """torchvision's train.csv (Training) with a labelled test.csv (PublicTest, PrivateTest)."""
    train_where, test_where = str(folder / "train.csv"), str(folder / "test.csv")
    train = _read_frame(files["train.csv"], train_where)
    _require_columns(train, ("emotion", "pixels"), train_where)
    test = _read_frame(files["test.csv"], test_where)
    if "emotion" not in test.columns:
        raise FERDataError(
            f"{test_where}: has no emotion column, so PublicTest and PrivateTest have no labels "
            f"(torchvision's test.csv is unlabelled). Use icml_face_data.csv or fer2013.csv, "
            f"which label all three splits."
        )
    _require_columns(test, ("pixels",), test_where)
    if "Usage" in test.columns:
        test_usage = _parse_usage(test["Usage"], test_where)
    elif len(test) % 2 == 0:
        test_usage = np.repeat(np.array(["PublicTest", "PrivateTest"]), len(test) // 2)
    else:
        raise FERDataError(
            f"{test_where}: {len(test)} rows without a Usage column; expected PublicTest then "
            f"PrivateTest in two equal halves, as in fer2013.csv"
        )
    parts = [
        _frame_arrays(train, np.full(len(train), "Training"), train_where, "train.csv", "torchvision-csv"),
        _frame_arrays(test, test_usage, test_where, "test.csv", "torchvision-csv"),
    ]
    merged = {key: np.concatenate([p[key] for p in parts]) for key in ("images", "labels", "usage", "ids")}
    return {**merged, "form": np.array("torchvision-csv")}


def _frame_arrays(frame: pd.DataFrame, usage: np.ndarray, where: str, file_name: str, form: str) -> dict:
    lines = np.arange(len(frame)) + 2  # line 1 is the header
    return {
        "images": _parse_pixels(frame["pixels"].tolist(), where),
        "labels": _parse_labels(frame["emotion"], where),
        "usage": usage.astype(f"<U{max(map(len, SPLITS))}"),
        "ids": np.char.add(f"{file_name}:", lines.astype(str)),
        "form": np.array(form),
    }


def _parse_labels(column: pd.Series, where: str) -> np.ndarray:
    values = column.str.strip()
    valid = values.isin([str(c) for c in range(NUM_CLASSES)]).to_numpy()
    if not valid.all():
        row = int(np.argmin(valid))
        value = values.iloc[row]
        problem = "outside 0..6" if re.fullmatch(r"-?[0-9]+", value) else "not an integer"
        raise FERDataError(f"{where} line {row + 2}: emotion {value!r} is {problem}")
    return values.to_numpy().astype(np.int64)


def _parse_usage(column: pd.Series, where: str) -> np.ndarray:
    values = column.str.strip()
    valid = values.isin(SPLITS).to_numpy()
    if not valid.all():
        row = int(np.argmin(valid))
        raise FERDataError(f"{where} line {row + 2}: unknown Usage {values.iloc[row]!r} (expected {', '.join(SPLITS)})")
    return values.to_numpy().astype(str)


def _parse_pixels(rows: list[str], where: str, chunk: int = 1024) -> np.ndarray:
    """The pixel strings as (N,48,48) uint8: NumPy parses each row in C; a chunk of rows is range-checked at once."""
    images = np.empty((len(rows), _PIXELS), dtype=np.uint8)
    parsed = np.empty((chunk, _PIXELS), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # NumPy before 2.3 only warns on unparsable text
        for start in range(0, len(rows), chunk):
            block = rows[start : start + chunk]
            for k, row in enumerate(block):
                try:
                    values = np.fromstring(row, dtype=np.int64, sep=" ")
                except (ValueError, DeprecationWarning):
                    values = None
                if values is None or values.size != _PIXELS:
                    _raise_pixel_problem(row, f"{where} line {start + k + 2}")
                parsed[k] = values
            out_of_range = ((parsed[: len(block)] < 0) | (parsed[: len(block)] > 255)).any(axis=1)
            if out_of_range.any():
                bad = int(np.argmax(out_of_range))
                _raise_pixel_problem(block[bad], f"{where} line {start + bad + 2}")
            images[start : start + len(block)] = parsed[: len(block)]
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _raise_pixel_problem(row: str, where: str) -> None:
    """Say exactly what is wrong with one row of pixels."""
    tokens = [token for token in re.split(r"[ \t]+", row) if token]
    for position, token in enumerate(tokens):
        if not re.fullmatch(r"[+-]?[0-9]+", token):
            raise FERDataError(f"{where}: pixel {position} is {token!r}, not an integer")
        if not 0 <= int(token) <= 255:
            raise FERDataError(f"{where}: pixel {position} is {int(token)}, outside 0..255")
    raise FERDataError(f"{where}: {len(tokens)} pixel values, expected {_PIXELS} ({IMAGE_SIZE}x{IMAGE_SIZE})")


# ---------------------------------------------------------------- cache


def _cache_file(cache_dir: str | os.PathLike | None, key: str, resize: bool) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fer_helpers"
    flag = "resized" if resize else "exact"
    return Path(cache_dir).expanduser() / f"fer2013-{key}-{flag}-v{CACHE_VERSION}.npz"


def _read_cache(path: Path) -> dict | None:
    """The cached arrays, or None when absent or unreadable (then they are parsed again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in ("images", "labels", "usage", "ids", "form", "sha256")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, arrays: dict) -> None:
    """Write atomically (a file of this process's own, then rename), so readers never see half a file."""
    try:
        with atomic_open(path) as out:
            np.savez(out, **arrays)
    except OSError as error:
        warnings.warn(f"could not cache FER-2013 arrays in {path.parent}: {error}", stacklevel=3)


# ---------------------------------------------------------------- duplicates and the data check


def find_duplicates(data: FERData) -> pd.DataFrame:
    """Exact duplicate images (same 2,304 bytes): one row per image in a group of two or more.

    Columns: group (numbered by first appearance), index (into data), id, usage, label, class_name.
    """
    digests = np.array(
        [hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest() for image in data.images],
        dtype="S16",
    )
    _, inverse, sizes = np.unique(digests, return_inverse=True, return_counts=True)
    index = np.flatnonzero(sizes[inverse] > 1)
    ids = data.ids[index] if data.ids is not None else index.astype(str)
    table = pd.DataFrame(
        {
            "group": pd.factorize(inverse[index])[0],
            "index": index,
            "id": ids,
            "usage": data.usage[index],
            "label": data.labels[index],
            "class_name": np.array(CLASS_NAMES)[data.labels[index]],
        }
    )
    return table.sort_values(["group", "index"], kind="stable").reset_index(drop=True)


def twin_mask(data: FERData, split: str) -> np.ndarray:
    """For each face of `split` (in split order), whether Training holds a byte-identical image: a seen face."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    training = {image.tobytes() for image in data.images[data.usage == "Training"]}
    return np.array([image.tobytes() in training for image in data.images[data.usage == split]], dtype=bool)


# Near-duplicates: the same photograph again, re-encoded, shifted by a pixel or two, mirrored, or lighter or darker.
NEAR_DUPLICATE_THRESHOLD = 0.55  # high-pass correlation at or above which two faces are one photograph (see below)
NEAR_DUPLICATE_SHIFT = 2  # pixels the fine comparison shifts one face against the other, each way
NEAR_DUPLICATE_CANDIDATES = 5  # nearest Training faces by the coarse comparison that the fine one examines
_COARSE_SIZE = 16  # the coarse comparison's faces: 3x3-pixel means, 16x16
# Pairs whose thumbnails correlate less than this are not compared finely (on FER-2013 the least alike
# near-duplicate's thumbnails correlated about 0.6, so this loses none of them and spares unrelated faces).
_COARSE_FLOOR = 0.5
_HIGH_PASS_SIGMA = 1.5  # pixels: the fine comparison keeps what a Gaussian of this width blurs away


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row less its mean, scaled to length 1 (a constant row stays all zeros): dot products are correlations."""
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _coarse(images: np.ndarray) -> np.ndarray:
    k = IMAGE_SIZE // _COARSE_SIZE
    small = images.reshape(len(images), _COARSE_SIZE, k, _COARSE_SIZE, k).mean(axis=(2, 4))
    return _unit_rows(small.reshape(len(images), -1)).astype(np.float32)


def _high_pass(images: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    images = images.astype(np.float32)
    return images - gaussian_filter(images, sigma=(0, _HIGH_PASS_SIGMA, _HIGH_PASS_SIGMA))


def near_duplicate_score(a: np.ndarray, b: np.ndarray, shift: int = NEAR_DUPLICATE_SHIFT) -> np.ndarray:
    """How alike pairs of faces are as photographs: (P,) the highest correlation of their high-pass images (each
    less its Gaussian blur, so the details of one photograph count, not the layout every face shares), over shifts
    of b by up to `shift` pixels each way and over b mirrored, on the frame's interior. 1 for the same pixels (or
    the same pixels brighter, darker or with more contrast); a and b: (P,48,48).
    """
    a = _high_pass(np.asarray(a).reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
    b = np.asarray(b, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    side = IMAGE_SIZE - 2 * shift
    inner = slice(shift, IMAGE_SIZE - shift)
    left = _unit_rows(a[:, inner, inner].reshape(len(a), -1)).reshape(len(a), side, side)
    best = np.full(len(a), -1.0)
    for mirrored in (b, b[:, :, ::-1]):
        high = _high_pass(mirrored).astype(np.float64)
        # sums of each side x side window of the image and of its square, from integral images: its norm
        sums = [np.pad(x.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0))) for x in (high, high * high)]
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                top, lead = shift + dy, shift + dx
                total, squares = (
                    x[:, top + side, lead + side] - x[:, top, lead + side] - x[:, top + side, lead] + x[:, top, lead]
                    for x in sums
                )
                norm = np.sqrt(np.maximum(squares - total**2 / side**2, 0.0))
                # left is centred, so its dot product with the window equals that with the centred window
                dot = np.einsum("ijk,ijk->i", left, high[:, top : top + side, lead : lead + side])
                best = np.maximum(best, np.where(norm > 1e-9, dot / np.where(norm > 1e-9, norm, 1.0), 0.0))
    return best


NEAR_DUPLICATE_VERSION = 1  # bump when near_duplicates' table for unchanged faces would change (its cache's key)


def near_duplicates(
    data: FERData,
    split: str,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
    candidates: int = NEAR_DUPLICATE_CANDIDATES,
    chunk: int = 1024,
    cache_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """`find_near_duplicates`, kept in the FER-2013 cache folder (`cache_dir`: default as `load_fer2013`'s) under
    a key of the faces, labels, splits and ids themselves and every setting (synthetic faces are not cached), so
    that notebook 05 and the report's last step compute it once; an unreadable or unwritable cache only costs the
    time."""
    if not data.is_fer2013:  # the cache saves minutes on FER-2013; synthetic faces are quick and many
        return find_near_duplicates(data, split, threshold, candidates, chunk)
    digest = hashlib.sha256()
    for array in (
        data.images,
        data.labels,
        data.usage.astype("U"),
        *(() if data.ids is None else (data.ids.astype("U"),)),
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    settings = (split, threshold, candidates, NEAR_DUPLICATE_SHIFT, _COARSE_SIZE, _COARSE_FLOOR, _HIGH_PASS_SIGMA)
    digest.update(f"{settings}|v{NEAR_DUPLICATE_VERSION}".encode())
    path = _cache_file(cache_dir, f"near-{digest.hexdigest()[:16]}", False).with_suffix(".csv")
    if path.is_file():
        try:
            table = pd.read_csv(path, dtype={"id": str, "match_id": str})
            if len(table) == int((data.usage == split).sum()):
                return table
        except (OSError, ValueError, pd.errors.ParserError):
            pass
    table = find_near_duplicates(data, split, threshold, candidates, chunk)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as out:
            table.to_csv(out, index=False)
    except OSError as error:
        warnings.warn(f"could not cache the near-duplicates in {path.parent}: {error}", stacklevel=2)
    return table


def find_near_duplicates(
    data: FERData,
    split: str,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
    candidates: int = NEAR_DUPLICATE_CANDIDATES,
    chunk: int = 1024,
) -> pd.DataFrame:
    """For each face of `split` (in split order), its most alike Training face and whether the two are one
    photograph: byte-identical (twin_mask), or a near-duplicate whose near_duplicate_score reaches `threshold`.

    Two steps: the `candidates` Training faces whose coarse 16x16 images correlate most with the face or its
    mirror image, then near_duplicate_score on each. Columns: index (into data), id, label, match (index of the
    most alike Training face), match_id, match_label, score (1 for a twin; -1 where no Training thumbnail
    correlates _COARSE_FLOOR or more), twin (byte-identical), near (twin or score >= threshold). A lower bound: a
    copy cropped at another scale, or rotated, scores lower and is missed.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    train = np.flatnonzero(data.usage == "Training")
    faces = np.flatnonzero(data.usage == split)
    images = data.images.astype(np.float32)
    reference = _coarse(images[train])
    k = min(candidates, len(train))
    picked = np.zeros((len(faces), k), dtype=np.int64)
    scores = np.zeros((len(faces), k))
    for start in range(0, len(faces), chunk):
        mine = images[faces[start : start + chunk]]
        similar = np.maximum(_coarse(mine) @ reference.T, _coarse(mine[:, :, ::-1]) @ reference.T)
        nearest = np.argpartition(-similar, k - 1, axis=1)[:, :k]
        picked[start : start + chunk] = nearest
        close = np.take_along_axis(similar, nearest, axis=1).ravel() >= _COARSE_FLOOR
        fine = np.full(close.shape, -1.0)
        if close.any():
            fine[close] = near_duplicate_score(np.repeat(mine, k, axis=0)[close], images[train[nearest.ravel()[close]]])
        scores[start : start + chunk] = fine.reshape(nearest.shape)
    best = scores.argmax(axis=1)
    match = train[picked[np.arange(len(faces)), best]]
    twins = twin_mask(data, split)
    ids = data.ids if data.ids is not None else np.arange(len(data)).astype(str)
    score = scores[np.arange(len(faces)), best]
    return pd.DataFrame(
        {
            "index": faces,
            "id": ids[faces],
            "label": data.labels[faces],
            "match": match,
            "match_id": ids[match],
            "match_label": data.labels[match],
            "score": np.where(twins, 1.0, score),
            "twin": twins,
            "near": twins | (score >= threshold),
        }
    )


def near_duplicate_counts(table: pd.DataFrame) -> pd.DataFrame:
    """near_duplicates' table counted per class (FER order, then "all"): faces, byte twins, near-duplicates (twins
    included), their share, and how many of the near-duplicates carry their Training match's label."""
    rows = {}
    for name, mine in [(c, table["label"] == i) for i, c in enumerate(CLASS_NAMES)] + [("all", table["label"] >= 0)]:
        near = mine & table["near"]
        rows[name] = {
            "faces": int(mine.sum()),
            "twins": int((mine & table["twin"]).sum()),
            "near_duplicates": int(near.sum()),
            "share": float(near.sum() / mine.sum()) if mine.any() else float("nan"),
            "same_label": int((near & (table["label"] == table["match_label"])).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def duplicate_summary(duplicates: pd.DataFrame) -> pd.Series:
    """Counts of images from find_duplicates, within and across splits, and of conflicting labels.

    groups / images: groups of identical images and the images in them; within_<S>: images of S identical to
    another image of S; <A>_with_<B>: images of A identical to an image of B; Training_with_test: Training
    images identical to a PublicTest or PrivateTest image; conflicting_groups / conflicting_images: groups whose
    images carry different labels, and the images in them.
    """
    per_group = pd.crosstab(duplicates["group"], duplicates["usage"]).reindex(columns=list(SPLITS), fill_value=0)
    summary = {"groups": len(per_group), "images": len(duplicates)}
    for name in SPLITS:
        summary[f"within_{name}"] = int(per_group.loc[per_group[name] > 1, name].sum())
    for a, b in [
        ("Training", "PublicTest"),
        ("Training", "PrivateTest"),
        ("PublicTest", "Training"),
        ("PrivateTest", "Training"),
        ("PublicTest", "PrivateTest"),
        ("PrivateTest", "PublicTest"),
    ]:
        summary[f"{a}_with_{b}"] = int(per_group.loc[per_group[b] > 0, a].sum())
    in_test = (per_group["PublicTest"] + per_group["PrivateTest"]) > 0
    summary["Training_with_test"] = int(per_group.loc[in_test, "Training"].sum())
    labels_per_group = duplicates.groupby("group")["label"].nunique()
    conflicting = labels_per_group.index[labels_per_group > 1]
    summary["conflicting_groups"] = len(conflicting)
    summary["conflicting_images"] = int(duplicates["group"].isin(conflicting).sum())
    return pd.Series(summary, name="images", dtype=np.int64)


def check_dataset(
    path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None, resize: bool = False
) -> str:
    """A readable report on a FER-2013 copy: form, checksum, counts beside FER-2013's, duplicates."""
    data = load_fer2013(path, cache_dir=cache_dir, resize=resize)
    counts = data.counts()
    expected = pd.DataFrame(FER2013_COUNTS, index=counts.index)
    lines = [
        f"FER-2013 check: {data.source}",
        f"form: {data.form}",
        f"sha256: {data.sha256}",
        f"images: {len(data)} ({IMAGE_SIZE}x{IMAGE_SIZE} grayscale), "
        + ", ".join(f"{name} {int((data.usage == name).sum())}" for name in SPLITS),
        "",
        "images per class, this copy / FER-2013 (* where they differ):",
        f"{'class':<10}" + "".join(f"{name:>20}" for name in SPLITS),
    ]
    for name in CLASS_NAMES:
        cells = []
        for split in SPLITS:
            ours, theirs = int(counts.loc[name, split]), int(expected.loc[name, split])
            cells.append(f"{ours:>9} / {theirs:<6}{'*' if ours != theirs else ' '}")
        lines.append(f"{name:<10}" + "".join(f"{cell:>20}" for cell in cells))
    differ = int((counts != expected).to_numpy().sum())
    lines += [
        "",
        "counts match FER-2013" if differ == 0 else f"counts DIFFER from FER-2013 in {differ} cells",
        "",
        "exact duplicate images:",
    ]
    summary = duplicate_summary(find_duplicates(data))
    lines += [f"  {key:<26}{value:>8}" for key, value in summary.items()]
    blank = data.images.reshape(len(data), -1)
    blank = blank.min(axis=1) == blank.max(axis=1)
    lines += [
        "",
        f"blank images (one grey level): {int(blank.sum())}"
        + "".join(f", {int((blank & (data.usage == name)).sum())} in {name}" for name in SPLITS),
    ]
    return "\n".join(lines)
