"""metrics.json, REPORT.md and the README's results table, from constructed runs; README and metrics.json in step."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_metrics import fer_labels, make_preds, make_result

from fer_helpers.core.paper import table1_parameter_count
from fer_helpers.core.profiles import get_profile
from fer_helpers.data.fer2013 import FERData
from fer_helpers.publish.readme import README_END, README_START, readme_block, readme_results_table, update_readme
from fer_helpers.publish.report import (
    LABEL_NOISE_FIGURES,
    claims_frame,
    comparison_frame,
    describe_claims,
    differences,
    gradcam_section,
    per_class_frame,
    seed_frame,
    write_report_md,
)
from fer_helpers.publish.summary import (
    GRADCAM_FILE,
    build_metrics,
    collect_results,
    load_gradcam,
    missing_models,
    missing_runs,
    model_entry,
    precision_check,
    write_gradcam_summary,
    write_metrics,
)
from fer_helpers.scoring.metrics import classification_metrics
from fer_helpers.scoring.statistics import mcnemar

REPO = Path(__file__).resolve().parents[1]


TWINS = 40  # PrivateTest faces of the fake data that are byte copies of Training faces


def fake_study(profile: str = "full", is_fer2013: bool = True, sha256: str = "abc") -> SimpleNamespace:
    """What build_metrics reads from a Study: the profile and the data (test labels as the runs', random faces,
    the first TWINS PrivateTest faces copied from Training)."""
    rng = np.random.default_rng(0)
    public, private = fer_labels("PublicTest"), fer_labels("PrivateTest")
    training = np.arange(200) % 7
    labels = np.concatenate([training, public, private])
    usage = np.array(["Training"] * len(training) + ["PublicTest"] * len(public) + ["PrivateTest"] * len(private))
    images = rng.integers(0, 256, (len(labels), 48, 48), dtype=np.uint8)
    first_private = len(training) + len(public)
    images[first_private : first_private + TWINS] = images[:TWINS]
    data = FERData(
        images=images,
        labels=labels,
        usage=usage,
        source="/somewhere/data/fer2013.zip",
        sha256=sha256,
        form="kaggle-zip" if is_fer2013 else "synthetic",
    )
    return SimpleNamespace(profile=get_profile(profile), data=data)


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    """A run folder with HOG+SVM, the baseline, Model B (3 seeds), our model (2 seeds) and a stale result."""
    root = tmp_path_factory.mktemp("run")
    public, private = fer_labels("PublicTest"), fer_labels("PrivateTest")
    labels = {"PublicTest": public, "PrivateTest": private}

    def preds(acc: float, seed: int) -> dict:
        return {
            "PublicTest": make_preds(public, acc, seed=seed),
            "PrivateTest": make_preds(private, acc, seed=seed + 1),
        }

    make_result(root, "hog_svm", preds(0.37, 10), labels, seed=None, params=None)
    make_result(root, "baseline_cnn", preds(0.42, 20), labels, seed=0, params=683_527)
    make_result(root, "resnet_fer", preds(0.10, 90), labels, seed=0, params=5000)  # stale: overwritten below
    for s in range(3):
        make_result(root, "model_b", preds(0.56 + 0.01 * s, 30 + s), labels, seed=s, params=2_737_143)
    for s in range(2):
        make_result(
            root,
            "resnet_fer",
            preds(0.70, 40 + s),
            labels,
            seed=s,
            params=5000,
            extra={"inference_images_per_second": 9000.0},
        )
    make_result(root, "model_b_no_bn", preds(0.50, 60), labels, seed=0, params=2_700_000)
    make_result(root, "model_b", preds(0.9, 50), labels, seed=0, data_sha256="other-data")
    return root


@pytest.fixture(scope="module")
def metrics(run_root) -> dict:
    with pytest.MonkeyPatch.context() as patch:  # the fake faces are not FER-2013's: no FER+ votes for them
        patch.delenv("FERPLUS_PATH", raising=False)
        return build_metrics(run_root, fake_study())


def test_collect_results_groups_by_model_keeps_newest_per_seed_and_filters_data(run_root):
    grouped = collect_results(run_root, "abc")
    assert list(grouped) == ["hog_svm", "baseline_cnn", "model_b", "model_b_no_bn", "resnet_fer"]
    assert [r.seed for r in grouped["model_b"]] == [0, 1, 2]
    assert [r.seed for r in grouped["resnet_fer"]] == [0, 1]
    assert grouped["resnet_fer"][0].metrics["PrivateTest"]["accuracy"] == pytest.approx(0.70, abs=0.01)
    assert len(collect_results(run_root)["model_b"]) == 3  # the other data's seed 0 is newer and replaces ours
    assert collect_results(run_root / "nothing") == {}


def test_metrics_shape_and_numbers(metrics, run_root):
    assert metrics["profile"] == "full"
    assert metrics["data"] == {
        "sha256": "abc",
        "subset_sha256": "abc",
        "source": "fer2013.zip",
        "form": "kaggle-zip",
        "is_fer2013": True,
        "subsample": None,
    }
    assert {"numpy", "torch", "scikit-learn", "lightning"} <= set(metrics["packages"])
    assert metrics["git_commit"] is None or len(metrics["git_commit"]) == 40
    assert list(metrics["models"]) == [
        "hog_svm",
        "baseline_cnn",
        "model_b",
        "model_b_ensemble",
        "model_b_no_bn",
        "resnet_fer",
        "resnet_fer_ensemble",
    ]
    model_b = metrics["models"]["model_b"]
    runs = collect_results(run_root, "abc")["model_b"]
    accs = [classification_metrics(r.labels["PrivateTest"], r.preds("PrivateTest"))["accuracy"] for r in runs]
    private = model_b["private_test"]
    assert private["accuracy"] == pytest.approx(np.mean(accs))
    assert private["std"]["accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert private["accuracy_ci95"][0] < private["accuracy"] < private["accuracy_ci95"][1]
    assert "bootstrap" in private["ci95_method"] and "mean over seeds" in private["ci95_method"]
    assert set(private["per_class"]) == {"Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"}
    assert model_b["seeds"] == [0, 1, 2] and [p["seed"] for p in model_b["per_seed"]] == [0, 1, 2]
    assert [p["private_test"]["accuracy"] for p in model_b["per_seed"]] == pytest.approx(accs)
    assert model_b["paper"]["accuracy"] == [0.56, 0.58] and model_b["params"] == 2_737_143
    assert "std" not in metrics["models"]["baseline_cnn"]["private_test"]
    assert metrics["models"]["hog_svm"]["paper"]["macro_f1"] == [0.30, 0.36]
    assert metrics["models"]["resnet_fer"]["paper"] is None
    assert metrics["models"]["resnet_fer"]["inference_images_per_second"] == 9000.0
    ensemble = metrics["models"]["resnet_fer_ensemble"]
    assert ensemble["ensemble_of"] == "resnet_fer" and ensemble["seeds"] == [0, 1] and ensemble["params"] == 10000
    assert any(c["claim"].startswith("Model B accuracy") for c in metrics["claims"])


def test_a_models_training_time_is_its_fastest_seeds(run_root):
    """A seed trained beside other work takes longer than the model costs: the entry gives the fastest seed's time
    and rate, and per_seed keeps every seed's."""
    runs = collect_results(run_root, "abc")["model_b"]
    slowed = [
        replace(
            r,
            train_seconds=12.0 * (3 - i),
            images_per_second=1000.0 / (3 - i),
            extra=r.extra | {"inference_images_per_second": 9000.0 / (3 - i), "precision": f"p{i}"},
        )
        for i, r in enumerate(runs)
    ]
    entry = model_entry(slowed)
    assert entry["train_seconds"] == 12.0 and entry["images_per_second"] == 1000.0
    assert entry["precision"] == "p2"  # the precision that rate was trained in
    assert entry["inference_images_per_second"] == 9000.0
    assert [p["train_seconds"] for p in entry["per_seed"]] == [36.0, 24.0, 12.0]


