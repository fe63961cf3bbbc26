"""Weights files: exact float32 round trips, float16 and int8 where the size limit demands, one scale per channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from fer_helpers.core.config import CNNConfig
from fer_helpers.models.registry import build_model
from fer_helpers.train.inference import predict_logits
from fer_helpers.train.weights import (
    INT8_SCALE_SUFFIX,
    WEIGHTS_LIMIT_BYTES,
    decode_state,
    encode_state,
    load_weights,
    round_to_storage,
    save_weights,
)

SMALL = CNNConfig(model="model_b", model_kwargs={"widths": (8, 16, 32, 32), "hidden": 32})


@pytest.fixture(scope="module")
def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(SMALL.model, **SMALL.kwargs)


def test_weights_round_trip_exactly_in_float32(tmp_path, synth, small_net):
    path = save_weights(small_net, tmp_path / "w.safetensors", SMALL)
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


def test_a_file_without_its_model_needs_one_to_load_into(tmp_path, small_net):
    path = save_weights(small_net, tmp_path / "w.safetensors")  # no config: the file does not name its model
    with pytest.raises(ValueError, match="does not name its model"):
        load_weights(path)
    torch.manual_seed(1)
    into = load_weights(path, build_model(SMALL.model, **SMALL.kwargs))
    assert not into.training
    for mine, theirs in zip(into.state_dict().values(), small_net.state_dict().values()):
        torch.testing.assert_close(mine, theirs)
