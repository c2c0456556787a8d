"""Low-precision compute that keeps float32 quality, and ``dtype="auto"``: the precision chosen from the hardware.

Loading a model in plain bfloat16 (``from_pretrained(dtype=bfloat16)``) rounds every weight and every hidden state to
8 significant bits. Two things suffer. EmbedFilter is computed from the unembedding matrix, and the SVD of a rounded
matrix moves its middle singular band: the retrieval preset's vectors fell to cosine 0.79 of float32. And the residual
stream, the running sum each block adds to, is rounded at every addition (cosine 0.9997 on sentences). So in a
low-precision mode only the decoder layers' compute blocks (attention and MLP, where the matmuls are) hold 16-bit
weights and compute in 16 bits; the embeddings (hence EmbedFilter's input), the residual stream, every norm between
blocks, rotary tables and the read-out stay float32. Measured against the alternatives (whole model in bfloat16,
``torch.autocast``, per-Linear casts) by ``benchmarks/precision.py --options``; numbers in ``docs/decisions.md``.

Each block converts its inputs on entry (a forward pre-hook); its output, added to the float32 residual, is promoted
back by torch's type promotion. The model's ``dtype`` stays float32, so masks, caches of the prefix and every fast
path see a float32 model whose blocks happen to be faster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaeol_integrations.core.backbone import decoder_layers, resolve_dtype
from metaeol_integrations.errors import UnsupportedDTypeError

LOW_PRECISION_DTYPES = (torch.bfloat16, torch.float16)
# CPU flags of bfloat16 matrix units (Intel AMX-BF16; AVX512-BF16 on Intel Cooper Lake and later and AMD Zen 4).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Other matrix-unit flags printed beside speed figures (int8 dot products).
CPU_MATRIX_FLAGS = (*CPU_BF16_FLAGS, "amx_int8", "amx_tile", "avx512_vnni", "avx_vnni")
# bfloat16 is chosen on a CPU only where its matmul is at least this much faster than float32 in the probe: the blocks'
# conversions cost some of the gain, and a marginal gain is not worth vectors that differ from float32.
MIN_CPU_SPEEDUP = 1.5
# On a GPU a small model waits on Python and kernel launches, not on its matmuls; the 16-bit blocks' input casts then
# add launches and cost more than they save (H200, 135M presets: 0.46x-0.66x float32's documents/s, measured). From
# this size on the matmuls (and the weights' memory) dominate and 16 bits pay (H200 matmul: bfloat16 13.6x float32).
GPU_MIN_PARAMETERS = 1_000_000_000


@dataclass(frozen=True)
class PrecisionChoice:
    """The compute dtype of the decoder's blocks and why it was chosen."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def cpu_flags(names: Iterable[str] = CPU_MATRIX_FLAGS, cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """Which of ``names`` this CPU reports (Linux ``/proc/cpuinfo``; none elsewhere)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return ()
    reported = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            reported.update(line.split(":", 1)[1].split())
    return tuple(name for name in names if name in reported)


