"""Running a CNN on faces: batch-independent logits and test-time augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_helpers.inference import predict_logits
from fer_helpers.models import build_model


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

