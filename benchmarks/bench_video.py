"""What `fer-study predict` costs on a video: seconds per analysed frame of a 640x480 video at frame steps 1 and 5,
and the peak memory of a long video beside a short one (frames are streamed, so it should not grow with length).

The video is skimage's astronaut (a real photo with one face) at 400 pixels, drifting across a grey 640x480 frame
at 25 frames per second, written with OpenCV's MPEG-4 encoder. Each measurement runs in its own process with the
model `fer-study predict` would load (`predict.load_model`), the Haar cascade and ONNX Runtime as shipped; the
seconds are those of `wild.predict_to_csv` alone (reading, detection, classification, the CSV), without the
process's start, and the memory is the process's peak resident set (`getrusage` of the finished child).
Usage: python benchmarks/bench_video.py [SHORT_FRAMES LONG_FRAMES]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHORT_FRAMES, LONG_FRAMES = 200, 2000
CHILD = """
import json, sys, time
from functools import partial
from fer_helpers.publish.predict import class_probs, load_model, model_line
from fer_helpers.publish.wild import predict_to_csv
video, csv_path, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = load_model()
start, cpu = time.perf_counter(), time.process_time()
(summary,) = predict_to_csv([video], partial(class_probs, model), csv_path, every=every)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "frames": summary.frames, "faces": summary.faces,
                  "model": model_line(model)}))
"""


def make_video(path: Path, n_frames: int) -> Path:
    """The astronaut drifting across n_frames frames of 640x480 at 25 fps."""
    import cv2
    import numpy as np
    from skimage import data as skimage_data

    astronaut = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for i in range(n_frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        left = 40 + round(100 * (1 + np.sin(i / 40)))
        frame[40:440, left : left + 400] = astronaut
        writer.write(frame)
    writer.release()
    return path


def _measure(video: Path, every: int, folder: Path) -> dict:
    """The child's own report with its peak resident memory (MB)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(video), str(folder / f"{video.stem}-{every}.csv"), str(every)],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"{video.name} every {every}: failed"
    return json.loads(out) | {"peak_mb": usage.ru_maxrss / 1024}


def run(short_frames: int = SHORT_FRAMES, long_frames: int = LONG_FRAMES) -> dict:
    """Seconds (wall and CPU) per analysed frame at steps 1 and 5 on the short video; peak memory on the short video
    and on the long one (at step 5: every frame decoded, one in five analysed)."""
    results: dict = {"short_frames": short_frames, "long_frames": long_frames}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        short = make_video(folder / "short.mp4", short_frames)
        long = make_video(folder / "long.mp4", long_frames)
        for every in (1, 5):
            measured = _measure(short, every, folder)
            assert measured["faces"] == measured["frames"], f"the face was missed: {measured}"
            results[f"every_{every}_seconds_per_analysed_frame"] = round(measured["seconds"] / measured["frames"], 4)
            results[f"every_{every}_cpu_seconds_per_analysed_frame"] = round(
                measured["cpu_seconds"] / measured["frames"], 4
            )
            results[f"every_{every}_video_seconds_per_second"] = round(measured["seconds"] / (short_frames / 25), 3)
            results[f"every_{every}_short_peak_mb"] = round(measured["peak_mb"], 1)
            results["model"] = measured["model"]
        measured = _measure(long, 5, folder)  # every frame decoded, one in five analysed
        results["long_every_5_seconds_per_analysed_frame"] = round(measured["seconds"] / measured["frames"], 4)
        results["long_every_5_peak_mb"] = round(measured["peak_mb"], 1)
    return results


if __name__ == "__main__":
    sizes = [int(n) for n in sys.argv[1:3]]
    print(json.dumps(run(*sizes), indent=2))
