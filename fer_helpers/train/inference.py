"""Running a CNN on faces: the one way faces become the models' input, and logits or class probabilities out.

Training, evaluation, Grad-CAM and `fer-study predict` all turn uint8 faces (N,48,48) into the models' input with
`images_to_tensor`, and run a model on faces with `predict_logits` / `predict_probs`. No Lightning here, so that
predicting does not import the training stack.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax
from torch import nn

from fer_helpers.core.config import TTA_MODES
from fer_helpers.core.hardware import cpu_bf16_in_use
from fer_helpers.data.fer2013 import NUM_CLASSES

EVAL_BATCH_SIZE = 512
TTA_SHIFT = 4  # pixels; the shifted copies of "flip_crop" test-time augmentation


def _uint8_faces(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Faces (N,48,48) uint8 as a tensor (an array's memory is shared, a strided view made contiguous first)."""
    images = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 faces of shape (N,48,48), got {tuple(images.shape)} {images.dtype}")
    return images


def images_to_tensor(images: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """Faces (N,48,48) uint8 (an array, or a tensor anywhere) as the models' input: a new (N,1,48,48) float32
    tensor in [0,1] on `device` (default: where a tensor already is, else the CPU).

    The bytes travel to the device before they become floats (a quarter of the traffic). One channel makes the
    tensor channels-last as well as contiguous, so it suits channels-last weights as it is.
    """
    images = _uint8_faces(images)
    if device is not None:
        images = images.to(device)
    return images.unsqueeze(1).float().div_(255)


def _shift(x: torch.Tensor, dy: int, dx: int, pad: int) -> torch.Tensor:
    """The face moved by (dy, dx) pixels, edges repeated: the window training's random crop cuts at that offset."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def _tta_views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The views of a batch that test-time augmentation averages over (`TTA_VIEWS` counts them)."""
    views = [x]
    if tta in ("flip", "flip_crop"):
        views.append(x.flip(-1))
    if tta == "flip_crop":
        s = TTA_SHIFT
        views += [_shift(v, dy, dx, s) for v in (x, x.flip(-1)) for dy, dx in ((-s, -s), (-s, s), (s, -s), (s, s))]
    return views


TTA_VIEWS = {tta: len(_tta_views(torch.zeros(1, 1, 8, 8), tta)) for tta in ("none", "flip", "flip_crop")}


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
    tta: str = "none",
    bf16: bool | None = None,
) -> np.ndarray:
    """Logits (N,7) float32 for faces (N,48,48) uint8; with tta, the mean logits over mirrored (and shifted) copies.

    The model is moved to `device` (default: where its weights are) and evaluated in eval mode; its training
    flag is restored afterwards. The forward pass runs under bf16 autocast where `bf16` says so (default: on CUDA
    and on a CPU that computes bf16, `hardware.cpu_bf16_in_use`).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta {tta!r}; choose one of {TTA_MODES}")
    images = _uint8_faces(images)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    was_training = model.training
    model.eval()
    if bf16 is None:
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_bf16_in_use())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    out = []
    try:
        with autocast:
            for start in range(0, len(images), batch_size):
                views = _tta_views(images_to_tensor(images[start : start + batch_size], device), tta)
                out.append(torch.stack([model(v).float() for v in views]).mean(0).cpu())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, NUM_CLASSES), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def predict_probs(
    model: nn.Module, images: np.ndarray | torch.Tensor, tta: str = "none", bf16: bool | None = None
) -> np.ndarray:
    """Class probabilities (N,7) float64 of faces (N,48,48) uint8: the softmax of `predict_logits` on the model's
    device, with its test-time augmentation and bf16 options."""
    return softmax(predict_logits(model, images, tta=tta, bf16=bf16).astype(np.float64), axis=1)
