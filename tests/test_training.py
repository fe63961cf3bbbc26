"""CNN training: batched augmentation, on-device batches, configuration, inference, weights and cached fits."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from fer_helpers import training
from fer_helpers.models import build_model
from fer_helpers.training import (
    INT8_SCALE_SUFFIX,
    WEIGHTS_LIMIT_BYTES,
    CNNConfig,
    DeviceBatches,
    augment_batch,
    decode_state,
    encode_state,
    fit_cnn,
    load_weights,
    predict_logits,
    random_crop,
    random_erasing,
    random_hflip,
    random_rotation,
    round_to_storage,
    save_weights,
)

# A small Model B learns the synthetic faces in a few CPU epochs; the paper's baseline needs many more.
TINY = CNNConfig(
    model="model_b", model_kwargs={"widths": (8, 16, 32, 32), "hidden": 32}, lr=1e-3,
    max_epochs=4, batch_size=32, patience=None, seed=0,
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
    return torch.from_numpy(synth.images[:256]).unsqueeze(1).float() / 255


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
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(out[i], padded[i, :, dy : dy + 48, dx : dx + 48])]
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


# ---------------------------------------------------------------- configuration


def test_config_is_hashable_and_round_trips_through_json():
    config = CNNConfig(model="model_b", model_kwargs={"widths": [8, 16], "dropout": 0.2})
    assert config.model_kwargs == (("dropout", 0.2), ("widths", (8, 16)))
    assert hash(config) == hash(CNNConfig(model="model_b", model_kwargs={"dropout": 0.2, "widths": (8, 16)}))
    settings = json.loads(json.dumps(config.to_dict()))
    assert settings["model_kwargs"] == {"dropout": 0.2, "widths": [8, 16]}
    assert CNNConfig.from_dict(settings) == config


@pytest.mark.parametrize(
    "bad",
    [dict(optimizer="rmsprop"), dict(scheduler="step"), dict(tta="ten_crop"), dict(patience=0), dict(lr=0.0),
     dict(erasing_p=1.5), dict(channels_last="yes"), dict(crop_pad=-1)],
)
def test_config_rejects_unknown_or_impossible_settings(bad):
    with pytest.raises(ValueError):
        CNNConfig(**bad)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown"):
        CNNConfig.from_dict({**CNNConfig().to_dict(), "epochs": 3})


def test_auto_precision_is_float32_on_cpu():
    assert training.resolve_precision(CNNConfig(accelerator="cpu")) == "32-true"
    assert training.resolve_precision(CNNConfig(precision="bf16-mixed")) == "bf16-mixed"


# ---------------------------------------------------------------- inference and weights


@pytest.fixture(scope="module")
def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("model_b", widths=(8, 16, 32, 32), hidden=32)


def test_predict_logits_is_batch_independent_and_restores_training_mode(synth, small_net):
    images = synth.images[:50]
    small_net.train()
    logits = predict_logits(small_net, images, batch_size=512)
    assert logits.shape == (50, 7) and logits.dtype == np.float32
    assert small_net.training
    np.testing.assert_allclose(predict_logits(small_net, images, batch_size=7), logits, atol=1e-5)


def test_flip_tta_averages_the_face_and_its_mirror(synth, small_net):
    images = synth.images[:20]
    plain = predict_logits(small_net, images)
    mirrored = predict_logits(small_net, images[:, :, ::-1])  # a strided view is accepted
    np.testing.assert_allclose(predict_logits(small_net, images, tta="flip"), (plain + mirrored) / 2, atol=1e-5)
    assert predict_logits(small_net, images, tta="flip_crop").shape == (20, 7)


def test_predict_logits_rejects_scaled_images(small_net):
    with pytest.raises(ValueError, match="uint8"):
        predict_logits(small_net, np.zeros((2, 48, 48), dtype=np.float32))


def test_weights_round_trip_exactly_in_float32(tmp_path, synth, small_net):
    path = save_weights(small_net, tmp_path / "w.safetensors", TINY)
    fresh = load_weights(path)  # built from the file's own metadata
    images = synth.images[:30]
    np.testing.assert_array_equal(predict_logits(fresh, images), predict_logits(small_net, images))


@pytest.mark.parametrize("name, dtype", [("baseline_cnn", "float32"), ("model_b", "float16"), ("resnet_fer", "int8")])
def test_weights_are_stored_as_precisely_as_the_size_limit_allows(tmp_path, synth, name, dtype):
    torch.manual_seed(0)
    net = build_model(name).eval()
    path = save_weights(net, tmp_path / "w.safetensors", CNNConfig(model=name))
    assert path.stat().st_size <= WEIGHTS_LIMIT_BYTES
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["dtype"] == dtype
    loaded = load_weights(path)
    assert next(loaded.parameters()).dtype == torch.float32
    before, after = predict_logits(net, synth.images[:30]), predict_logits(loaded, synth.images[:30])
    np.testing.assert_allclose(after, before, atol=0.05 * np.abs(before).max())
    # rounded in memory as the file stores it, the model predicts exactly what the loaded file predicts
    assert round_to_storage(net) == dtype
    np.testing.assert_array_equal(predict_logits(net, synth.images[:30]), after)


def test_int8_weights_keep_one_scale_per_output_channel():
    weight = torch.tensor([[0.5, -1.0], [0.02, 0.01]])
    tensors, dtype = encode_state({"w": weight.repeat(1, 3_000_000)})  # 24 MB in float32, 12 MB in float16
    assert dtype == "int8" and tensors["w"].dtype == torch.int8
    np.testing.assert_allclose(tensors["w" + INT8_SCALE_SUFFIX].numpy(), [1.0 / 127, 0.02 / 127], rtol=1e-6)
    restored = decode_state(tensors)["w"][:, :2]
    half_step = np.array([[1.0 / 254], [0.02 / 254]])  # rounding error: half a step of each row's own scale
    assert (np.abs(restored.numpy() - weight.numpy()) <= half_step + 1e-7).all()  # the small row keeps its detail


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
    np.testing.assert_allclose(predict_logits(model, images), result.logits["PrivateTest"], atol=1e-5)


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

    from fer_helpers.synthetic import make_synthetic_fer

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
