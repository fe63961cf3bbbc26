"""Videos and folders into one CSV: tracking, frame times and steps, bad inputs as rows, no half-written output."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import png_header
from skimage import data as skimage_data

from fer_helpers.core.boxes import box_iou
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish import wild
from fer_helpers.publish.wild import (
    COLUMNS,
    MAX_MISSED,
    Tracker,
    WildError,
    frame_step,
    plot_timelines,
    predict_to_csv,
    timeline_file,
)

FPS = 10.0
SIZE = (160, 120)  # width, height of the drawn videos


def squares(gray: np.ndarray) -> np.ndarray:
    """A stand-in face detector for drawn videos: the boxes of the bright blobs, left to right."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((gray > 128).astype(np.uint8))
    boxes = stats[1:n, :4].astype(np.int64)
    return boxes[np.argsort(boxes[:, 0], kind="stable")]


def brightness(faces: np.ndarray) -> np.ndarray:
    """A stand-in classifier: Happy for bright faces, Sad for dark ones, the rest sharing what is left."""
    bright = faces.reshape(len(faces), -1).mean(axis=1) / 255.0
    probs = np.full((len(faces), len(CLASS_NAMES)), 0.0)
    probs[:, CLASS_NAMES.index("Happy")] = bright
    probs[:, CLASS_NAMES.index("Sad")] = 1 - bright
    return probs