def matmul_rate(dtype: torch.dtype, device: torch.device | str = "cpu", size: int = 512, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` matmul in ``dtype`` (best of ``repeats`` after a warm-up)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for attempt in range(repeats + 2):
        start = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        if attempt >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / max(best, 1e-9) / 1e9


@functools.lru_cache(maxsize=None)  # a fact of the machine, probed once per process and device type
def _auto_choice(device_type: str, threads: int) -> PrecisionChoice:
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice(torch.bfloat16, "auto: GPU with bfloat16")
        return PrecisionChoice(torch.float16, "auto: GPU without bfloat16")
    if device_type != "cpu":
        return PrecisionChoice(torch.float32, f"auto: {device_type} is not probed")
    flags = cpu_flags(CPU_BF16_FLAGS)
    if not flags:
        return PrecisionChoice(torch.float32, "auto: CPU without bfloat16 units")
    float32, bfloat16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    ratio = bfloat16 / float32
    if ratio < MIN_CPU_SPEEDUP:
        return PrecisionChoice(torch.float32, f"auto: CPU {'+'.join(flags)}, bfloat16 matmul only {ratio:.1f}x float32")
    return PrecisionChoice(torch.bfloat16, f"auto: CPU {'+'.join(flags)}, bfloat16 matmul {ratio:.1f}x float32")


def auto_precision(device: torch.device | str | None = None, parameters: int | None = None) -> PrecisionChoice:
    """``dtype="auto"``: on a GPU, bfloat16 (float16 where it lacks bfloat16) for a model of at least
    :data:`GPU_MIN_PARAMETERS` ``parameters`` (or of unknown size), float32 for a smaller one; on a CPU, bfloat16 where
    the CPU has bfloat16 units and a short matmul probe finds it at least :data:`MIN_CPU_SPEEDUP` times float32;
    float32 otherwise (and on other devices). ``device`` None means sentence-transformers' default device."""
    if device is None:
        from sentence_transformers.util import get_device_name

        device = get_device_name()
    device_type = torch.device(device).type
    if device_type == "cuda" and parameters is not None and parameters < GPU_MIN_PARAMETERS:
        return PrecisionChoice(torch.float32, f"auto: GPU, {parameters / 1e9:.2f} B parameters (under "
                                              f"{GPU_MIN_PARAMETERS / 1e9:.0f} B the GPU waits on launches)")
    return _auto_choice(device_type, torch.get_num_threads())


def resolve_precision(value: Any, device: torch.device | str | None = None,
                      parameters: int | None = None) -> PrecisionChoice:
    """A requested dtype (``torch.bfloat16``, ``"bfloat16"``, ``"auto"``, None for float32) as a choice."""
    if isinstance(value, PrecisionChoice):
        return value
    if value is None:
        return PrecisionChoice(torch.float32, "default")
    if value == "auto":
        return auto_precision(device, parameters)
    dtype = resolve_dtype(value)
    if dtype not in (torch.float32, *LOW_PRECISION_DTYPES):
        raise UnsupportedDTypeError(
            f"Unsupported dtype {value!r} for the LLM. Fix: use one of float32, bfloat16, float16 or auto."
        )
    return PrecisionChoice(dtype, "requested")


def _cast_floating(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):  # position_embeddings: (cos, sin)
        return tuple(_cast_floating(item, dtype) for item in value)
    return value


def _enter_block(module: nn.Module, args: tuple, kwargs: dict, *, dtype: torch.dtype) -> tuple[tuple, dict]:
    """Forward pre-hook of a compute block: its floating inputs in the block's dtype. A module-level function bound
    with ``functools.partial``, so a model with it still pickles (the multi-process pool)."""
    return _cast_floating(args, dtype), {name: _cast_floating(value, dtype) for name, value in kwargs.items()}


def compute_blocks(model: nn.Module) -> list[nn.Module]:
    """The children of each decoder layer that hold Linear layers (attention, MLP): where the matmuls are."""
    return [child for layer in decoder_layers(model) for child in layer.children()
            if any(isinstance(module, nn.Linear) for module in child.modules())]


def set_compute_dtype(model: nn.Module, dtype: torch.dtype) -> int:
    """Make ``model`` compute its blocks in ``dtype`` (bfloat16 / float16) and keep everything else float32, in place;
    returns how many blocks were converted. Parameters outside the blocks become float32 (exact from a 16-bit
    checkpoint), so a model loaded in its checkpoint's dtype needs no float32 copy of its large matrices."""
    if dtype not in LOW_PRECISION_DTYPES:
        raise UnsupportedDTypeError(f"Blocks compute in bfloat16 or float16, not {dtype}. Fix: pass one of those.")
    if getattr(model, "_metaeol_compute_dtype", None) is not None:
        raise UnsupportedDTypeError("This model already computes in low precision. Fix: load it again.")
    blocks = compute_blocks(model)
    inside = {id(module) for block in blocks for module in block.modules()}
    for block in blocks:
        block.to(dtype)
        block.register_forward_pre_hook(functools.partial(_enter_block, dtype=dtype), with_kwargs=True)
    for module in model.modules():
        if id(module) in inside:
            continue
        for tensors in (module._parameters, module._buffers):
            for name, tensor in tensors.items():
                if tensor is not None and tensor.is_floating_point() and tensor.dtype != torch.float32:
                    tensors[name] = (nn.Parameter(tensor.data.float(), requires_grad=False)
                                     if isinstance(tensor, nn.Parameter) else tensor.float())
    model._metaeol_compute_dtype = dtype
    return len(blocks)


def compute_dtype(model: nn.Module) -> torch.dtype:
    """The dtype ``model``'s matmuls run in: its blocks' after :func:`set_compute_dtype`, else its own."""
    return getattr(model, "_metaeol_compute_dtype", None) or next(model.parameters()).dtype