def test_a_model_whose_seeds_ran_in_different_precisions_says_which_seed_ran_in_which(run_root):
    runs = collect_results(run_root, "abc")["model_b"]
    assert "precision_note" not in model_entry(runs)
    precisions = {0: "32-true", 1: "bf16-mixed", 2: "bf16-mixed"}
    mixed = [replace(r, extra=r.extra | {"best_epoch": 1, "precision": precisions[r.seed]}) for r in runs]
    assert model_entry(mixed)["precision_note"] == (
        "seeds trained in different precisions: float32 (seed 0), bf16 mixed (seeds 1, 2)"
    )


def test_frames_for_the_notebook(metrics, run_root):
    comparison = comparison_frame(metrics)
    assert comparison.loc["model_b", "accuracy"] == metrics["models"]["model_b"]["private_test"]["accuracy"]
    assert comparison.loc["model_b", "paper_accuracy"] == "56–58%" and comparison.loc["model_b", "seeds"] == 3
    f1 = per_class_frame(metrics)
    assert f1.shape == (7, len(metrics["models"])) and list(f1.index)[0] == "Angry"
    model_b = per_class_frame(metrics, "model_b")
    assert model_b.loc["Disgust", "support"] == 55 and model_b.loc["Disgust", "paper_f1"] == "very low"
    seeds = seed_frame(metrics)
    assert list(seeds.index) == ["model_b", "resnet_fer"] and seeds.loc["model_b", "seeds"] == "0, 1, 2"
    assert len(claims_frame(metrics)) == len(metrics["claims"])
    assert describe_claims(metrics).startswith(f"Of the paper's {len(metrics['claims'])} claims")
    assert missing_models(collect_results(run_root, "abc")) == {}
    assert missing_models({"model_b": []}) == {
        "hog_svm": "02_hog_svm",
        "baseline_cnn": "03_baseline_cnn",
        "model_b": "04_tuned_cnn",
        "resnet_fer": "04_tuned_cnn",
    }


