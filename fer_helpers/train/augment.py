"""Batched data augmentation on the faces' device: random shifts (crops of a padded face), rotations, mirroring and
erasing, each face drawn its own, from one generator so that a CPU run is reproducible.

`augment_batch` applies what a CNNConfig asks for (`crop_pad`, `rotate_deg`, `hflip`, `erasing_p`) to a batch
(B,1,48,48) in [0,1] with tensor operations, so no worker process and no per-face host work is needed."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fer_helpers.core.config import CNNConfig


def random_hflip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each face left-right with probability p."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_rotation(x: torch.Tensor, max_deg: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each face by its own angle in [-max_deg, max_deg] about the centre (edges repeated, not black)."""
    angles = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    angles = angles * math.radians(max_deg)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each face by `pad` pixels (edges repeated) and cut a same-size window at its own random offset."""
    batch, _, height, width = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator, device=x.device)
    rows = offsets[:, :1] + torch.arange(height, device=x.device)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(width, device=x.device)  # (B, W)
    index = torch.arange(batch, device=x.device)[:, None, None]
    window = padded[index, :, rows[:, :, None], cols[:, None, :]]  # advanced indexing puts channels last
    return window.permute(0, 3, 1, 2).contiguous()


def random_erasing(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """With probability p per face, replace a random rectangle (area fraction in `scale`) by uniform noise."""
    batch, _, height, width = x.shape
    u = torch.rand(batch, 5, generator=generator, device=x.device)
    area = (scale[0] + (scale[1] - scale[0]) * u[:, 1]) * height * width
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 2])
    h = (area * aspect).sqrt().round().clamp(1, height)
    w = (area / aspect).sqrt().round().clamp(1, width)
    top = ((height - h + 1) * u[:, 3]).floor()[:, None, None]
    left = ((width - w + 1) * u[:, 4]).floor()[:, None, None]
    rows = torch.arange(height, device=x.device)[None, :, None]
    cols = torch.arange(width, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + h[:, None, None]) & (cols >= left) & (cols < left + w[:, None, None])
    mask = (inside & (u[:, 0] < p)[:, None, None])[:, None]
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(mask, noise, x)


def augment_batch(x: torch.Tensor, config: CNNConfig, generator: torch.Generator) -> torch.Tensor:
    """Shift, rotate, mirror and erase a batch of faces (B,1,48,48) in [0,1] as the config says; x is unchanged."""
    if config.crop_pad > 0:
        x = random_crop(x, config.crop_pad, generator)
    if config.rotate_deg > 0:
        x = random_rotation(x, config.rotate_deg, generator)
    if config.hflip:
        x = random_hflip(x, generator)
    if config.erasing_p > 0:
        x = random_erasing(x, config.erasing_p, generator)
    return x
