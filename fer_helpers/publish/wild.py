"""Emotions in the wild: the faces of videos and folders of photos, frame by frame, into one CSV.

Inputs (`input_files`): photos, videos and folders; a folder stands for every file under it (hidden ones aside),
where files named as neither image nor video get a row that says they were skipped. A video is streamed with
OpenCV's reader (`cv2.VideoCapture`): one frame in memory at a time, every n-th frame analysed (the others
are skipped without conversion), its time `frame / fps` from the frame rate the file states (`DEFAULT_FPS` where it
states none). Each analysed frame is downscaled to at most max_side pixels and goes through the single-photo path
of `fer_helpers.publish.predict` (`photo_from_rgb`, `locate_faces`); photos are read with its `load_photo`, which
refuses decompression bombs before decoding them.

Tracks (`Tracker`): deliberately simple. Each analysed frame's boxes are matched greedily, largest overlap first,
to the boxes the open tracks had last; an overlap (intersection over union) below `MIN_IOU` starts a new track, and
a track missing for more than `MAX_MISSED` analysed frames ends. There is no motion model and no appearance model:
two faces that cross, or a face that moves more than its own width between analysed frames (a large frame step), get
new track ids.

Output (`predict_to_csv`): one row per analysed frame and face, `COLUMNS`; a frame without a face, an unreadable
file, a video with no frames or cut short each get a row whose status says so, and the run goes on. The CSV is
streamed into a temporary file that takes its name only when every input is done, so an interrupted run leaves no
half-written CSV. Optional: a plot of each video's probabilities over time per track (`plot_timelines`; matplotlib
is imported only then) and an annotated copy of each video (`annotated_video`).

Classification is a function from faces (N,48,48) uint8 to probabilities (N,7) in FER-2013's class order
(`Classify`; `predict.class_probs` bound to a loaded model), so any model, exported or calibrated, plugs in.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_helpers.core.boxes import box_iou
from fer_helpers.core.files import atomic_open, atomic_path
from fer_helpers.data.classes import CLASS_NAMES
from fer_helpers.publish.predict import (
    IMAGE_SUFFIXES,
    WORK_SIDE,
    PredictError,
    draw_box,
    face_color,
    load_photo,
    locate_faces,
    photo_from_rgb,
)

Classify = Callable[[np.ndarray], np.ndarray]  # faces (N,48,48) uint8 -> probabilities (N,7)
Detect = Callable[[np.ndarray], np.ndarray]  # grayscale image -> boxes (K,4) x, y, width, height in its pixels

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
DEFAULT_FPS = 25.0  # frames per second assumed where a video states none (OpenCV reports 0)
# Some containers (Matroska, WebM) only estimate their frame count from duration and rate: a video is called cut
# short only where it ends more than this share (and one frame) before the count it states.
COUNT_SLACK = 0.02
MIN_IOU = 0.3  # a face overlapping a track's last box less than this starts a new track
MAX_MISSED = 5  # analysed frames a track may miss its face before it ends
MAX_PLOT_TRACKS = 6  # tracks drawn in a video's timeline: the longest ones
PROBABILITY_DECIMALS = 4
TIMELINE_SUFFIX = "_timeline.png"
ANNOTATED_VIDEO_SUFFIX = "_emotions.mp4"
ANNOTATED_FOURCC = "mp4v"  # MPEG-4 Part 2: written by every OpenCV build with FFmpeg, read by common players

OK, NO_FACE, NO_FRAMES = "ok", "no face", "no frames"
ERROR, TRUNCATED, SKIPPED = "error", "truncated", "skipped"  # status prefixes, followed by ": " and why
PROB_COLUMNS = [f"p_{name}" for name in CLASS_NAMES]
COLUMNS = ["source", "time_s", "frame", "face", "track", "x", "y", "w", "h", *PROB_COLUMNS, "top", "status"]


class WildError(ValueError):
    """A run's options that cannot be used (the inputs' own problems become rows, not errors)."""


@dataclass
class SourceSummary:
    """What became of one input: its kind ("photo", "video" or "other"), rows by status, faces classified."""

    source: str
    kind: str
    statuses: Counter = field(default_factory=Counter)
    faces: int = 0
    frames: int = 0  # analysed frames of a video

    @property
    def failed(self) -> bool:
        """Whether the input could not be read (wholly or in part): an error, a cut-short video, no frames."""
        return any(s.startswith((ERROR, TRUNCATED)) or s == NO_FRAMES for s in self.statuses)

    def line(self) -> str:
        """One line for the terminal."""
        counts = ", ".join(f"{n} {status}" for status, n in self.statuses.most_common())
        frames = f"{self.frames} frames analysed, " if self.kind == "video" else ""
        return f"{self.source}: {frames}{self.faces} faces ({counts})"


# ---------------------------------------------------------------------------------------------- tracking
class Tracker:
    """Faces followed across a video's analysed frames by greedy overlap matching (no motion or appearance model)."""

    def __init__(self, min_iou: float = MIN_IOU, max_missed: int = MAX_MISSED):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: dict[int, tuple[np.ndarray, int]] = {}  # track id -> (its last box, analysed frames missed)
        self.next_id = 0

    def update(self, boxes: np.ndarray) -> list[int]:
        """The track id of each box (K,4) of the next analysed frame; new ids for faces no open track overlaps."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        ids = list(self.tracks)
        overlaps = box_iou(boxes, np.array([self.tracks[i][0] for i in ids]).reshape(-1, 4))
        assigned: list[int | None] = [None] * len(boxes)
        matched: set[int] = set()
        for flat in np.argsort(-overlaps, axis=None, kind="stable"):
            b, t = np.unravel_index(flat, overlaps.shape)
            if overlaps[b, t] < self.min_iou:
                break
            if assigned[b] is None and t not in matched:
                assigned[b] = ids[t]
                matched.add(t)
        for b in range(len(boxes)):
            if assigned[b] is None:
                assigned[b] = self.next_id
                self.next_id += 1
        kept = {i: (box, missed + 1) for t, (i, (box, missed)) in enumerate(self.tracks.items()) if t not in matched}
        self.tracks = {i: v for i, v in kept.items() if v[1] <= self.max_missed}
        self.tracks.update({i: (boxes[b], 0) for b, i in enumerate(assigned)})
        return [int(i) for i in assigned]


# ---------------------------------------------------------------------------------------------- rows
def _row(source: str, status: str, **values) -> dict:
    return {column: "" for column in COLUMNS} | {"source": source, "status": status} | values


def _face_rows(source: str, boxes: np.ndarray, probs: np.ndarray, tracks: Sequence, **values) -> list[dict]:
    rows = []
    for i, (box, p) in enumerate(zip(boxes, probs)):
        x, y, w, h = (int(v) for v in box)
        rows.append(
            _row(source, OK, face=i, track=tracks[i], x=x, y=y, w=w, h=h, top=CLASS_NAMES[int(np.argmax(p))], **values)
            | {column: round(float(v), PROBABILITY_DECIMALS) for column, v in zip(PROB_COLUMNS, p)}
        )
    return rows


def _reason(err: Exception, path: Path) -> str:
    """An error's message without the file name it starts with (the row's source names the file)."""
    text = str(err)
    return text.removeprefix(f"{path}: ")


def photo_rows(
    path: str | Path, classify: Classify, detect: Detect | None = None, max_side: int = WORK_SIDE
) -> list[dict]:
    """The rows of one photo: one per face, or one that says why there is none (unreadable, too large, no face)."""
    path = Path(path)
    try:
        photo = load_photo(path, work_side=max_side)
    except PredictError as err:
        return [_row(str(path), f"{ERROR}: {_reason(err, path)}")]
    faces, boxes, _ = locate_faces(photo, detect)
    if not len(faces):
        return [_row(str(path), NO_FACE)]
    return _face_rows(str(path), boxes, classify(faces), list(range(len(faces))))


@dataclass(frozen=True)
class VideoInfo:
    """What a video file states about itself."""

    fps: float  # frames per second: the stated rate, or DEFAULT_FPS where it states none
    fps_stated: bool
    frame_count: int  # as stated; 0 where unknown (some containers only estimate it)


def frame_step(fps: float, every: int = 1, step_seconds: float | None = None) -> int:
    """Frames from one analysed frame to the next: every, or step_seconds at fps (at least 1)."""
    if step_seconds is not None:
        if not step_seconds > 0:
            raise WildError(f"the step in seconds must be positive, not {step_seconds}")
        return max(1, round(step_seconds * fps))
    if every < 1:
        raise WildError(f"the frame step must be at least 1, not {every}")
    return int(every)


def video_rows(
    path: str | Path,
    classify: Classify,
    *,
    every: int = 1,
    step_seconds: float | None = None,
    max_side: int = WORK_SIDE,
    detect: Detect | None = None,
    annotate_dir: str | Path | None = None,
    progress: bool = False,
) -> Iterator[dict]:
    """The rows of one video, streamed frame by frame: one per face of each analysed frame, one per analysed frame
    without a face, and a last one where the video could not be opened, had no frames or was cut short."""
    path, source = Path(path), str(path)
    if not path.is_file():
        yield _row(source, f"{ERROR}: {'no such file' if not path.exists() else 'not a file'}")
        return
    capture = cv2.VideoCapture(str(path))
    with ExitStack() as stack:
        stack.callback(capture.release)
        if not capture.isOpened():
            yield _row(source, f"{ERROR}: not a video OpenCV can open (unknown format, or a damaged file)")
            return
        stated_fps = capture.get(cv2.CAP_PROP_FPS)
        fps_stated = math.isfinite(stated_fps) and stated_fps > 0
        info = VideoInfo(
            fps=stated_fps if fps_stated else DEFAULT_FPS,
            fps_stated=fps_stated,
            frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
        )
        if not fps_stated:
            warnings.warn(
                f"{path}: states no frame rate; its times assume {DEFAULT_FPS:g} frames per second", stacklevel=2
            )
        step = frame_step(info.fps, every, step_seconds)
        bar = stack.enter_context(_progress_bar(info, step, path.name, progress))
        tracker, writer, index = Tracker(), None, 0
        while True:
            if index % step:
                if not capture.grab():
                    break
                index += 1
                continue
            ok, bgr = capture.read()
            if not ok:
                break
            photo = photo_from_rgb(path, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), work_side=max_side)
            del bgr  # only the working copy stays
            faces, boxes, _ = locate_faces(photo, detect)
            time_s = round(index / info.fps, 3)
            if len(faces):
                rows = _face_rows(source, boxes, classify(faces), tracker.update(boxes), time_s=time_s, frame=index)
            else:
                tracker.update(boxes)
                rows = [_row(source, NO_FACE, time_s=time_s, frame=index)]
            yield from rows
            if annotate_dir is not None:
                if writer is None:
                    writer = _video_writer(stack, path, annotate_dir, info.fps / step, photo.rgb.shape)
                writer.write(annotated_frame(photo.rgb, photo.scale, rows))
            bar.update()
            index += 1
        if index == 0:
            yield _row(source, NO_FRAMES)
        elif index < info.frame_count * (1 - COUNT_SLACK) - 1:
            yield _row(
                source,
                f"{TRUNCATED}: decoded {index} of the {info.frame_count} frames the file states; the rows above "
                "are the frames before the damage",
                frame=index,
                time_s=round(index / info.fps, 3),
            )


def _progress_bar(info: VideoInfo, step: int, name: str, progress: bool):
    from tqdm import tqdm

    total = math.ceil(info.frame_count / step) if info.frame_count else None
    return tqdm(total=total, desc=name, unit="frame", disable=None if progress else True, leave=False)


def _video_writer(stack: ExitStack, path: Path, annotate_dir: str | Path, fps: float, shape: tuple) -> cv2.VideoWriter:
    """An annotated copy's writer, into a temporary file that takes its name when the video is done."""
    temporary = stack.enter_context(atomic_path(annotated_video(path, annotate_dir), keep_suffix=True))
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*ANNOTATED_FOURCC), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise WildError(f"{temporary}: OpenCV cannot write a {ANNOTATED_FOURCC} video here")
    stack.callback(writer.release)  # runs before the temporary file is moved into place
    return writer