def test_write_metrics_is_strict_json(metrics, tmp_path):
    path = write_metrics(metrics | {"note": float("nan")}, tmp_path / "reports" / "metrics.json")
    loaded = json.loads(path.read_text())
    assert loaded["note"] is None and loaded["models"]["model_b"]["seeds"] == [0, 1, 2]


def test_report_md_reads_like_a_results_section(metrics, tmp_path):
    reports = tmp_path / "reports"
    figure = reports / "figures" / "confusion_model_b.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"png")
    frame = comparison_frame(metrics)
    path = write_report_md(
        metrics,
        {"Calibration": frame[["accuracy", "macro_f1"]]},
        {"Model B's confusion matrix": figure},
        reports / "REPORT.md",
    )
    text = path.read_text()
    for heading in (
        "# Results",
        "## Comparison of the models",
        "## Per-class results",
        "## Figures",
        "## Calibration",
        "## The paper's claims, tested",
        "## Differences from the paper",
    ):
        assert heading in text
    assert "](figures/confusion_model_b.png)" in text
    assert "| Model B (mean ± std, 3 seeds) |" in text and "56–58%" in text and "| Baseline CNN (one seed) |" in text
    for heading in (
        "## Calibration before and after temperature scaling",
        "## FER-2013 in the field",
        "## Choices the paper leaves open",
        "## Runs replaced",
    ):
        assert heading in text
    assert "73.28%" in text and "LeakyReLU slope" in text
    assert f"{TWINS} of the" in text and "byte-identical twin in Training" in text
    main, variants = text.split("### Variants and ablations")
    assert "| model_b_no_bn (one seed) |" in variants.split("## Per-class")[0] and "model_b_no_bn" not in main
    assert f"{table1_parameter_count():,}" in text and "683,527" in text
    assert "SYNTHETIC" not in text and "Profile `" not in text


