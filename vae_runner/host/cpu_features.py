"""What this device is (`device_name`, for reports) and whether bf16 pays on it. `precision=bf16` is a speed
option: on CPUs with native bfloat16 matrix products (x86 avx512_bf16 or AMX, Arm's BF16 extension) it trains
faster, elsewhere torch emulates them and it is many times slower than fp32 (docs/speed.md has the measured
figures). The run is not refused (bf16 may be wanted for its numerics), but the log says why it will be slow and
what to set."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

X86_BF16 = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 dot products
ARM_BF16 = ("bf16",)  # /proc/cpuinfo "Features" on aarch64 (ARMv8.6 BF16)


def read_cpuinfo() -> str:
    """Linux's /proc/cpuinfo; empty elsewhere."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def device_name(device: torch.device) -> str:
    """What trained the run, for reports: the GPU's name, or the CPU's model and the torch thread count."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    lines = read_cpuinfo().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    threads = torch.get_num_threads()
    return f"cpu ({model or platform.processor() or 'unknown CPU'}, {threads} thread{'' if threads == 1 else 's'})"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo: x86 "flags", aarch64 "Features"); empty where unknown."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool | None:
    """True where bf16 matrix products run natively on `device`, False where they are emulated, None when this
    cannot be told (a CPU that is not Linux: macOS's Apple silicon has BF16, say nothing)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return None
    return any(f in flags for f in X86_BF16 + ARM_BF16)


def slow_bf16_warning(setting: str, device: torch.device, flags: set[str] | None = None) -> str | None:
    """The warning for `setting`=bf16 (trainer.precision, evaluation.precision) on a device without native bf16."""
    if native_bf16(device, flags) is not False:
        return None
    what = (
        f"this CPU ({platform.processor() or platform.machine()}) has no native bf16 matrix products "
        f"(none of the flags {', '.join(X86_BF16 + ARM_BF16)})"
        if device.type == "cpu"
        else f"this GPU ({torch.cuda.get_device_name(device)}) has no native bf16"
    )
    return (
        f"{setting}=bf16, but {what}: torch emulates them, many times slower than fp32 (docs/speed.md: measured "
        f"figures). Set {setting}=fp32 unless bf16's numerics are what you want; bf16 pays on CPUs with "
        f"avx512_bf16 or AMX (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later), Arm CPUs with BF16, "
        f"and NVIDIA GPUs from Ampere on."
    )


def chosen_device(want: str) -> torch.device:
    """trainer.device (auto | cpu | cuda) as a device: auto is CUDA where torch sees one, else the CPU."""
    return torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu")


def chosen_precision(setting: str, device: torch.device, flags: set[str] | None = None) -> str:
    """The precision `setting` (trainer.precision, evaluation.precision) runs in on `device`: `auto` is bf16 where
    bf16 matrix products are native (CUDA with bf16, CPUs with avx512_bf16, AMX or Arm's BF16) and fp32 elsewhere
    (including where it cannot be told); fp32 and bf16 are themselves."""
    if setting != "auto":
        return setting
    return "bf16" if native_bf16(device, flags) else "fp32"


def precision_line(name: str, setting: str, device: torch.device, flags: set[str] | None = None) -> str | None:
    """The log line saying what `name`=auto chose on `device`, and why (None for an explicit setting)."""
    if setting != "auto":
        return None
    chosen = chosen_precision(setting, device, flags)
    why = "native bf16 matrix products" if chosen == "bf16" else "no native bf16 matrix products"
    return f"{name}=auto: {chosen} on this {device.type.upper()} ({why}; set {name}=fp32 or bf16 to choose)"
