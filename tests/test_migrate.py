"""A renamed model's saved runs move to its new name and key, and load there instead of being retrained."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fer_helpers.data.fer2013 import NUM_CLASSES
from fer_helpers.data.migrate import RENAMED, main, rename_model_runs
from fer_helpers.data.results import EVAL_SPLITS, RESULT_FILE, RunResult, result_dir, run_key
from fer_helpers.train import classical
from fer_helpers.train.classical import HOG_VARIANTS, fit_hog_variant, hog_variant_config

NEW = "hog_fine_cells"
OLD = next(old for old, new in RENAMED.items() if new == NEW)


@pytest.fixture(scope="module")
def saved(synth, tmp_path_factory):
    """A saved result of the variant under its current name and key, as fit_hog_variant keeps it (nothing fitted)."""
    run_root = tmp_path_factory.mktemp("runs")
    config = hog_variant_config(NEW).sized_for(int((synth.usage == "Training").sum()), synth.images.shape[1:])
    key = run_key(NEW, config.to_dict(), synth.sha256)
    masks = {split: synth.usage == split for split in EVAL_SPLITS}
    rng = np.random.default_rng(0)
    result = RunResult(
        model=NEW,
        config=config.to_dict(),
        key=key,
        run_dir=result_dir(run_root, NEW, key),
        data_sha256=synth.sha256,
        logits={split: rng.normal(size=(mask.sum(), NUM_CLASSES)).astype(np.float32) for split, mask in masks.items()},
        labels={split: synth.labels[mask] for split, mask in masks.items()},
        metrics={},
    )
    result.save()
    return result


@pytest.fixture
def old_run(saved, tmp_path):
    """A copy of the run folder as a run saved before the rename left it: old name, old key."""
    run_root = tmp_path / "runs"
    shutil.copytree(saved.run_dir.parents[1], run_root)
    [(_, old_dir)] = rename_model_runs(run_root, NEW, OLD)  # the rename is its own inverse
    return run_root, old_dir


def test_renamed_variants_exist():
    assert set(RENAMED.values()) <= set(HOG_VARIANTS) and not set(RENAMED) & set(HOG_VARIANTS)


def test_old_run_has_the_old_name_and_key(saved, old_run):
    _, old_dir = old_run
    old = RunResult.load(old_dir)
    assert old.model == OLD and old.config["name"] == OLD and old_dir.name == f"{OLD}-{old.key}"
    assert old.key != saved.key


def _refuse(*args, **kwargs):
    raise AssertionError("fitted instead of loading the moved run")


def test_moved_run_loads_under_the_new_name(synth, saved, old_run, monkeypatch):
    run_root, old_dir = old_run
    [(source, target)] = rename_model_runs(run_root, OLD, NEW)
    assert source == old_dir and not old_dir.exists() and target.name == saved.run_dir.name
    monkeypatch.setattr(classical, "cached_hog_features", _refuse)
    loaded = fit_hog_variant(synth, NEW, run_root)
    assert loaded.from_cache and loaded.key == saved.key and loaded.model == NEW
    assert loaded.config == json.loads((saved.run_dir / RESULT_FILE).read_text())["config"]
    for split in ("PublicTest", "PrivateTest"):
        np.testing.assert_array_equal(loaded.logits[split], saved.logits[split])
    assert rename_model_runs(run_root, OLD, NEW) == []  # idempotent: nothing left to move


def test_refuses_to_overwrite(old_run, saved):
    run_root, old_dir = old_run
    shutil.copytree(saved.run_dir, run_root / "results" / saved.run_dir.name)
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


def test_finishes_a_move_cut_short(old_run, saved):
    run_root, old_dir = old_run
    # result.json already rewritten, folder not yet moved:
    (old_dir / RESULT_FILE).write_text((saved.run_dir / RESULT_FILE).read_text())
    [(_, target)] = rename_model_runs(run_root, OLD, NEW)
    assert target.name == saved.run_dir.name


def test_command_applies_every_rename(old_run, saved, capsys):
    run_root, old_dir = old_run
    main([str(run_root)])
    assert f"-> {saved.run_dir.name}" in capsys.readouterr().out
    assert not old_dir.exists() and (run_root / "results" / saved.run_dir.name / RESULT_FILE).exists()
    main([str(run_root)])
    assert capsys.readouterr().out == ""