def test_the_class_weight_note_says_whether_the_ablation_tests_it(metrics):
    def note(claims: list[dict]) -> str:
        (item,) = [item for item in differences(metrics | {"claims": claims}) if "class-weight claims" in item]
        return item

    untested = note(metrics["claims"])
    assert "not trained yet" in untested and "tests nothing about class weights" in untested
    assert "measured as" not in untested
    basis = "model_b vs model_b_no_class_weights (ablation: only the class weights differ), PrivateTest"
    tested = [
        claim | {"basis": basis, "verdict": "reproduced"} if claim["claim"].startswith("Class weights") else claim
        for claim in metrics["claims"]
    ]
    assert note(tested).endswith(
        "measured as model_b vs model_b_no_class_weights (ablation: only the class weights differ)."
    )
    assert "not trained" not in note(tested)


def test_report_md_banner_on_synthetic_or_small_runs(run_root, tmp_path):
    metrics = build_metrics(run_root, fake_study("smoke", is_fer2013=False, sha256="synthetic"))
    assert metrics["models"] == {}  # the run folder holds results of other data only
    text = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()
    assert "SYNTHETIC FACES - NOT FER-2013" in text.split("## Comparison")[0]
    assert "Profile `smoke`" in text


def test_table1_parameter_count_matches_the_paper_as_written():
    assert table1_parameter_count() == 683_527 and table1_parameter_count(extra_conv=True) == 831_111


def test_readme_table_and_update(metrics, tmp_path):
    table = readme_results_table(metrics)
    lines = table.splitlines()
    assert lines[0].startswith("| Model (PrivateTest) | Accuracy (95% CI) | Without twins |")
    single = ["hog_svm", "baseline_cnn", "model_b", "resnet_fer"]  # not the ablation, not the seed ensembles
    assert sum(line.startswith("| ") for line in lines) == 2 + len(single)
    assert "model_b_no_bn" not in table and "ensemble" not in table.split("\n\n")[0]
    assert (
        "what inference adds beside them" in table and "the most accurate being ResNet-FER (ours) ensemble at" in table
    )
    model_b = metrics["models"]["model_b"]["private_test"]
    assert f"{100 * model_b['accuracy']:.1f} ± {100 * model_b['std']['accuracy']:.1f}%" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nIntro.\n\n{README_START}\nold table\n{README_END}\n\nMore.\n")
    assert update_readme(readme, metrics) is True
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Title\n\nIntro.") and text.endswith("\n\nMore.\n")
    assert readme_block(readme) == table.strip()
    assert update_readme(readme, metrics) is False  # already in step
    readme.write_text("# No markers\n")
    with pytest.raises(ValueError, match="results:start"):
        update_readme(readme, metrics)


def test_repository_readme_agrees_with_committed_metrics():
    metrics_path = REPO / "reports" / "metrics.json"
    if not metrics_path.exists():
        pytest.skip("no reports/metrics.json committed yet (a full run on FER-2013 writes it)")
    metrics = json.loads(metrics_path.read_text())
    block = readme_block(REPO / "README.md")
    assert block is not None, f"README.md lacks the {README_START} ... {README_END} block"
    assert block == readme_results_table(metrics).strip(), "README results table is out of step with metrics.json"


def test_missing_runs_names_models_seeds_and_the_ablation(run_root):
    results = collect_results(run_root, "abc")
    missing = missing_runs(results, get_profile("full"))
    assert missing == [
        "Baseline CNN: seeds 1, 2 of 0, 1, 2 not trained (notebook 03_baseline_cnn)",
        "ResNet-FER (ours): seed 2 of 0, 1, 2 not trained (notebook 04_tuned_cnn)",
        "model_b_relu, model_b_flatten, model_b_no_dropout, model_b_no_class_weights, model_b_no_augment: "
        "not trained (notebook 07_ablation)",
        "the ablation of Model B: seeds 1, 2 of 0, 1, 2 not trained (notebook 07_ablation)",
    ]
    # classroom: one seed, and its ablation trains on a subset, outside the report
    assert missing_runs(results, get_profile("classroom")) == []
    # with crowd votes at hand, notebook 08's crowd twins are part of the protocol too
    assert missing_runs(results, get_profile("full"), votes=True) == [
        *missing,
        "the crowd twins of Baseline CNN and Model B: not trained (notebook 08_label_noise)",
    ]
    assert missing_runs(results, get_profile("classroom"), votes=True) == [
        "the crowd twin of Baseline CNN: not trained (notebook 08_label_noise)"
    ]
    nothing = missing_runs({}, get_profile("full"))
    assert nothing[0] == "HOG + SVM: not trained (notebook 02_hog_svm)"
    assert "Model B: not trained (notebook 04_tuned_cnn)" in nothing
    assert nothing[-1] == "the ablation of Model B: not trained (notebook 07_ablation)"


