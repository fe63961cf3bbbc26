"""The CNN architectures: shapes, parameter counts against the paper, ablation switches, gradients, Grad-CAM layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from fer_helpers.data.fer2013 import NUM_CLASSES
from fer_helpers.models import networks
from fer_helpers.models.networks import count_flops, count_params
from fer_helpers.models.registry import build_model, cnn_names

MODEL_NAMES = cnn_names()

# Small enough to run every check on a CPU in seconds, one per model plus the ablation variants.
VARIANTS = [
    ("baseline_cnn", {}),
    ("baseline_cnn", {"extra_conv": True}),
    ("model_b", {}),
    ("model_b", {"batchnorm": False}),
    ("model_b", {"activation": "relu"}),
    ("model_b", {"pooling": "flatten"}),
    ("model_b", {"dropout": 0.0}),
    ("resnet_fer", {}),
    ("resnet_fer", {"width": 16, "blocks": (2, 1, 1, 1)}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw in VARIANTS]


def _faces(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def _conv(c_in: int, c_out: int, bias: bool = True) -> int:
    return c_in * c_out * 9 + (c_out if bias else 0)


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_model_names_all_build():
    assert set(MODEL_NAMES) >= {"baseline_cnn", "model_b", "resnet_fer"}
    for name in MODEL_NAMES:
        assert isinstance(build_model(name), nn.Module)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_logits_shape(name, kwargs, batch):
    model = build_model(name, **kwargs).eval()
    with torch.no_grad():
        logits = model(_faces(batch))
    assert logits.shape == (batch, NUM_CLASSES)
    assert torch.isfinite(logits).all()


def test_baseline_params_match_table1_by_hand():
    # Table 1: conv 32, 64, 128 (3x3, bias), flatten 6*6*128 = 4608, dense 128, dense 7.
    table1 = _conv(1, 32) + _conv(32, 64) + _conv(64, 128) + _dense(4608, 128) + _dense(128, 7)
    assert table1 == 683_527  # the paper's Table 3 says "±1.0 M"
    assert count_params(build_model("baseline_cnn")) == table1
    assert count_params(build_model("baseline_cnn", extra_conv=True)) == table1 + _conv(128, 128)


def test_baseline_flatten_has_4608_features():
    model = build_model("baseline_cnn", extra_conv=True)
    first_dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert first_dense.in_features == 4608


def test_model_b_params_near_paper():
    n = count_params(build_model("model_b"))
    assert 2_000_000 <= n <= 3_000_000  # paper: "±2.5 M"
    widths = (48, 96, 192, 352)
    convs = sum(_conv(c_in, c_out, bias=False) + 2 * c_out for c_in, c_out in zip((1, 48, 96, 192), widths))
    convs += sum(_conv(w, w, bias=False) + 2 * w for w in widths)
    assert n == convs + _dense(352, 256) + _dense(256, 7) == 2_461_559


@pytest.mark.parametrize("name", ["model_b", "resnet_fer"])
def test_full_size_weights_fit_the_size_limit(name, tmp_path):
    from fer_helpers.core.config import CNNConfig
    from fer_helpers.train.weights import WEIGHTS_LIMIT_BYTES, save_weights

    path = save_weights(build_model(name), tmp_path / "w.safetensors", CNNConfig(model=name))
    assert path.stat().st_size <= WEIGHTS_LIMIT_BYTES


def test_resnet_fer_under_five_million_and_width_scales():
    n = count_params(build_model("resnet_fer"))
    assert n <= 5_000_000
    n_half = count_params(build_model("resnet_fer", width=32))
    assert 3.5 < n / n_half < 4.1  # parameters grow with width squared


def _types(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def test_model_b_default_has_every_ingredient():
    types = _types(build_model("model_b"))
    assert {nn.BatchNorm2d, nn.LeakyReLU, nn.AdaptiveAvgPool2d, nn.Dropout} <= types
    assert nn.ReLU not in types


def test_model_b_without_batchnorm():
    model = build_model("model_b", batchnorm=False)
    assert nn.BatchNorm2d not in _types(model)
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_model_b_relu_instead_of_leaky():
    types = _types(build_model("model_b", activation="relu"))
    assert nn.LeakyReLU not in types and nn.ReLU in types


def test_model_b_flatten_instead_of_gap():
    model = build_model("model_b", pooling="flatten")
    assert nn.AdaptiveAvgPool2d not in _types(model)
    first_dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert first_dense.in_features == 352 * 3 * 3
    assert count_params(model) > count_params(build_model("model_b"))


def test_model_b_dropout_switch():
    assert nn.Dropout not in _types(build_model("model_b", dropout=0.0))
    rates = [m.p for m in build_model("model_b", dropout=0.3).modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.3]


@pytest.mark.parametrize(
    "name,kwargs,error",
    [
        ("vgg", {}, ValueError),
        ("model_b", {"activation": "tanh"}, ValueError),
        ("model_b", {"pooling": "max"}, ValueError),
        ("model_b", {"dropout": 1.0}, ValueError),
        ("resnet_fer", {"depth": 18}, TypeError),
    ],
)
def test_bad_names_and_switches_are_errors(name, kwargs, error):
    with pytest.raises(error):
        build_model(name, **kwargs)


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_gradients_reach_every_parameter_and_the_first_conv(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, **kwargs).train()
    loss = nn.functional.cross_entropy(model(_faces(4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_eval_mode_is_deterministic_and_input_untouched(name, kwargs):
    model = build_model(name, **kwargs)
    x = _faces(3)
    before = x.clone()
    model.train()(x)  # training mode too: in-place activations must not write into the faces
    assert torch.equal(x, before)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert torch.equal(x, before)


def test_dropout_is_active_in_training_mode():
    torch.manual_seed(0)
    model = build_model("baseline_cnn").train()
    x = _faces(2)
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_target_layer_gives_a_4d_feature_map(name, kwargs):
    model = build_model(name, **kwargs).eval()
    layer = model.target_layer
    assert any(layer is m for m in model.modules())
    captured = []
    with torch.no_grad():
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            model(_faces(2))
        finally:
            handle.remove()
    assert len(captured) == 1 and captured[0].ndim == 4 and captured[0].shape[0] == 2
    if name == "model_b":
        assert isinstance(layer, nn.Conv2d)
    if name == "baseline_cnn":  # the rectified map of the last convolution
        modules = list(model.features)
        assert isinstance(layer, nn.ReLU) and isinstance(modules[modules.index(layer) - 1], nn.Conv2d)
        assert (captured[0] >= 0).all()
    # the property must not register the layer twice (duplicate weights would break safetensors)
    assert not any(key.startswith("target_layer") for key in model.state_dict())


def test_count_flops_matches_baseline_by_hand():
    # 2 FLOPs per multiply-add: convs at 48, 24, 12 pixels, then the two dense layers.
    expected = 2 * (48 * 48 * 32 * 9 + 24 * 24 * 64 * 32 * 9 + 12 * 12 * 128 * 64 * 9 + 4608 * 128 + 128 * 7)
    model = build_model("baseline_cnn").train()
    assert count_flops(model) == expected
    assert model.training  # counting does not leave the model in eval mode


def test_count_flops_orders_the_models():
    flops = {name: count_flops(build_model(name)) for name in MODEL_NAMES}
    assert flops["baseline_cnn"] < flops["model_b"] < flops["resnet_fer"]


def test_channels_last_gives_the_same_logits():
    model = build_model("resnet_fer", width=16).eval()
    x = _faces(2)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


SMALL = {
    "baseline_cnn": {},
    "model_b": {"widths": (8, 16, 32, 64), "hidden": 32},
    "model_b_distilled": {},  # small already: 16-32-64-128
    "resnet_fer": {"width": 16},
}


@pytest.mark.trains
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_few_steps_lower_the_loss_on_synthetic_faces(synth, name):
    images, labels = synth.split("Training")
    x = torch.from_numpy(images[:32]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels[:32])
    torch.manual_seed(0)
    model = build_model(name, **SMALL[name]).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_now() -> float:
        torch.manual_seed(1)  # the same dropout masks before and after
        with torch.no_grad():
            return nn.functional.cross_entropy(model(x), y).item()

    before = loss_now()
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_now() < 0.8 * before


def test_the_networks_import_only_the_data_module():
    """The networks sit just above the faces' module: results, training, speed and the rest import them, never the
    other way."""
    tree = ast.parse(Path(networks.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("fer_helpers")
    }
    assert imported <= {"fer_helpers.data.fer2013"}, imported
