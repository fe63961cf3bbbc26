"""CNN training: batched augmentation, on-device batches, cached fits, and resuming an interrupted run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.paths import RESUME_ENV
from fer_helpers.data.results import epochs_done
from fer_helpers.train import training
from fer_helpers.train.augment import augment_batch, random_crop, random_erasing, random_hflip, random_rotation
from fer_helpers.train.inference import images_to_tensor, predict_logits
from fer_helpers.train.training import DeviceBatches, fit_cnn
from fer_helpers.train.weights import load_weights

# A small Model B learns the synthetic faces in a few CPU epochs; the paper's baseline needs many more.
TINY = CNNConfig(
    model="model_b",
    model_kwargs={"widths": (8, 16, 32, 32), "hidden": 32},
    lr=1e-3,
    max_epochs=4,
    batch_size=32,
    patience=None,
    seed=0,
)

AUGMENTATIONS = {
    "flip": dict(hflip=True, rotate_deg=0.0),
    "rotate": dict(hflip=False, rotate_deg=15.0),
    "crop": dict(hflip=False, rotate_deg=0.0, crop_pad=4),
    "erase": dict(hflip=False, rotate_deg=0.0, erasing_p=1.0),
    "all": dict(hflip=True, rotate_deg=10.0, crop_pad=4, erasing_p=0.5),
}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def faces(synth) -> torch.Tensor:
    """256 synthetic faces as the models see them: (N,1,48,48) float in [0,1]."""
    return images_to_tensor(synth.images[:256])


# ---------------------------------------------------------------- augmentation


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augment_keeps_shape_and_range_and_leaves_input_alone(faces, name):
    before = faces.clone()
    out = augment_batch(faces, CNNConfig(**AUGMENTATIONS[name]), _gen())
    assert out.shape == faces.shape and out.dtype == faces.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(faces, before)
    assert not torch.equal(out, faces)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augment_is_fixed_by_the_generator_seed(faces, name):
    config = CNNConfig(**AUGMENTATIONS[name])
    first = augment_batch(faces, config, _gen(1))
    assert torch.equal(first, augment_batch(faces, config, _gen(1)))
    assert not torch.equal(first, augment_batch(faces, config, _gen(2)))


def test_augment_with_everything_off_is_the_identity(faces):
    config = CNNConfig(hflip=False, rotate_deg=0.0, crop_pad=0, erasing_p=0.0)
    assert torch.equal(augment_batch(faces, config, _gen()), faces)


def test_hflip_mirrors_about_half_and_nothing_else():
    x = torch.rand(2000, 1, 48, 48, generator=_gen(5))
    out = random_hflip(x, _gen())
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all())
    assert 0.45 < mirrored.float().mean() < 0.55  # binomial sd 0.011


def test_crop_is_an_exact_shift_within_the_padding(faces):
    pad = 3
    out = random_crop(faces, pad, _gen())
    padded = F.pad(faces, (pad,) * 4, mode="replicate")
    offsets = set()
    for i in range(len(faces)):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 48, dx : dx + 48])
        ]
        assert found, f"face {i} is not a shifted copy"
        offsets.add(found[0])
    assert len(offsets) > 20  # of the 49 possible offsets


def test_rotation_by_zero_degrees_is_the_identity_and_angles_differ_per_face(faces):
    torch.testing.assert_close(random_rotation(faces, 0.0, _gen()), faces, atol=1e-5, rtol=0)
    same_face = faces[:1].repeat(32, 1, 1, 1)
    rotated = random_rotation(same_face, 20.0, _gen())
    assert len({tuple(r.flatten()[:200].tolist()) for r in rotated}) == 32
    # The centre is the fixed point: the middle 4x4 pixels barely change for a 20-degree turn.
    centre = slice(22, 26)
    assert (rotated[..., centre, centre] - same_face[..., centre, centre]).abs().mean() < 0.05


def test_erasing_changes_one_rectangle_in_the_chosen_faces(faces):
    assert torch.equal(random_erasing(faces, 0.0, _gen()), faces)
    out = random_erasing(faces, 1.0, _gen())
    for before, after in zip(faces, out):
        changed = (before != after)[0]
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        assert len(rows) and len(cols)
        box_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box_area <= 0.2 * 48 * 48 + 48  # the largest rectangle, plus rounding
    some = random_erasing(faces, 0.5, _gen())
    share = (some != faces).flatten(1).any(1).float().mean()
    assert 0.35 < share < 0.65


# ---------------------------------------------------------------- batches on the device


def test_shuffled_batches_visit_each_face_at_most_once_in_a_new_order_each_epoch():
    labels = torch.arange(103)
    images = torch.zeros(103, 48, 48, dtype=torch.uint8)
    batches = DeviceBatches(images, labels, batch_size=10, generator=_gen())
    assert len(batches) == 10
    epochs = [torch.cat([y for _, y in batches]) for _ in range(2)]
    for seen in epochs:
        assert len(seen) == 100 and len(seen.unique()) == 100
    assert not torch.equal(epochs[0], epochs[1])


def test_ranks_share_out_one_permutation_without_overlap():
    labels = torch.arange(101)
    images = torch.zeros(101, 48, 48, dtype=torch.uint8)
    shards = [torch.cat([y for _, y in DeviceBatches(images, labels, 8, _gen(3), rank, 2)]) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 48
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_evaluation_batches_cover_every_face_in_order():
    labels = torch.arange(23)
    batches = DeviceBatches(torch.zeros(23, 48, 48, dtype=torch.uint8), labels, batch_size=10)
    assert len(batches) == 3
    assert torch.equal(torch.cat([y for _, y in batches]), labels)


# ---------------------------------------------------------------- training with a cache


def _majority_rate(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class."""
    return float(np.bincount(labels).max() / len(labels))