def test_incomplete_run_is_said_in_report_and_readme(metrics, tmp_path):
    assert metrics["missing"] and metrics["missing"][0].startswith("Baseline CNN: seeds 1, 2")
    text = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()
    head = text.split("## Comparison")[0]
    assert "**Incomplete run:**" in head and "> - Baseline CNN: seeds 1, 2 of 0, 1, 2 not trained" in head
    assert "Incomplete run, still to train: Baseline CNN: seeds 1, 2" in readme_results_table(metrics)
    complete = metrics | {"missing": []}
    assert "Incomplete" not in write_report_md(complete, {}, {}, tmp_path / "R2.md").read_text()
    assert "Incomplete" not in readme_results_table(complete)


def test_gradcam_summary_round_trip_and_staleness(run_root, metrics, tmp_path):
    import pandas as pd

    reports = tmp_path / "reports"
    figure = reports / "figures" / "gradcam_examples_model_b.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"png")
    model_b = collect_results(run_root, "abc")["model_b"][0]
    claims = pd.DataFrame({"claim": ["eyes + mouth"], "measured": [0.455], "holds": [np.bool_(True)]})
    shares = pd.DataFrame({"eyes": [0.2, 0.3]}, index=pd.Index(["Angry", "all"], name="class"))
    path = write_gradcam_summary(
        reports, {"model_b": model_b}, {"Figure 2, Model B": figure}, {"Claims": claims, "Shares": shares}
    )
    assert path == reports / GRADCAM_FILE
    summary = load_gradcam(reports, metrics["models"])
    assert summary["models"] == {"model_b": {"key": model_b.key, "seed": 0}}
    assert summary["figures"] == {"Figure 2, Model B": "figures/gradcam_examples_model_b.png"}
    assert summary["tables"]["Claims"] == [{"claim": "eyes + mouth", "measured": 0.455, "holds": True}]
    assert summary["tables"]["Shares"][0] == {"class": "Angry", "eyes": 0.2}
    # build_metrics picks it up from the study's reports folder
    study = fake_study()
    study.reports_dir = reports
    assert build_metrics(run_root, study)["gradcam"] == summary
    text = write_report_md(metrics | {"gradcam": summary}, {}, {}, reports / "REPORT.md").read_text()
    section = text.split("## Grad-CAM (the paper's Figure 2)")[1].split("## The paper's claims")[0]
    assert "](figures/gradcam_examples_model_b.png)" in section and "| class | eyes |" in section
    assert f"Heatmaps of Model B, seed 0 (run `{model_b.key}`) on PublicTest faces" in section
    # retrained Model B (another key): the summary no longer describes the report's model
    other = {"model_b": {"per_seed": [{"seed": 0, "key": "another"}]}}
    assert load_gradcam(reports, other) is None and load_gradcam(tmp_path / "none", metrics["models"]) is None
    assert load_gradcam(None, metrics["models"]) is None
    text = write_report_md(metrics | {"gradcam": None}, {}, {}, reports / "REPORT.md").read_text()
    assert "_Not measured for these results: run notebooks/06_gradcam.ipynb" in text


