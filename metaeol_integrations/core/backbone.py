"""Load the frozen decoder-only LLM and read last-token hidden states from chosen layers.

Layer indices follow ``transformers``' ``hidden_states`` convention: 0 is the input of the first decoder layer (the
embeddings), ``i`` the output of decoder layer ``i``, and ``N`` (= ``-1``) the final, normed output, which is what the
paper's code uses (``hidden_states[-1][:, -1]``). Intermediate layers are read with temporary forward pre-hooks
instead of ``output_hidden_states=True``: that flag makes transformers install hooks that cannot be pickled (which
breaks the multi-process pool) and keeps every layer's states; ours are removed after each call, keep only the last
token, and stop the pass at the deepest requested layer.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, DynamicCache, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING

from metaeol_integrations.core.gguf import dequantized_folder
from metaeol_integrations.core.packing import LAYOUT_KEYWORD, PackedRows
from metaeol_integrations.core.prefix_cache import expand_for_batch
from metaeol_integrations.errors import (
    LayerError,
    ModelNotAvailableError,
    UnsupportedDTypeError,
    UnsupportedModelError,
)

# Where common decoder-only architectures keep their list of decoder layers.
_LAYER_LIST_PATHS = ("layers", "h", "decoder.layers", "model.layers", "transformer.h", "language_model.layers")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hub_id(source: str) -> bool:
    """Whether ``source`` names a Hugging Face hub repository (``org/name``) rather than a local path or file."""
    text = str(source)
    return bool(_HUB_ID.match(text)) and not text.endswith(".gguf") and not Path(text).expanduser().exists()


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


class _StopForward(Exception):
    """Raised by a hook once the deepest requested layer has been read."""


@dataclass(frozen=True)
class RowPositions:
    """Where each prompt row's tokens sit in a forward call's states: row ``r``'s column ``c`` is
    ``x[batch[r], start[r] + c]`` (a padded call: ``batch`` is the row, ``start`` 0; a packed one: batch 0).
    ``last`` holds each row's last real column."""

    batch: torch.Tensor
    start: torch.Tensor
    last: torch.Tensor

    @classmethod
    def of_call(cls, attention_mask: torch.Tensor, packed: PackedRows | None) -> RowPositions:
        last = last_token_index(attention_mask)
        if packed is None:
            return cls(torch.arange(attention_mask.shape[0], device=last.device), torch.zeros_like(last), last)
        return cls(torch.zeros_like(last), packed.start, last)

    def __call__(self, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of ``x`` selecting each row's token at ``columns`` (one column per row)."""
        return self.batch, self.start + columns


# A method's change to one submodule's input: edit(x, at) may change x in place; at(at.last) indexes the last tokens.
Edit = Callable[[torch.Tensor, RowPositions], None]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each row's last real token, whatever the padding side."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.flip(1).to(torch.long).argmax(dim=1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift a row's positions."""
    return (attention_mask.to(torch.long).cumsum(dim=1) - 1).clamp(min=0)


def accepts_position_ids(model: nn.Module) -> bool:
    """Whether the model's forward takes ``position_ids`` (nearly all decoder-only models do)."""
    return "position_ids" in inspect.signature(model.forward).parameters


def _first_input(args: tuple, kwargs: dict | None) -> torch.Tensor:
    """A pre-hook's view of the module's first input, passed positionally or by keyword (``hidden_states`` for a
    decoder layer)."""
    if args:
        return args[0]
    kwargs = kwargs or {}
    return kwargs["hidden_states"] if "hidden_states" in kwargs else next(iter(kwargs.values()))


def _forward_inputs(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, pass_position_ids: bool,
    prefix_cache: DynamicCache | None = None, cache_argument: str | None = None,
    inputs_embeds: torch.Tensor | None = None, packed: PackedRows | None = None,
) -> dict[str, Any]:
    """Keyword arguments of one forward call: ids (or ``inputs_embeds``), mask and positions over real tokens, and
    the prefix's keys and values when there is a ``prefix_cache``. With ``packed`` (a layout of this right-padded
    chunk, see :mod:`metaeol_integrations.core.packing`) the rows go end to end in one sequence."""
    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if inputs_embeds is not None:
        inputs["inputs_embeds"] = inputs_embeds
        del inputs["input_ids"]
    if packed is not None:
        for name in ("input_ids", "inputs_embeds"):
            if name in inputs:
                inputs[name] = packed.pack(inputs[name])
        inputs["attention_mask"] = packed.block_mask()
        inputs["position_ids"] = packed.position_ids()
        inputs[LAYOUT_KEYWORD] = packed
        if prefix_cache is not None:
            inputs[cache_argument] = expand_for_batch(model, prefix_cache, 1)
            inputs["use_cache"] = True
    elif prefix_cache is not None:
        offset = prefix_cache.get_seq_length()
        prefix_mask = attention_mask.new_ones(input_ids.shape[0], offset)
        inputs["attention_mask"] = torch.cat([prefix_mask, attention_mask], dim=1)
        inputs["position_ids"] = offset + position_ids_from_mask(attention_mask)
        inputs[cache_argument] = expand_for_batch(model, prefix_cache, input_ids.shape[0])
        inputs["use_cache"] = True
    elif pass_position_ids:
        inputs["position_ids"] = position_ids_from_mask(attention_mask)
    return inputs


def input_at_last_token(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, target: nn.Module,
    pass_position_ids: bool = True,
) -> torch.Tensor:
    """The first input of submodule ``target`` at each row's last real token, float32; the forward stops there."""
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    last = last_token_index(attention_mask)
    captured: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
        if threading.get_ident() != owner:  # another thread's forward on the shared model (see last_token_states)
            return
        captured.append(_first_input(args, kwargs)[rows, last].float())
        raise _StopForward

    handle = target.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(**_forward_inputs(model, input_ids, attention_mask, pass_position_ids))
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured[0]


def last_token_states(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: tuple[int, ...],
    num_layers: int,
    pass_position_ids: bool = True,
    prefix_cache: DynamicCache | None = None,
    cache_argument: str | None = None,
    average_layers: bool = True,
    inputs_embeds: torch.Tensor | None = None,
    edits: Sequence[tuple[nn.Module, Edit]] = (),
    packed: bool = False,
) -> torch.Tensor:
    """Hidden states of each row's last real token, averaged over ``layers``; shape ``(rows, hidden)``, float32.

    ``inputs_embeds`` replaces the embedding of ``input_ids`` (which still give the shape). ``edits`` is the seam for
    methods that change the computation: each ``(module, edit)`` calls ``edit(x, at)`` on the first input ``x`` of
    that submodule (a decoder layer, an ``o_proj``...) before it runs, where ``at`` (:class:`RowPositions`) locates
    each row's tokens in ``x``; ``edit`` may change ``x`` in place.

    ``packed=True`` runs the right-padded rows end to end as one sequence (:mod:`metaeol_integrations.core.packing`;
    the model must pass :func:`~metaeol_integrations.core.packing.can_pack`): the same states, no padding computed.

    With ``average_layers=False`` the states are stacked instead: shape ``(len(layers), rows, hidden)``.

    ``pass_position_ids`` (see :func:`accepts_position_ids`) sends positions counted over real tokens. With a
    ``prefix_cache`` (see :mod:`metaeol_integrations.core.prefix_cache`), ``input_ids`` are what follows that
    prefix in every row, and run against its keys and values through the ``cache_argument`` of the forward.
    """
    layout = None
    if packed:
        prefix_length = prefix_cache.get_seq_length() if prefix_cache is not None else 0
        layout = PackedRows.from_mask(attention_mask, prefix_length)
    at = RowPositions.of_call(attention_mask, layout)
    last = at(at.last)
    inputs = _forward_inputs(model, input_ids, attention_mask, pass_position_ids, prefix_cache, cache_argument,
                             inputs_embeds, layout)

    captured: dict[int, torch.Tensor] = {}
    intermediate = sorted(set(index for index in layers if index < num_layers))
    stop_early = max(layers) < num_layers
    owner = threading.get_ident()
    handles = []

    def make_hook(index: int):
        def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
            # Hooks sit on a shared model: another thread's forward must not write into this call's results.
            # That thread may also call this hook without ``kwargs``: torch registers a with-kwargs hook in two
            # steps, and a forward running between them (or while the hook is being removed) sees only the first.
            if threading.get_ident() != owner:
                return
            captured[index] = _first_input(args, kwargs)[last].float()
            if stop_early and index == intermediate[-1]:
                raise _StopForward

        return hook

    def make_edit(edit: Edit):
        def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
            if threading.get_ident() != owner:
                return
            edit(_first_input(args, kwargs), at)

        return hook

    # Edits first: a layer's read sees the state that layer receives (only the edited rows differ anyway).
    handles = [module.register_forward_pre_hook(make_edit(edit), with_kwargs=True) for module, edit in edits]
    if intermediate:
        layer_list = decoder_layers(model)
        handles += [layer_list[index].register_forward_pre_hook(make_hook(index), with_kwargs=True)
                    for index in intermediate]
    try:
        output = model(**inputs)
        captured[num_layers] = output.last_hidden_state[last].float()
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    stacked = torch.stack([captured[index] for index in layers])
    return stacked.mean(dim=0) if average_layers else stacked
