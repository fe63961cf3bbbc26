"""What accuracy cost: each model's accuracy against what training it took, and what a budget of CPU time buys.

`compute_frame` reads metrics.json: for every model trained from scratch here, its accuracy with its interval, the
training time of its fastest seed (hours, on the device and in the precision the run records) and the training
images it processed (epochs x Training faces; a classical model goes through them once). `budget_answers` turns it
into the sentences a reader asks for: what do 10 minutes, 1 hour, 10 hours of training buy? `PUBLISHED_COSTS`
holds the training cost of published anchors where their own code states it, to set ours beside.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fer_helpers.core.hardware import PRECISION_NAMES
from fer_helpers.core.paper import KHAIREDDIN_CHEN
from fer_helpers.data.fer2013 import FER2013_COUNTS
from fer_helpers.models import registry

BUDGETS = {"10 minutes": 600.0, "1 hour": 3600.0, "10 hours": 36000.0}


@dataclass(frozen=True)
class PublishedCost:
    """A published network's training cost, as its own code sets it, and how its accuracy was measured."""

    who: str
    accuracy: float
    split: str  # where the accuracy was reported
    selected_on: str  # where the checkpoint was chosen
    epochs: int
    crops_per_face: int  # training views of each face per epoch (ten-crop training: 10)
    test_views: int
    source: str

    @property
    def train_images(self) -> int:
        """Training crops processed: epochs x FER-2013's Training faces x crops per face."""
        return self.epochs * sum(FER2013_COUNTS["Training"]) * self.crops_per_face


PUBLISHED_COSTS = (
    PublishedCost(
        who="Khaireddin & Chen 2021 (VGG variant)",
        accuracy=KHAIREDDIN_CHEN.accuracy,
        split="PublicTest",
        selected_on="PrivateTest",
        epochs=300,
        crops_per_face=10,
        test_views=10,
        source="github.com/usef-kh/fer: utils/hparams.py (n_epochs 300), data/fer2013.py (TenCrop(40) in training "
        "and test; PrivateTest as validation, PublicTest as test)",
    ),
)


def compute_frame(metrics: dict, split: str = "private_test") -> pd.DataFrame:
    """One row per model with a training time: accuracy (with its interval) on `split` against the fastest seed's
    training hours and the training images it processed, its precision and device. What inference adds is left
    out: an ensemble costs the sum of its members, test-time augmentation its model's training."""
    rows = []
    for name, entry in metrics["models"].items():
        if name.endswith("_ensemble") or "inference" in entry or not entry.get("train_seconds") or split not in entry:
            continue
        block = entry[split]
        low, high = block["accuracy_ci95"]
        rows.append(
            {
                "model": registry.label(name),
                "name": name,
                "accuracy": block["accuracy"],
                "ci_low": low,
                "ci_high": high,
                "hours": entry["train_seconds"] / 3600,
                "train_images": entry.get("train_images"),
                "precision": entry.get("precision", "-"),
                "device": entry.get("device", "-"),
                "main": registry.is_main(name),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("hours").reset_index(drop=True) if not frame.empty else frame


def duration(seconds: float) -> str:
    """A training time in the unit a reader takes in at once: seconds, minutes or hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} minutes" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} hours"


def _precision(precision: str) -> str:
    return f" in {PRECISION_NAMES[precision]}" if precision in PRECISION_NAMES else ""


def budget_answers(frame: pd.DataFrame, machine: str) -> list[str]:
    """For each of BUDGETS, the most accurate model whose training fitted in it, in one sentence each."""
    answers = []
    for words, seconds in BUDGETS.items():
        within = frame[frame["hours"] * 3600 <= seconds] if not frame.empty else frame
        if within.empty:
            answers.append(f"{words} of {machine}: no model of this run trains that fast.")
            continue
        best = within.loc[within["accuracy"].idxmax()]
        answers.append(
            f"{words} of {machine}: {best['model']} at {best['accuracy']:.1%} "
            f"({best['ci_low']:.1%}-{best['ci_high']:.1%}), trained in {duration(best['hours'] * 3600)}"
            f"{_precision(best['precision'])}."
        )
    return answers


def published_frame() -> pd.DataFrame:
    """PUBLISHED_COSTS as a table."""
    return pd.DataFrame(
        [
            {
                "who": p.who,
                "accuracy": p.accuracy,
                "reported on": p.split,
                "selected on": p.selected_on,
                "epochs": p.epochs,
                "training crops (M)": round(p.train_images / 1e6, 1),
                "test views": p.test_views,
                "source": p.source,
            }
            for p in PUBLISHED_COSTS
        ]
    )