def test_figures_of_single_faces_stay_out_of_the_repository():
    """The project commits no image from FER-2013: notebook 06's figures of single faces are ignored by git."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    faces = [
        "reports/figures/gradcam_examples_model_b.png",
        "reports/figures/gradcam_examples_resnet_fer.png",
        "reports/figures/gradcam_randomization_examples.png",
    ]
    ignored = subprocess.run(["git", "check-ignore", *faces], cwd=REPO, capture_output=True, text=True).stdout
    assert ignored.split() == faces
    assert "reports/figures/gradcam_class_means_model_b.png" not in ignored  # class means: averages, committed
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True).stdout
    assert not [name for name in tracked.split() if "examples" in name]
    summary = REPO / "reports" / GRADCAM_FILE
    if summary.exists():
        assert not [f for f in json.loads(summary.read_text())["figures"].values() if "examples" in f]


def test_without_twins_leaves_out_the_test_faces_seen_in_training(metrics, run_root):
    assert metrics["twins"]["private_test"]["n"] == TWINS and metrics["twins"]["public_test"]["n"] == 0
    model_b = metrics["models"]["model_b"]
    dedup, whole = model_b["private_test_dedup"], model_b["private_test"]
    assert dedup["n"] == whole["n"] - TWINS
    runs = collect_results(run_root, "abc")["model_b"]
    expected = np.mean([(r.preds("PrivateTest")[TWINS:] == r.labels["PrivateTest"][TWINS:]).mean() for r in runs])
    assert dedup["accuracy"] == pytest.approx(expected)
    assert model_b["public_test_dedup"]["n"] == model_b["public_test"]["n"]


def test_one_interval_for_one_number_everywhere(metrics, tmp_path):
    """metrics.json, REPORT.md and the README print the same bootstrap interval (the card: test_ship)."""
    block = metrics["models"]["baseline_cnn"]["private_test"]
    low, high = block["accuracy_ci95"]
    printed = f"{100 * low:.1f}–{100 * high:.1f}%"
    assert printed in readme_results_table(metrics)
    assert printed in write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()


def test_the_precision_check_compares_the_bf16_twin_with_the_float32_run(tmp_path):
    private = fer_labels("PrivateTest")
    float32 = make_result(
        tmp_path,
        "baseline_cnn",
        {"PrivateTest": make_preds(private, 0.60, seed=1)},
        {"PrivateTest": private},
        extra={"precision": "32-true"},
    )
    assert precision_check({"baseline_cnn": [float32]}) is None  # no twin yet
    bf16 = make_result(
        tmp_path,
        "baseline_cnn_bf16",
        {"PrivateTest": make_preds(private, 0.58, seed=2)},
        {"PrivateTest": private},
        extra={"precision": "bf16-mixed"},
    )
    check = precision_check({"baseline_cnn": [float32], "baseline_cnn_bf16": [bf16]})
    assert check["precisions"] == ["bf16-mixed", "32-true"]
    assert check["difference"] == pytest.approx(check["accuracy"][0] - check["accuracy"][1])
    assert check["difference_ci95"][0] < check["difference"] < check["difference_ci95"][1]
    low, high = check["difference_ci95"]
    assert ("holds zero" in check["verdict"]) == (low <= 0 <= high)
    worse = make_result(
        tmp_path,
        "baseline_cnn_bf16",
        {"PrivateTest": make_preds(private, 0.30, seed=2)},
        {"PrivateTest": private},
        extra={"precision": "bf16-mixed"},
    )
    check = precision_check({"baseline_cnn": [float32], "baseline_cnn_bf16": [worse]})
    assert check["difference_ci95"][1] < 0 and check["verdict"].startswith("bf16 is less accurate")


def test_models_are_scored_against_the_crowd_where_there_are_votes(run_root, tmp_path):
    """Synthetic faces carry simulated votes; every model then gets private_test_ferplus and REPORT.md a section."""
    metrics = build_metrics(run_root, fake_study(is_fer2013=False))
    noise = metrics["label_noise"]
    assert noise["votes"].startswith("simulated") and 0 < noise["agreement"] <= 1
    crowd = metrics["models"]["model_b"]["private_test_ferplus"]
    assert 0 < crowd["n"] <= metrics["models"]["model_b"]["private_test"]["n"]
    assert crowd["accuracy_ci95"][0] <= crowd["accuracy"] <= crowd["accuracy_ci95"][1]
    text = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()
    assert "## Label noise" in text and "crowd plurality" in text
    assert "reference_points.png" not in text  # notebook 08 has not drawn it here
    shares = noise["reference_vote_share"]
    assert shares["fit_split"] == "Training" and shares["accuracy_ci95"][0] <= shares["accuracy"]
    assert "not ceilings" in text and "ceiling" not in text.replace("not ceilings", "")
    assert f"{shares['accuracy']:.1%}" in text
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "reference_points.png").write_bytes(b"")
    text = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()
    section = text[text.index("## Label noise") : text.index("## FER-2013 in the field")]
    assert f"![{LABEL_NOISE_FIGURES['reference_points']}](figures/reference_points.png)" in section
    assert "crowd_label_confusion.png" not in section


def test_notebook_08_draws_the_figures_the_report_shows():
    source = "".join(
        "".join(c["source"]) for c in json.loads((REPO / "notebooks" / "08_label_noise.ipynb").read_text())["cells"]
    )
    for name in LABEL_NOISE_FIGURES:
        assert f'save_figure(fig, "{name}")' in source


def test_crowd_trained_runs_are_compared_with_their_label_twin_on_both_label_sets(tmp_path):
    """A crowd-trained run and its label twin of the same seed give one row per split in metrics.json, scored
    against both label sets with McNemar's test, and REPORT.md a table and a verdict for the judged split."""
    public, private = fer_labels("PublicTest"), fer_labels("PrivateTest")
    labels = {"PublicTest": public, "PrivateTest": private}

    def preds(acc: float, seed: int) -> dict:
        return {split: make_preds(y, acc, seed=seed + i) for i, (split, y) in enumerate(labels.items())}

    twin, crowd = preds(0.45, 1), preds(0.55, 3)
    make_result(tmp_path, "baseline_cnn", twin, labels, seed=0)
    make_result(tmp_path, "baseline_cnn_crowd", crowd, labels, seed=0)
    make_result(tmp_path, "model_b_crowd", preds(0.5, 5), labels, seed=1)  # no Model B twin: not compared
    metrics = build_metrics(tmp_path, fake_study(is_fer2013=False))
    rows = metrics["label_noise"]["crowd_training"]
    assert [(r["model"], r["split"]) for r in rows] == [("baseline_cnn", "PublicTest"), ("baseline_cnn", "PrivateTest")]
    public_row = rows[0]
    assert public_row["label_run"] == pytest.approx(np.mean(twin["PublicTest"] == public))
    assert public_row["crowd_run"] == pytest.approx(np.mean(crowd["PublicTest"] == public))
    assert public_row["delta"] == pytest.approx(100 * (public_row["crowd_run"] - public_row["label_run"]))
    assert public_row["mcnemar_p"] == pytest.approx(mcnemar(public, twin["PublicTest"], crowd["PublicTest"])["p_value"])
    assert public_row["n_crowd"] <= public_row["n"] == len(public)
    text = write_report_md(metrics, {}, {}, tmp_path / "REPORT.md").read_text()
    section = text[text.index("### Training on the crowd's votes") :]
    assert "Barsoum" in section and "not comparable" in section  # FER+'s prior art, and why its numbers are not ours
    assert "Baseline CNN, PublicTest: **better**" in section
    assert "Baseline CNN, PrivateTest:" not in section  # only the judged split gets a verdict
    private = rows[1]
    readme = readme_results_table(metrics)
    assert (
        f"Trained on the crowd's votes instead of the labels, Baseline CNN scores {private['crowd_run']:.1%}" in readme
    )


def test_gradcam_section_says_the_maps_resolution_and_which_seeds_it_measured():
    metrics = {
        "models": {"model_b": {"seeds": [0, 1, 2]}},
        "gradcam": {
            "models": {"model_b": {"key": "k", "seed": 0}},
            "figures": {},
            "tables": {},
            "facts": {"grid": 6, "lower_eyes_rows": 5, "seeds": [0]},
        },
    }
    text = "\n".join(gradcam_section(metrics))
    assert "6×6" in text and "8×8 pixels" in text and "5 rows high" in text
    assert "seed 0 (the run folder keeps no weights of seeds 1, 2" in text
    assert "decides nothing" in text
