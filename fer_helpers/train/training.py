"""Training the CNNs with Lightning: faces kept on the device, augmented there (`augment`), the classifier, cached fits.

`fit_cnn(data, CNNConfig(...), run_root)` trains one CNN on the Training split, keeps the epoch with the best
PublicTest accuracy, and stores its logits for PublicTest and PrivateTest, its history, timing and weights
(a few MB of safetensors, `weights`) in a run folder keyed by the experiment and the data checksum
(`CNNConfig.experiment()` says what the key holds); the same call again loads that result instead of retraining.
A long run saves its whole state after every epoch (`RESUME_FILE`), so calling it again after an interruption
continues where it stopped.

The whole data set is small (35,887 faces of 48x48 bytes, 83 MB), so it is copied once to the training device
as uint8 tensors; every batch is sliced there from a per-epoch permutation and augmented there with batched
tensor operations (`augment_batch`). No worker processes, no per-batch host work. Precision, layout and scaling
over devices are settings of `CNNConfig` (see `config`). CPU runs are deterministic; on Apple silicon (MPS) they
are seeded but not bitwise reproducible (`hardware.deterministic_setting`).

Targets: `targets="labels"` trains on FER-2013's single label of each face; `targets="crowd"` trains on the FER+
crowd's vote distribution over the seven classes (`ferplus.vote_distribution` of the votes that
`ferplus.attach_votes` put beside the faces) with soft cross-entropy, leaving out the Training faces without an
emotion vote. Validation (early stopping, the kept epoch) and the stored logits stay against FER-2013's labels, so a
crowd run and its label twin differ in the training targets alone. The votes are not part of the key (the data
checksum is); their checksum is recorded in the result's extra.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from fer_helpers.core.config import CNNConfig, result_name
from fer_helpers.core.hardware import (
    deterministic_setting,
    device_name,
    resolve_precision,
    synchronize,
    this_machine,
    uses_cuda,
)
from fer_helpers.core.markdown import format_duration
from fer_helpers.core.paths import RESUME_ENV
from fer_helpers.core.progress import DONE, LIVE, LineWriter, report
from fer_helpers.data.fer2013 import NUM_CLASSES, FERData
from fer_helpers.data.ferplus import VOTES_KEY, vote_distribution
from fer_helpers.data.results import (
    CHECKPOINT_DIR,
    EVAL_SPLITS,
    RESUME_EPOCHS_FILE,
    RESUME_FILE,
    RESUME_KEY_FILE,
    WEIGHTS_FILE,
    RunResult,
    cached_run,
    result_dir,
    run_key,
    saved_run,
)
from fer_helpers.models.networks import count_params
from fer_helpers.models.registry import build_model
from fer_helpers.scoring.runs import scored_run
from fer_helpers.train.augment import augment_batch
from fer_helpers.train.inference import EVAL_BATCH_SIZE, images_to_tensor, predict_logits
from fer_helpers.train.weights import round_to_storage, save_weights

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds")


def crowd_targets(data: FERData) -> tuple[np.ndarray, np.ndarray]:
    """The FER+ vote distribution (n,7) float32 of each Training face (zeros without votes), and which have votes.

    "Votes" means at least one vote for one of FER-2013's seven emotions; the votes are those that
    `ferplus.attach_votes` stored beside the faces.
    """
    votes = data.extras.get(VOTES_KEY)
    if votes is None:
        raise ValueError(
            f"targets='crowd' trains on FER+ votes, and {data.source} has none attached: attach them first with "
            f"ferplus.attach_votes(data, ferplus.read_votes(path)) (FER-2013), or "
            f"ferplus.attach_votes(data, ferplus.synthetic_votes(data)) (synthetic faces)"
        )
    if len(votes) != len(data):
        raise ValueError(f"{len(votes)} vote rows for {len(data)} faces: attach the votes with ferplus.attach_votes")
    distribution = vote_distribution(votes[data.usage == "Training"])
    voted = ~np.isnan(distribution).any(axis=1)
    if not voted.any():
        raise ValueError(f"no Training face of {data.source} has a vote for one of FER-2013's seven emotions")
    return np.nan_to_num(distribution).astype(np.float32), voted


# ---------------------------------------------------------------- data on the device


class DeviceBatches:
    """Batches (uint8 images (B,48,48), labels (B,)[, targets (B,7)]) sliced from tensors on the device; a new order
    each pass. Targets (soft, e.g. crowd vote distributions) come with a batch where they are given.

    Shuffled passes drop the incomplete last batch (a new permutation each epoch, so no face is left out for long).
    Under DDP each of `world_size` processes takes every world_size-th face of the same permutation.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world_size: int = 1,
        targets: torch.Tensor | None = None,
    ):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator, self.rank, self.world_size = generator, rank, world_size
        self.targets = targets

    @property
    def shuffle(self) -> bool:
        return self.generator is not None

    def __len__(self) -> int:
        n = len(self.labels)
        if self.shuffle:
            return max(1, n // self.world_size // self.batch_size)
        return math.ceil(len(range(self.rank, n, self.world_size)) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.labels.device)
        else:
            order = torch.arange(n, device=self.labels.device)
        order = order[self.rank :: self.world_size]
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            if self.targets is None:
                yield self.images[index], self.labels[index]
            else:
                yield self.images[index], self.labels[index], self.targets[index]


class FERDataModule(L.LightningDataModule):
    """Training and PublicTest faces as uint8 tensors on the training device, augmented there batch by batch.

    With crowd targets, the Training faces with emotion votes come with their vote distributions (`crowd_targets`);
    PublicTest keeps its FER-2013 labels alone.
    """

    def __init__(self, data: FERData, config: CNNConfig):
        super().__init__()
        self.data = data
        self.config = config
        self.splits: dict[str, tuple[torch.Tensor, ...]] = {}
        self.generator: torch.Generator | None = None

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.generator is not None and self.generator.device == device:
            return  # already on this device: the copy happens once
        for split in ("Training", "PublicTest"):
            arrays = self.data.split(split)
            if split == "Training" and self.config.targets == "crowd":
                targets, voted = crowd_targets(self.data)
                arrays = (arrays[0][voted], arrays[1][voted], targets[voted])
            self.splits[split] = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)
        # One generator drives both the epoch order and the augmentation: the same seed, the same run.
        self.generator = torch.Generator(device=device).manual_seed(self.config.seed)

    def _rank(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    def train_dataloader(self) -> DeviceBatches:
        rank, world_size = self._rank()
        images, labels, *targets = self.splits["Training"]
        return DeviceBatches(
            images,
            labels,
            self.config.batch_size,
            self.generator,
            rank,
            world_size,
            targets=targets[0] if targets else None,
        )

    def val_dataloader(self) -> DeviceBatches:
        rank, world_size = self._rank()
        images, labels = self.splits["PublicTest"]
        return DeviceBatches(images, labels, EVAL_BATCH_SIZE, None, rank, world_size)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, *rest = batch
        x = images_to_tensor(images)
        if self.trainer is not None and self.trainer.training:
            x = augment_batch(x, self.config, self.generator)
        return (x, *rest)


# ---------------------------------------------------------------- the classifier


class FERClassifier(L.LightningModule):
    """A CNN trained with cross-entropy (optional class weights, label smoothing, mixup), scored on PublicTest.

    A training batch (x, labels) is scored against the labels; a batch (x, labels, targets) against the soft targets
    (soft cross-entropy, -sum_c w_c q_c log p_c averaged over the faces), its accuracy still against the labels.
    """

    def __init__(self, model: nn.Module, config: CNNConfig, class_weights: np.ndarray | None = None):
        super().__init__()
        self.model = model
        self.config = config
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weight", weight)
        self.train_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_f1 = MulticlassF1Score(NUM_CLASSES, average="macro")
        # Kept outside the module tree, so the state dict holds the model's weights once, under "model.". Static
        # shapes: an epoch's short last batch gets a graph of its own instead of turning every later batch onto a
        # dynamic-shape graph (ResNet-FER's training steps in float32 on 2 AVX2 cores: 24.7 images/s after a short
        # batch with dynamic shapes, 28-33 with static ones, 23 uncompiled). A whole epoch of the full profile
        # there still trained at 24 images/s compiled, about as fast as uncompiled: compile where it is measured.
        net = torch.compile(model, dynamic=False) if config.compile else model
        object.__setattr__(self, "_net", net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against class indices (N,) or class probabilities (N,7)."""
        return F.cross_entropy(
            logits.float(), targets, weight=self.class_weight, label_smoothing=self.config.label_smoothing
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, labels, *soft = batch
        targets = soft[0] if soft else labels
        if self.config.mixup_alpha > 0:
            alpha = torch.tensor(self.config.mixup_alpha)
            lam = float(torch.distributions.Beta(alpha, alpha).sample())
            partner = torch.randperm(len(labels), device=labels.device)
            logits = self(lam * x + (1 - lam) * x[partner])
            loss = lam * self._loss(logits, targets) + (1 - lam) * self._loss(logits, targets[partner])
        else:
            logits = self(x)
            loss = self._loss(logits, targets)
        self.train_acc(logits, labels)
        self.log(
            "train_loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=len(labels), sync_dist=True
        )
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, labels = batch
        logits = self(x)
        # Unweighted and unsmoothed, so that validation losses compare across configurations.
        loss = F.cross_entropy(logits.float(), labels)
        self.val_acc(logits, labels)
        self.val_f1(logits, labels)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(labels), sync_dist=True)
        self.log("val_acc", self.val_acc, prog_bar=True)
        self.log("val_macro_f1", self.val_f1)

    def configure_optimizers(self):
        cfg = self.config
        params = self.model.parameters()
        if cfg.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
            )
        if cfg.scheduler == "none":
            return optimizer
        if cfg.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        total_steps = int(self.trainer.estimated_stepping_batches)  # max_epochs x steps per epoch
        if cfg.scheduler == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=cfg.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class EpochRecorder(Callback):
    """One history row per epoch, and the time and images of the training steps alone (validation excluded)."""

    def __init__(self):
        self.rows: list[dict] = []
        self.train_seconds = 0.0
        self.train_images = 0
        self.resumed_at: list[int] = []  # the epochs after which an interrupted run was resumed
        self._start = self._train_end = None
        self._lr = float("nan")

    def state_dict(self) -> dict:  # kept in the resume checkpoint, so a resumed run's history is whole
        return {
            "rows": self.rows,
            "train_seconds": self.train_seconds,
            "train_images": self.train_images,
            "resumed_at": self.resumed_at,
        }

    def load_state_dict(self, state: dict) -> None:
        self.rows, self.train_seconds = list(state["rows"]), float(state["train_seconds"])
        self.train_images = int(state["train_images"])
        self.resumed_at = [*state.get("resumed_at", []), len(self.rows)]

    def wall_seconds(self) -> float:
        """Seconds of every epoch so far, training and validation, across resumed sessions."""
        return float(sum(row["seconds"] for row in self.rows))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self._start, self._train_end = time.perf_counter(), None
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch starts with

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.train_images += len(batch[1])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        now = time.perf_counter()
        self.train_seconds += (self._train_end or now) - self._start
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {"epoch": trainer.current_epoch + 1, "lr": self._lr, "seconds": now - self._start}
        row |= {name: metrics.get(name, float("nan")) for name in HISTORY_COLUMNS if name not in row}
        self.rows.append(row)

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))


class EpochProgress(Callback):
    """Training progress: one line per epoch (loss, PublicTest accuracy, time, time left) on stdout, which a notebook
    keeps; about LIVE_UPDATES moments per epoch redrawn in place where stdout is a terminal; and both for the
    terminal of a report run (`progress.report`), whose kernels' stdout goes into the notebooks."""

    LIVE_UPDATES = 20

    def __init__(self, model_name: str, steps_per_epoch: int):
        self.model_name, self.steps_per_epoch = model_name, steps_per_epoch
        self.live = LineWriter(sys.stdout) if sys.stdout.isatty() else None
        self._fit_start = self._epoch_start = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._fit_start, self._first_epoch = time.perf_counter(), trainer.current_epoch  # resumed runs start later

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def _left(self, trainer, epochs_done: float) -> str:
        """Time left at the mean rate so far, for the epochs still allowed (early stopping may end sooner)."""
        done = epochs_done - self._first_epoch
        if done <= 0 or epochs_done >= trainer.max_epochs:
            return ""
        left = (time.perf_counter() - self._fit_start) / done * (trainer.max_epochs - epochs_done)
        return f", about {format_duration(left)} left" + (" at most" if trainer.early_stopping_callback else "")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        every = max(1, self.steps_per_epoch // self.LIVE_UPDATES)
        if (batch_idx + 1) % every or batch_idx + 1 >= self.steps_per_epoch:
            return
        fraction = (batch_idx + 1) / self.steps_per_epoch
        text = (
            f"{self.model_name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {fraction:.0%} of the epoch, "
            f"{format_duration(time.perf_counter() - self._epoch_start)}"
            f"{self._left(trainer, trainer.current_epoch + fraction)}"
        )
        if self.live is not None:
            self.live.write(LIVE, text)
        report(text)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        epoch = trainer.current_epoch + 1
        text = (
            f"{self.model_name} epoch {epoch}/{trainer.max_epochs}: loss {metrics.get('train_loss', float('nan')):.3f}, "
            f"PublicTest accuracy {metrics.get('val_acc', float('nan')):.1%}, "
            f"{format_duration(time.perf_counter() - self._epoch_start)}{self._left(trainer, epoch)}"
        )
        if self.live is not None:
            self.live.write(DONE, text)
        else:
            print(text, flush=True)
        report(text, done=True)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning without its start-up banners (GPU/TPU available, tips to install services, the seed it set) and a
    deprecation warning of its own code: what a training cell shows is the epoch bar and real warnings."""
    names = (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.fabric.utilities.seed",
    )
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _torch_flags() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark


def _restore_torch_flags(flags: tuple[bool, bool]) -> None:
    torch.use_deterministic_algorithms(flags[0])
    torch.backends.cudnn.benchmark = flags[1]


# ---------------------------------------------------------------- training with a cache


def fit_cnn(
    data: FERData,
    config: CNNConfig,
    run_root: str | Path,
    fresh: bool = False,
    name: str | None = None,
    classifier: Callable[..., FERClassifier] = FERClassifier,
    datamodule: Callable[[FERData, CNNConfig], FERDataModule] = FERDataModule,
    key_settings: dict | None = None,
    extra: dict | None = None,
) -> RunResult:
    """Train a CNN on Training, keep its best PublicTest epoch, store PublicTest/PrivateTest logits (cached).

    `name` (default: `result_name(config)`, the model, "_crowd" added for crowd targets) names the result, e.g.
    "model_b_no_bn" for an ablation of "model_b". Crowd targets need FER+ votes attached to data (`crowd_targets`).
    Another training objective (`distill.fit_distilled`) passes its own `classifier` and `datamodule` (called as
    the defaults are), the settings they add to the run's key, and `extra` facts for the result.
    """
    if config.targets == "crowd":
        crowd_targets(data)  # refuse data without votes before a cached result could hide it
    model_name = name or result_name(config)
    settings = config.experiment() | (key_settings or {})

    def train(run_dir: Path, key: str) -> RunResult:
        return _train(data, config, model_name, run_dir, key, fresh, classifier, datamodule, extra)

    if rank_zero_only.rank > 0:
        # A DDP/SLURM worker trains in step with rank 0, which alone writes the cache; it reads what rank 0 reads.
        if not fresh and (saved := saved_run(model_name, settings, data.sha256, run_root)) is not None:
            return saved
        key = run_key(model_name, settings, data.sha256)
        return train(result_dir(run_root, model_name, key), key)
    return cached_run(model_name, settings, data.sha256, run_root, train, fresh=fresh)


def saved_cnn(data: FERData, config: CNNConfig, run_root: str | Path, name: str | None = None) -> RunResult | None:
    """The saved result `fit_cnn(data, config, run_root, name=name)` would load, or None where it would train."""
    return saved_run(name or result_name(config), config.experiment(), data.sha256, run_root)


class ResumeCheckpoint(ModelCheckpoint):
    """The whole training state at the end of every epoch (no monitor: the file is rewritten), with the run's key
    beside it. At the end of the epoch, after the recorder has added the epoch's row."""

    def __init__(self, dirpath: Path, key: str):
        super().__init__(
            dirpath=dirpath,
            filename=Path(RESUME_FILE).stem,
            enable_version_counter=False,
            save_on_train_epoch_end=True,
        )
        self.key = key

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            (Path(filepath).parent / RESUME_KEY_FILE).write_text(self.key + "\n", encoding="utf-8")
            (Path(filepath).parent / RESUME_EPOCHS_FILE).write_text(f"{trainer.current_epoch + 1}\n", encoding="utf-8")


def _resume_checkpoint(run_dir: Path, key: str, fresh: bool) -> Path | None:
    """The checkpoint an interrupted run of this key left behind, or None (leftovers of anything else removed).

    A long run (a full-protocol seed on a CPU takes hours) saves its whole state after every epoch, so that calling
    it again continues where it stopped rather than starting over; `fresh` starts over.
    """
    checkpoints = run_dir / CHECKPOINT_DIR
    resume, owner = checkpoints / RESUME_FILE, checkpoints / RESUME_KEY_FILE
    if not fresh and resume.exists() and owner.exists() and owner.read_text(encoding="utf-8").strip() == key:
        return resume
    if rank_zero_only.rank == 0:
        for leftover in ("logs", "checkpoints"):  # from an interrupted or replaced run
            shutil.rmtree(run_dir / leftover, ignore_errors=True)
    return None


def _train(
    data: FERData,
    config: CNNConfig,
    model_name: str,
    run_dir: Path,
    key: str,
    fresh: bool = False,
    classifier: Callable[..., FERClassifier] = FERClassifier,
    datamodule_factory: Callable[[FERData, CNNConfig], FERDataModule] = FERDataModule,
    extra: dict | None = None,
) -> RunResult:
    run_dir = Path(run_dir)
    resume = _resume_checkpoint(run_dir, key, fresh)
    if resume is not None:
        print(f"resuming {model_name} from {resume}", flush=True)
    with _quiet_lightning():  # without its "Seed set to" line
        L.seed_everything(config.seed, workers=True)
    cuda = uses_cuda(config)
    model = build_model(config.model, **config.kwargs)
    channels_last = config.channels_last in ("auto", True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # From the labels of all Training faces, crowd targets or not: a crowd run and its label twin weigh alike.
    class_weights = data.class_weights("Training") if config.class_weights else None
    module = classifier(model, config, class_weights=class_weights)
    datamodule = datamodule_factory(data, config)

    train_faces = int((data.usage == "Training").sum())
    crowd = {}
    if config.targets == "crowd":
        voted = crowd_targets(data)[1]
        train_faces = int(voted.sum())
        crowd = {
            "targets": "crowd",
            "crowd_train_faces": train_faces,
            "crowd_left_out": int((~voted).sum()),
            "votes_sha256": hashlib.sha256(np.ascontiguousarray(data.extras[VOTES_KEY]).tobytes()).hexdigest(),
        }
    steps_per_epoch = max(1, train_faces // config.batch_size)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_acc",
        mode="max",
        save_top_k=1,
        save_weights_only=True,
    )
    # The whole state after every epoch, to resume from; not where the host is discarded after the run (RESUME_ENV=0).
    last = ResumeCheckpoint(run_dir / CHECKPOINT_DIR, key) if os.environ.get(RESUME_ENV, "1") != "0" else None
    recorder = EpochRecorder()
    callbacks = [c for c in (checkpoint, last, recorder, EpochProgress(model_name, steps_per_epoch)) if c is not None]
    if config.patience is not None:
        callbacks.append(EarlyStopping(monitor="val_acc", mode="max", patience=config.patience))
    precision = resolve_precision(config)
    logger = CSVLogger(run_dir, name="logs", version="")
    logger.log_hyperparams(config.to_dict())
    flags = _torch_flags()  # the Trainer sets them process-wide; code run after training should not inherit them
    try:
        with _quiet_lightning():
            trainer = L.Trainer(
                **config.placement(),
                precision=precision,
                max_epochs=config.max_epochs,
                callbacks=callbacks,
                logger=logger,
                default_root_dir=run_dir,
                deterministic=deterministic_setting(config),
                benchmark=cuda,
                num_sanity_val_steps=0,
                enable_model_summary=False,
                enable_progress_bar=False,  # EpochProgress instead: a line per epoch, not every redraw of a bar
                log_every_n_steps=min(50, steps_per_epoch),
            )
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        if trainer.interrupted:  # Lightning returns from Ctrl-C; a run cut short must not be saved as finished
            raise KeyboardInterrupt(
                f"{model_name} interrupted; calling it again resumes from {run_dir / 'checkpoints'}"
            )
        wall_seconds = recorder.wall_seconds()
    finally:
        _restore_torch_flags(flags)

    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    stored_precision = round_to_storage(model)  # the metrics below are those of the weights file
    trainer.strategy.barrier()
    device = trainer.strategy.root_device
    logits, seconds = {}, {}
    for split in EVAL_SPLITS:
        images, _ = data.split(split)
        started = time.perf_counter()
        logits[split] = predict_logits(model, images, device=device, tta=config.tta)
        seconds[split] = time.perf_counter() - started
    images, _ = data.split("PrivateTest")
    if config.tta != "none":  # one plain pass, timed: inference throughput without TTA
        started = time.perf_counter()
        predict_logits(model, images, device=device)
        seconds["PrivateTest"] = time.perf_counter() - started
    inference_images_per_second = len(images) / max(seconds["PrivateTest"], 1e-9)
    model.cpu()
    if trainer.is_global_zero:
        save_weights(model, run_dir / WEIGHTS_FILE, config)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)

    history = recorder.history()
    facts = {
        "params": count_params(model),
        "train_seconds": wall_seconds,
        "images_per_second": recorder.train_images * trainer.world_size / max(recorder.train_seconds, 1e-9),
        "device": device_name(device),
        "history": history,
        "extra": {
            "best_epoch": int(best["epoch"]) + 1,  # epochs count from 1, as in the paper
            "stopped_epoch": len(history),
            "config": config.to_dict(),
            "precision": precision,
            "machine": this_machine(),  # the kind of machine, which the plan's estimates read rates by
            "channels_last": channels_last,
            "compile": config.compile,
            "stored_precision": stored_precision,
            "inference_images_per_second": inference_images_per_second,
            **({"resumed_after_epochs": recorder.resumed_at} if recorder.resumed_at else {}),
            **crowd,
            **(extra or {}),
        },
    }
    return scored_run(model_name, config, key, run_dir, data, logits, **facts)