def annotated_video(path: str | Path, annotate_dir: str | Path) -> Path:
    """Where a video's annotated copy goes: <annotate_dir>/<name>_emotions.mp4."""
    return Path(annotate_dir) / f"{Path(path).stem}{ANNOTATED_VIDEO_SUFFIX}"


def annotated_frame(rgb: np.ndarray, scale: float, rows: list[dict]) -> np.ndarray:
    """A working frame (RGB) as BGR with each face's box, track and top class drawn (boxes in original pixels)."""
    frame = rgb.copy()
    for row in rows:
        if row["status"] == OK:
            box = tuple(round(row[k] * scale) for k in ("x", "y", "w", "h"))
            label = f"#{row['track']} {row['top']} {row['p_' + row['top']]:.0%}"
            draw_box(frame, box, label, face_color(row["track"]))
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


# ---------------------------------------------------------------------------------------------- a whole run
def input_files(inputs: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """Each file to read and whether it was named itself (True) or found in a named folder (False), in order."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                f
                for f in item.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(item).parts)
            )
            files += [(f, False) for f in found]
        else:
            files.append((item, True))
    return files


def kind_of(path: Path, named: bool) -> str:
    """ "video" or "photo" by the file's suffix; a file named on its own is otherwise tried as a photo (Pillow
    reads by content), one found in a folder is "other" and skipped."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "photo" if suffix in IMAGE_SUFFIXES or named else "other"


