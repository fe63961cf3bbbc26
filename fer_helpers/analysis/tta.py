"""Test-time augmentation of saved CNN runs whose weights are at hand: each mode chosen on PublicTest, then scored
on PrivateTest, with the logits kept in a small file per run so that a report run computes them once.

A run's stored logits are its single model (no augmentation, unless its recipe says otherwise); a mode here is an
inference addition beside it. "flip" averages the logits of the face and its mirror image; "flip_crop" those of
ten views, the face and its mirror each unshifted and shifted by `inference.TTA_SHIFT` pixels towards the four
corners (a ten-crop at the full 48x48 size). The first of `TTA_ORDER` is always scored; each later, dearer mode
only where it beats every cheaper one on PublicTest: PrivateTest logits of a mode not chosen are never computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fer_helpers.core.files import atomic_open
from fer_helpers.data.fer2013 import FERData
from fer_helpers.data.results import RunResult, run_key
from fer_helpers.models import registry
from fer_helpers.scoring.metrics import classification_metrics
from fer_helpers.train.inference import TTA_VIEWS, predict_logits

TTA_ORDER = ("flip", "flip_crop")  # cheapest first: each later mode must beat the cheaper ones on CHOICE_SPLIT
CHOICE_SPLIT = "PublicTest"  # where a mode is chosen
REPORT_SPLITS = ("PublicTest", "PrivateTest")
CACHE_FOLDER = "inference"  # under a run folder: <run folder>/inference/<run>-tta.npz


@dataclass(frozen=True)
class TTADecision:
    """One mode of one run, measured on the choice split: the run's accuracy there without augmentation and with
    it, and whether the mode is reported (the first mode always; a dearer one only where it pays)."""

    model: str
    seed: int | None
    key: str
    weights: str
    tta: str
    views: int
    public_accuracy_plain: float
    public_accuracy: float
    reported: bool
    reason: str


def tta_name(model: str, tta: str) -> str:
    """The metrics.json name of a run's test-time augmented twin ("model_b", "flip" -> "model_b_tta_flip")."""
    return f"{model}_tta_{tta}"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(run: RunResult, run_root: str | Path) -> Path:
    """Where a run's test-time augmented logits are kept."""
    return Path(run_root) / CACHE_FOLDER / f"{run.model}-{run.key}-tta.npz"


def _read_cache(path: Path, identity: dict) -> dict[str, np.ndarray]:
    """The cached logits ("<split>/<tta>" -> (N,7)) when the file was made from the same weights and faces."""
    if not path.exists():
        return {}
    with np.load(path) as npz:
        if "identity" not in npz.files or json.loads(str(npz["identity"])) != identity:
            return {}
        return {k: npz[k] for k in npz.files if k != "identity"}


def _write_cache(path: Path, identity: dict, logits: Mapping[str, np.ndarray]) -> None:
    with atomic_open(path, "wb") as out:
        np.savez_compressed(out, identity=np.array(json.dumps(identity, sort_keys=True)), **logits)


class TTALogits:
    """A run's test-time augmented logits per split and mode, computed on demand from its weights and cached."""

    def __init__(self, run: RunResult, data: FERData, run_root: str | Path):
        weights = run.weights_path
        if weights is None:
            raise FileNotFoundError(f"no weights for run {run.model}-{run.key} (in {run.run_dir} or models/)")
        self.run, self.data, self.weights = run, data, weights
        self.path = cache_path(run, run_root)
        self.identity = {"run": run.key, "weights_sha256": _file_sha256(weights), "data_sha256": data.sha256}
        self.logits = _read_cache(self.path, self.identity)
        self._model = None

    def get(self, split: str, tta: str) -> np.ndarray:
        """Logits (N,7) of the split's faces, averaged over the mode's views."""
        name = f"{split}/{tta}"
        if name not in self.logits:
            from fer_helpers.train.weights import load_weights

            if self._model is None:
                self._model = load_weights(self.weights)
            images, labels = self.data.split(split)
            if not np.array_equal(labels, self.run.labels[split]):
                raise ValueError(
                    f"run {self.run.model}-{self.run.key} scored other {split} faces than {self.data.source}"
                )
            self.logits[name] = predict_logits(self._model, images, tta=tta, device="cpu", bf16=False)
            _write_cache(self.path, self.identity, self.logits)
        return self.logits[name]


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == labels))


def tta_runs(
    run: RunResult, data: FERData, run_root: str | Path, modes: Sequence[str] = TTA_ORDER
) -> tuple[list[TTADecision], list[RunResult]]:
    """Each mode of `modes` (cheapest first) measured on PublicTest for one run, and the modes reported as runs of
    their own (`tta_name`, scored on every split the run has): the first mode always, a later one only where its
    PublicTest accuracy beats every cheaper mode's. PrivateTest is computed for reported modes only."""
    source = TTALogits(run, data, run_root)
    labels = run.labels[CHOICE_SPLIT]
    plain = _accuracy(run.logits[CHOICE_SPLIT], labels)
    decisions, reported, best = [], [], -1.0
    for i, tta in enumerate(modes):
        accuracy = _accuracy(source.get(CHOICE_SPLIT, tta), labels)
        keep = i == 0 or accuracy > best
        if i == 0:
            reason = "always reported: the cheapest mode"
        else:
            reason = f"{'beats' if keep else 'does not beat'} the cheaper modes' best on {CHOICE_SPLIT} ({best:.2%})"
        decisions.append(
            TTADecision(
                run.model,
                run.seed,
                run.key,
                source.weights.name,
                tta,
                TTA_VIEWS[tta],
                plain,
                accuracy,
                keep,
                reason,
            )
        )
        best = max(best, accuracy)
        if keep:
            logits = {split: source.get(split, tta) for split in REPORT_SPLITS if split in run.logits}
            name = tta_name(run.model, tta)
            reported.append(
                replace(
                    run,
                    model=name,
                    key=run_key(name, {"run": run.key, "tta": tta}, run.data_sha256),
                    logits=logits,
                    labels={s: run.labels[s] for s in logits},
                    metrics={s: classification_metrics(run.labels[s], v.argmax(axis=1)) for s, v in logits.items()},
                    extra=run.extra | {"tta": tta},
                    from_cache=False,
                )
            )
    return decisions, reported


def tta_candidates(results_by_model: Mapping[str, Sequence[RunResult]]) -> list[RunResult]:
    """The run of each main CNN whose weights are at hand (its lowest such seed; in the committed full run, the
    shipped one) and whose stored logits are without test-time augmentation."""
    chosen = []
    for name, runs in results_by_model.items():
        if not registry.is_main(name):
            continue
        for run in runs:
            if "best_epoch" in run.extra and run.config.get("tta", "none") == "none" and run.weights_path is not None:
                chosen.append(run)
                break
    return chosen
