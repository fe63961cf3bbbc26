"""FER-2013 data layer: every input form round-trips, bad input fails with a clear message, the cache is safe."""

from __future__ import annotations

import io
import multiprocessing
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_helpers.core import paths
from fer_helpers.data import fer2013 as data_module
from fer_helpers.data.fer2013 import (
    CLASS_NAMES,
    FER2013_COUNTS,
    NUM_CLASSES,
    SPLITS,
    FERData,
    FERDataError,
    check_dataset,
    duplicate_summary,
    find_duplicates,
    find_fer2013,
    load_fer2013,
)

FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER order
PER_CLASS = 2  # images per class and split in the small fake data sets


def fake_arrays(seed: int = 0, per_class: int = PER_CLASS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 48x48 images with every class in every split, in FER-2013's row order (Training first)."""
    rng = np.random.default_rng(seed)
    usage = np.repeat(np.array(SPLITS), NUM_CLASSES * per_class)
    labels = np.tile(np.repeat(np.arange(NUM_CLASSES), per_class), len(SPLITS))
    images = rng.integers(0, 256, size=(len(labels), 48, 48), dtype=np.uint8)
    return images, labels, usage


def encode(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def kaggle_files(images, labels, usage, fmt: str = "PNG") -> dict[str, bytes]:
    """Kaggle-layout relative names -> encoded image bytes."""
    suffix = ".png" if fmt == "PNG" else ".jpg"
    files = {}
    for i, (image, label, split) in enumerate(zip(images, labels, usage)):
        top = "train" if split == "Training" else "test"
        files[f"{top}/{FOLDERS[label]}/{split}_{i:05d}{suffix}"] = encode(image, fmt)
    return files


def write_zip(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


def pixel_strings(images: np.ndarray) -> list[str]:
    return [" ".join(map(str, image.ravel())) for image in images]


def fer2013_csv(images, labels, usage) -> str:
    rows = [f"{label},{pixels},{split}" for label, pixels, split in zip(labels, pixel_strings(images), usage)]
    return "emotion,pixels,Usage\n" + "\n".join(rows) + "\n"


def icml_csv(images, labels, usage) -> str:
    rows = [f"{label}, {split}, {pixels}" for label, pixels, split in zip(labels, pixel_strings(images), usage)]
    return "emotion, Usage, pixels\n" + "\n".join(rows) + "\n"


def kaggle_zip(tmp_path: Path, fmt: str = "PNG", extra: dict[str, bytes] | None = None, seed: int = 0) -> Path:
    files = {**kaggle_files(*fake_arrays(seed), fmt=fmt), **(extra or {})}
    return write_zip(tmp_path / "fer2013.zip", files)


def by_id(data: FERData) -> dict[str, tuple[np.ndarray, int, str]]:
    return {i: (image, label, split) for i, image, label, split in zip(data.ids, data.images, data.labels, data.usage)}


def load(path: Path, tmp_path: Path, **options) -> FERData:
    return load_fer2013(path, cache_dir=tmp_path / "cache", **options)


def assert_same(loaded: FERData, images, labels, usage) -> None:
    """The loaded data holds exactly these images, labels and splits, in FER-2013's split order."""
    assert loaded.images.shape == (len(labels), 48, 48) and loaded.images.dtype == np.uint8
    assert loaded.labels.dtype == np.int64
    assert list(dict.fromkeys(loaded.usage)) == list(SPLITS)
    order = np.lexsort((np.arange(len(labels)), [SPLITS.index(s) for s in usage]))
    np.testing.assert_array_equal(loaded.images, images[order])
    np.testing.assert_array_equal(loaded.labels, labels[order])
    np.testing.assert_array_equal(loaded.usage, usage[order])


# ---------------------------------------------------------------- round trips of every form


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("wrapper", ["", "fer2013/"])
def test_kaggle_zip_round_trip(tmp_path, compression, wrapper):
    images, labels, usage = fake_arrays()
    files = {wrapper + name: content for name, content in kaggle_files(images, labels, usage).items()}
    files[wrapper + "README.txt"] = b"not an image"
    files["__MACOSX/._train"] = b"resource fork"
    loaded = load(write_zip(tmp_path / "fer2013.zip", files, compression), tmp_path)
    assert loaded.form == "kaggle-zip" and loaded.is_fer2013
    assert_same(loaded, images, labels, usage)
    assert loaded.ids[0] == "train/angry/Training_00000.png"


def test_kaggle_folder_round_trip(tmp_path):
    images, labels, usage = fake_arrays()
    root = write_folder(tmp_path / "kaggle", kaggle_files(images, labels, usage))
    (root / "train" / ".DS_Store").write_bytes(b"finder")
    loaded = load(root, tmp_path)
    assert loaded.form == "kaggle-folder"
    assert_same(loaded, images, labels, usage)


def test_folder_checksum_follows_contents_not_times(tmp_path):
    files = kaggle_files(*fake_arrays())
    first = load(write_folder(tmp_path / "a", files), tmp_path)
    touched = tmp_path / "a" / "test" / "sad" / "PrivateTest_00036.png"
    os.utime(touched, ns=(10**18, 10**18))
    assert load(tmp_path / "a", tmp_path).sha256 == first.sha256  # a new cache key, the same checksum
    assert load(write_folder(tmp_path / "b", files), tmp_path).sha256 == first.sha256
    touched.write_bytes(encode(np.zeros((48, 48), np.uint8)))
    changed = load(tmp_path / "a", tmp_path)
    assert changed.sha256 != first.sha256
    assert not by_id(changed)["test/sad/PrivateTest_00036.png"][0].any()


def test_kaggle_folder_and_zip_of_the_same_files_agree(tmp_path):
    files = kaggle_files(*fake_arrays())
    from_zip = load(write_zip(tmp_path / "a.zip", files), tmp_path)
    from_folder = load(write_folder(tmp_path / "b", files), tmp_path)
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    np.testing.assert_array_equal(from_zip.ids, from_folder.ids)


def test_jpeg_zip_decodes_as_pillow_does(tmp_path):
    files = kaggle_files(*fake_arrays(), fmt="JPEG")
    loaded = load(write_zip(tmp_path / "fer2013.zip", files), tmp_path)
    for name, (image, _, _) in by_id(loaded).items():
        np.testing.assert_array_equal(image, np.asarray(Image.open(io.BytesIO(files[name]))))


@pytest.mark.parametrize("form, writer", [("fer2013-csv", fer2013_csv), ("icml-csv", icml_csv)])
def test_csv_round_trip(tmp_path, form, writer):
    images, labels, usage = fake_arrays()
    path = tmp_path / ("fer2013.csv" if form == "fer2013-csv" else "icml_face_data.csv")
    path.write_text(writer(images, labels, usage))
    loaded = load(path, tmp_path)
    assert loaded.form == form
    assert_same(loaded, images, labels, usage)
    assert loaded.ids[0] == f"{path.name}:2"


def test_csv_inside_a_zip(tmp_path):
    images, labels, usage = fake_arrays()
    path = write_zip(
        tmp_path / "challenge.zip",
        {"icml_face_data.csv": icml_csv(images, labels, usage).encode(), "train.csv": b"emotion,pixels\n"},
    )
    loaded = load(path, tmp_path)
    assert loaded.form == "icml-csv"
    assert_same(loaded, images, labels, usage)


def write_pair(folder: Path, images, labels, usage, test_columns: tuple[str, ...]) -> Path:
    folder.mkdir()
    train = usage == "Training"
    pd.DataFrame({"emotion": labels[train], "pixels": pixel_strings(images[train])}).to_csv(
        folder / "train.csv", index=False
    )
    test = pd.DataFrame({"emotion": labels[~train], "pixels": pixel_strings(images[~train]), "Usage": usage[~train]})
    test[list(test_columns)].to_csv(folder / "test.csv", index=False)
    return folder


@pytest.mark.parametrize("test_columns", [("emotion", "pixels", "Usage"), ("emotion", "pixels")])
def test_torchvision_pair_round_trip(tmp_path, test_columns):
    images, labels, usage = fake_arrays()
    folder = write_pair(tmp_path / "fer2013", images, labels, usage, test_columns)
    for path in (folder, folder / "train.csv"):
        loaded = load(path, tmp_path)
        assert loaded.form == "torchvision-csv"
        assert_same(loaded, images, labels, usage)


def test_torchvision_unlabelled_test_csv_is_refused(tmp_path):
    folder = write_pair(tmp_path / "fer2013", *fake_arrays(), test_columns=("pixels",))
    with pytest.raises(FERDataError, match=r"test\.csv.*no emotion column.*icml_face_data\.csv"):
        load(folder, tmp_path)


# ---------------------------------------------------------------- finding the data


def test_path_from_environment(tmp_path, monkeypatch):
    path = kaggle_zip(tmp_path)
    monkeypatch.setenv("FER2013_PATH", str(path))
    assert find_fer2013() == path
    assert load_fer2013(cache_dir=tmp_path / "cache").source == str(path)


def test_path_from_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("FER2013_PATH", raising=False)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README.md").write_text("put FER-2013 here")
    assert find_fer2013() is None
    with pytest.raises(FERDataError, match="FER2013_PATH.*data"):
        load_fer2013(cache_dir=tmp_path / "cache")
    write_folder(tmp_path / "data" / "archive", kaggle_files(*fake_arrays()))
    assert find_fer2013() == tmp_path / "data" / "archive"
    zipped = kaggle_zip(tmp_path / "data")
    assert find_fer2013() == zipped


def test_folder_with_a_csv_is_recognised(tmp_path):
    (tmp_path / "fer2013.csv").write_text(fer2013_csv(*fake_arrays()))
    assert find_fer2013(tmp_path) == tmp_path / "fer2013.csv"


# ---------------------------------------------------------------- validation


def test_missing_path(tmp_path):
    with pytest.raises(FERDataError, match="nowhere.zip: no such file"):
        load_fer2013(tmp_path / "nowhere.zip", cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["fer2013.zip", "fer2013.csv"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(FERDataError, match=f"{name}: empty file"):
        load(tmp_path / name, tmp_path)


def test_csv_header_only(tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    with pytest.raises(FERDataError, match="fer2013.csv: empty file"):
        load(tmp_path / "fer2013.csv", tmp_path)


def test_csv_without_a_needed_column(tmp_path):
    text = fer2013_csv(*fake_arrays()).replace("emotion,pixels,Usage", "emotion,pixels,Split")
    (tmp_path / "fer2013.csv").write_text(text)
    with pytest.raises(FERDataError, match="fer2013.csv: no column Usage"):
        load(tmp_path / "fer2013.csv", tmp_path)


def broken_csv(tmp_path: Path, row: int, label=None, pixels=None, usage=None) -> Path:
    """fer2013.csv with one data row (0-based, so on line row + 2) changed."""
    images, labels, usage_column = fake_arrays()
    frame = pd.DataFrame({"emotion": labels.astype(str), "pixels": pixel_strings(images), "Usage": usage_column})
    for column, value in (("emotion", label), ("pixels", pixels), ("Usage", usage)):
        if value is not None:
            frame.loc[row, column] = value
    frame.to_csv(tmp_path / "fer2013.csv", index=False)
    return tmp_path / "fer2013.csv"


def some_pixels(replace_at: int | None = None, value: str = "", count: int = 2304) -> str:
    values = [str(v % 256) for v in range(count)]
    if replace_at is not None:
        values[replace_at] = value
    return " ".join(values)


@pytest.mark.parametrize("row", [0, 30, 41])  # first row, a middle one, the last
@pytest.mark.parametrize(
    "pixels, message",
    [
        (some_pixels(count=2303), "2303 pixel values, expected 2304"),
        (some_pixels(count=2305), "2305 pixel values, expected 2304"),
        ("", "0 pixel values, expected 2304"),
        (some_pixels(7, "12a"), "pixel 7 is '12a', not an integer"),
        (some_pixels(0, "1.5"), "pixel 0 is '1.5', not an integer"),
        (some_pixels(2303, "256"), "pixel 2303 is 256, outside 0..255"),
        (some_pixels(5, "1000"), "pixel 5 is 1000, outside 0..255"),
        (some_pixels(5, "-1"), "pixel 5 is -1, outside 0..255"),
        (some_pixels(5, "0x1f"), "pixel 5 is '0x1f', not an integer"),
        (some_pixels(9, "99999999999999999999999"), "pixel 9 is 99999999999999999999999, outside 0..255"),
    ],
)
def test_bad_pixels_name_file_and_line(tmp_path, row, pixels, message):
    path = broken_csv(tmp_path, row, pixels=pixels)
    with pytest.raises(FERDataError, match=rf"fer2013\.csv line {row + 2}: {message}"):
        load(path, tmp_path)


@pytest.mark.parametrize(
    "label, message",
    [
        ("7", "'7' is outside 0..6"),
        ("-1", "'-1' is outside 0..6"),
        ("happy", "'happy' is not an integer"),
        ("", "'' is not an integer"),
    ],
)
def test_bad_label(tmp_path, label, message):
    path = broken_csv(tmp_path, 17, label=label)
    with pytest.raises(FERDataError, match=f"fer2013.csv line 19: emotion {message}"):
        load(path, tmp_path)


def test_unknown_usage(tmp_path):
    path = broken_csv(tmp_path, 3, usage="Validation")
    with pytest.raises(FERDataError, match="fer2013.csv line 5: unknown Usage 'Validation'"):
        load(path, tmp_path)


def test_csv_with_a_split_missing(tmp_path):
    images, labels, usage = fake_arrays()
    keep = usage != "PrivateTest"
    (tmp_path / "fer2013.csv").write_text(fer2013_csv(images[keep], labels[keep], usage[keep]))
    with pytest.raises(FERDataError, match="fer2013.csv: no PrivateTest images"):
        load(tmp_path / "fer2013.csv", tmp_path)


def test_unknown_class_folder(tmp_path):
    path = kaggle_zip(tmp_path, extra={"train/contempt/Training_99999.png": encode(np.zeros((48, 48), np.uint8))})
    with pytest.raises(FERDataError, match="'train/contempt/Training_99999.png' is in an unknown class folder"):
        load(path, tmp_path)


NOISE = np.random.default_rng(3).integers(0, 256, (48, 48), dtype=np.uint8)


@pytest.mark.parametrize("lenient_decoder", [False, True])
@pytest.mark.parametrize(
    "content",
    [
        b"this is not an image",
        encode(NOISE)[:60],  # a PNG cut in its header
        encode(NOISE)[:1500],  # a PNG cut in its pixel data
        encode(NOISE, "JPEG")[:300],  # a JPEG cut in its header
        encode(NOISE, "JPEG")[:-2],  # a JPEG cut just before its end marker
    ],
    ids=["garbage", "png-header", "png-pixels", "jpeg-header", "jpeg-end"],
)
def test_corrupt_or_truncated_image(tmp_path, monkeypatch, content, lenient_decoder):
    if lenient_decoder:  # some OpenCV builds decode a truncated JPEG with only a warning
        monkeypatch.setattr(data_module.cv2, "imdecode", lambda buffer, flags: np.zeros((48, 48), np.uint8))
    path = kaggle_zip(tmp_path, extra={"test/fear/PrivateTest_bad.png": content})
    with pytest.raises(FERDataError, match="entry test/fear/PrivateTest_bad.png: corrupt or truncated image"):
        load(path, tmp_path)


def test_corrupt_zip_entry_fails_its_checksum(tmp_path):
    path = kaggle_zip(tmp_path)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("train/happy/Training_00006.png")
    raw[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # a byte inside the stored PNG
    path.write_bytes(bytes(raw))
    with pytest.raises(FERDataError, match="Training_00006.png: corrupt entry"):
        load(path, tmp_path)


def test_image_not_48x48(tmp_path):
    big = np.random.default_rng(1).integers(0, 256, (96, 64), dtype=np.uint8)
    path = kaggle_zip(tmp_path, extra={"train/sad/Training_big.png": encode(big)})
    with pytest.raises(FERDataError, match="Training_big.png: image is 64x96, not 48x48.*resize=True"):
        load(path, tmp_path)
    loaded = load(path, tmp_path, resize=True)
    expected = np.asarray(Image.fromarray(big).resize((48, 48), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(by_id(loaded)["train/sad/Training_big.png"][0], expected)


def test_colour_image_becomes_grayscale(tmp_path):
    colour = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    path = kaggle_zip(tmp_path, extra={"test/happy/PublicTest_colour.png": encode(colour)})
    loaded = load(path, tmp_path)
    expected = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(by_id(loaded)["test/happy/PublicTest_colour.png"][0], expected)


def test_archive_without_a_recognisable_layout(tmp_path):
    path = write_zip(tmp_path / "faces.zip", {"images/face_1.png": encode(np.zeros((48, 48), np.uint8))})
    with pytest.raises(FERDataError, match=r"faces\.zip: no recognisable FER-2013 layout.*\['images'\]"):
        load(path, tmp_path)


def test_archive_with_a_split_missing(tmp_path):
    files = {n: c for n, c in kaggle_files(*fake_arrays()).items() if "PrivateTest" not in n}
    with pytest.raises(FERDataError, match=r"fer2013\.zip: no PrivateTest images"):
        load(write_zip(tmp_path / "fer2013.zip", files), tmp_path)
    files = {n: c for n, c in kaggle_files(*fake_arrays()).items() if n.startswith("train/")}
    with pytest.raises(FERDataError, match=r"no PublicTest images"):
        load(write_folder(tmp_path / "only-train", files), tmp_path)


@pytest.mark.parametrize(
    "name", ["../evil.png", "train/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"]
)
def test_entry_escaping_the_folder(tmp_path, name):
    path = kaggle_zip(tmp_path, extra={name: b"x"})
    with pytest.raises(FERDataError, match="points outside its folder"):
        load(path, tmp_path)


@pytest.mark.parametrize("name", ["test/sad/im0.png", "train/sad/PublicTest_1.png", "test/sad/Training_1.png"])
def test_file_name_must_give_the_split(tmp_path, name):
    path = kaggle_zip(tmp_path, extra={name: encode(np.zeros((48, 48), np.uint8))})
    with pytest.raises(FERDataError, match="must be named"):
        load(path, tmp_path)


def test_unexpected_nesting(tmp_path):
    path = kaggle_zip(tmp_path, extra={"train/sad/more/Training_1.png": encode(np.zeros((48, 48), np.uint8))})
    with pytest.raises(FERDataError, match="unexpected entry 'train/sad/more/Training_1.png'"):
        load(path, tmp_path)


# ---------------------------------------------------------------- cache


def test_cache_hit_is_equal_and_skips_parsing(tmp_path, monkeypatch):
    path = kaggle_zip(tmp_path)
    first = load(path, tmp_path)
    [cached] = (tmp_path / "cache").glob("*.npz")
    umask = os.umask(0o022)
    os.umask(umask)
    assert cached.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by whom the umask allows, as np.save's

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit decoded an image")

    monkeypatch.setattr(data_module, "_decode_image", no_decoding)  # how fast a hit is: benchmarks/bench_load.py
    second = load(path, tmp_path)
    for name in ("images", "labels", "usage", "ids"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert (second.sha256, second.form, second.source) == (first.sha256, first.form, first.source)


def test_changed_source_or_resize_flag_misses_the_cache(tmp_path):
    path = kaggle_zip(tmp_path, seed=0)
    first = load(path, tmp_path)
    load(path, tmp_path, resize=True)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    path = kaggle_zip(tmp_path, seed=1)
    changed = load(path, tmp_path)
    assert changed.sha256 != first.sha256
    assert not np.array_equal(changed.images, first.images)


def test_failed_load_writes_no_cache(tmp_path):
    path = broken_csv(tmp_path, 40, pixels="1 2 3")
    with pytest.raises(FERDataError):
        load(path, tmp_path)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    path = kaggle_zip(tmp_path)

    def fail_halfway(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail_halfway)
    with pytest.raises(KeyboardInterrupt):
        load(path, tmp_path)
    assert not any((tmp_path / "cache").iterdir())


def test_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    path = kaggle_zip(tmp_path)

    def disk_full(file, **arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(UserWarning, match="could not cache"):
        loaded = load(path, tmp_path)
    assert len(loaded) == NUM_CLASSES * PER_CLASS * len(SPLITS)
    assert not any((tmp_path / "cache").iterdir())


def test_damaged_cache_file_is_rebuilt(tmp_path):
    path = kaggle_zip(tmp_path)
    first = load(path, tmp_path)
    cached = next((tmp_path / "cache").glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:1000])
    again = load(path, tmp_path)
    np.testing.assert_array_equal(again.images, first.images)
    assert cached.stat().st_size > 1000


def _load_in_process(path: str, cache_dir: str, barrier, results) -> None:
    barrier.wait()
    loaded = load_fer2013(path, cache_dir=cache_dir)
    results.put((loaded.sha256, int(loaded.images.astype(np.int64).sum())))


def test_two_processes_loading_at_once(tmp_path):
    path = write_zip(tmp_path / "fer2013.zip", kaggle_files(*fake_arrays(per_class=20)))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_load_in_process, args=(str(path), str(tmp_path / "cache"), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert outcomes[0] == outcomes[1]
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".npz"]
    loaded = load(path, tmp_path)  # the cache file the race left is whole
    assert (loaded.sha256, int(loaded.images.astype(np.int64).sum())) == outcomes[0]


# ---------------------------------------------------------------- FERData helpers


@pytest.fixture
def small(tmp_path) -> FERData:
    return load(write_zip(tmp_path / "fer2013.zip", kaggle_files(*fake_arrays(per_class=6))), tmp_path)


@pytest.mark.parametrize("train_cap, eval_cap", [(3, 2), (1, None), (None, 4), (None, None), (100, 100)])
def test_subsample_caps_each_class_and_split(small, train_cap, eval_cap):
    sub = small.subsample(train_cap, eval_cap, seed=3)
    full, counts = small.counts(), sub.counts()
    for split in SPLITS:
        cap = train_cap if split == "Training" else eval_cap
        expected = full[split] if cap is None else np.minimum(full[split], cap)
        np.testing.assert_array_equal(counts[split], expected)
    originals = by_id(small)
    for i, image, label, split in zip(sub.ids, sub.images, sub.labels, sub.usage):
        np.testing.assert_array_equal(image, originals[i][0])
        assert (label, split) == originals[i][1:]
    position = {i: k for k, i in enumerate(small.ids)}
    assert np.all(np.diff([position[i] for i in sub.ids]) > 0)  # original order kept
    assert sub.extras["subsample"]["seed"] == 3
    if len(sub) < len(small):  # a true subset is its own data set for every cache; the source stays recorded
        assert sub.sha256 != small.sha256 and sub.extras["source_sha256"] == small.sha256
    else:
        assert sub.sha256 == small.sha256


def test_subsample_checksum_depends_on_caps_and_seed(small):
    keys = {
        small.subsample(2, 1, seed=0).sha256,
        small.subsample(3, 1, seed=0).sha256,
        small.subsample(2, 2, seed=0).sha256,
        small.subsample(2, 1, seed=1).sha256,
    }
    assert len(keys) == 4 and small.sha256 not in keys
    assert small.subsample(2, 1, seed=0).sha256 == small.subsample(2, 1, seed=0).sha256
    assert small.subsample(None, None).sha256 == small.sha256


def test_subsample_is_deterministic(small):
    a, b, c = small.subsample(2, 1, seed=0), small.subsample(2, 1, seed=0), small.subsample(2, 1, seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert not np.array_equal(a.ids, c.ids)
    # one cap's picks do not depend on the other cap
    d = small.subsample(2, None, seed=0)
    np.testing.assert_array_equal(a.ids[a.usage == "Training"], d.ids[d.usage == "Training"])


def test_subsample_keeps_per_image_extras_in_step(small):
    tagged = FERData(
        small.images,
        small.labels,
        small.usage,
        small.source,
        small.sha256,
        small.form,
        small.ids,
        extras={
            "row": np.arange(len(small)),
            "per_image": ("row",),
            "table": np.zeros((len(small), 2)),
            "note": "kept",
        },
    )
    sub = tagged.subsample(1, 1)
    np.testing.assert_array_equal(tagged.images[sub.extras["row"]], sub.images)
    # an array not named per-image is kept whole, even where its length happens to equal N
    assert sub.extras["table"].shape == (len(small), 2) and sub.extras["note"] == "kept"


def test_counts_and_class_weights(small):
    counts = small.counts()
    assert list(counts.index) == list(CLASS_NAMES) and list(counts.columns) == list(SPLITS)
    assert (counts == 6).all().all()
    skewed = small.subsample(train_per_class=None, eval_per_class=None)
    keep = ~((skewed.usage == "Training") & (skewed.labels == 1) & (np.arange(len(skewed)) % 2 == 0))
    skewed = FERData(
        skewed.images[keep], skewed.labels[keep], skewed.usage[keep], "x", "x", "kaggle-zip", skewed.ids[keep]
    )
    train = skewed.labels[skewed.usage == "Training"]
    expected = len(train) / (NUM_CLASSES * np.bincount(train, minlength=NUM_CLASSES))
    np.testing.assert_allclose(skewed.class_weights(), expected)
    assert skewed.class_weights()[1] > skewed.class_weights()[0]
    without_disgust = skewed.labels != 1
    with pytest.raises(ValueError, match="no images of Disgust"):
        FERData(
            skewed.images[without_disgust],
            skewed.labels[without_disgust],
            skewed.usage[without_disgust],
            "x",
            "x",
            "kaggle-zip",
        ).class_weights()


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.subsample(2, 1),
        lambda d: d.counts(),
        lambda d: d.class_weights(),
        find_duplicates,
        lambda d: duplicate_summary(find_duplicates(d)),
    ],
    ids=["subsample", "counts", "class_weights", "find_duplicates", "duplicate_summary"],
)
def test_helpers_do_not_mutate_their_input(small, call):
    before = {name: getattr(small, name).copy() for name in ("images", "labels", "usage", "ids")}
    extras_before = dict(small.extras)
    call(small)
    for name, array in before.items():
        np.testing.assert_array_equal(getattr(small, name), array)
    assert small.extras == extras_before


def with_duplicates() -> FERData:
    """Random faces (Training 0-27, PublicTest 28-55, PrivateTest 56-83) with planted copies: A twice in Training;
    B twice in Training and once in PublicTest with another label; D three times in Training, once with another
    label; C in Training, twice in PublicTest and in PrivateTest."""
    images, labels, usage = fake_arrays(per_class=4)
    a, b, d, c = 0, 1, 3, 30
    planted = [
        (5, a, None),
        (15, b, None),
        (43, b, 4),
        (16, d, None),
        (17, d, 5),
        (8, c, None),
        (44, c, None),
        (70, c, None),
    ]
    for target, source, label in planted:
        images[target] = images[source]
        labels[target] = labels[source] if label is None else label
    ids = np.array([f"img{i}" for i in range(len(labels))])
    return FERData(images, labels, usage, "planted", "0" * 64, "kaggle-zip", ids)


def test_find_duplicates_groups():
    table = find_duplicates(with_duplicates())
    assert list(table.columns) == ["group", "index", "id", "usage", "label", "class_name"]
    groups = [list(g["index"]) for _, g in table.groupby("group", sort=True)]
    assert groups == [[0, 5], [1, 15, 43], [3, 16, 17], [8, 30, 44, 70]]
    assert table.loc[table["index"] == 43, ["usage", "label", "class_name", "id"]].values.tolist() == [
        ["PublicTest", 4, "Sad", "img43"]
    ]
    assert duplicate_summary(table).to_dict() == {
        "groups": 4,
        "images": 12,
        "within_Training": 7,
        "within_PublicTest": 2,
        "within_PrivateTest": 0,
        "Training_with_PublicTest": 3,
        "Training_with_PrivateTest": 1,
        "PublicTest_with_Training": 3,
        "PrivateTest_with_Training": 1,
        "PublicTest_with_PrivateTest": 2,
        "PrivateTest_with_PublicTest": 1,
        "Training_with_test": 3,
        "conflicting_groups": 2,
        "conflicting_images": 6,
    }


def test_no_duplicates():
    images, labels, usage = fake_arrays()
    table = find_duplicates(FERData(images, labels, usage, "x", "x", "synthetic"))
    assert table.empty
    assert duplicate_summary(table)["groups"] == 0


def test_check_dataset_report(tmp_path):
    path = kaggle_zip(tmp_path, extra={"train/fear/Training_blank.png": encode(np.full((48, 48), 9, np.uint8))})
    report = check_dataset(path, cache_dir=tmp_path / "cache")
    assert "form: kaggle-zip" in report and "sha256: " in report
    assert "blank images (one grey level): 1, 1 in Training, 0 in PublicTest, 0 in PrivateTest" in report
    assert "counts DIFFER from FER-2013 in 21 cells" in report
    assert "Training_with_test" in report
    with pytest.raises(FERDataError, match="no such file"):
        check_dataset(tmp_path / "absent.zip", cache_dir=tmp_path / "cache")


def test_synthetic_data_subsamples_with_its_masks():
    synthetic = pytest.importorskip("fer_helpers.data.synthetic")
    data = synthetic.make_synthetic_fer(n_train=140, n_public=70, n_private=70, seed=0)
    sub = data.subsample(5, 3)
    assert sub.extras["decisive_masks"].shape[0] == len(sub)
    index = {i: k for k, i in enumerate(data.ids)}
    rows = [index[i] for i in sub.ids]
    np.testing.assert_array_equal(synthetic.decisive_masks(sub), synthetic.decisive_masks(data)[rows])


# ---------------------------------------------------------------- the real FER-2013 (FER2013_PATH)


def test_real_split_sizes(real_data):
    assert len(real_data) == 35887
    assert {split: int((real_data.usage == split).sum()) for split in SPLITS} == {
        "Training": 28709,
        "PublicTest": 3589,
        "PrivateTest": 3589,
    }
    assert real_data.images.shape == (35887, 48, 48) and real_data.images.dtype == np.uint8


def test_real_counts_per_class(real_data):
    counts = real_data.counts()
    for split in SPLITS:
        assert tuple(counts[split]) == FER2013_COUNTS[split]


def test_real_ids_are_unique_and_report_matches(real_data, tmp_path_factory):
    assert len(set(real_data.ids)) == len(real_data)
    report = check_dataset(real_data.source, cache_dir=tmp_path_factory.mktemp("check-cache"))
    assert "counts match FER-2013" in report and real_data.sha256 in report


# ---------------------------------------------------------------- near-duplicates


def _jpeg_again(image: np.ndarray, quality: int = 70) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The photograph moved by (dy, dx) pixels, the uncovered border filled from the edge."""
    padded = np.pad(image, 3, mode="edge")
    return padded[3 - dy : 51 - dy, 3 - dx : 51 - dx]


# How each test face below was made from a Training face (None: a face of its own).
NEAR_PAIRS = {
    "byte twin": lambda x: x.copy(),
    "re-encoded": _jpeg_again,
    "shifted 1 px": lambda x: _shifted(x, 1, -1),
    "shifted 2 px": lambda x: _shifted(x, -2, 2),
    "mirrored": lambda x: x[:, ::-1].copy(),
    "darker, less contrast": lambda x: (0.6 * x + 20).astype(np.uint8),
    "brighter and re-encoded": lambda x: _jpeg_again(np.clip(1.2 * x.astype(float) + 25, 0, 255).astype(np.uint8)),
}


def near_data(synth) -> tuple[FERData, list[str]]:
    """Training: 40 synthetic faces. PrivateTest: one altered copy of each of the first faces (NEAR_PAIRS), then
    synthetic faces that are in no split, the same expressions drawn again."""
    train_images, train_labels = synth.split("Training")
    private_images, private_labels = synth.split("PrivateTest")
    train_images, train_labels = train_images[:40], train_labels[:40]
    copies = [make(train_images[i]) for i, make in enumerate(NEAR_PAIRS.values())]
    kinds = list(NEAR_PAIRS) + ["a face of its own"] * 20
    images = np.concatenate([train_images, np.stack(copies), private_images[:20]])
    labels = np.concatenate([train_labels, train_labels[: len(copies)], private_labels[:20]])
    usage = np.array(["Training"] * 40 + ["PrivateTest"] * (len(copies) + 20))
    data = FERData(images=images, labels=labels, usage=usage, source="constructed", sha256="0" * 64, form="synthetic")
    return data, kinds


def test_near_duplicates_finds_altered_copies_and_not_other_faces(synth):
    data, kinds = near_data(synth)
    before = data.images.copy()
    table = data_module.near_duplicates(data, "PrivateTest")
    np.testing.assert_array_equal(data.images, before)  # nothing altered in place
    table["kind"] = kinds
    copies = table[table["kind"] != "a face of its own"]
    assert copies["near"].all(), copies[["kind", "score"]].to_string()
    assert (copies["match"].to_numpy() == np.arange(len(copies))).all()  # each copy is matched to its own original
    assert copies.loc[copies["kind"] == "byte twin", "twin"].all() and copies["twin"].sum() == 1
    assert copies.loc[copies["kind"] == "darker, less contrast", "score"].iloc[0] > 0.99  # correlation ignores it
    others = table[table["kind"] == "a face of its own"]
    assert not others["near"].any(), others["score"].describe().to_string()
    assert others["score"].max() < data_module.NEAR_DUPLICATE_THRESHOLD
    counts = data_module.near_duplicate_counts(table)
    assert counts.loc["all", "near_duplicates"] == len(copies) and counts.loc["all", "twins"] == 1
    assert counts.loc["all", "same_label"] == len(copies)
    assert counts.drop(index="all")["faces"].sum() == len(table)


def test_near_duplicates_are_computed_once_per_set_of_faces(synth, tmp_path, monkeypatch):
    data, _ = near_data(synth)
    data_module.near_duplicates(data, "PrivateTest", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.csv"))  # synthetic faces are not cached
    data = replace(data, form="kaggle-zip")  # as if FER-2013
    first = data_module.near_duplicates(data, "PrivateTest", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.csv"))) == 1

    def recomputed(*args, **kwargs):
        raise AssertionError("the cached table was not used")

    with monkeypatch.context() as patch:
        patch.setattr(data_module, "find_near_duplicates", recomputed)
        pd.testing.assert_frame_equal(data_module.near_duplicates(data, "PrivateTest", cache_dir=tmp_path), first)
    # other faces (one label changed) are another key: computed afresh, not read from the first table
    other = replace(data, labels=np.where(np.arange(len(data.labels)) == 0, (data.labels + 1) % 7, data.labels))
    table = data_module.near_duplicates(other, "PrivateTest", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.csv"))) == 2 and len(table) == len(first)
    # another threshold is another table: computed afresh
    strict = data_module.near_duplicates(data, "PrivateTest", threshold=0.999, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.csv"))) == 3 and strict["near"].sum() < first["near"].sum()
    # an unreadable cache file only costs the time
    for path in tmp_path.glob("*.csv"):
        path.write_text("not,a\ntable")
    pd.testing.assert_frame_equal(data_module.near_duplicates(data, "PrivateTest", cache_dir=tmp_path), first)


def test_near_duplicate_score_is_symmetric_in_brightness_and_one_for_the_same_pixels(synth):
    images, _ = synth.split("Training")
    a = images[:5]
    np.testing.assert_allclose(data_module.near_duplicate_score(a, a), 1.0, atol=1e-5)
    np.testing.assert_allclose(data_module.near_duplicate_score(a, 255 - (255 - a) // 2), 1.0, atol=1e-2)
    unrelated = data_module.near_duplicate_score(a, images[5:10])
    assert (unrelated < data_module.NEAR_DUPLICATE_THRESHOLD).all()
    with pytest.raises(ValueError, match="unknown split"):
        data_module.near_duplicates(synth, "Validation")
