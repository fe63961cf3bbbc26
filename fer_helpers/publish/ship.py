"""Shipping a trained CNN: its weights moved into models/ beside a model card written from its saved result.

`fer-study ship RESULT_DIR` takes one folder of `runs/<profile>/results/` (a CNN's, with weights), checks that the
weights load into the architecture they name with the parameter count the result records, and writes
`models/<model>.safetensors` and its card `models/<model>.md` (each replaced whole, never half-written).
`fer-study predict`, `fer-study evaluate` and Grad-CAM use the best weights there.

Into the repository's models/ the weights are moved, not copied, so that the repository stores each file once:
the shipped file names the run's key in its metadata, and `RunResult.weights_path` finds it there (into any other
folder a ship is a copy). A file that a newer ship replaces goes
back into its own run folder first, so no run loses its weights.

`fer-study export` adds to the card what it measured (`export_section`): the temperature that calibrates the
probabilities with the expected calibration error before and after, and the int8 copy against float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from fer_helpers.core.files import atomic_path, atomic_write_text
from fer_helpers.core.paths import MODELS_DIR
from fer_helpers.data.fer2013 import FERData, twin_mask
from fer_helpers.data.results import SHIPPED_KEY, WEIGHTS_FILE, RunResult, git_commit, shipped_weights
from fer_helpers.models import registry
from fer_helpers.scoring.metrics import classification_metrics
from fer_helpers.scoring.statistics import N_BOOT, bootstrap_ci
from fer_helpers.train.weights import WEIGHTS_LIMIT_BYTES, load_weights

CARD_SPLITS = ("PublicTest", "PrivateTest")


def _title(model: str) -> str:
    spec = registry.MODELS.get(model)
    return (spec.title or spec.label) if spec else model


class ShipError(ValueError):
    """A result folder that cannot be shipped; the message names it and why."""


def model_card(result: RunResult, shipped_as: str, twins: dict[str, np.ndarray] | None = None) -> str:
    """A short Markdown model card: data, protocol, metrics with 95% intervals, seed, commit, device, time.

    twins: per split, the test faces with a byte-identical twin in Training; each split then also gets a row
    without them.
    """
    config = result.config
    extra = result.extra
    rows = []
    for split in CARD_SPLITS:
        masks = [("", np.ones(len(result.labels[split]), dtype=bool))]
        if twins is not None and split in twins:
            masks.append((" without twins", ~twins[split]))
        for suffix, keep in masks:
            labels, preds = result.labels[split][keep], result.preds(split)[keep]
            m = classification_metrics(labels, preds)
            acc_low, acc_high = bootstrap_ci(labels, preds, "accuracy")
            f1_low, f1_high = bootstrap_ci(labels, preds, "macro_f1")
            rows.append(
                f"| {split}{suffix} | {m['n']:,} | {m['accuracy']:.1%} ({acc_low:.1%}–{acc_high:.1%}) | "
                f"{m['macro_f1']:.3f} ({f1_low:.3f}–{f1_high:.3f}) | {m['weighted_f1']:.3f} |"
            )
    augment = [
        name
        for name, on in (
            ("horizontal flips", config.get("hflip")),
            (f"rotations up to ±{config.get('rotate_deg', 0):g}°", config.get("rotate_deg")),
            (f"shifts up to {config.get('crop_pad', 0)} px", config.get("crop_pad")),
            (f"random erasing (p={config.get('erasing_p', 0):g})", config.get("erasing_p")),
        )
        if on
    ]
    epochs = (
        f"{extra['stopped_epoch']} epochs trained of at most {config['max_epochs']}, best PublicTest epoch "
        f"{extra['best_epoch']} kept"
        if "best_epoch" in extra
        else f"at most {config['max_epochs']} epochs"
    )
    speed = f" ({result.images_per_second:,.0f} training images/s)" if result.images_per_second else ""
    lines = [
        f"# {_title(result.model)}: `{shipped_as}`",
        "",
        "Classifies a 48×48 grayscale face (pixels scaled to [0, 1]) into FER-2013's seven classes, in the order "
        "Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral. Load it with "
        f'`fer_helpers.train.weights.load_weights("models/{shipped_as}")`, or use `fer-study predict` / `fer-study evaluate`.',
        "",
        "## Data and protocol",
        "",
        f"- Data: FER-2013, sha256 `{result.data_sha256}`; trained on its Training split.",
        f"- Model: `{result.model}` {config.get('model_kwargs') or '(default widths)'}, {result.params:,} parameters.",
        f"- Training: {config['optimizer']} from lr {config['lr']:g}, scheduler {config['scheduler']}, batch "
        f"{config['batch_size']}, class weights {'on' if config.get('class_weights') else 'off'}, label smoothing "
        f"{config.get('label_smoothing', 0):g}; augmentation: {', '.join(augment) or 'none'}; {epochs}.",
        f"- Test-time augmentation: {config.get('tta', 'none')}.",
        *_distill_line(extra),
        "- Model selection on PublicTest only; PrivateTest is the held-out test set, reported once.",
        "",
        "## Metrics",
        "",
        f"Accuracy and macro F1 with percentile-bootstrap 95% intervals ({N_BOOT:,} resamples of the test faces, "
        "as in the report). *Without twins*: the split without the faces that have a byte-identical twin in "
        "Training" + ("." if twins is not None else " (not computed: FER-2013 was not at hand when this was shipped)."),
        "",
        "| split | faces | accuracy (95% CI) | macro F1 (95% CI) | weighted F1 |",
        "|---|---:|---|---|---:|",
        *rows,
        "",
        "## Run",
        "",
        f"- Seed {result.seed}; device {result.device}; training time {result.train_seconds / 60:.1f} min{speed}.",
        f"- Result folder `{result.run_dir.parent.parent.name}/results/{result.run_dir.name}` (configuration key "
        f"`{result.key}`); trained at commit `{result.git_commit or 'not recorded'}`; shipped at commit "
        f"`{git_commit() or 'unknown'}`.",
        "",
        "## Limits",
        "",
        "- FER-2013 holds low-resolution web faces labelled once each, with label noise and duplicates "
        "(notebook 01); its people are not a balanced sample of any population. Accuracy on other faces, lighting "
        "or cultures can be much lower: measure it with `fer-study evaluate` before relying on it.",
        "- A facial expression is not an emotion felt. Do not use this model for decisions about people.",
        "",
    ]
    return "\n".join(lines)


def _distill_line(extra: dict) -> list[str]:
    """The card's line on a distilled model's teacher and loss (`fer_helpers.train.distill`), where it has one."""
    if "distill" not in extra:
        return []
    d = extra["distill"]
    return [
        f"- Distilled from `{d.get('teacher', 'the teacher')}` (sha256 `{d['teacher_sha256'][:12]}`): loss "
        f"{1 - d['hard_share']:g} x T² x KL(teacher || student) at T = {d['temperature']:g} plus {d['hard_share']:g} x "
        "cross-entropy with the labels; the teacher's logits on every Training face and on its mirror image."
    ]


EXPORT_HEADING = "## Exported model and calibrated probabilities"


def export_section(summary: dict) -> str:
    """The model card's section on an export (`fer_helpers.train.exported.export_model`'s summary): the files, the
    temperature and expected calibration error before and after it, and the int8 copy against float32."""
    cal = summary["calibration"]
    torch_check = summary["torch_check"]
    split, n = summary["split"], torch_check["n"]
    lines = [
        EXPORT_HEADING,
        "",
        f"- `{Path(summary['onnx']).name}`: float32 ONNX, run by ONNX Runtime without torch; on the {n:,} {split} "
        f"faces its logits differ from torch's by at most {torch_check['max_abs_logit_difference']:.2g}, the same "
        f"class on {torch_check['argmax_agreement']:.2%} of them (accuracy {summary['accuracy_float32']:.2%}).",
        f"- Calibrated probabilities: `fer-study predict` and `evaluate` report softmax(logits / T) with temperature "
        f"T = {cal['temperature']:.3f}, fitted on {cal['fitted_on']} (negative log-likelihood) and stored in the ONNX "
        f"files' metadata; the predicted class is unchanged. Expected calibration error on {cal['reported_on']} "
        f"(15 bins): {cal['ece_before']:.3f} before, {cal['ece_after']:.3f} after.",
    ]
    if "int8_check" in summary:
        (
            check,
            sample,
        ) = summary["int8_check"], summary["calibration_sample"]
        lines.append(
            f"- `{Path(summary['int8']).name}`: int8 (ONNX Runtime static quantisation, QDQ, per-tensor, 7-bit weights, "
            f"MinMax ranges on {sample['faces']:,} {sample['split']} faces stratified by class, seed {sample['seed']}), "
            f"what `predict` and `evaluate` run by default (`--float32` for the float32 file). On {split}: accuracy "
            f"{check['accuracy_int8']:.2%} against {check['accuracy_float32']:.2%} in float32, the same class on "
            f"{check['argmax_agreement']:.2%} of the faces; expected calibration error {check['ece_after']:.3f} "
            "with the same temperature."
        )
    lines.append(f"- Measured by `fer-study export` on FER-2013 sha256 `{summary['data_sha256']}`.")
    return "\n".join(lines) + "\n"


def add_export_section(card: str | Path, section: str) -> Path:
    """Put an export's section into a model card, replacing an earlier one, before its Limits; returns the path."""
    card = Path(card)
    text = card.read_text(encoding="utf-8")
    if EXPORT_HEADING in text:
        start = text.index(EXPORT_HEADING)
        end = text.find("\n## ", start + len(EXPORT_HEADING))
        text = text[:start] + text[end + 1 :] if end >= 0 else text[:start]
    at = text.find("## Limits")
    text = text[:at] + section + "\n" + text[at:] if at >= 0 else text.rstrip("\n") + "\n\n" + section
    return atomic_write_text(card, text)


