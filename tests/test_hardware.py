"""The machine as the study sees it, with Apple silicon's GPU (MPS) faked where it is absent: the device named, the
precision chosen for it, timings that wait for it, and how deterministic a run there is."""

from __future__ import annotations

import subprocess

import pytest
import torch

from fer_helpers.core import hardware
from fer_helpers.core.config import CNNConfig


@pytest.fixture
def mac(monkeypatch):
    """A Mac with Apple silicon: no CUDA, MPS available, the processor named by sysctl; returns the waits seen."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Apple M2")
    waits = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waits.append("mps"))
    return waits


def test_mps_is_named_and_trained_on_where_there_is_no_cuda(mac):
    assert hardware.training_device() == "mps"
    assert hardware.uses_mps(CNNConfig()) and hardware.uses_mps(CNNConfig(accelerator="mps"))
    assert not hardware.uses_mps(CNNConfig(accelerator="cpu")) and not hardware.uses_cuda(CNNConfig())
    assert hardware.device_name(torch.device("mps")) == "mps (Apple M2)"
    assert hardware.this_machine() == "Apple M2 GPU (MPS)"  # rates measured there are not a CPU's


def test_mps_trains_in_float32_whatever_the_cpu(mac, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert hardware.resolve_precision(CNNConfig()) == "32-true"
    assert hardware.resolve_precision(CNNConfig(precision="16-mixed")) == "16-mixed"  # asked for by name
    assert hardware.resolve_precision(CNNConfig(accelerator="cpu")) == "bf16-mixed"  # the CPU, chosen, keeps its own


def test_timings_wait_for_mps_and_cuda_but_not_for_a_cpu(mac, monkeypatch):
    hardware.synchronize(torch.device("mps"))
    hardware.synchronize("cpu")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: mac.append(f"cuda {device}"))
    hardware.synchronize("cuda")
    assert mac == ["mps", "cuda cuda"]


def test_determinism_is_strict_on_a_cpu_and_warns_on_mps(mac, monkeypatch):
    assert hardware.deterministic_setting(CNNConfig()) == "warn"
    assert hardware.deterministic_setting(CNNConfig(accelerator="cpu")) is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # CUDA wins over MPS, as in Lightning
    assert not hardware.uses_mps(CNNConfig()) and hardware.deterministic_setting(CNNConfig()) is False


def test_without_mps_nothing_changes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert hardware.training_device() == "cpu" and not hardware.uses_mps(CNNConfig(accelerator="mps"))
    assert hardware.deterministic_setting(CNNConfig()) is True
    assert hardware.device_name(torch.device("cpu")).startswith("cpu (")


def test_a_macs_processor_is_named_by_sysctl(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "Path", lambda path: tmp_path / "no-cpuinfo")
    monkeypatch.setattr(hardware.platform, "system", lambda: "Darwin")
    seen = []

    def sysctl(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="Apple M3 Pro\n")

    monkeypatch.setattr(hardware.subprocess, "run", sysctl)
    assert hardware.cpu_model() == "Apple M3 Pro"
    assert seen == [["sysctl", "-n", "machdep.cpu.brand_string"]]
