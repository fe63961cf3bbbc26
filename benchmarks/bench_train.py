"""Training and inference throughput (images/s) of the study's CNNs on this machine (GPU when present).

Training images/s comes from `fit_cnn` itself: the full Lightning loop with on-device batches and augmentation,
counting only the training steps (validation excluded), over `epochs` short epochs of `train_images` faces.
Inference images/s times `predict_logits` on the PublicTest faces after one warm-up pass. Training is measured
with channels-last weights (the study's default) and with the default layout, and in float32 and bf16 mixed
precision, so that the numbers show what the layout and bf16 buy on this processor (`precision="auto"` picks bf16
only where the processor computes it natively). Where bf16 is emulated (no AVX-512 BF16 or AMX) it is several
times slower, so it is measured on a quarter of the faces for one epoch, enough for a rate.
Faces are FER-2013's when FER2013_PATH is set, synthetic otherwise (throughput does not depend on the content).
Usage: [FER2013_PATH=path/to/fer2013.zip] python benchmarks/bench_train.py [threads]
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace

import torch

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.hardware import cpu_has_native_bf16, synchronize, training_device
from fer_helpers.data.fer2013 import NUM_CLASSES, load_fer2013
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.models.networks import count_params
from fer_helpers.train.augment import augment_batch
from fer_helpers.train.inference import images_to_tensor, predict_logits
from fer_helpers.train.training import DeviceBatches, fit_cnn
from fer_helpers.train.weights import load_weights

MODELS = ("baseline_cnn", "model_b", "resnet_fer")
# Every augmentation switched on: the most the data path ever does per batch.
FULL_AUGMENTATION = CNNConfig(hflip=True, rotate_deg=10.0, crop_pad=4, erasing_p=0.5)


def _faces(train_images: int, eval_images: int):
    path = os.environ.get("FER2013_PATH")
    if path:
        data = load_fer2013(path).subsample(train_images // NUM_CLASSES, eval_images // NUM_CLASSES, seed=0)
        return data, "FER-2013"
    data = make_synthetic_fer(n_train=train_images, n_public=eval_images, n_private=eval_images, seed=0)
    return data, "synthetic"


def data_path_images_per_second(data, batch_size: int, device: str, epochs: int = 3) -> float:
    """Faces per second that batching on the device and augmenting them (all augmentations on) deliver alone."""
    images, labels = (torch.from_numpy(a).to(device) for a in data.split("Training"))
    generator = torch.Generator(device=device).manual_seed(0)
    start, n = time.perf_counter(), 0
    for _ in range(epochs):
        for batch, batch_labels in DeviceBatches(images, labels, batch_size, generator):
            augment_batch(images_to_tensor(batch), FULL_AUGMENTATION, generator)
            n += len(batch_labels)
    synchronize(device)
    return n / (time.perf_counter() - start)


def run(
    models: tuple[str, ...] = MODELS,
    train_images: int = 768,
    eval_images: int = 1024,
    epochs: int = 2,
    batch_size: int = 128,
    threads: int | None = None,
) -> dict:
    """Training and inference images/s of each model, with the device and thread count they ran on."""
    if threads is not None:
        torch.set_num_threads(threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    data, source = _faces(train_images, eval_images)
    images, _ = data.split("PublicTest")
    result = {
        "data": source,
        "train_images": int((data.usage == "Training").sum()),
        "epochs": epochs,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    device = training_device()  # where fit_cnn's accelerator="auto" trains: cuda, mps or cpu
    result["data_path_images_per_second"] = round(data_path_images_per_second(data, batch_size, device), 1)
    native = device == "cuda" or cpu_has_native_bf16()
    result["bf16_native"] = native
    slow_data = data if native else data.subsample(train_images // NUM_CLASSES // 4, None, seed=0)
    with tempfile.TemporaryDirectory() as run_root:
        for name in models:
            config = CNNConfig(model=name, max_epochs=epochs, patience=None, batch_size=batch_size, precision="32-true")
            # Layout and precision are not part of a run's cache key: each variant trains in a folder of its own.
            fitted = fit_cnn(data, config, tempfile.mkdtemp(dir=run_root))
            first = fit_cnn(data, replace(config, channels_last=False), tempfile.mkdtemp(dir=run_root))
            bf16_config = replace(config, precision="bf16-mixed", max_epochs=epochs if native else 1)
            bf16 = fit_cnn(slow_data, bf16_config, tempfile.mkdtemp(dir=run_root))
            model = load_weights(fitted.weights_path)
            result |= {
                f"{name}_params": count_params(model),
                f"{name}_train_images_per_second": round(fitted.images_per_second, 1),
                f"{name}_train_images_per_second_channels_first": round(first.images_per_second, 1),
                f"{name}_train_images_per_second_bf16": round(bf16.images_per_second, 1),
                f"{name}_inference_images_per_second": inference_rate(model, images, device, bf16=False),
                f"{name}_inference_images_per_second_bf16": inference_rate(
                    model, images if native else images[:256], device, bf16=True
                ),
            }
            result["device"] = fitted.device
    result["models"] = list(models)
    return result


def inference_rate(model, images, device: str, bf16: bool) -> float:
    """Faces per second of `predict_logits` after one warm-up pass."""
    predict_logits(model, images[:64], device=device, bf16=bf16)  # warm-up
    start = time.perf_counter()
    predict_logits(model, images, device=device, bf16=bf16)  # returns on the host, so the GPU has finished
    return round(len(images) / (time.perf_counter() - start), 1)


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else None
    result = run(threads=threads)
    print(
        f"{result['data']} faces: {result['train_images']} training faces x {result['epochs']} epochs, "
        f"batch {result['batch_size']}, {result['torch_threads']} torch threads"
    )
    print(
        f"{'model':<14}{'params':>11}{'train img/s':>13}{'channels-first':>16}{'bf16':>9}{'infer img/s':>13}{'bf16':>9}"
    )
    for name in result["models"]:
        print(
            f"{name:<14}{result[f'{name}_params']:>11,}{result[f'{name}_train_images_per_second']:>13,.1f}"
            f"{result[f'{name}_train_images_per_second_channels_first']:>16,.1f}"
            f"{result[f'{name}_train_images_per_second_bf16']:>9,.1f}"
            f"{result[f'{name}_inference_images_per_second']:>13,.1f}"
            f"{result[f'{name}_inference_images_per_second_bf16']:>9,.1f}"
        )
    print(
        f"on {result['device']} (float32 unless marked; bf16 native: {result['bf16_native']}); "
        f"batching and augmenting alone: {result['data_path_images_per_second']:,.0f} img/s"
    )


if __name__ == "__main__":
    main()
