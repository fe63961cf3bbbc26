"""The machine a run executes on: its processor and whether it computes bf16 natively, its GPU (CUDA, or Apple
silicon's through MPS), the precision "auto" stands for there, and the peak rates that estimates and speed tables
hold measured throughput against.

Apple silicon: Lightning's `accelerator="auto"` trains on the Mac's GPU through MPS, where CUDA is absent. There
precision "auto" is float32 (`resolve_precision`): torch's mixed precision on MPS has not been measured for these
nets, so nothing says it is faster or as accurate. Timings wait for the GPU's queued work (`synchronize`), as on
CUDA. MPS kernels promise no bitwise determinism: a run there is seeded like any other, but trains with Lightning's
deterministic flag at "warn" (`deterministic_setting`), and the same run twice may differ in its last digits; on a
CPU, runs are deterministic.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.paths import PRECISION_ENV


def uses_cuda(config: CNNConfig) -> bool:
    """Whether this configuration trains on a CUDA GPU on this machine."""
    return config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def mps_available() -> bool:
    """Whether Apple silicon's GPU is usable through MPS here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def uses_mps(config: CNNConfig) -> bool:
    """Whether this configuration trains on Apple silicon's GPU (MPS) on this machine: Lightning's "auto" and "gpu"
    pick it where there is no CUDA."""
    if config.accelerator == "mps":
        return mps_available()
    return config.accelerator in ("auto", "gpu") and not torch.cuda.is_available() and mps_available()


def training_device() -> str:
    """Where `accelerator="auto"` trains on this machine: "cuda", "mps" or "cpu"."""
    return "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"


def synchronize(device: str | torch.device) -> None:
    """Wait until the device has finished its queued work, so that a clock read next times it (CUDA and MPS run
    asynchronously; a CPU needs no wait)."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def deterministic_setting(config: CNNConfig) -> bool | str:
    """Lightning's deterministic flag for this run: True on a CPU; on CUDA False, with cuDNN's benchmark choosing
    kernels; "warn" on MPS, whose kernels may have no deterministic version (see the module docstring)."""
    if uses_cuda(config):
        return False
    return "warn" if uses_mps(config) else True


def cpu_model() -> str:
    """The processor's model name where the system says it (Linux's /proc/cpuinfo, macOS's sysctl, e.g. "Apple
    M2"), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            brand = ""
        if brand:
            return brand
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX) and torch's oneDNN uses it.

    Both are checked: torch will autocast to bf16 on any CPU, but without the instructions it emulates them,
    several times slower than float32 (measured 8x slower training on an AVX2-only AMD EPYC).
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text(encoding="utf-8").split())
    except OSError:  # not Linux: no reliable flag source, stay with float32
        return False
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def machine_kind(processor: str, cores: int, bf16_native: bool, gpu: str | None = None) -> str:
    """A kind of machine, as benchmarks and plans key their rates: its GPU, or its processor, cores and whether it
    computes bf16 natively (e.g. "AMD EPYC, 2 cores, emulated bf16")."""
    return gpu or f"{processor}, {cores} cores, {'native' if bf16_native else 'emulated'} bf16"


def this_machine() -> str:
    """The `machine_kind` of this machine: its CUDA GPU, Apple silicon's GPU ("Apple M2 GPU (MPS)"), or its CPU."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if gpu is None and mps_available():
        gpu = f"{cpu_model()} GPU (MPS)"
    return machine_kind(cpu_model(), os.cpu_count() or 1, cpu_has_native_bf16(), gpu)


PRECISION_NAMES = {"32-true": "float32", "bf16-mixed": "bf16 mixed", "16-mixed": "float16 mixed"}  # Lightning's


CPU_PRECISIONS = ("32-true", "bf16-mixed")  # what PRECISION_ENV may force on a CPU


def forced_cpu_precision() -> str | None:
    """The CPU precision that PRECISION_ENV forces on "auto" (float32 on a CPU with native bf16 stands in for a
    laptop without it), or None where it is unset; ValueError naming the variable for any other value."""
    value = os.environ.get(PRECISION_ENV, "")
    if not value:
        return None
    if value not in CPU_PRECISIONS:
        raise ValueError(f"{PRECISION_ENV}={value!r}: choose one of {', '.join(CPU_PRECISIONS)}, or leave it unset")
    return value


def cpu_bf16_in_use() -> bool:
    """Whether CNNs on this CPU run in bf16: natively computed, unless PRECISION_ENV forces a precision."""
    forced = forced_cpu_precision()
    return forced == "bf16-mixed" if forced else cpu_has_native_bf16()


def resolve_precision(config: CNNConfig) -> str:
    """The Lightning precision that "auto" stands for on this machine (see the module docstring); on a CPU,
    PRECISION_ENV can force float32 or bf16."""
    if config.precision != "auto":
        return config.precision
    if uses_cuda(config):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if uses_mps(config):
        return "32-true"  # mixed precision on MPS is unmeasured here (see the module docstring)
    return "bf16-mixed" if cpu_bf16_in_use() else "32-true"


def device_name(device: torch.device) -> str:
    """The GPU's name, "mps (Apple M2)" on Apple silicon, or "cpu (N threads)"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"mps ({cpu_model()})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


# Dense bf16 tensor-core peaks from the vendors' datasheets, FLOP/s; the first name found in the device name wins.
GPU_PEAK_FLOPS: dict[str, float] = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}


def device_peak_flops(device: str) -> float | None:
    """The datasheet bf16 peak (FLOP/s) of a GPU named in `device` (a RunResult's device), None if unknown."""
    return next((peak for name, peak in GPU_PEAK_FLOPS.items() if name in device), None)


def measure_matmul_flops(device: str | torch.device = "cpu", size: int = 1024, repeats: int = 5) -> float:
    """The float32 matrix-multiply rate (FLOP/s) measured here: a practical peak for a CPU without a datasheet."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    a @ b  # warm-up: thread pool and caches
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)
