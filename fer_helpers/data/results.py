"""Cached training results: one folder per (model, configuration, data checksum), reloaded instead of retrained."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_helpers.core.files import atomic_dir
from fer_helpers.core.paths import COMMIT_ENV, MODELS_DIR, REPO

if TYPE_CHECKING:
    import pandas as pd

EVAL_SPLITS = ("PublicTest", "PrivateTest")
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.npz"
HISTORY_FILE = "history.csv"
WEIGHTS_FILE = "weights.safetensors"
SHIPPED_KEY = "run_key"  # metadata of a shipped weights file: the key of the run it came from
# An unfinished CNN run keeps its whole training state in <run folder>/checkpoints until it is saved: the state
# after the last finished epoch, the key of the run it belongs to, and how many epochs that state holds.
CHECKPOINT_DIR = "checkpoints"
RESUME_FILE = "resume.ckpt"
RESUME_KEY_FILE = "key.txt"
RESUME_EPOCHS_FILE = "epochs.txt"


def git_commit() -> str | None:
    """The repository's current commit; in a copy without .git, $FER_STUDY_COMMIT; else None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0:
        return out.stdout.strip()
    return os.environ.get(COMMIT_ENV) or None


def shipped_weights(key: str, models_dir: str | Path | None = None) -> Path | None:
    """The weights file in models/ shipped from the run with this key, if any (a shipped run keeps no copy)."""
    from safetensors import safe_open

    for path in sorted(Path(models_dir or MODELS_DIR).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="np") as f:
                if (f.metadata() or {}).get(SHIPPED_KEY) == key:
                    return path
        except (OSError, ValueError):
            continue
    return None


def run_key(model: str, config: dict, data_sha256: str) -> str:
    """A short, stable key for a model's configuration on one data set."""
    blob = json.dumps({"model": model, "config": config, "data": data_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class RunResult:
    """What one training run produced: metrics, per-split logits and labels, history, weights and timing."""

    model: str
    config: dict
    key: str
    run_dir: Path
    data_sha256: str
    logits: dict[str, np.ndarray]  # split -> (N, num_classes) float32 scores (CNN logits, SVM decision values)
    labels: dict[str, np.ndarray]  # split -> (N,) int64
    metrics: dict[str, dict]  # split -> {"accuracy", "macro_f1", "weighted_f1", "accuracy_ci95", ...}
    seed: int | None = None
    params: int | None = None
    train_seconds: float = 0.0
    images_per_second: float | None = None  # training throughput
    device: str = "cpu"
    history: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)  # model-specific facts (chosen C, best epoch, ...)
    git_commit: str | None = None  # the code's commit when the result was saved (None: not recorded)
    from_cache: bool = False

    @property
    def weights_path(self) -> Path | None:
        """The run's weights: in its folder, or, once shipped, the file in models/ that names its key."""
        path = self.run_dir / WEIGHTS_FILE
        return path if path.exists() else shipped_weights(self.key)

    def probs(self, split: str) -> np.ndarray:
        """Softmax of the stored scores for one split."""
        z = self.logits[split].astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def preds(self, split: str) -> np.ndarray:
        return self.logits[split].argmax(axis=1)

    def save(self) -> None:
        """Write the result into run_dir (atomically: a crash leaves the old result or none)."""
        if self.git_commit is None:
            self.git_commit = git_commit()
        with atomic_dir(self.run_dir) as tmp:
            if self.run_dir.exists():
                for item in self.run_dir.iterdir():  # keep weights and logs written during training
                    if item.name not in (RESULT_FILE, PREDICTIONS_FILE, HISTORY_FILE):
                        shutil.move(str(item), tmp / item.name)
            arrays = {f"logits_{s}": v for s, v in self.logits.items()}
            arrays |= {f"labels_{s}": v for s, v in self.labels.items()}
            np.savez_compressed(tmp / PREDICTIONS_FILE, **arrays)
            if self.history is not None:
                self.history.to_csv(tmp / HISTORY_FILE, index=False)
            meta = {
                "model": self.model,
                "config": self.config,
                "key": self.key,
                "data_sha256": self.data_sha256,
                "metrics": self.metrics,
                "seed": self.seed,
                "params": self.params,
                "train_seconds": self.train_seconds,
                "images_per_second": self.images_per_second,
                "device": self.device,
                "extra": self.extra,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "git_commit": self.git_commit,
            }
            (tmp / RESULT_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable), encoding="utf-8")

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        run_dir = Path(run_dir)
        meta = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        with np.load(run_dir / PREDICTIONS_FILE) as npz:
            logits = {k[len("logits_") :]: npz[k] for k in npz.files if k.startswith("logits_")}
            labels = {k[len("labels_") :]: npz[k] for k in npz.files if k.startswith("labels_")}
        history_path = run_dir / HISTORY_FILE
        import pandas as pd  # here, not at the top: `predict` reads this module's names and starts without pandas

        history = pd.read_csv(history_path) if history_path.exists() else None
        return cls(
            model=meta["model"],
            config=meta["config"],
            key=meta["key"],
            run_dir=run_dir,
            data_sha256=meta["data_sha256"],
            logits=logits,
            labels=labels,
            metrics=meta["metrics"],
            seed=meta.get("seed"),
            params=meta.get("params"),
            train_seconds=meta.get("train_seconds", 0.0),
            images_per_second=meta.get("images_per_second"),
            device=meta.get("device", "cpu"),
            history=history,
            extra=meta.get("extra", {}),
            git_commit=meta.get("git_commit"),
            from_cache=True,
        )


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def result_dir(run_root: str | Path, model: str, key: str) -> Path:
    return Path(run_root) / "results" / f"{model}-{key}"


def epochs_done(run_dir: str | Path, key: str) -> int:
    """Epochs an unfinished run of this key has saved in run_dir, ready to resume from (0: none, or not known)."""
    checkpoints = Path(run_dir) / CHECKPOINT_DIR
    try:
        if (checkpoints / RESUME_KEY_FILE).read_text(encoding="utf-8").strip() != key or not (
            checkpoints / RESUME_FILE
        ).exists():
            return 0
        return int((checkpoints / RESUME_EPOCHS_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return 0


def saved_run(model: str, config: dict, data_sha256: str, run_root: str | Path) -> RunResult | None:
    """The result saved under run_root for (model, config, data), or None where there is none."""
    run_dir = result_dir(run_root, model, run_key(model, config, data_sha256))
    return RunResult.load(run_dir) if (run_dir / RESULT_FILE).exists() else None


def cached_run(
    model: str,
    config: dict,
    data_sha256: str,
    run_root: str | Path,
    train: Callable[[Path, str], RunResult],
    fresh: bool = False,
) -> RunResult:
    """Load the result for (model, config, data) from run_root, or call train(run_dir, key) and save what it returns."""
    if not fresh and (saved := saved_run(model, config, data_sha256, run_root)) is not None:
        return saved
    key = run_key(model, config, data_sha256)
    result = train(result_dir(run_root, model, key), key)
    result.save()
    return result


def find_results(run_root: str | Path, model: str | None = None) -> list[RunResult]:
    """Every saved result under run_root (optionally of one model), oldest first."""
    root = Path(run_root) / "results"
    if not root.exists():
        return []
    found = [p.parent for p in root.glob(f"{model or '*'}-*/{RESULT_FILE}")]
    found.sort(key=lambda p: (p / RESULT_FILE).stat().st_mtime)
    return [RunResult.load(p) for p in found]
