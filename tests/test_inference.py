"""Running a CNN on faces: the models' input, batch-independent logits, test-time augmentation, probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from fer_helpers.analysis import explain
from fer_helpers.models.registry import build_model
from fer_helpers.train.inference import images_to_tensor, predict_logits, predict_probs


@pytest.fixture(scope="module")
def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("model_b", widths=(8, 16, 32, 32), hidden=32)


@pytest.mark.parametrize("kind", ["array", "strided array", "tensor"])
def test_images_become_new_unit_range_tensors_with_one_channel(synth, kind):
    images = synth.images[:10]
    before = images.copy()
    given = {"array": images, "strided array": images[:, :, ::-1], "tensor": torch.from_numpy(images)}[kind]
    x = images_to_tensor(given)
    assert x.shape == (10, 1, 48, 48) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)  # one channel: both layouts
    expected = np.asarray(given).astype(np.float32) / 255.0
    np.testing.assert_array_equal(x[:, 0].numpy(), expected)  # bit for bit what numpy computes
    x += 1  # a new tensor: the faces are untouched
    np.testing.assert_array_equal(images, before)


def test_images_to_tensor_puts_the_faces_on_the_device(synth):
    assert images_to_tensor(synth.images[:2], "cpu").device == torch.device("cpu")
    assert images_to_tensor(torch.from_numpy(synth.images[:2])).device == torch.device("cpu")


@pytest.mark.parametrize("bad", [np.zeros((2, 48, 48), dtype=np.float32), np.zeros((2, 1, 48, 48), dtype=np.uint8)])
def test_images_to_tensor_rejects_anything_but_uint8_faces(bad):
    with pytest.raises(ValueError, match="uint8"):
        images_to_tensor(bad)


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


def test_no_faces_give_no_logits(small_net):
    assert predict_logits(small_net, np.zeros((0, 48, 48), dtype=np.uint8)).shape == (0, 7)


def test_probs_are_the_softmax_of_the_logits(synth, small_net):
    images = synth.images[:30]
    probs = predict_probs(small_net, images, tta="flip", bf16=False)
    assert probs.shape == (30, 7) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_array_equal(
        probs, softmax(predict_logits(small_net, images, tta="flip", bf16=False).astype(np.float64), axis=1)
    )


def test_grad_cam_predicts_through_the_same_path(synth, small_net):
    images = synth.images[:30]
    np.testing.assert_array_equal(
        explain.predict_probs(small_net, images), predict_probs(small_net, images, bf16=False)
    )
