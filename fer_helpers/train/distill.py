"""Distillation: a small fast CNN trained on a shipped teacher's answers (Model B's logits) as well as the labels.

Model B needs 254 M multiply-adds per face, too many for 1,500 faces/s on two AVX2 cores even in int8. Its student,
"model_b_distilled" in the registry, is Model B's own architecture at a fraction of its widths
(`recipes.distilled_config`). `fit_distilled(data, config, teacher_weights, run_root)` trains it through the same Lightning
fit as every CNN of the study (`training.fit_cnn`: Training only, the best PublicTest epoch kept, the whole state
saved after every epoch, PublicTest and PrivateTest logits stored once at the end, cached by key), with two changes:

- the loss: (1 - hard_share) x T^2 x KL(softmax(teacher / T) || softmax(student / T)) + hard_share x cross-entropy
  with the labels (Hinton et al. 2015), at temperature T (`DistillDataModule`, `DistillClassifier`);
- the soft targets: the teacher's logits on every Training face and on its mirror image, computed once and cached
  (`teacher_logits`), so that a mirrored face gets the teacher's exact answer for it; the small rotations that Model
  B's recipe adds keep the teacher's answer for the unrotated face.

The key holds the student's configuration, the teacher's weights (SHA-256), T and hard_share. `epochs_for_minutes`
turns a wall-clock budget into a number of epochs from the student's training rate measured on this machine, so
that a run is still a fixed, reproducible number of epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.files import atomic_path
from fer_helpers.data.fer2013 import FERData
from fer_helpers.data.results import RunResult
from fer_helpers.models.registry import build_model
from fer_helpers.train.augment import augment_batch
from fer_helpers.train.exported import current_onnx, file_sha256
from fer_helpers.train.inference import EVAL_BATCH_SIZE, images_to_tensor, predict_logits
from fer_helpers.train.training import FERClassifier, FERDataModule, fit_cnn
from fer_helpers.train.weights import load_weights

TEMPERATURE = 2.0  # softens the teacher's answers so that its second choices carry information
HARD_SHARE = 0.2  # the share of the loss against FER-2013's labels
TEACHER_FILE = "teacher-{weights}-{data}.npz"  # cached in the run root
VIEWS = ("plain", "mirrored")  # the teacher's logits on each Training face as it is and mirrored left-right


class DistillError(ValueError):
    """A distillation that cannot run: a missing or unusable teacher, or a cache that does not match."""


def teacher_logits(data: FERData, teacher_weights: str | Path, cache_dir: str | Path) -> np.ndarray:
    """The teacher's float32 logits (2, n_train, 7) on the Training faces, as they are and mirrored (`VIEWS`).

    Computed with the teacher's current float32 ONNX export where there is one (no torch, about twice as fast as
    torch on a CPU), else with torch in float32; cached in cache_dir by the weights' and the data's checksums.
    """
    weights = Path(teacher_weights)
    if not weights.is_file():
        raise DistillError(f"{weights}: no such teacher weights file")
    digest = file_sha256(weights)
    path = Path(cache_dir) / TEACHER_FILE.format(weights=digest[:12], data=data.sha256[:12])
    images = data.split("Training")[0]
    if path.is_file():
        with np.load(path) as cached:
            logits = cached["logits"]
            if str(cached["weights_sha256"]) != digest or logits.shape != (len(VIEWS), len(images), logits.shape[2]):
                raise DistillError(f"{path}: does not hold this teacher's logits on these faces; delete it")
        return logits
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    exported = current_onnx(weights, int8=False)
    if exported is not None:
        views = [exported.logits(images), exported.logits(mirrored)]
        how = f"ONNX Runtime float32 ({exported.path.name})"
    else:
        model = load_weights(weights).float()
        views = [predict_logits(model, faces, bf16=False) for faces in (images, mirrored)]
        how = "torch float32"
    logits = np.stack(views).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as out:
            np.savez_compressed(out, logits=logits, weights_sha256=digest, data_sha256=data.sha256, computed_with=how)
    return logits


class DistillDataModule(FERDataModule):
    """`FERDataModule` whose Training batches carry the teacher's logits for each face as augmented: its logits on
    the mirror image where the face is mirrored, else on the face itself."""

    def __init__(self, data: FERData, config: CNNConfig, teacher: np.ndarray):
        super().__init__(data, config)
        n_train = int((data.usage == "Training").sum())
        if teacher.ndim != 3 or teacher.shape[:2] != (len(VIEWS), n_train):
            raise DistillError(f"teacher logits of shape {teacher.shape} for {n_train} Training faces")
        self.teacher = teacher
        self.unmirrored = replace(config, hflip=False)  # the other augmentations, drawn by augment_batch

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        images, labels, *_ = self.splits["Training"]
        per_face = np.ascontiguousarray(self.teacher.transpose(1, 0, 2))  # (n, views, 7)
        self.splits["Training"] = (images, labels, torch.from_numpy(per_face).to(images.device))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is None or not self.trainer.training or len(batch) != 3:
            return super().on_after_batch_transfer(batch, dataloader_idx)
        images, labels, teacher = batch
        x = augment_batch(images_to_tensor(images), self.unmirrored, self.generator)
        if not self.config.hflip:
            return x, labels, teacher[:, 0]
        mirrored = torch.rand(x.shape[0], generator=self.generator, device=x.device) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
        return x, labels, torch.where(mirrored[:, None], teacher[:, 1], teacher[:, 0])


class DistillClassifier(FERClassifier):
    """`FERClassifier` trained on the teacher's softened answers and, with weight hard_share, on the labels."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: CNNConfig,
        class_weights: np.ndarray | None = None,
        temperature: float = TEMPERATURE,
        hard_share: float = HARD_SHARE,
    ):
        super().__init__(model, config, class_weights=class_weights)
        if config.mixup_alpha > 0 or config.targets != "labels":
            raise DistillError("distillation trains on the teacher's logits: no mixup, targets='labels'")
        self.temperature, self.hard_share = temperature, hard_share

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, labels, teacher = batch
        logits = self(x)
        loss = distillation_loss(logits.float(), teacher, labels, self.temperature, self.hard_share, self.class_weight)
        self.train_acc(logits, labels)
        self.log(
            "train_loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=len(labels), sync_dist=True
        )
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss


def distillation_loss(
    logits: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = TEMPERATURE,
    hard_share: float = HARD_SHARE,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 - hard_share) x T^2 x KL(teacher || student) at temperature T, plus hard_share x cross-entropy with labels.

    The T^2 keeps the soft part's gradients on the scale of the hard part's whatever T is (Hinton et al. 2015).
    """
    if temperature <= 0 or not 0.0 <= hard_share <= 1.0:
        raise DistillError(f"temperature must be positive and hard_share in [0, 1], got {temperature}, {hard_share}")
    soft = F.kl_div(
        F.log_softmax(logits / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(logits, labels, weight=class_weight)
    return (1 - hard_share) * temperature**2 * soft + hard_share * hard


def distill_settings(teacher_weights: str | Path, temperature: float, hard_share: float) -> dict:
    """What distillation adds to a run's key: the teacher's weights (by checksum), the temperature and the share."""
    weights = Path(teacher_weights)
    return {"teacher_sha256": file_sha256(weights), "temperature": temperature, "hard_share": hard_share}


def fit_distilled(
    data: FERData,
    config: CNNConfig,
    teacher_weights: str | Path,
    run_root: str | Path,
    temperature: float = TEMPERATURE,
    hard_share: float = HARD_SHARE,
    fresh: bool = False,
) -> RunResult:
    """Distil the teacher into config's CNN on Training, keep its best PublicTest epoch, store PublicTest and
    PrivateTest logits (cached under run_root by the configuration, the teacher, T and hard_share)."""
    teacher_weights = Path(teacher_weights)
    logits = teacher_logits(data, teacher_weights, run_root)
    settings = distill_settings(teacher_weights, temperature, hard_share)
    return fit_cnn(
        data,
        config,
        run_root,
        fresh,
        classifier=partial(DistillClassifier, temperature=temperature, hard_share=hard_share),
        datamodule=partial(DistillDataModule, teacher=logits),
        key_settings={"distill": settings},
        extra={"distill": settings | {"teacher": teacher_weights.name, "teacher_views": list(VIEWS)}},
    )


def epochs_for_minutes(config: CNNConfig, minutes: float, n_train: int, n_val: int, steps: int = 12) -> int:
    """How many epochs of config's CNN fit in `minutes` on this machine: a training step and a validation batch
    timed on random faces (two warm-up steps first), scaled to an epoch of n_train and n_val faces; at least 1."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.kwargs)
    if config.channels_last in ("auto", True):
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    faces = torch.randint(0, 256, (config.batch_size, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (config.batch_size,))
    generator = torch.Generator().manual_seed(config.seed)

    def step() -> None:
        x = augment_batch(images_to_tensor(faces), config, generator)
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    step_seconds = (time.perf_counter() - started) / steps
    model.eval()
    val_faces = torch.randint(0, 256, (EVAL_BATCH_SIZE, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        model(images_to_tensor(val_faces))
        started = time.perf_counter()
        model(images_to_tensor(val_faces))
    val_seconds = (time.perf_counter() - started) * math.ceil(n_val / EVAL_BATCH_SIZE)
    epoch_seconds = step_seconds * (n_train // config.batch_size) + val_seconds
    return max(1, int(minutes * 60 // epoch_seconds))
