"""Opt-in int8 mode: the decoder's Linear layers compute in int8 on the CPU.

Weights are quantized once, symmetric per output channel; activations are quantized at run time, symmetric **per
token** (one scale per row), and the product is accumulated exactly in int32 (``torch._int_mm``) before one float
rescale. Per-token scales keep a row's result a function of that row alone, so an embedding still does not depend
on its batch neighbours or on padding (torch's dynamic-quantized Linear uses one scale for the whole batch, which
would break that). Which Linear layers stay in float32 is a measured choice: see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from metaeol_integrations.errors import QuantizationError

QUANTIZE_MODES = ("int8",)
# Linear layers kept in float32 by default: none. With per-token activation scales even the MLP output projection
# (whose inputs carry the outlier channels) quantizes without loss on STS-B dev: of five variants, "every Linear"
# scored best (docs/performance.md, benchmarks/results/int8_variants.md).
DEFAULT_INT8_SKIP: tuple[str, ...] = ()
_QMAX = 127.0


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights (per output channel) and int8 per-token activations."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / _QMAX
        # Stored transposed and contiguous once: the (in, out) operand layout _int_mm takes without a copy.
        self.register_buffer("weight_int8_t", torch.round(weight / scale[:, None]).to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise QuantizationError(
                f"int8 mode computes on the CPU, but this input is on {x.device}. Fix: load with device='cpu', or "
                "drop quantize='int8' on a GPU (use dtype=torch.bfloat16 there)."
            )
        rows = x.reshape(-1, self.in_features).float()
        # In-place steps wherever possible: on a CPU the elementwise passes over large activations (and the
        # allocations behind them) cost as much as the int8 product itself.
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp_(min=torch.finfo(torch.float32).tiny).div_(_QMAX)
        quantized = torch.div(rows, row_scale).round_().to(torch.int8)
        out = torch._int_mm(quantized, self.weight_int8_t).float()
        out.mul_(row_scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight this layer computes with (``int8 x scale``), in ``nn.Linear``'s (out, in) layout."""
        return self.weight_int8_t.t().float() * self.weight_scale[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_int8(model: nn.Module, skip: Iterable[str] = DEFAULT_INT8_SKIP) -> list[str]:
    """Replace, in place, every ``nn.Linear`` of ``model`` whose attribute name is not in ``skip`` by an
    :class:`Int8Linear`; return the qualified names replaced. Embeddings and norms stay float32."""
    from metaeol_integrations.core.precision import compute_dtype

    skip = set(skip)
    if compute_dtype(model) != torch.float32:
        raise QuantizationError(
            f"int8 mode starts from float32 weights, but the model computes in {compute_dtype(model)}. Fix: drop "
            "the dtype from model_kwargs (or pass float32) when quantize='int8'."
        )
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] not in skip]
    for name, linear in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, Int8Linear(linear))
    return [name for name, _ in targets]


def to_int8(model: nn.Module, current: str | None, skip: Iterable[str] = DEFAULT_INT8_SKIP) -> list[str]:
    """:func:`quantize_int8` for a model whose mode is ``current``; int8 cannot be undone or applied twice."""
    if current is not None:
        raise QuantizationError(
            "This model's weights are already int8; they cannot be made float32 again in place. Fix: load the "
            "model again without quantize."
        )
    return quantize_int8(model, skip)


def dequantized_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with each :class:`Int8Linear` written back as a float32 ``weight``/``bias``, so a
    saved int8 model is a normal safetensors checkpoint. Quantizing these weights again gives the same int8 values
    (the largest entry of each row is exactly ``127 x scale``), so a saved and reloaded int8 model computes the same
    vectors."""
    state = {}
    int8_layers = {name: module for name, module in model.named_modules() if isinstance(module, Int8Linear)}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in int8_layers:
            if leaf == "weight_int8_t":
                state[f"{owner}.weight"] = int8_layers[owner].dequantized_weight().contiguous()
            elif leaf == "bias":
                state[key] = value
            continue
        state[key] = value
    return state


def check_quantize_mode(mode: str | None) -> None:
    """Raise :class:`QuantizationError` unless ``mode`` is None or a supported mode."""
    if mode is not None and mode not in QUANTIZE_MODES:
        raise QuantizationError(f"quantize must be None (exact float32) or 'int8', not {mode!r}. Fix: quantize='int8'.")
