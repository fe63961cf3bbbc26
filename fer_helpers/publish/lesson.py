"""The lesson's record: what a classroom report run on FER-2013 took and found.

`fer-study report --profile classroom` started from an empty run folder with every notebook is a lesson as a class
would run it. Its notebook times and headline numbers are summarised from the run folder (timings.json, the
report's metrics.json and notebook 07's ablation table), and the latest two such runs are kept in the run folder's
own `lesson.json` (ignored by git: a student's lesson leaves the checkout as it was). Publishing is a separate,
explicit act (`fer-study lesson --publish`): it adds those runs to the committed reports/lesson.json and rewrites
the README's teaching block from it, so that the numbers quoted there are measured, never retyped.

The lesson's targets, and the classroom profile's sizes chosen to meet them, are judged on PublicTest
(`TARGET_SPLIT`), where the study makes its choices; PrivateTest is reported beside them and never used to choose.
Each run records both splits; a run recorded before the PublicTest numbers were kept leaves the accuracy target
unjudged, and the teaching block says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from fer_helpers.core.files import atomic_write_text, rewrite_between
from fer_helpers.core.hardware import PRECISION_NAMES, cpu_has_native_bf16, cpu_model
from fer_helpers.core.markdown import format_count, format_pct, format_pct_interval, markdown_table
from fer_helpers.core.paper import ABLATION_LEARNED, ABLATION_SPLIT, REPORT_SPLIT, SELECTION_SPLIT
from fer_helpers.core.paths import REPO, REPORT_STEP
from fer_helpers.core.profiles import Profile, get_profile
from fer_helpers.models import registry
from fer_helpers.publish.summary import METRICS_FILE, SPLIT_KEYS

LESSON_PROFILE = "classroom"
LESSON_FILE = REPO / "reports" / "lesson.json"  # the lesson's committed record, written only by `publish_lesson`
RUN_RECORD = "lesson.json"  # the record of the lessons run in one run folder, inside it
RUNS_KEPT = 2  # the lesson is measured twice: the latest two runs are kept
LESSON_START = "<!-- lesson:start -->"
LESSON_END = "<!-- lesson:end -->"
ORDERING_MARK = " is more accurate than "  # the paper's orderings among the claims of metrics.json
# The specification's targets for the lesson on 2 CPU cores: its whole run, and Model B's accuracy inside it, judged
# on the split where choices are made (the profile's sizes are such a choice), never on the reported one.
TARGET_MINUTES = {"bf16-mixed": 12.0, "32-true": 15.0}  # by the precision the CNNs trained in (`run_precision`)
TARGET_MODEL = "model_b"
TARGET_ACCURACY = 0.55
TARGET_SPLIT = SELECTION_SPLIT
SPEED_MODEL = "baseline_cnn"  # its training rate, beside the committed full run's, says how fast the machine ran


def lesson_run(run_dir: str | Path) -> dict:
    """One lesson run from its run folder: seconds per notebook, the main models' accuracy (on REPORT_SPLIT, with
    TARGET_SPLIT's under its metrics.json key), the orderings, the ablation's reference; raises ValueError where the
    folder does not hold a whole classroom lesson on FER-2013."""
    run_dir = Path(run_dir)
    timings = json.loads((run_dir / "timings.json").read_text(encoding="utf-8"))
    metrics_path = run_dir / "reports" / METRICS_FILE
    if not metrics_path.exists():
        raise ValueError(f"{metrics_path} is missing: the report run's last step did not write it")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    if timings["profile"] != LESSON_PROFILE or timings.get("synthetic", False):
        raise ValueError(f"{run_dir} holds a {timings['profile']} run on {timings['data_path']}, not the lesson")
    failed = [t["notebook"] for t in timings["notebooks"] if t["status"] == "failed"]
    if failed:
        raise ValueError(f"notebook(s) {failed} failed in {run_dir}: not a whole lesson")
    if not timings.get("fresh_run_folder", False):
        raise ValueError(f"{run_dir} was not empty when the run started: cached results would hide training time")
    if not timings.get("every_notebook", False):
        raise ValueError(f"{run_dir} ran a selection of the notebooks, not the whole lesson")
    split_key, target_key = SPLIT_KEYS[REPORT_SPLIT], SPLIT_KEYS[TARGET_SPLIT]
    models = {
        name: {
            "accuracy": entry[split_key]["accuracy"],
            "accuracy_ci95": entry[split_key]["accuracy_ci95"],
            target_key: {key: entry[target_key][key] for key in ("accuracy", "accuracy_ci95")},
            "train_images_per_second": entry.get("images_per_second"),
            "precision": entry.get("precision"),
        }
        for name, entry in metrics["models"].items()
        if registry.is_main(name) and split_key in entry
    }
    orderings = [
        {key: claim[key] for key in ("claim", "verdict", "detail")}
        for claim in metrics["claims"]
        if ORDERING_MARK in claim["claim"]
    ]
    return {
        "created": timings["created"],
        "data_sha256": metrics["data"]["sha256"],
        "git_commit": metrics.get("git_commit"),
        "machine": {"cpus": os.cpu_count(), "processor": cpu_model(), "bf16_native": cpu_has_native_bf16()},
        "total_seconds": timings["total_seconds"],
        "notebooks": _seconds_by_notebook(timings["notebooks"]),
        "models": models,
        "orderings": orderings,
        "ablation_reference": ablation_reference(run_dir / "reports" / "tables" / "ablation.csv"),
    }


def _seconds_by_notebook(timings: list[dict]) -> dict[str, float]:
    """Seconds per notebook (a notebook run twice, as the evaluation notebook once was, counts both runs)."""
    seconds: dict[str, float] = {}
    for t in timings:
        seconds[t["notebook"]] = round(seconds.get(t["notebook"], 0.0) + t["seconds"], 1)
    return seconds


def ablation_reference(path: Path) -> dict | None:
    """The ablation's full Model B on the judged split, from notebook 07's table; None where it did not run."""
    if not path.exists():
        return None
    table = pd.read_csv(path)
    row = table[(table["change"].str.endswith("(reference)")) & (table["split"] == ABLATION_SPLIT)].iloc[0]
    return {"split": ABLATION_SPLIT, "accuracy": float(row["accuracy"]), "learned_threshold": ABLATION_LEARNED}


def record_lesson(run_dir: str | Path, lesson_path: str | Path | None = None) -> dict:
    """Add the run folder's lesson to lesson_path (default: the run folder's own RUN_RECORD) and return the whole
    record: the latest RUNS_KEPT runs of the profile as it is now."""
    run_dir = Path(run_dir)
    return add_runs(lesson_path or run_dir / RUN_RECORD, [lesson_run(run_dir)])


def _settings() -> dict:
    return json.loads(json.dumps(get_profile(LESSON_PROFILE).to_dict()))  # as a record file has them


def add_runs(lesson_path: str | Path, runs: list[dict]) -> dict:
    """Add lesson runs to the record at lesson_path, each once (by the time it was made), keep the latest RUNS_KEPT
    and return the record; runs of a classroom profile with other settings are dropped, being another lesson."""
    lesson_path = Path(lesson_path)
    record = (
        json.loads(lesson_path.read_text(encoding="utf-8"))
        if lesson_path.exists()
        else {"profile": LESSON_PROFILE, "runs": []}
    )
    if record.get("profile_settings") != _settings():  # another lesson: its runs do not compare with this one
        record["runs"] = []
    record["profile_settings"] = _settings()
    by_time = {run["created"]: run for run in [*record["runs"], *runs]}
    record["runs"] = [by_time[created] for created in sorted(by_time)][-RUNS_KEPT:]
    atomic_write_text(lesson_path, json.dumps(record, indent=1) + "\n")
    return record


def publish_lesson(
    run_dirs: list[str | Path],
    lesson_path: str | Path = LESSON_FILE,
    readme_path: str | Path = REPO / "README.md",
    reference: dict | None = None,
) -> dict:
    """Publish the lessons recorded in run folders: add them to the committed record and rewrite the README's
    teaching block from it (reference: the committed full run's metrics.json, for the speed line).

    Raises ValueError naming a folder without a recorded lesson of the profile as it is now.
    """
    runs = []
    for run_dir in map(Path, run_dirs):
        path = run_dir / RUN_RECORD
        if not path.exists():
            raise ValueError(f"{run_dir}: no lesson recorded ({RUN_RECORD} is written by a whole classroom report run)")
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded.get("profile_settings") != _settings():
            raise ValueError(f"{path}: its lessons ran another classroom profile than today's; run the lesson again")
        runs += recorded["runs"]
    record = add_runs(lesson_path, runs)
    update_readme_lesson(readme_path, record, reference)
    return record


def what_each_notebook_does(profile: Profile) -> dict[str, str]:
    """What each notebook trains or measures under the profile, in a few words (the teaching table's last column)."""
    *rest, last = (f"{c:g}" for c in profile.hog_c_grid)
    grid = f"{', '.join(rest)} and {last}" if rest else last
    side = f"{profile.side_train_per_class:,} training faces per class" if profile.side_train_per_class else "Training"
    baseline = format_count(profile.epochs["baseline_cnn"], "epoch")
    scheduler = profile.schedulers.get("model_b", "plateau")
    schedule = "" if scheduler == "plateau" else f" ({scheduler} schedule)"
    ablation = format_count(profile.ablation_epochs or profile.epochs["model_b"], "epoch")
    return {
        "01": "counts, mean faces, pixel statistics and twins of every face",
        "02": f"HOG of every face; the linear SVM with and without class weights, C from {grid}",
        "03": f"the paper's baseline, {baseline}",
        "04": f"Model B at {profile.width('model_b'):.2g} of its widths for "
        f"{format_count(profile.epochs['model_b'], 'epoch')}{schedule}; ResNet-FER at {profile.width('resnet_fer'):.3g} of "
        f"its width for {format_count(profile.epochs['resnet_fer'], 'epoch')}, with test-time augmentation",
        "05": "comparison, intervals, McNemar, calibration, near-duplicates, the paper's claims",
        "06": f"Grad-CAM of {profile.cam.n_images} PublicTest faces, region shares, faithfulness, randomisation check",
        "07": f"Model B and its six ablations, {ablation} each on {side}",
        "08": f"the baseline trained on the crowd's votes ({baseline}) against its label twin",
        "09": f"the shipped Model B on {profile.wild_faces} PublicTest faces shifted, zoomed, turned, relit and blurred; "
        f"class priors, calibration, and the face detector on {profile.wild_scenes} scenes",
        REPORT_STEP: "metrics.json and REPORT.md from every notebook's results (the run's last step)",
    }


def _speed_sentence(lesson: dict, full: dict | None) -> str:
    """How fast the machine ran: SPEED_MODEL's training rate in the lesson beside the committed full run's on a CPU,
    each with its precision, and a warning where the precisions differ (bf16 alone moves the rate severalfold)."""
    rate, full = lesson.get("train_images_per_second"), full or {}
    if not rate or not full.get("images_per_second") or not str(full.get("device", "")).startswith("cpu"):
        return ""

    def trained_in(precision: str | None) -> str:
        return f" in {PRECISION_NAMES.get(precision, precision)}" if precision else ""

    text = (
        f" How fast the machine ran: the {registry.label(SPEED_MODEL)} trained at {rate:,.0f} images/s in this "
        f"lesson{trained_in(lesson.get('precision'))}, against {full['images_per_second']:,.0f} in the committed full "
        f"run on {full['device']}{trained_in(full.get('precision'))}"
    )
    if lesson.get("precision") and full.get("precision") and lesson["precision"] != full["precision"]:
        return text + ": different precisions, so the rates compare the precisions more than the machines."
    return text + "."


def lesson_block(record: dict, reference: dict | None = None) -> str:
    """The README's teaching block: the table of notebook times per run, then the latest run's headline numbers.

    reference: the committed full run's metrics.json, whose CPU training rates say how fast the machine ran that day
    (the same CPU can run at very different speeds from one day to the next).
    """
    runs = record["runs"]
    profile = get_profile(LESSON_PROFILE)
    doing = what_each_notebook_does(profile)
    notebooks = list(dict.fromkeys(name for run in runs for name in run["notebooks"]))
    rows = [
        [f"`{name}`"]
        + [f"{run['notebooks'][name]:.0f}" if name in run["notebooks"] else "" for run in runs]
        + [doing.get(name, doing.get(name[:2], ""))]
        for name in notebooks
    ]
    rows.append(
        ["total"] + [f"{run['total_seconds']:.0f} ({run['total_seconds'] / 60:.1f} min)" for run in runs] + [""]
    )
    header = ["notebook"] + [f"run {i} ({run['created'][:10]}), s" for i, run in enumerate(runs, 1)]
    table = markdown_table(rows, header + ["what it trained or measured"])
    latest = runs[-1]
    accuracies = ", ".join(
        f"{registry.label(name)} {format_pct(block)} ({format_pct_interval(block['accuracy_ci95'])})"
        for name, block in sorted(latest["models"].items(), key=lambda item: item[1]["accuracy"])
    )
    text = (
        f"{table}\n\n{time_range(runs)}, nothing else running, FER-2013 sha256 `{latest['data_sha256'][:12]}`. "
        f"On {REPORT_SPLIT} (reported, never used to choose), in the latest run, from least to most accurate: "
        f"{accuracies}."
    )
    judged = {
        name: block[SPLIT_KEYS[TARGET_SPLIT]]
        for name, block in latest["models"].items()
        if SPLIT_KEYS[TARGET_SPLIT] in block
    }
    if judged:
        text += (
            f" On {TARGET_SPLIT}, where the lesson's targets are judged: "
            + ", ".join(
                f"{registry.label(name)} {format_pct(block)} ({format_pct_interval(block['accuracy_ci95'])})"
                for name, block in sorted(judged.items(), key=lambda item: item[1]["accuracy"])
            )
            + "."
        )
    for ordering in latest["orderings"]:
        text += f" {ordering['claim']}: {ordering['verdict']} ({ordering['detail']})."
    text += " " + target_verdicts(record)
    text += _speed_sentence(latest["models"].get(SPEED_MODEL, {}), (reference or {}).get("models", {}).get(SPEED_MODEL))
    reference = latest.get("ablation_reference")
    if reference:
        learned = reference["accuracy"] >= reference["learned_threshold"]
        text += f" The ablation's reference Model B reached {reference['accuracy']:.1%} on {reference['split']}, " + (
            "enough for its differences to measure the ingredients."
            if learned
            else f"below the {reference['learned_threshold']:.0%} at which notebook 07 judges the paper's "
            "claims, so it withholds its verdicts: at this budget the ablation shows how an ablation is run, not "
            "what the ingredients buy."
        )
    return text


def run_precision(run: dict) -> str:
    """The precision a lesson's CNNs trained in, as metrics.json recorded it (TARGET_MODEL's first): bf16 where
    the CPU computes it natively, float32 where it does not or where `hardware.PRECISION_ENV` forced it; from the
    machine where no model recorded one."""
    models = run.get("models", {})
    for block in (models.get(TARGET_MODEL, {}), *models.values()):
        if block.get("precision") in TARGET_MINUTES:
            return block["precision"]
    return "bf16-mixed" if run.get("machine", {}).get("bf16_native") else "32-true"


def _machine(run: dict) -> str:
    machine = run["machine"]
    bf16 = "with" if machine.get("bf16_native") else "without"
    precision = PRECISION_NAMES[run_precision(run)]
    return f"{machine['cpus']} CPU cores ({machine['processor']}, {bf16} native bf16), trained in {precision}"


def time_range(runs: list[dict]) -> str:
    """How long the lesson took: the range over every recorded run from an empty run folder, with the machine."""
    minutes = sorted(run["total_seconds"] / 60 for run in runs)
    span = f"{minutes[0]:.1f} minutes" if len(runs) == 1 else f"between {minutes[0]:.1f} and {minutes[-1]:.1f} minutes"
    machines = list(dict.fromkeys(_machine(run) for run in runs))
    if len(machines) == 1:
        return (
            f"The whole lesson took {span} ({format_count(len(runs), 'run')} from an empty run folder) on {machines[0]}"
        )
    each = "; ".join(f"{run['total_seconds'] / 60:.1f} minutes on {_machine(run)}" for run in runs)
    return f"The whole lesson took {span} ({format_count(len(runs), 'run')} from an empty run folder: {each})"


def target_verdicts(record: dict) -> str:
    """Whether the recorded runs meet the lesson's targets: every run within TARGET_MINUTES for the precision it
    trained in, and TARGET_MODEL at TARGET_ACCURACY or more on TARGET_SPLIT in the latest run (its REPORT_SPLIT
    accuracy reported beside it; a run recorded without TARGET_SPLIT's accuracy leaves that target unjudged)."""
    runs = record["runs"]
    minutes = [run["total_seconds"] / 60 for run in runs]
    timed = " and ".join(f"{m:.1f}" for m in minutes)
    precisions = [run_precision(run) for run in runs]  # each run's limit
    within = all(m <= TARGET_MINUTES[precision] for m, precision in zip(minutes, precisions))
    limits = " or ".join(
        f"{TARGET_MINUTES[precision]:g} minutes in {PRECISION_NAMES[precision]}"
        for precision in sorted(set(precisions))
    )
    text = (
        f"Against the lesson's targets: {len(runs)} run(s) of {timed} minutes, "
        f"{'within' if within else 'over'} the {limits}"
    )
    block = runs[-1]["models"].get(TARGET_MODEL)
    if block is None:
        return text + f"; no {registry.label(TARGET_MODEL)} in the latest run."
    name = registry.label(TARGET_MODEL)
    judged = block.get(SPLIT_KEYS[TARGET_SPLIT])
    if judged is None:
        return text + (
            f"; {name}'s {TARGET_SPLIT} accuracy, on which its {TARGET_ACCURACY:.0%} target is judged, is not in the "
            f"latest run's record (kept when the record held {REPORT_SPLIT} only; the next lesson from an empty run "
            f"folder records it), so that target is not judged; on {REPORT_SPLIT}, reported and never used to choose, "
            f"it reached {format_pct(block)}."
        )
    reached = judged["accuracy"] >= TARGET_ACCURACY
    return text + (
        f"; {name} at {format_pct(judged)} on {TARGET_SPLIT}, {'at or above' if reached else 'below'} the "
        f"{TARGET_ACCURACY:.0%} it should reach ({format_pct(block)} on {REPORT_SPLIT}, reported)."
    )


def update_readme_lesson(readme_path: str | Path, record: dict, reference: dict | None = None) -> bool:
    """Rewrite the README's teaching block (between the lesson markers) from the record; True if it changed."""
    return rewrite_between(readme_path, LESSON_START, LESSON_END, lesson_block(record, reference))


def refresh_readme_lesson(readme_path: str | Path, reference: dict, lesson_path: str | Path = LESSON_FILE) -> bool:
    """After a new full run: the teaching block from the committed lesson record again, its speed line against the
    new run (reference, its metrics); True if it changed, False also where no lesson has been recorded."""
    lesson_path = Path(lesson_path)
    if not lesson_path.exists():
        return False
    return update_readme_lesson(readme_path, json.loads(lesson_path.read_text(encoding="utf-8")), reference)
