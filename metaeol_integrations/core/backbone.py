"""Load the frozen decoder-only LLM and read last-token hidden states from chosen layers.

Layer indices follow ``transformers``' ``hidden_states`` convention: 0 is the input of the first decoder layer (the
embeddings), ``i`` the output of decoder layer ``i``, and ``N`` (= ``-1``) the final, normed output, which is what the
paper's code uses (``hidden_states[-1][:, -1]``). Reading them is ``core/readout.py``'s job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING

from metaeol_integrations.core.gguf import dequantized_folder
from metaeol_integrations.errors import (
    LayerError,
    ModelNotAvailableError,
    UnsupportedDTypeError,
    UnsupportedModelError,
)

# Where common decoder-only architectures keep their list of decoder layers.
_LAYER_LIST_PATHS = ("layers", "h", "decoder.layers", "model.layers", "transformer.h", "language_model.layers")


def resolve_dtype(value: Any) -> Any:
    """Accept ``torch.float32``, ``"float32"``, ``"torch.bfloat16"`` or ``"auto"``; only floating-point types."""
    if value is None or value == "auto":
        return value
    dtype = value if isinstance(value, torch.dtype) else getattr(torch, str(value).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UnsupportedDTypeError(
            f"Unsupported dtype {value!r}: the LLM must run in a floating-point type. "
            "Fix: use one of float32, float16, bfloat16 or auto."
        )
    return dtype


def check_dtype_on_device(dtype: torch.dtype, device: torch.device | str) -> None:
    """Fail early, with a fix, when ``device`` cannot run the LLM's basic operations in ``dtype``.

    A small matmul, softmax and RMS-norm style reduction stand in for the model's operations, so an unsupported
    combination (bfloat16 on a GPU without it, float16 on an old CPU build) is a clear error at load time instead
    of a failure deep inside the first forward pass.
    """
    device = torch.device(device)
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UnsupportedDTypeError(
            f"This GPU ({torch.cuda.get_device_name(device)}) does not support bfloat16. Fix: use dtype=float16."
        )
    try:
        probe = torch.ones(4, 4, dtype=dtype, device=device)
        torch.softmax(probe @ probe, dim=-1).pow(2).mean(-1).rsqrt()
    except (RuntimeError, TypeError, NotImplementedError) as error:
        raise UnsupportedDTypeError(
            f"{device.type} cannot compute in {dtype} here ({error}). Fix: use dtype=float32 on {device.type}."
        ) from error


def _check_causal(config: PretrainedConfig, source: str, trust_remote_code: bool) -> None:
    # Encoders such as BERT also have a causal-LM head class, so "has a causal LM" alone is not enough.
    known_decoder = type(config) in MODEL_FOR_CAUSAL_LM_MAPPING and type(config) not in MODEL_FOR_MASKED_LM_MAPPING
    if getattr(config, "is_encoder_decoder", False) or (not trust_remote_code and not known_decoder):
        raise UnsupportedModelError(
            f"{source!r} is a {type(config).__name__.removesuffix('Config')} model, not a decoder-only LLM. "
            "Fix: MetaEOL needs a causal LM such as Llama, Mistral, Qwen2, Gemma or SmolLM2."
        )


def load_backbone(
    source: str,
    *,
    model_kwargs: dict[str, Any] | None = None,
    processor_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
) -> tuple[PreTrainedModel, Any]:
    """Load the base model (no LM head) and tokenizer from a local folder, a ``.gguf`` file or a hub id.

    Weights load as safetensors and without remote code unless ``model_kwargs`` says otherwise
    (``use_safetensors=False``, ``trust_remote_code=True``). The dtype defaults to float32, as in the paper's code.
    """
    model_kwargs = dict(model_kwargs or {})
    processor_kwargs = dict(processor_kwargs or {})
    config_kwargs = dict(config_kwargs or {})
    trust_remote_code = bool(model_kwargs.pop("trust_remote_code", False))
    # "auto" here is transformers' (the checkpoint's own dtype); the package's "auto" is resolved by the module.
    model_kwargs["dtype"] = resolve_dtype(model_kwargs.pop("dtype", model_kwargs.pop("torch_dtype", torch.float32)))
    model_kwargs.setdefault("use_safetensors", True)
    hub_kwargs = {key: model_kwargs[key] for key in ("revision", "token", "local_files_only") if key in model_kwargs}

    folder = source
    if str(source).endswith(".gguf"):
        if not os.path.isfile(source):
            raise ModelNotAvailableError(f"GGUF file {source!r} does not exist. Fix: check the path.")
        folder = str(dequantized_folder(source, cache_folder=cache_folder))

    try:
        config = AutoConfig.from_pretrained(
            folder, trust_remote_code=trust_remote_code, cache_dir=cache_folder, **hub_kwargs, **config_kwargs
        )
        _check_causal(config, source, trust_remote_code)
        model = AutoModel.from_pretrained(
            folder, config=config, trust_remote_code=trust_remote_code, cache_dir=cache_folder, **model_kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=trust_remote_code, cache_dir=cache_folder, **hub_kwargs, **processor_kwargs
        )
    except OSError as error:
        if isinstance(error, ModelNotAvailableError):
            raise
        local = Path(folder).is_dir()
        hint = (
            "Fix: the folder must hold config.json, tokenizer files and safetensors weights "
            "(pass model_kwargs={'use_safetensors': False} only if you trust pickle files)."
            if local
            else "Fix: this machine cannot download it (offline or gated); download the model elsewhere and "
            "pass its local folder, or use the offline preset 'metaeol-smollm2-135m'."
        )
        raise ModelNotAvailableError(f"Cannot load the base model {source!r}: {error}\n{hint}") from error

    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(
            f"The tokenizer of {source!r} is a slow (Python) tokenizer; slot-aware truncation needs character "
            "offsets. Fix: install `tokenizers` and make sure the model folder has a tokenizer.json."
        )
    if tokenizer.pad_token_id is None:
        # Padding is always masked, so any id works; EOS is what decoder-only models conventionally reuse.
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder layers."""
    for path in _LAYER_LIST_PATHS:
        node: Any = model
        for attribute in path.split("."):
            node = getattr(node, attribute, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList) and len(node) > 0:
            return node
    raise UnsupportedModelError(
        f"Cannot find the decoder layers of {type(model).__name__}. "
        "Fix: use the default last layer (layer=-1), which needs no access to the layers."
    )


def num_decoder_layers(model: nn.Module) -> int:
    """How many decoder layers the model has (its config's count, else the length of its layer list)."""
    configured = getattr(model.config, "num_hidden_layers", None)
    return int(configured) if configured else len(decoder_layers(model))


def resolve_layers(layer: int | Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Map a layer index or list (negative allowed, ``hidden_states`` convention) to indices in ``0..num_layers``."""
    requested: Iterable[Any] = [layer] if isinstance(layer, int) else layer
    resolved = []
    for index in requested:
        if isinstance(index, bool) or not isinstance(index, int):
            raise LayerError(f"Layer indices must be integers, got {index!r}.")
        if not -(num_layers + 1) <= index <= num_layers:
            raise LayerError(
                f"Layer {index} does not exist: this model has {num_layers} decoder layers, so valid layers are "
                f"0..{num_layers} or -{num_layers + 1}..-1. Fix: pick a layer in that range (-1 is the last)."
            )
        resolved.append(index % (num_layers + 1))
    if not resolved:
        raise LayerError("At least one layer is needed. Fix: pass layer=-1 for the last layer.")
    return tuple(resolved)
