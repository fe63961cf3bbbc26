"""A renamed model's saved runs move to its new name and key, and load there instead of being retrained."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fer_helpers.classical import HOG_VARIANTS, fit_hog_variant, hog_variant_config
from fer_helpers.migrate import RENAMED, main, rename_model_runs
from fer_helpers.results import RESULT_FILE, RunResult

NEW = "hog_fine_cells"
OLD = next(old for old, new in RENAMED.items() if new == NEW)


@pytest.fixture(scope="module")
def fitted(synth, tmp_path_factory):
    """A variant fitted under its current name (one C, to be quick)."""
    run_root = tmp_path_factory.mktemp("runs")
    return fit_hog_variant(synth, hog_variant_config(NEW, c_grid=(0.01,)), run_root)


@pytest.fixture
def old_run(fitted, tmp_path):
    """A copy of the run folder as a run saved before the rename left it: old name, old key."""
    run_root = tmp_path / "runs"
    shutil.copytree(fitted.run_dir.parents[1], run_root)
    [(_, old_dir)] = rename_model_runs(run_root, NEW, OLD)  # the rename is its own inverse
    return run_root, old_dir


def test_renamed_variants_exist():
    assert set(RENAMED.values()) <= set(HOG_VARIANTS) and not set(RENAMED) & set(HOG_VARIANTS)


def test_old_run_has_the_old_name_and_key(fitted, old_run):
    _, old_dir = old_run
    old = RunResult.load(old_dir)
    assert old.model == OLD and old.config["name"] == OLD and old_dir.name == f"{OLD}-{old.key}"
    assert old.key != fitted.key


def test_moved_run_loads_under_the_new_name(synth, fitted, old_run):
    run_root, old_dir = old_run
    [(source, target)] = rename_model_runs(run_root, OLD, NEW)
    assert source == old_dir and not old_dir.exists() and target.name == fitted.run_dir.name
    loaded = fit_hog_variant(synth, hog_variant_config(NEW, c_grid=(0.01,)), run_root)
    assert loaded.from_cache and loaded.key == fitted.key and loaded.model == NEW
    assert loaded.config == json.loads((fitted.run_dir / RESULT_FILE).read_text())["config"]
    for split in ("PublicTest", "PrivateTest"):
        np.testing.assert_array_equal(loaded.logits[split], fitted.logits[split])
    assert rename_model_runs(run_root, OLD, NEW) == []  # idempotent: nothing left to move


def test_refuses_to_overwrite(old_run, fitted):
    run_root, old_dir = old_run
    shutil.copytree(fitted.run_dir, run_root / "results" / fitted.run_dir.name)
    with pytest.raises(FileExistsError, match="exists"):
        rename_model_runs(run_root, OLD, NEW)
    assert old_dir.exists()


def test_refuses_a_result_whose_key_it_cannot_recompute(old_run):
    run_root, old_dir = old_run
    meta = json.loads((old_dir / RESULT_FILE).read_text())
    (old_dir / RESULT_FILE).write_text(json.dumps(meta | {"config": meta["config"] | {"seed": 1}}))
    with pytest.raises(ValueError, match="does not give the folder's key"):
        rename_model_runs(run_root, OLD, NEW)
    assert old_dir.exists()


def test_finishes_a_move_cut_short(old_run, fitted):
    run_root, old_dir = old_run
    # result.json already rewritten, folder not yet moved:
    (old_dir / RESULT_FILE).write_text((fitted.run_dir / RESULT_FILE).read_text())
    [(_, target)] = rename_model_runs(run_root, OLD, NEW)
    assert target.name == fitted.run_dir.name


def test_command_applies_every_rename(old_run, fitted, capsys):
    run_root, old_dir = old_run
    main([str(run_root)])
    assert f"-> {fitted.run_dir.name}" in capsys.readouterr().out
    assert not old_dir.exists() and (run_root / "results" / fitted.run_dir.name / RESULT_FILE).exists()
    main([str(run_root)])
    assert capsys.readouterr().out == ""
