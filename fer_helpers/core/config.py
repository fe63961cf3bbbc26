"""A CNN run's configuration: what the experiment is (`CNNConfig.experiment()`, the cache key) apart from where it ran.

`CNNConfig` holds every setting of one CNN training run. Most of them define the experiment: the model and its
switches, the recipe (optimizer, schedule, augmentation, test-time augmentation, targets), the seed. The rest,
`EXECUTION_FIELDS`, say how and where it executes: precision, weight layout, compilation and Lightning's `Trainer`
settings. What goes into the cache key is written once, in `CNNConfig.experiment()`.

Precision: `precision="auto"` means bf16 mixed precision on CUDA and on a CPU that computes bf16 natively
(AVX-512 BF16 or AMX), float32 on any other CPU, where bf16 is emulated and several times slower
(`hardware.cpu_has_native_bf16`, `hardware.resolve_precision`), and float32 on Apple silicon's GPU (MPS), where
mixed precision is unmeasured. Layout: weights are channels-last ("auto"; on a 2-core CPU it trains
these nets 1.3-1.7 times faster than the default layout, and it is what tensor cores want).

Scaling is a matter of settings, passed straight to Lightning's `Trainer` (no distributed code of our own):
- One GPU: nothing to set; `accelerator="auto"` picks it, a CUDA GPU or, on a Mac with Apple silicon, its GPU
  through MPS (`hardware.uses_mps`).
- Several GPUs in one machine: `CNNConfig(devices=4, strategy="ddp")`, run as a script
  (`fer-study train ...`); in a notebook use `strategy="ddp_notebook"`. Each process holds the faces on its
  own GPU and takes every `devices`-th image of the shared per-epoch permutation; `batch_size` is per device, so
  the effective batch is `devices * batch_size` (scale `lr` with it). `devices` defaults to 1 rather than
  "auto" so that a result never depends on how many GPUs a host happens to have.
- Several machines under SLURM: `CNNConfig(devices=<GPUs per node>, num_nodes=<nodes>, strategy="ddp")`,
  launched with `srun` from an sbatch script with `--ntasks-per-node=<GPUs per node>`; Lightning reads the
  SLURM environment. Only rank 0 writes the cached result.

Targets: `targets="labels"` trains on FER-2013's single label of each face; `targets="crowd"` on the FER+ crowd's
vote distribution (see `training`). A crowd run is saved as "<model>_crowd" (`result_name`), apart from the study's
label runs.

This module imports neither Lightning nor torchmetrics: inference, weights and `fer-study predict` use it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "plateau", "onecycle", "cosine")
TTA_MODES = ("none", "flip", "flip_crop")
TARGETS = ("labels", "crowd")  # what the loss is computed against: FER-2013's labels or the FER+ vote distribution
CROWD_SUFFIX = "_crowd"  # a crowd-target run of model m is saved as m + CROWD_SUFFIX


@dataclass(frozen=True)
class CNNConfig:
    """Everything that decides one CNN training run; `to_dict()` is stored with the result, `experiment()` keys it."""

    model: str = "baseline_cnn"  # a name known to fer_helpers.models.networks.build_model
    model_kwargs: tuple[tuple[str, Any], ...] = ()  # architecture switches; a dict is accepted and stored sorted
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    scheduler: str = "none"  # "none", "plateau" (on PublicTest loss), "onecycle" or "cosine" (per step)
    plateau_factor: float = 0.5
    plateau_patience: int = 3  # epochs without a lower PublicTest loss before the lr is multiplied by the factor
    min_lr: float = 1e-6  # floor of "plateau" and "cosine"
    max_epochs: int = 50
    patience: int | None = 10  # early stopping on PublicTest accuracy, in epochs; None: off
    batch_size: int = 128  # per device
    class_weights: bool = False  # weight the loss by the inverse class frequency (sklearn's "balanced")
    hflip: bool = True  # random horizontal flip (p = 0.5)
    rotate_deg: float = 10.0  # random rotation in [-rotate_deg, +rotate_deg]; 0: off
    crop_pad: int = 0  # random shift by up to crop_pad pixels (pad, then crop 48x48); 0: off
    erasing_p: float = 0.0  # probability of erasing a random rectangle (filled with noise); 0: off
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing of image pairs; 0: off
    tta: str = "none"  # test-time augmentation of the stored logits: "none", "flip" or "flip_crop"
    targets: str = "labels"  # "labels": FER-2013's labels; "crowd": FER+ vote distributions (soft cross-entropy)
    seed: int = 0
    precision: str = "auto"  # Lightning precision; "auto": bf16-mixed on CUDA or a native-bf16 CPU, else 32-true
    channels_last: bool | str = "auto"  # "auto": channels-last weights (faster on CPU and GPU alike)
    compile: bool = False  # torch.compile the model
    accelerator: str = "auto"  # Lightning Trainer settings, see the module docstring for scaling
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1

    def __post_init__(self):
        kwargs = self.model_kwargs.items() if isinstance(self.model_kwargs, dict) else self.model_kwargs
        object.__setattr__(self, "model_kwargs", tuple(sorted((str(k), _frozen(v)) for k, v in kwargs)))
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("tta", self.tta, TTA_MODES),
            ("targets", self.targets, TARGETS),
        ):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {choices}")
        if self.channels_last not in ("auto", True, False):
            raise ValueError(f"channels_last must be 'auto', True or False, got {self.channels_last!r}")
        if self.lr <= 0 or self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("lr must be positive, max_epochs and batch_size at least 1")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 epoch or None (off), got {self.patience}")
        if not (0.0 <= self.erasing_p <= 1.0 and 0.0 <= self.label_smoothing < 1.0):
            raise ValueError("erasing_p must lie in [0, 1] and label_smoothing in [0, 1)")
        if self.rotate_deg < 0 or self.crop_pad < 0 or self.mixup_alpha < 0:
            raise ValueError("rotate_deg, crop_pad and mixup_alpha must not be negative")

    @property
    def kwargs(self) -> dict[str, Any]:
        """The model's keyword arguments as a dict."""
        return dict(self.model_kwargs)

    def placement(self) -> dict[str, Any]:
        """Where the run trains, as Lightning's Trainer takes it: accelerator, devices, strategy, num_nodes."""
        return {name: getattr(self, name) for name in PLACEMENT_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready settings (model_kwargs as a dict); targets only where it is not the default "labels"."""
        settings = asdict(self)
        settings["model_kwargs"] = json.loads(json.dumps(self.kwargs))
        if settings["targets"] == _DEFAULTS["targets"]:  # stored configurations and keys from before the field
            del settings["targets"]
        return settings

    def experiment(self) -> dict[str, Any]:
        """The settings that define the experiment, which the cache key hashes: `to_dict()` with the execution
        fields at their defaults.

        The key holds what the experiment is: the model and its kwargs, the recipe (optimizer, schedule,
        augmentation, test-time augmentation, targets where not "labels"), the seed, and, beside these settings,
        the data checksum and the result's name (`results.run_key`). It does not hold where or how the run executed,
        `EXECUTION_FIELDS`: precision, layout (channels_last), compile, accelerator, devices, strategy, num_nodes. So
        the same recipe trained on a laptop or on GPUs with `compile=True` has one key, and a run saved under it is
        reused wherever it was trained; what each run actually ran with (device, resolved precision, layout,
        compilation) is recorded in its result (`results.RunResult.extra`). Keep a run in another precision apart by giving
        it another name, not another key. Keys of saved runs must never change: a new setting enters the key only
        where it differs from its default, as `targets` does.
        """
        return self.to_dict() | {name: _DEFAULTS[name] for name in EXECUTION_FIELDS}

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> CNNConfig:
        """The configuration back from `to_dict()` (e.g. a stored result's config); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown CNNConfig field(s) {sorted(unknown)}")
        return cls(**settings)


# Where and how a run executes, not what it is: left out of the cache key (see `CNNConfig.experiment`).
PLACEMENT_FIELDS = ("accelerator", "devices", "strategy", "num_nodes")
EXECUTION_FIELDS = ("precision", "channels_last", "compile", *PLACEMENT_FIELDS)
_DEFAULTS = {f.name: f.default for f in fields(CNNConfig)}


def _frozen(value: Any) -> Any:
    """Lists become tuples so that a configuration stays hashable."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def result_name(config: CNNConfig) -> str:
    """The name a run of this configuration is saved under: its model, with CROWD_SUFFIX for crowd targets."""
    return config.model + (CROWD_SUFFIX if config.targets == "crowd" else "")
