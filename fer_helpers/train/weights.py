"""Weights files: a trained CNN's state as safetensors under 5 MB, in the most precise form that fits.

float32 where it fits (the baseline), else float16 (Model B), else int8 with one float32 scale per output channel
for the conv and linear weights (ResNet-FER). A file written with its configuration names its architecture, so
`load_weights(path)` rebuilds the model alone. No Lightning: `fer-study predict` loads weights with this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fer_helpers.core.config import CNNConfig
from fer_helpers.models.registry import build_model

WEIGHTS_LIMIT_BYTES = 5_000_000  # weights files stay under this size, so that run folders and models/ are committable
INT8_SCALE_SUFFIX = ".int8_scale"  # stored beside an int8 weight: one float32 scale per output channel


def _state_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())


def encode_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors to store for a state dict, and their precision: the most precise that fits WEIGHTS_LIMIT_BYTES.

    float32 when it fits; else float16; else the conv and linear weights as int8 with one float32 scale per output
    channel (symmetric, round to nearest) and everything else in float16. Integer buffers are kept as they are.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if _state_bytes(state) <= WEIGHTS_LIMIT_BYTES:
        return state, "float32"
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if _state_bytes(half) <= WEIGHTS_LIMIT_BYTES:
        return half, "float16"
    packed: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if value.is_floating_point() and value.ndim >= 2:
            flat = value.float().reshape(value.shape[0], -1)
            scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
            packed[name] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(value.shape)
            packed[name + INT8_SCALE_SUFFIX] = scale
        else:
            packed[name] = value.half() if value.is_floating_point() else value
    return packed, "int8"


def decode_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float state dict that stored tensors stand for (int8 weights times their per-channel scales)."""
    state = {}
    for name, value in tensors.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = tensors.get(name + INT8_SCALE_SUFFIX)
        if scale is not None:
            value = value.float() * scale.reshape(-1, *([1] * (value.ndim - 1)))
        state[name] = value
    return state


def round_to_storage(model: nn.Module) -> str:
    """Give the model the weights its file will hold (see `encode_state`), so that what is measured is what ships."""
    own = model.state_dict()
    tensors, dtype = encode_state(own)
    if dtype != "float32":
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in decode_state(tensors).items()})
    return dtype


def save_weights(model: nn.Module, path: str | Path, config: CNNConfig | None = None) -> Path:
    """Write the model's weights as safetensors, in the most precise form under 5 MB (see `encode_state`).

    With its config, the file names the architecture, so `load_weights(path)` can rebuild the model alone.
    """
    tensors, dtype = encode_state(model.state_dict())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"dtype": dtype}
    if config is not None:
        metadata |= {
            "model": config.model,
            "model_kwargs": json.dumps(config.to_dict()["model_kwargs"]),
            "config": json.dumps(config.to_dict()),
        }
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_weights(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Load saved weights into `model` (or into a new model built from the file's metadata), in eval mode."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        state = decode_state({k: f.get_tensor(k) for k in f.keys()})
    if model is None:
        if "model" not in metadata:
            raise ValueError(f"{path} does not name its model; pass the model to load the weights into")
        model = build_model(metadata["model"], **json.loads(metadata.get("model_kwargs", "{}")))
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()})
    return model.eval()