@pytest.fixture(scope="module")
def synth_fit(synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return root, fit_cnn(synth, TINY, root)


@pytest.mark.trains
def test_training_on_synthetic_faces_beats_the_majority_class(synth_fit):
    _, result = synth_fit
    assert not result.from_cache
    for split in ("PublicTest", "PrivateTest"):
        assert result.metrics[split]["accuracy_ci95"][0] > _majority_rate(result.labels[split])
    history = result.history
    assert list(history.columns) == list(training.HISTORY_COLUMNS)
    assert history["epoch"].tolist() == [1, 2, 3, 4] and history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    best = int(history["val_acc"].idxmax()) + 1
    assert result.extra["best_epoch"] == best and result.extra["stopped_epoch"] == 4
    np.testing.assert_allclose(result.metrics["PublicTest"]["accuracy"], history["val_acc"].max(), atol=1e-6)
    assert result.images_per_second > 0 and result.device.startswith("cpu")
    assert result.extra["channels_last"] is True  # "auto": channels-last on the CPU too
    assert not list(result.run_dir.rglob("*.ckpt"))


@pytest.mark.trains
def test_cached_result_is_loaded_without_training(synth, synth_fit, monkeypatch):
    root, first = synth_fit

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although a cached result exists")

    monkeypatch.setattr(training, "_train", no_training)
    again = fit_cnn(synth, TINY, root)
    assert again.from_cache and again.key == first.key
    for split in ("PublicTest", "PrivateTest"):
        np.testing.assert_array_equal(again.logits[split], first.logits[split])
    assert again.extra["best_epoch"] == first.extra["best_epoch"]


@pytest.mark.trains
def test_saved_weights_reproduce_the_stored_logits(synth, synth_fit):
    _, result = synth_fit
    model = load_weights(result.weights_path)
    images, _ = synth.split("PrivateTest")
    # In bf16 (a CPU with native bf16) the same weights give logits equal to bf16's resolution, not float32's.
    atol = 1e-5 if result.extra["precision"] == "32-true" else 2e-2
    np.testing.assert_allclose(predict_logits(model, images), result.logits["PrivateTest"], atol=atol)


@pytest.mark.trains
def test_changed_config_or_data_trains_anew_and_same_seed_gives_same_run(synth, synth_fit, tmp_path):
    root, first = synth_fit
    small = synth.subsample(40, 10)
    one_epoch = replace(TINY, max_epochs=1)
    changed = fit_cnn(small, one_epoch, root)
    assert not changed.from_cache and changed.key != first.key
    repeat = fit_cnn(small, one_epoch, tmp_path, fresh=True)
    assert repeat.key == changed.key
    for split in ("PublicTest", "PrivateTest"):
        np.testing.assert_array_equal(repeat.logits[split], changed.logits[split])
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1"]
    np.testing.assert_array_equal(repeat.history[columns].to_numpy(), changed.history[columns].to_numpy())

    from fer_helpers.data.synthetic import make_synthetic_fer

    other = make_synthetic_fer(n_train=280, n_public=70, n_private=70, seed=1)
    assert other.sha256 != small.sha256
    assert fit_cnn(other, one_epoch, root).key != changed.key


def test_training_on_real_faces_beats_the_majority_class(real_data, tmp_path):
    data = real_data.subsample(100, 30, seed=0)  # 700 training faces; 210 balanced faces per test split
    config = replace(TINY, model_kwargs={"widths": (16, 32, 64, 64), "hidden": 64}, max_epochs=5)
    result = fit_cnn(data, config, tmp_path)
    for split in ("PublicTest", "PrivateTest"):
        assert result.metrics[split]["accuracy_ci95"][0] > _majority_rate(result.labels[split])


class _StopAfter(training.Callback):
    """Fails at the end of one epoch, before its checkpoint, as a killed process would stop a long run."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 == self.epoch:
            raise RuntimeError("stopped")


@pytest.mark.trains
def test_an_interrupted_run_resumes_where_it_stopped(synth, synth_fit, tmp_path, monkeypatch):
    _, whole = synth_fit
    small = synth  # the same data and config as the fixture's uninterrupted run
    trainer_init = training.L.Trainer.__init__

    def with_stop(self, *args, callbacks=(), **kwargs):
        trainer_init(self, *args, callbacks=[*callbacks, _StopAfter(3)], **kwargs)

    monkeypatch.setattr(training.L.Trainer, "__init__", with_stop)
    with pytest.raises(RuntimeError, match="stopped"):
        fit_cnn(small, TINY, tmp_path)
    monkeypatch.undo()
    checkpoints = next(tmp_path.rglob("checkpoints"))
    assert (checkpoints / training.RESUME_FILE).exists()
    assert epochs_done(checkpoints.parent, checkpoints.parent.name.rsplit("-", 1)[1]) == 2  # what the plan shows
    assert epochs_done(checkpoints.parent, "another-key") == 0

    resumed = fit_cnn(small, TINY, tmp_path)
    assert resumed.extra["resumed_after_epochs"] == [2] and resumed.extra["stopped_epoch"] == 4
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.history["train_loss"][:2], whole.history["train_loss"][:2], rtol=1e-5)
    assert not list(resumed.run_dir.rglob("*.ckpt"))
    # `fresh` starts over instead of resuming
    monkeypatch.setattr(training.L.Trainer, "__init__", with_stop)
    with pytest.raises(RuntimeError, match="stopped"):
        fit_cnn(small, TINY, tmp_path, fresh=True)
    monkeypatch.undo()
    assert training._resume_checkpoint(resumed.run_dir, resumed.key, fresh=True) is None
    # a training host discarded after the run keeps no per-epoch state
    monkeypatch.setenv(RESUME_ENV, "0")
    monkeypatch.setattr(training.L.Trainer, "__init__", with_stop)
    with pytest.raises(RuntimeError, match="stopped"):
        fit_cnn(small, TINY, tmp_path, fresh=True)
    assert not (resumed.run_dir / "checkpoints" / training.RESUME_FILE).exists()


@pytest.mark.trains
def test_a_training_cell_shows_one_line_per_epoch_without_lightnings_banners(synth, tmp_path, capfd, recwarn):
    """What a notebook's training cell prints: a line per epoch and nothing else (no progress-bar redraws, no "GPU
    available" banner, no tips to install services, no deprecation warning from Lightning's own code); the levels of
    Lightning's loggers are restored afterwards. A report run's terminal gets the same lines and moments between."""
    import logging

    from fer_helpers.core import paths, progress

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    before = logger.level
    log = tmp_path / "progress.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.PROGRESS_ENV, str(log))
        fit_cnn(synth.subsample(60, 10), replace(TINY, max_epochs=2), tmp_path)
    out, err = capfd.readouterr()
    for banner in ("GPU available", "TPU available", "Tip:", "LeafSpec", "Seed set to"):
        assert banner not in out + err
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
    assert logger.level == before
    lines = out.splitlines()
    assert len(lines) == 2 and "\r" not in out + err and err == ""
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"model_b epoch {epoch}/2: loss ") and ", PublicTest accuracy " in line
    assert " left" in lines[0] and " left" not in lines[1]  # time left until the last epoch
    reported = [line.split("\t") for line in log.read_text().splitlines()]
    assert [text for kind, text in reported if kind == progress.DONE] == lines
    assert any(kind == progress.LIVE and "% of the epoch" in text for kind, text in reported)