def predict_to_csv(
    inputs: Sequence[str | Path],
    classify: Classify,
    csv_path: str | Path,
    *,
    every: int = 1,
    step_seconds: float | None = None,
    max_side: int | None = None,
    detect: Detect | None = None,
    annotate_dir: str | Path | None = None,
    progress: bool = False,
) -> list[SourceSummary]:
    """Classify the faces of photos, videos and folders' files into one CSV (`COLUMNS`), written under its name only
    once all are done; what became of each input. max_side defaults to `WORK_SIDE`."""
    max_side = WORK_SIDE if max_side is None else max_side
    if max_side < 48:
        raise WildError(f"the largest side must be at least 48 pixels, not {max_side}")
    frame_step(DEFAULT_FPS, every, step_seconds)  # the options' own errors, before any file is read
    from tqdm import tqdm

    files = input_files(inputs)
    summaries = []
    with atomic_open(csv_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for path, named in tqdm(
            files, desc="files", unit="file", disable=None if progress and len(files) > 1 else True
        ):
            summary = SourceSummary(str(path), kind_of(path, named))
            if summary.kind == "video":
                rows = video_rows(
                    path,
                    classify,
                    every=every,
                    step_seconds=step_seconds,
                    max_side=max_side,
                    detect=detect,
                    annotate_dir=annotate_dir,
                    progress=progress,
                )
            elif summary.kind == "photo":
                rows = photo_rows(path, classify, detect, max_side)
            else:
                rows = [_row(str(path), f"{SKIPPED}: not an image or video by its name ({path.suffix or 'no suffix'})")]
            frames = set()
            for row in rows:
                writer.writerow(row)
                summary.statuses[row["status"]] += 1
                summary.faces += row["status"] == OK
                if row["status"] in (OK, NO_FACE) and row["frame"] != "":
                    frames.add(row["frame"])
            summary.frames = len(frames)
            summaries.append(summary)
    return summaries


def timeline_file(csv_path: str | Path, source: str | Path) -> Path:
    """Where a video's timeline goes: beside the CSV, <video name>_timeline.png."""
    return Path(csv_path).with_name(f"{Path(source).stem}{TIMELINE_SUFFIX}")


def plot_timelines(csv_path: str | Path) -> list[Path]:
    """For each video in a CSV of `predict_to_csv`, its classes' probabilities over time, one panel per track (the
    MAX_PLOT_TRACKS longest), saved beside the CSV; the files written."""
    import pandas as pd
    from matplotlib.figure import Figure

    table = pd.read_csv(csv_path)
    faces = table[(table["status"] == OK) & table["time_s"].notna()]
    written = []
    for source, rows in faces.groupby("source", sort=False):
        tracks = rows["track"].value_counts().index[:MAX_PLOT_TRACKS]
        tracks = sorted(int(t) for t in tracks)
        fig = Figure(figsize=(10, 1.9 * len(tracks) + 0.8), layout="constrained")
        axes = fig.subplots(len(tracks), 1, sharex=True, squeeze=False)[:, 0]
        for ax, track in zip(axes, tracks):
            seen = rows[rows["track"] == track]
            for c, (name, column) in enumerate(zip(CLASS_NAMES, PROB_COLUMNS)):
                ax.plot(seen["time_s"], seen[column], ".-", color=f"C{c}", label=name, markersize=3, linewidth=1)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"track {track}\nprobability", fontsize=8)
        axes[0].legend(ncols=len(CLASS_NAMES), fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02))
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(f"{Path(source).name}: class probabilities per face track", fontsize=9)
        target = timeline_file(csv_path, source)
        with atomic_path(target) as temporary:
            fig.savefig(temporary, format="png", dpi=100)
        written.append(target)
    return written


def default_csv(inputs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """The CSV's default place: <out_dir>/<name>_emotions.csv for one input, <out_dir>/emotions.csv for several."""
    name = f"{Path(inputs[0]).stem}_emotions.csv" if len(inputs) == 1 else "emotions.csv"
    return Path(out_dir) / name


def is_media_run(inputs: Sequence[str | Path]) -> bool:
    """Whether inputs ask for the CSV run (a folder or a video among them) rather than annotated photos."""
    return any(Path(i).is_dir() or Path(i).suffix.lower() in VIDEO_SUFFIXES for i in inputs)
