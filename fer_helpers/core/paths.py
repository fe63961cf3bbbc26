"""Where the study lives and the environment variables it reads, each named once: the repository, its data/ and
models/ folders, and the variables that point at FER-2013 and the FER+ votes or change how a run behaves."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # fer_helpers/core/paths.py -> the repository
DATA_DIR = REPO / "data"  # where a user puts fer2013.zip (or .csv) and the FER+ votes
MODELS_DIR = REPO / "models"  # shipped weights and their model cards (`fer-study ship`)
METRICS_SCHEMA = REPO / "docs" / "metrics.schema.json"  # the JSON Schema of reports/metrics.json (docs/metrics.md)
REPORT_STEP = "report"  # a report run's last step, after the notebooks (metrics.json, REPORT.md): its timings' name

FER2013_ENV = "FER2013_PATH"  # points at FER-2013 (after an explicit path)
FERPLUS_ENV = "FERPLUS_PATH"  # points at the FER+ votes (after an explicit path)
CACHE_ENV = "FER_CACHE_DIR"  # where parsed FER-2013 arrays and near-duplicates are cached (~/.cache/fer_helpers)
RESUME_ENV = "FER_STUDY_RESUME"  # "0": no per-epoch state (a training host discarded after the run)
COMMIT_ENV = "FER_STUDY_COMMIT"  # the commit of a source tree copied without its .git (a training host's)
PROFILE_ENV = "FER_STUDY_PROFILE"  # the profile that "auto" stands for, where set (Colab's first cell sets it)
PRECISION_ENV = "FER_STUDY_PRECISION"  # "32-true" or "bf16-mixed": what precision "auto" stands for on a CPU
PROGRESS_ENV = "FER_STUDY_PROGRESS"  # the file a report run's notebooks append their progress lines to
