"""What travels to and from a training host: the slim tree's size, the run archives, and unpacking them safely."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_helpers.core.paths import REPO
from fer_helpers.data.results import RunResult
from fer_helpers.orchestrate.cli import main
from fer_helpers.train import bundle
from fer_helpers.train.bundle import BundleError, pack_runs, slim_paths, slim_size, unpack_runs

FER2013_ZIP_BYTES = 61_630_300  # the Kaggle zip this study uses, when it is not at hand to measure
FERPLUS_VOTES_BYTES = 2_725_981  # the joined FER+ votes, likewise


def _run(root: Path, name: str, weights_bytes: int = 0) -> Path:
    rng = np.random.default_rng(len(name))
    logits = {s: rng.normal(size=(20, 7)).astype(np.float32) for s in ("PublicTest", "PrivateTest")}
    labels = {s: rng.integers(0, 7, 20) for s in logits}
    result = RunResult(
        model=name,
        config={"model": name},
        key="k" + name,
        run_dir=root / "results" / f"{name}-k",
        data_sha256="abc",
        logits=logits,
        labels=labels,
        metrics={s: {"accuracy": 0.5} for s in logits},
        history=pd.DataFrame({"epoch": [1]}),
    )
    result.save()
    if weights_bytes:
        (result.run_dir / "weights.safetensors").write_bytes(os.urandom(weights_bytes))
    return result.run_dir


def test_the_slim_tree_and_the_data_fit_what_a_training_host_receives():
    paths = slim_paths(REPO)
    assert "fer_helpers/orchestrate/schedule.py" in paths and "scripts/gpu_run.sh" in paths
    assert not any(p.startswith(("models/", "reports/", "notebooks/", "tests/")) for p in paths)
    assert not any(p.endswith(("weights.safetensors", "predictions.npz")) for p in paths)
    saved = [p for p in paths if p.startswith("runs/full/results/")]
    assert saved and all(p.endswith("/result.json") for p in saved)  # saved runs are recognised and skipped
    data, votes = (Path(os.environ.get(name, "")) for name in ("FER2013_PATH", "FERPLUS_PATH"))
    data_bytes = data.stat().st_size if data.is_file() else FER2013_ZIP_BYTES
    data_bytes += votes.stat().st_size if votes.is_file() else FERPLUS_VOTES_BYTES
    assert slim_size(REPO) + data_bytes <= bundle.TRAVEL_LIMIT_BYTES


def test_pack_keeps_weights_only_where_asked_and_unpack_restores_the_runs(tmp_path):
    kept, dropped = _run(tmp_path / "a", "model_b", 1000), _run(tmp_path / "a", "model_b_no_bn", 1000)
    parts = pack_runs({kept: True, dropped: False}, tmp_path / "out")
    assert [p.name for p in parts] == ["runs-00.tar.gz"]
    added, present, replaced = unpack_runs(parts, tmp_path / "b")
    assert sorted(p.name for p in added) == sorted([kept.name, dropped.name]) and present == replaced == []
    assert (tmp_path / "b" / "results" / kept.name / "weights.safetensors").exists()
    assert not (tmp_path / "b" / "results" / dropped.name / "weights.safetensors").exists()
    back = RunResult.load(tmp_path / "b" / "results" / kept.name)
    np.testing.assert_array_equal(back.logits["PrivateTest"], RunResult.load(kept).logits["PrivateTest"])
    again, present, replaced = unpack_runs(parts, tmp_path / "b")
    assert again == replaced == [] and sorted(present) == sorted([kept.name, dropped.name])  # never overwritten


def test_a_finished_run_takes_the_place_of_the_same_run_left_unfinished(tmp_path, capsys):
    """A seed interrupted on one machine (checkpoints, no result) and finished on another: the finished one wins."""
    finished = _run(tmp_path / "a", "model_b", 1000)
    part = pack_runs({finished: True}, tmp_path / "out")[0]
    unfinished = tmp_path / "b" / "results" / finished.name
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "checkpoints" / "resume.ckpt").write_bytes(b"epoch 7")
    assert main(["unpack", str(part), "--run-dir", str(tmp_path / "b")]) == 0
    assert "in place of the same run left unfinished there" in capsys.readouterr().out
    assert not (unfinished / "checkpoints").exists()
    back = RunResult.load(unfinished)
    np.testing.assert_array_equal(back.logits["PrivateTest"], RunResult.load(finished).logits["PrivateTest"])
    again = unpack_runs([part], tmp_path / "b")
    assert again.added == again.replaced == [] and again.present == [finished.name]


def test_pack_splits_into_parts_under_the_limit_and_removes_stale_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "PART_LIMIT_BYTES", 60_000)
    runs = {_run(tmp_path / "a", f"m{i}", 25_000): True for i in range(4)}
    parts = pack_runs(runs, tmp_path / "out")
    assert len(parts) == 2 and all(p.stat().st_size < 60_000 + 64 * 1024 for p in parts)
    assert len(pack_runs(dict(list(runs.items())[:1]), tmp_path / "out")) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["runs-00.tar.gz"]
    monkeypatch.setattr(bundle, "MAX_PARTS", 1)
    with pytest.raises(BundleError, match="at most 1"):
        pack_runs(runs, tmp_path / "out")


def test_unpack_refuses_a_broken_archive_and_changes_nothing(tmp_path):
    good = pack_runs({_run(tmp_path / "a", "model_b"): True}, tmp_path / "out")[0]
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(BundleError, match="broken.tar.gz"):
        unpack_runs([good, broken], tmp_path / "b")
    assert not (tmp_path / "b" / "results").exists() or not any((tmp_path / "b" / "results").iterdir())


def test_unpack_refuses_a_folder_without_a_result_and_paths_outside_the_folder(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("model_b-x/history.csv")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"a,b"))
    with pytest.raises(BundleError, match="no result.json"):
        unpack_runs([archive], tmp_path / "b")
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BundleError):
        unpack_runs([archive], tmp_path / "b")
    assert not (tmp_path / "escaped.txt").exists()


def test_the_unpack_command(tmp_path, capsys):
    part = pack_runs({_run(tmp_path / "a", "model_b"): True}, tmp_path / "out")[0]
    assert main(["unpack", str(part), "--run-dir", str(tmp_path / "b")]) == 0
    assert "added" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "missing.tar.gz"), "--run-dir", str(tmp_path / "b")]) == 2