def _drawn_video(path: Path, n_frames: int, fourcc: str = "MJPG", fps: float = FPS) -> Path:
    """Two white squares drifting right; the second leaves after half the frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened()
    for i in range(n_frames):
        frame = np.full((SIZE[1], SIZE[0], 3), 30, np.uint8)
        cv2.rectangle(frame, (5 + i, 20), (35 + i, 50), (255, 255, 255), -1)
        if i < n_frames // 2:
            cv2.rectangle(frame, (90 + i, 60), (115 + i, 85), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------- tracking
def test_box_iou():
    a = np.array([[0, 0, 10, 10], [100, 100, 5, 5]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [50, 50, 10, 10]])
    expected = [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(box_iou(a, b), expected)
    assert box_iou(a, np.empty((0, 4))).shape == (2, 0)


def test_tracker_follows_faces_starts_new_ones_and_ends_lost_ones():
    tracker = Tracker()
    left, right = np.array([10, 10, 40, 40]), np.array([200, 10, 40, 40])
    assert tracker.update(np.array([left, right])) == [0, 1]
    assert tracker.update(np.array([right + [4, 0, 0, 0], left + [3, 2, 0, 0]])) == [1, 0]  # order does not matter
    assert tracker.update(np.array([left + [100, 0, 0, 0]])) == [2]  # no overlap: a new face
    for _ in range(MAX_MISSED - 1):  # tracks 0 and 1 miss their faces, but are still open
        tracker.update(np.empty((0, 4)))
    assert tracker.update(np.array([right + [4, 0, 0, 0]])) == [1]
    for _ in range(MAX_MISSED + 1):
        tracker.update(np.empty((0, 4)))
    assert tracker.update(np.array([right])) == [3]  # missed too long: its track had ended
    assert tracker.tracks.keys() == {3}


def test_greedy_matching_gives_a_track_to_the_face_that_overlaps_it_most():
    tracker = Tracker()
    tracker.update(np.array([[0, 0, 40, 40]]))
    assert tracker.update(np.array([[15, 0, 40, 40], [2, 0, 40, 40]])) == [1, 0]


@pytest.mark.parametrize("every, step_seconds, expected", [(1, None, 1), (5, None, 5), (1, 0.5, 5), (9, 0.01, 1)])
def test_frame_step(every, step_seconds, expected):
    assert frame_step(FPS, every, step_seconds) == expected


@pytest.mark.parametrize("every, step_seconds", [(0, None), (1, 0.0), (1, -2.0)])
def test_bad_steps_are_errors(every, step_seconds):
    with pytest.raises(WildError, match="step"):
        frame_step(FPS, every, step_seconds)


# ---------------------------------------------------------------------------------------------- videos
@pytest.mark.parametrize("every, step_seconds", [(1, None), (5, None), (1, 0.5)])
def test_video_rows_times_tracks_and_probabilities(tmp_path, every, step_seconds):
    video = _drawn_video(tmp_path / "squares.avi", 20)
    out = tmp_path / "out" / "squares.csv"
    (summary,) = predict_to_csv([video], brightness, out, every=every, step_seconds=step_seconds, detect=squares)
    rows = _rows(out)
    assert list(rows[0]) == COLUMNS
    step = every if step_seconds is None else 5
    analysed = list(range(0, 20, step))
    assert sorted({int(r["frame"]) for r in rows}) == analysed
    assert summary.frames == len(analysed) and not summary.failed
    for r in rows:
        assert r["status"] == "ok" and r["source"] == str(video)
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / FPS)
        probs = [float(r[f"p_{c}"]) for c in CLASS_NAMES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-3) and r["top"] == "Happy"
    faces_per_frame = {f: [r for r in rows if int(r["frame"]) == f] for f in analysed}
    for f, found in faces_per_frame.items():
        assert len(found) == (2 if f < 10 else 1)
        left = found[0]
        assert left["face"] == "0" and left["track"] == "0"  # the square that stays keeps its track
        assert abs(int(left["x"]) - (5 + f)) <= 1 and abs(int(left["w"]) - 31) <= 1
        if f < 10:
            assert found[1]["track"] == "1"
    assert summary.faces == len(rows)


def test_frames_are_downscaled_to_max_side_and_boxes_reported_in_original_pixels(tmp_path):
    video = _drawn_video(tmp_path / "squares.avi", 4)
    seen = []

    def detect(gray):
        seen.append(gray.shape)
        return squares(gray)

    out = tmp_path / "squares.csv"
    predict_to_csv([video], brightness, out, max_side=80, detect=detect)
    assert set(seen) == {(60, 80)}
    first = _rows(out)[0]
    assert abs(int(first["x"]) - 5) <= 2 and abs(int(first["w"]) - 31) <= 2


def test_frames_without_faces_get_a_row_each(tmp_path):
    video = _drawn_video(tmp_path / "squares.avi", 6)
    out = tmp_path / "none.csv"
    (summary,) = predict_to_csv([video], brightness, out, detect=lambda gray: np.empty((0, 4)))
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["no face"] * 6 and [r["frame"] for r in rows] == list("012345")
    assert summary.faces == 0 and summary.frames == 6 and not summary.failed


def test_an_unstated_frame_rate_falls_back_to_the_default(tmp_path, monkeypatch):
    video = _drawn_video(tmp_path / "squares.avi", 3)
    real = cv2.VideoCapture

    class NoRate:
        def __init__(self, path):
            self.capture = real(path)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self.capture.get(prop)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(wild.cv2, "VideoCapture", NoRate)
    out = tmp_path / "norate.csv"
    with pytest.warns(UserWarning, match="squares.avi: states no frame rate; its times assume 25 frames per second"):
        predict_to_csv([video], brightness, out, detect=squares)
    frames = {int(r["frame"]): float(r["time_s"]) for r in _rows(out)}
    assert frames == {f: pytest.approx(f / wild.DEFAULT_FPS) for f in range(3)}


def test_annotated_video_and_timeline(tmp_path):
    video = _drawn_video(tmp_path / "squares.avi", 10)
    out = tmp_path / "results" / "squares.csv"
    predict_to_csv([video], brightness, out, every=2, detect=squares, annotate_dir=tmp_path / "annotated")
    annotated = tmp_path / "annotated" / "squares_emotions.mp4"
    capture = cv2.VideoCapture(str(annotated))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS / 2)
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (SIZE[1], SIZE[0], 3)
    assert os.listdir(tmp_path / "annotated") == ["squares_emotions.mp4"]
    assert plot_timelines(out) == [timeline_file(out, video)] == [tmp_path / "results" / "squares_timeline.png"]
    assert timeline_file(out, video).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path / "results")) == ["squares.csv", "squares_timeline.png"]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """A folder of everything a user may leave in one: good and bad photos and videos, and other files."""
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    faces = make_synthetic_fer(14, 0, 0, seed=1, imbalance=False).images
    assert cv2.imwrite(str(folder / "a_face.png"), faces[3])  # 48x48: a face crop, classified whole
    assert cv2.imwrite(str(folder / "sub" / "b_face.jpg"), faces[5])
    (folder / "c_text.mp4").write_text("not a video at all")
    (folder / "d_text.jpg").write_text("not a photo either")
    (folder / "e_notes.txt").write_text("shopping list")
    _drawn_video(folder / "f_good.avi", 6)
    data = _drawn_video(tmp_path / "whole.avi", 30).read_bytes()
    (folder / "g_cut.avi").write_bytes(data[: len(data) // 2])
    data = _drawn_video(tmp_path / "whole.mp4", 30, "mp4v").read_bytes()
    (folder / "h_cut.mp4").write_bytes(data[: len(data) // 2])
    _drawn_video(folder / "i_zero.avi", 0)
    png_header(folder / "j_huge.png", 20000, 20000)
    assert cv2.imwrite(str(folder / "k_no_face.png"), np.full((300, 400), 90, np.uint8))
    (folder / ".hidden.png").write_text("hidden files are left alone")
    return folder


def test_a_mixed_folder_gives_a_row_per_problem_and_goes_on(mixed_folder, tmp_path):
    out = tmp_path / "mixed.csv"
    summaries = predict_to_csv([mixed_folder], brightness, out, detect=squares)
    rows = _rows(out)
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(Path(r["source"]).name, []).append(r)
    assert list(by_file) == [
        "a_face.png",
        "c_text.mp4",
        "d_text.jpg",
        "e_notes.txt",
        "f_good.avi",
        "g_cut.avi",
        "h_cut.mp4",
        "i_zero.avi",
        "j_huge.png",
        "k_no_face.png",
        "b_face.jpg",
    ]
    status = {name: [r["status"] for r in found] for name, found in by_file.items()}
    assert status["a_face.png"] == status["b_face.jpg"] == ["ok"]
    assert by_file["a_face.png"][0]["w"] == str(IMAGE_SIZE) and by_file["a_face.png"][0]["time_s"] == ""
    assert status["c_text.mp4"] == ["error: not a video OpenCV can open (unknown format, or a damaged file)"]
    assert status["d_text.jpg"][0].startswith("error: not a readable image")
    assert status["e_notes.txt"] == ["skipped: not an image or video by its name (.txt)"]
    assert status["f_good.avi"] == ["ok"] * 9  # 6 frames, the second square in the first 3
    cut = status["g_cut.avi"]
    assert 0 < cut.count("ok") < 45 and cut[-1].startswith("truncated: decoded ")
    assert "of the 30 frames the file states" in cut[-1]
    assert status["h_cut.mp4"][0].startswith("error: not a video")  # its index (at the end) is gone
    assert status["i_zero.avi"] == ["no frames"]
    assert status["j_huge.png"][0].startswith("error: too large to decode safely")
    assert status["k_no_face.png"] == ["no face"]
    failed = {Path(s.source).name for s in summaries if s.failed}
    assert failed == {"c_text.mp4", "d_text.jpg", "g_cut.avi", "h_cut.mp4", "i_zero.avi", "j_huge.png"}
    assert all(".hidden" not in r["source"] for r in rows)


def test_a_file_named_on_its_own_is_read_by_its_content(tmp_path):
    face = make_synthetic_fer(7, 0, 0, seed=0, imbalance=False).images[0]
    image = tmp_path / "face.data"
    assert cv2.imwrite(str(tmp_path / "face.png"), face)
    (tmp_path / "face.png").rename(image)
    (summary,) = predict_to_csv([image], brightness, tmp_path / "one.csv")
    assert summary.kind == "photo" and summary.faces == 1


def test_missing_inputs_are_rows_that_say_so(tmp_path):
    out = tmp_path / "missing.csv"
    summaries = predict_to_csv([tmp_path / "gone.mp4", tmp_path / "gone.jpg"], brightness, out)
    assert [r["status"] for r in _rows(out)] == ["error: no such file"] * 2 and all(s.failed for s in summaries)


def test_an_interrupted_run_leaves_no_csv_and_keeps_the_old_one(mixed_folder, tmp_path):
    out = tmp_path / "results" / "mixed.csv"
    out.parent.mkdir()
    out.write_text("the previous run's results\n")
    calls = []

    def failing(faces):
        calls.append(len(faces))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressing Ctrl-C in the middle of the folder
        return brightness(faces)

    with pytest.raises(KeyboardInterrupt):
        predict_to_csv([mixed_folder], failing, out, detect=squares, annotate_dir=tmp_path / "results")
    assert out.read_text() == "the previous run's results\n"
    assert os.listdir(out.parent) == ["mixed.csv"]  # no temporary CSV or half-written annotated video


def test_options_are_checked_before_any_file_is_read(tmp_path):
    for options in ({"every": 0}, {"step_seconds": -1.0}, {"max_side": 10}):
        with pytest.raises(WildError):
            predict_to_csv([tmp_path / "missing.mp4"], brightness, tmp_path / "x.csv", **options)
    assert not (tmp_path / "x.csv").exists()


# ---------------------------------------------------------------------------------------------- the command
def _astronaut_video(path: Path, n_frames: int) -> Path:
    """skimage's astronaut (a real photo with one face) at 400 pixels, drifting across a 640x480 video."""
    astronaut = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for i in range(n_frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[40:440, 60 + 4 * i : 460 + 4 * i] = astronaut
        writer.write(frame)
    writer.release()
    return path


def test_cli_predicts_a_real_face_in_a_video_with_the_haar_cascade(tmp_path, weights, capsys):
    video = _astronaut_video(tmp_path / "astronaut.mp4", 6)
    out = tmp_path / "predictions"
    assert main(["predict", str(video), "--weights", str(weights), "--out", str(out), "--plot"]) == 0
    printed = capsys.readouterr().out
    assert "astronaut.mp4: 6 frames analysed, 6 faces (6 ok)" in printed
    rows = _rows(out / "astronaut_emotions.csv")
    assert [r["frame"] for r in rows] == list("012345") and {r["track"] for r in rows} == {"0"}
    for i, r in enumerate(rows):  # the face is at (177, 66, 97, 97) of the 512-pixel photo, scaled to 400
        assert abs(int(r["x"]) - (60 + 4 * i + 177 * 400 / 512)) < 8 and abs(int(r["y"]) - (40 + 66 * 400 / 512)) < 8
        assert float(r["time_s"]) == pytest.approx(i / 25)
    assert (out / "astronaut_timeline.png").is_file()


def test_cli_folder_with_bad_files_writes_the_csv_and_exits_2(tmp_path, weights, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    faces = make_synthetic_fer(7, 0, 0, seed=0, imbalance=False).images
    assert cv2.imwrite(str(folder / "face.png"), faces[0])
    (folder / "broken.jpg").write_text("no pixels here")
    csv_path = tmp_path / "scores.csv"
    assert main(["predict", str(folder), "--weights", str(weights), "--csv", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg: 0 faces (1 error: not a readable image" in err
    rows = _rows(csv_path)
    assert [Path(r["source"]).name for r in rows] == ["broken.jpg", "face.png"]
    assert rows[0]["status"].startswith("error: not a readable image") and rows[1]["status"] == "ok"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--every", "0"], "must be positive"),
        (["--every", "2", "--step-seconds", "1"], "not allowed with argument"),
        (["--max-side", "x"], "not a number"),
    ],
)
def test_cli_bad_options_are_usage_errors(tmp_path, capsys, options, message):
    video = _drawn_video(tmp_path / "squares.avi", 2)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(video), *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_explain_is_for_photos_only(tmp_path, weights, capsys):
    video = _drawn_video(tmp_path / "squares.avi", 2)
    assert main(["predict", str(video), "--weights", str(weights), "--explain"]) == 2
    assert "--explain draws Grad-CAM on photos only" in capsys.readouterr().err