def check_weights(result: RunResult, split: str = "PrivateTest") -> None:
    """Refuse a result whose weights are missing, too large, or do not load into the model its config names."""
    path = result.weights_path
    if path is None:
        raise ShipError(f"{result.run_dir}: no weights.safetensors (only the CNNs' results carry weights)")
    size = path.stat().st_size
    if size > WEIGHTS_LIMIT_BYTES:
        raise ShipError(f"{path}: {size / 1e6:.1f} MB, over the {WEIGHTS_LIMIT_BYTES / 1e6:.0f} MB limit")
    try:
        model = load_weights(path)
    except (ValueError, RuntimeError, KeyError) as err:
        raise ShipError(f"{path}: does not load ({err})") from err
    params = sum(p.numel() for p in model.parameters())
    if result.params is not None and params != result.params:
        raise ShipError(f"{path}: {params:,} parameters, but the result records {result.params:,}")
    if split not in result.metrics:
        raise ShipError(f"{result.run_dir}: no {split} metrics in result.json")
    if not np.isfinite(result.logits[split]).all():
        raise ShipError(f"{result.run_dir}: non-finite {split} logits")


def ship(
    result_dir: str | Path, models_dir: str | Path | None = None, name: str | None = None, data: FERData | None = None
) -> tuple[Path, Path]:
    """Move a CNN result's weights into models_dir as `<name>.safetensors` with its model card `<name>.md`.

    With the data the result was trained on, the card also reports each test split without its twins.
    """
    result_dir = Path(result_dir)
    if not (result_dir / "result.json").is_file():
        raise ShipError(f"{result_dir}: not a result folder (no result.json)")
    result = RunResult.load(result_dir)
    check_weights(result)
    models_dir = Path(models_dir) if models_dir is not None else MODELS_DIR
    models_dir.mkdir(parents=True, exist_ok=True)
    name = name or result.model
    weights = models_dir / f"{name}.safetensors"
    card = models_dir / f"{name}.md"
    source = result.weights_path
    with atomic_path(weights) as tmp_weights, atomic_path(card) as tmp_card:  # replaced only once both are written
        tensors, metadata = _read_safetensors(source)
        save_file(tensors, str(tmp_weights), metadata=metadata | {SHIPPED_KEY: result.key})
        twins = None
        if data is not None and data.sha256 == result.data_sha256:
            twins = {split: twin_mask(data, split) for split in CARD_SPLITS}
        tmp_card.write_text(model_card(result, weights.name, twins), encoding="utf-8")
        if weights.exists() and source != weights:
            _return_to_run(weights, result.run_dir.parent)
    if source == result.run_dir / WEIGHTS_FILE and shipped_weights(result.key) == weights:
        source.unlink()  # the run finds its weights in models/ now (elsewhere a ship is a copy)
    return weights, card


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def _return_to_run(shipped: Path, results_dir: Path) -> None:
    """Put a shipped file about to be replaced back into its run folder (found by key under results_dir)."""
    tensors, metadata = _read_safetensors(shipped)
    key = metadata.pop(SHIPPED_KEY, None)
    home = next(iter(results_dir.glob(f"*-{key}")), None) if key else None
    if home is not None and not (home / WEIGHTS_FILE).exists():
        save_file(tensors, str(home / WEIGHTS_FILE), metadata=metadata)
