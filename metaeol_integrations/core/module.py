"""The MetaEOL sentence-transformers input module: a :class:`Recipe` applied to a frozen decoder-only LLM.

Glue only. ``preprocess`` fills and tokenises the prompts (``core/prompting.py``); ``forward`` runs them
(``core/runner.py``) and pools the last-token states (``core/pooling.py``); how ``save`` stores the LLM is
``core/persistence.py``'s policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from sentence_transformers.base.modules import InputModule

from metaeol_integrations.core.backbone import load_backbone, num_decoder_layers
from metaeol_integrations.core.chunking import mean_over_windows
from metaeol_integrations.core.methods import MethodContext, bind_methods
from metaeol_integrations.core.pooling import layers_needed, pool_prompts
from metaeol_integrations.core.precision import LOW_PRECISION_DTYPES, PrecisionChoice, resolve_precision, set_compute_dtype
from metaeol_integrations.core.prompting import Prompting
from metaeol_integrations.core import quantization
from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.core.runner import PromptRunner
from metaeol_integrations.core.templates import TemplateSet, TemplateSpec
from metaeol_integrations.core.tokenization import PromptTokenizer
from metaeol_integrations.core.persistence import (
    check_weights_mode,
    declare_requirement,
    default_weights_mode,
    reference_source,
)

logger = logging.getLogger(__name__)


def _recipe_option(name: str) -> property:
    """A module attribute for one recipe option: reads its saved form, sets it through :attr:`MetaEOL.recipe`."""

    def get(self: MetaEOL) -> Any:
        return self.recipe.to_config()[name]

    def set(self: MetaEOL, value: Any) -> None:
        self.recipe = self.recipe.replace(**{name: value})

    return property(get, set, doc=f"The recipe's ``{name}`` (see :class:`Recipe`), in its saved form.")


class MetaEOL(InputModule):
    """Embed each text as the mean, over K prompt templates, of the LLM's last-token hidden state.

    Args:
        model_name_or_path: The base decoder-only LLM: a local folder, a ``.gguf`` file, or a hub id.
        recipe: What to compute (:class:`~metaeol_integrations.core.recipe.Recipe`: templates, layer, methods...);
            default ``Recipe()``, MetaEOL's 8 templates at the final layer.
        model_kwargs, processor_kwargs, config_kwargs: Passed to ``AutoModel`` / ``AutoTokenizer`` / ``AutoConfig``
            ``from_pretrained``; ``trust_remote_code`` and ``use_safetensors=False`` are honoured only from here.
            ``model_kwargs["dtype"]``: ``float32`` (default, exact), ``bfloat16`` / ``float16`` (the decoder's
            attention and MLP blocks in 16 bits, residual stream and norms float32: ``core/precision.py``) or
            ``"auto"`` (chosen from the hardware of ``device``).
        cache_folder: Where hub downloads and dequantised GGUF copies go.
        base_model: Where the weights originally came from, kept as information in the saved config.
        base_model_revision: The hub revision of ``base_model`` (default: ``model_kwargs["revision"]``).
        weights: How :meth:`save` stores the LLM: ``"copy"`` writes its weights and tokenizer into the folder;
            ``"reference"`` writes none and records ``base_model`` (a hub id) and its revision. Default:
            ``"reference"`` when the LLM was loaded by hub id, else ``"copy"``.
        **options: Recipe options (``templates="prompteol"``, ``layer=20``...) set on top of ``recipe``.

    Every recipe option is also an attribute (``module.layer = 20``); setting one applies the changed recipe, and a
    rejected value leaves the module unchanged.
    """

    config_keys = [*Recipe.option_names(), "base_model", "base_model_revision", "weights"]
    config_file_name = "metaeol_config.json"
    save_in_root = True
    # encode(..., all_layers=True) reaches forward(): the evaluation reads every layer from one pass.
    forward_kwargs = {"all_layers"}

    def __init__(
        self,
        model_name_or_path: str,
        recipe: Recipe | None = None,
        *,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_folder: str | None = None,
        base_model: str | None = None,
        base_model_revision: str | None = None,
        weights: str | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        recipe = (recipe or Recipe()).with_overrides(options)
        model_kwargs = dict(model_kwargs or {})
        requested = model_kwargs.pop("dtype", model_kwargs.pop("torch_dtype", None))
        if requested == "auto" and recipe.quantize:  # int8 starts from float32 weights
            requested = PrecisionChoice(torch.float32, "auto: int8 mode computes from float32")
        # "auto" and the 16-bit modes load the checkpoint in its own dtype (no float32 copy of a 7B model's matrices);
        # then "auto" is decided (on a GPU it depends on the model's size) and the blocks become 16-bit, the rest
        # float32.
        chosen = None if requested == "auto" else resolve_precision(requested, device)
        model_kwargs["dtype"] = "auto" if chosen is None or chosen.dtype in LOW_PRECISION_DTYPES else chosen.dtype
        self.auto_model, self.tokenizer = load_backbone(
            str(model_name_or_path), model_kwargs=model_kwargs, processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs, cache_folder=cache_folder,
        )
        self.precision: PrecisionChoice = chosen or resolve_precision(
            "auto", device, sum(parameter.numel() for parameter in self.auto_model.parameters()))
        if self.precision.dtype in LOW_PRECISION_DTYPES:
            set_compute_dtype(self.auto_model, self.precision.dtype)
        elif self.auto_model.dtype != torch.float32:
            self.auto_model.float()  # "auto" chose float32 for a 16-bit checkpoint: exact
        self.base_model = base_model or str(model_name_or_path)
        self.base_model_revision = base_model_revision or (model_kwargs or {}).get("revision")
        self.weights = weights or default_weights_mode(str(model_name_or_path))
        self.num_layers = num_decoder_layers(self.auto_model)
        self.runner = PromptRunner(self.auto_model, self.num_layers)
        self._quantized: str | None = None
        self.recipe = recipe

    # -- the recipe ----------------------------------------------------------------------------------------------

    @property
    def recipe(self) -> Recipe:
        """What this module computes."""
        return self._recipe

    @recipe.setter
    def recipe(self, recipe: Recipe) -> None:
        # Everything is checked against this model before anything changes; int8 (irreversible) comes last.
        context = MethodContext(self.auto_model, self.tokenizer, self.num_layers, recipe.max_seq_length,
                                recipe.max_tokens_per_forward, self.runner.pass_position_ids)
        methods = bind_methods(recipe, context)
        prompting = Prompting(self.tokenizer, recipe, self.num_layers, methods, self.runner.caches_prefixes)
        self._set_quantized(recipe.quantize)
        self._recipe, self._prompting = recipe, prompting

    def _set_quantized(self, mode: str | None, skip: Iterable[str] = quantization.DEFAULT_INT8_SKIP) -> list[str]:
        quantization.check_quantize_mode(mode)
        if mode == self._quantized:
            return []
        replaced = quantization.to_int8(self.auto_model, self._quantized, skip)  # raises when already int8
        self.runner.clear_prefix_cache()  # prefix keys/values computed in float32 would not match the int8 model
        self._quantized = mode
        return replaced

    def quantize_weights(self, skip: Iterable[str] = quantization.DEFAULT_INT8_SKIP) -> list[str]:
        """int8 mode with a choice of Linear layers kept in float32 (attribute names such as ``"down_proj"``);
        returns the layers made int8. ``quantize="int8"`` is this with none kept; other choices exist to measure
        variants (benchmarks/int8_variants.py) and are not recorded in a saved folder."""
        replaced = self._set_quantized("int8", skip)
        self.recipe = self.recipe.replace(quantize="int8")
        return replaced

    @property
    def template_set(self) -> TemplateSet:
        """The prompt templates every text is wrapped in (unless its task has its own)."""
        return self.recipe.templates

    @template_set.setter
    def template_set(self, value: TemplateSpec) -> None:
        self.recipe = self.recipe.replace(templates=value)

    @property
    def task_template_sets(self) -> dict[str, TemplateSet]:
        """Template sets used instead of the default one for a sentence-transformers ``task`` (e.g. "query")."""
        return dict(self.recipe.task_templates)

    @task_template_sets.setter
    def task_template_sets(self, value: Mapping[str, TemplateSpec] | None) -> None:
        self.recipe = self.recipe.replace(task_templates=value or {})

    @property
    def effective_layer(self) -> int | list[int] | dict[str, int]:
        """The layer(s) read for the default template set: the configured layer, -1 when neither it nor the set
        names one, else each meta-task's layer (``{meta_task: layer}``)."""
        return self.recipe.effective_layer

    def prompt_tokenizer(self, task: str | None = None) -> PromptTokenizer:
        """The prompt tokenizer of ``task``'s template set (the default set's for None or a task without one)."""
        return self._prompting.tokenizer_for(task)

    # -- run-time switches (no effect on the vectors) -------------------------------------------------------------
    @property
    def packing(self) -> bool:
        """Whether rows run packed end to end (``core/packing.py``; on where the architecture allows it)."""
        return self.runner.packing

    @packing.setter
    def packing(self, value: bool) -> None:
        self.runner.packing = value

    @property
    def shared_text(self) -> bool:
        """Whether a text's prompts that agree up to the end of the text (text-first templates) compute that part
        once (``core/shared_text.py``; on where packing is possible)."""
        return self.runner.shared_text

    @shared_text.setter
    def shared_text(self, value: bool) -> None:
        self.runner.shared_text = value

    def clear_prefix_cache(self) -> None:
        """Drop the cached template prefixes; they are computed again on the next call."""
        self.runner.clear_prefix_cache()

    @property
    def weights(self) -> str:
        """``"copy"`` or ``"reference"``: whether :meth:`save` writes the LLM's weights or only names its hub id."""
        return self._weights

    @weights.setter
    def weights(self, value: str) -> None:
        check_weights_mode(value, self.base_model)
        self._weights = value

    def get_embedding_dimension(self) -> int:
        """Size of the LLM's hidden state, which is the embedding size."""
        return int(self.auto_model.config.hidden_size)

    # -- inference -----------------------------------------------------------------------------------------------

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, task: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Expand each text into its K filled prompts and tokenise them (``core/prompting.py``).

        ``task`` (``encode_query`` passes "query", ``encode_document`` "document") selects that task's template set
        when one is configured, else the default set; a ``prompt`` goes in front of the text inside the slot.
        """
        return self._prompting.features(inputs, prompt, task)

    def forward(self, features: dict[str, Any], all_layers: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Run the LLM on all prompts and average each text's K last-token states (float32).

        With ``all_layers=True`` the output also holds ``layer_embeddings`` of shape ``(texts, num_layers + 1,
        hidden)``: the prompt mean at every layer (``hidden_states`` numbering), read from the same pass.
        """
        plan = features["prompt_layers"]
        read_layers = tuple(range(self.num_layers + 1)) if all_layers else layers_needed(plan)
        with torch.no_grad():
            states = self.runner.run(features, read_layers, self._prompting.methods, self.recipe.max_tokens_per_forward)
        pooled = pool_prompts(states, read_layers, plan, int(features["num_prompts"]), features.get("prompt_weights"),
                              all_layers)
        counts = features.get("window_counts")
        if counts is not None:  # chunked pooling: each text's vectors are the mean over its windows
            pooled = {key: mean_over_windows(value, counts) for key, value in pooled.items()}
        features.update(pooled)
        return features

    # -- persistence ---------------------------------------------------------------------------------------------

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.recipe.to_config(), "base_model": self.base_model,
                "base_model_revision": self.base_model_revision, "weights": self.weights}

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Write ``metaeol_config.json`` into ``output_path``, and with ``weights="copy"`` also the LLM
        (safetensors) and its tokenizer; a ``"reference"`` folder names the base model's hub id instead."""
        if self.weights == "copy":
            # An int8 model is written as the float32 weights it computes with; loading quantizes them again to
            # the same int8 values (its config records quantize="int8").
            state_dict = quantization.dequantized_state_dict(self.auto_model) if self.quantize else None
            self.auto_model.save_pretrained(output_path, state_dict=state_dict, safe_serialization=safe_serialization)
            self.tokenizer.save_pretrained(output_path)
        self.save_config(output_path)
        declare_requirement(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> MetaEOL:
        """Load the module saved in a model folder. ``trust_remote_code`` given to ``SentenceTransformer`` only
        imports this class (pass ``model_kwargs={"trust_remote_code": True}`` for the LLM); only the known keys of
        ``metaeol_config.json`` are read, so a folder cannot redirect loading to other files or options."""
        hub = dict(token=token, cache_folder=cache_folder, revision=revision, local_files_only=local_files_only)
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            logger.warning("Ignoring unknown keys %s in %s", unknown, cls.config_file_name)
        if config.get("weights") == "reference":  # a weightless folder: the LLM comes from its hub id
            source, model_kwargs = reference_source(config, model_kwargs, token, local_files_only)
        else:
            source = cls.load_dir_path(model_name_or_path, subfolder=subfolder, **hub)
        return cls(
            source, Recipe.from_config(config), model_kwargs=model_kwargs, processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs, cache_folder=cache_folder, base_model=config.get("base_model"),
            base_model_revision=config.get("base_model_revision"), weights=config.get("weights"),
        )

    def __repr__(self) -> str:
        return (
            f"MetaEOL(architecture={type(self.auto_model).__name__}, base_model={self.base_model!r}, "
            f"templates={self.template_set.name!r} ({len(self.template_set)} prompts), "
            f"task_templates={sorted(self.recipe.task_templates)}, layer={self.effective_layer}, "
            f"max_seq_length={self.max_seq_length}"
            + ("" if self.chunk_tokens is None else f", chunk_tokens={self.chunk_tokens}")
            + f", dtype={self.precision.describe()})"
        )


# Every recipe option is an attribute of the module (``module.readout = "slot-mean"``), made from the recipe's own list
# so that a new option cannot be left out.
for _option in Recipe.option_names():
    setattr(MetaEOL, _option, _recipe_option(_option))
del _option

# The type string sentence-transformers writes into modules.json for this module.
MODULE_TYPE = f"{MetaEOL.__module__}.{MetaEOL.__name__}"
