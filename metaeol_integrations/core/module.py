"""The MetaEOL sentence-transformers input module: prompting, the frozen LLM, and last-token mean pooling."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from sentence_transformers.base.modules import InputModule

from metaeol_integrations.core.backbone import (
    RowPositions,
    accepts_position_ids,
    decoder_layers,
    input_at_last_token,
    is_hub_id,
    last_token_states,
    load_backbone,
    resolve_layers,
)
from metaeol_integrations.core.batching import PACK_TOKENS, group_rows, length_buckets, token_packs
from metaeol_integrations.core.chunking import mean_over_windows, split_into_windows
from metaeol_integrations.core.packing import PACKED_ATTENTION, can_pack, fits_window
from metaeol_integrations.core.prefix_cache import PrefixKVStore, cache_argument_name
from metaeol_integrations.core.quantization import check_quantize_mode, dequantized_state_dict, quantize_int8
from metaeol_integrations.core.templates import TemplateSet, TemplateSpec, effective_layer
from metaeol_integrations.core.contrastive import ContrastivePrompting, output_projection
from metaeol_integrations.core.token_prepending import (
    TokenPrepending,
    embed_with_placeholder,
    placeholder_positions,
)
from metaeol_integrations.core.tokenization import PromptTokenizer, pad_batch
from metaeol_integrations.errors import QuantizationError, WeightsModeError

logger = logging.getLogger(__name__)

DISTRIBUTION_NAME = "metaeol-integrations"
WEIGHTS_MODES = ("reference", "copy")


def _num_decoder_layers(model: torch.nn.Module) -> int:
    configured = getattr(model.config, "num_hidden_layers", None)
    return int(configured) if configured else len(decoder_layers(model))


class MetaEOL(InputModule):
    """Embed each text as the mean, over K prompt templates, of the LLM's last-token hidden state.

    Args:
        model_name_or_path: The base decoder-only LLM: a local folder, a ``.gguf`` file, or a hub id.
        templates: A :class:`TemplateSet`, ``"metaeol"`` (the paper's 8 templates), ``"prompteol"``, a dict
            ``{meta_task: [template, ...]}`` or a list of templates, each with one ``{sentence}`` slot.
        task_templates: Template sets for sentence-transformers tasks, e.g. ``{"query": "prompteol"}``: texts encoded
            with ``encode_query`` (task "query") use that set, all others the default ``templates``.
        layer: Output layer in ``transformers``' ``hidden_states`` numbering (``-1`` = final normed output, as in
            the paper's code), or a list of layers whose states are averaged, for every template. ``None``
            (default): each template's own published layer (``-2`` for PCoT and KE), else ``-1``.
        max_seq_length: Longest prompt in tokens; longer prompts lose tokens from the end of the sentence only.
        model_kwargs: Passed to ``AutoModel.from_pretrained`` (``dtype``, ``attn_implementation``, ...);
            ``trust_remote_code`` and ``use_safetensors=False`` are honoured only from here.
        processor_kwargs: Passed to ``AutoTokenizer.from_pretrained``.
        config_kwargs: Passed to ``AutoConfig.from_pretrained``.
        cache_folder: Where hub downloads and dequantised GGUF copies go.
        base_model: Where the weights originally came from, kept as information in the saved config.
        prefix_cache: Compute each template's shared prefix once and run only the rest of each prompt against its
            keys and values (same vectors within float tolerance, several times fewer tokens). ``False`` runs
            every prompt whole.
        max_tokens_per_forward: Cap on padded tokens in one forward call; bounds memory for long or many texts.
        base_model_revision: The hub revision of ``base_model`` (default: ``model_kwargs["revision"]``).
        weights: How :meth:`save` stores the LLM: ``"copy"`` writes its weights and tokenizer into the folder;
            ``"reference"`` writes none and records ``base_model`` (a hub id) and its revision, so loading fetches
            the base through the normal hub cache. Default: ``"reference"`` when the LLM was loaded by hub id,
            else ``"copy"``.
        token_prepending: Token Prepending (``core/token_prepending.py``) for every template: ``True`` (copy before
            decoder layers 1..6, the published LLaMA2-7B range) or ``(start, exit)`` (0-based, exit exclusive).
        contrastive: Contrastive Prompting (``core/contrastive.py``): ``True`` (layer 4, NS, alpha 2) or a mapping
            ``{"layer": 0-based decoder layer, "mode": "ns" | "nr", "alpha": float}``.
        quantize: ``"int8"`` computes the decoder's Linear layers in int8 on the CPU (``core/quantization.py``;
            faster, slightly different vectors; float32 weights only). None (default): exact float32.
        chunk_tokens: Chunked pooling (``core/chunking.py``): a text longer than this many tokens is embedded as
            consecutive windows of this many tokens, each prompted, and gets the mean of their vectors. None
            (default): one pass per text, long texts truncated inside the slot.
    """

    config_keys = [
        "templates", "task_templates", "layer", "max_seq_length", "base_model", "base_model_revision", "weights",
        "prefix_cache", "max_tokens_per_forward", "token_prepending", "contrastive", "quantize", "chunk_tokens",
    ]
    config_file_name = "metaeol_config.json"
    save_in_root = True
    # encode(..., all_layers=True) reaches forward(): the evaluation reads every layer from one pass.
    forward_kwargs = {"all_layers"}

    def __init__(
        self,
        model_name_or_path: str,
        *,
        templates: TemplateSpec = "metaeol",
        task_templates: Mapping[str, TemplateSpec] | None = None,
        layer: int | Sequence[int] | None = None,
        max_seq_length: int = 512,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_folder: str | None = None,
        base_model: str | None = None,
        prefix_cache: bool = True,
        max_tokens_per_forward: int = 8192,
        base_model_revision: str | None = None,
        weights: str | None = None,
        token_prepending: bool | Sequence[int] | None = None,
        contrastive: bool | Mapping[str, Any] | None = None,
        quantize: str | None = None,
        chunk_tokens: int | None = None,
    ) -> None:
        super().__init__()
        self.chunk_tokens = chunk_tokens
        self.auto_model, self.tokenizer = load_backbone(
            str(model_name_or_path),
            model_kwargs=model_kwargs,
            processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs,
            cache_folder=cache_folder,
        )
        self.base_model = base_model or str(model_name_or_path)
        self.base_model_revision = base_model_revision or (model_kwargs or {}).get("revision")
        self.weights = weights or ("reference" if is_hub_id(str(model_name_or_path)) else "copy")
        self.num_layers = _num_decoder_layers(self.auto_model)
        self._pass_position_ids = accepts_position_ids(self.auto_model)
        self._cache_argument = cache_argument_name(self.auto_model)
        # Rows of one template run end to end, without padding, where the architecture allows it (core/packing.py).
        self._packing = self._pass_position_ids and can_pack(self.auto_model)
        if self._packing:
            self.auto_model.set_attn_implementation(PACKED_ATTENTION)
        self._prefix_store = PrefixKVStore()
        self._quantize = None
        self.quantize = quantize
        self.prefix_cache = bool(prefix_cache)
        self.max_tokens_per_forward = int(max_tokens_per_forward)
        self.layer = layer
        self._token_prepending = None
        self._configure(templates, task_templates or {}, int(max_seq_length),
                        TokenPrepending.coerce(token_prepending))
        self.contrastive = contrastive

    def _configure(
        self, templates: TemplateSpec, task_templates: Mapping[str, TemplateSpec], max_seq_length: int,
        token_prepending: TokenPrepending | None = None,
    ) -> None:
        """Validate everything first, then swap it in, so a rejected setting leaves the module unchanged.

        The prompt tokenizers are the only copy of the template sets and ``max_seq_length``; the properties read
        them from there.
        """
        if token_prepending is not None:
            token_prepending.check(self.num_layers)
        placeholder = token_prepending is not None
        by_task = {
            task: PromptTokenizer(self.tokenizer, TemplateSet.coerce(spec), max_seq_length, placeholder)
            for task, spec in task_templates.items()
        }
        default = PromptTokenizer(self.tokenizer, TemplateSet.coerce(templates), max_seq_length, placeholder)
        for prompts in (default, *by_task.values()):
            for own_layer in prompts.templates.prompt_layers():
                if own_layer is not None:
                    resolve_layers(own_layer, self.num_layers)  # a set's own layer must exist in this model
        self._prompt_tokenizer, self._task_prompt_tokenizers = default, by_task
        self._token_prepending = token_prepending

    # -- configuration -------------------------------------------------------------------------------------------

    @property
    def chunk_tokens(self) -> int | None:
        """Window size of chunked pooling in tokens (``core/chunking.py``), or None for whole texts."""
        return self._chunk_tokens

    @chunk_tokens.setter
    def chunk_tokens(self, value: int | None) -> None:
        # A setter, so folder overrides and apply_settings() are checked as the constructor is.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"chunk_tokens must be a positive number of tokens, not {value!r}. Fix: e.g. 128.")
        self._chunk_tokens = value

    @property
    def quantize(self) -> str | None:
        """``"int8"`` when the decoder's Linear layers compute in int8 (``core/quantization.py``), else None."""
        return self._quantize

    @quantize.setter
    def quantize(self, value: str | None) -> None:
        check_quantize_mode(value)
        if value == self._quantize:
            return
        if self._quantize is not None:
            raise QuantizationError(
                "This model's weights are already int8; they cannot be made float32 again in place. Fix: load the "
                "model again without quantize."
            )
        quantize_int8(self.auto_model)
        self._prefix_store.clear()  # prefix keys/values computed in float32 would not match the int8 model
        self._quantize = value

    @property
    def layer(self) -> int | list[int] | None:
        """The configured output layer(s), as given; None: each template's own layer, else -1."""
        return self._layer

    @layer.setter
    def layer(self, value: int | Sequence[int] | None) -> None:
        self._layers = None if value is None else resolve_layers(value, self.num_layers)
        self._layer = value if value is None or isinstance(value, int) else list(value)

    @property
    def effective_layer(self) -> int | list[int] | dict[str, int]:
        """The layer(s) actually read for the default template set: the configured layer, -1 when neither it nor
        the set names one, else each meta-task's layer (``{meta_task: layer}``)."""
        return effective_layer(self.template_set, self._layer)

    def _layer_plan(self, templates: TemplateSet) -> tuple[tuple[int, ...], ...]:
        """For each template, the resolved layers whose (mean) state is its vector."""
        if self._layers is not None:
            return (self._layers,) * len(templates)
        return tuple(resolve_layers(-1 if own is None else own, self.num_layers) for own in templates.prompt_layers())

    @property
    def weights(self) -> str:
        """``"copy"`` or ``"reference"``: whether :meth:`save` writes the LLM's weights or only names its hub id."""
        return self._weights

    @weights.setter
    def weights(self, value: str) -> None:
        check_weights_mode(value, self.base_model)
        self._weights = value

    @property
    def token_prepending(self) -> list[int] | None:
        """``[start, exit]`` of Token Prepending (as saved in ``metaeol_config.json``), or None when off."""
        return None if self._token_prepending is None else self._token_prepending.to_config()

    @token_prepending.setter
    def token_prepending(self, value: bool | Sequence[int] | None) -> None:
        self._configure(self.template_set, self.task_template_sets, self.max_seq_length, TokenPrepending.coerce(value))

    @property
    def contrastive(self) -> dict[str, Any] | None:
        """The Contrastive Prompting settings (as saved in ``metaeol_config.json``), or None when off."""
        return None if self._contrastive is None else self._contrastive.to_config()

    @contrastive.setter
    def contrastive(self, value: bool | Mapping[str, Any] | None) -> None:
        config = ContrastivePrompting.coerce(value)
        auxiliary = None
        if config is not None:
            config.check(self.num_layers)
            output_projection(decoder_layers(self.auto_model)[config.layer])  # fails early without an o_proj
            auxiliary = PromptTokenizer(self.tokenizer, TemplateSet.coerce(config.auxiliary), self.max_seq_length)
        self._contrastive, self._auxiliary_tokenizer = config, auxiliary

    @property
    def template_set(self) -> TemplateSet:
        """The prompt templates every text is wrapped in (unless its task has its own)."""
        return self._prompt_tokenizer.templates

    @template_set.setter
    def template_set(self, value: TemplateSpec) -> None:
        self._configure(value, self.task_template_sets, self.max_seq_length, self._token_prepending)

    @property
    def task_template_sets(self) -> dict[str, TemplateSet]:
        """Template sets used instead of the default one for a sentence-transformers ``task`` (e.g. "query")."""
        return {task: prompts.templates for task, prompts in self._task_prompt_tokenizers.items()}

    @task_template_sets.setter
    def task_template_sets(self, value: Mapping[str, TemplateSpec]) -> None:
        self._configure(self.template_set, value or {}, self.max_seq_length, self._token_prepending)

    @property
    def templates(self) -> dict[str, Any]:
        """The default template set as saved in ``metaeol_config.json``."""
        return self.template_set.to_dict()

    @property
    def task_templates(self) -> dict[str, Any]:
        """The per-task template sets as saved in ``metaeol_config.json``."""
        return {task: template_set.to_dict() for task, template_set in self.task_template_sets.items()}

    @property
    def max_seq_length(self) -> int:
        """Longest prompt in tokens, template included."""
        return self._prompt_tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self._configure(self.template_set, self.task_template_sets, int(value), self._token_prepending)
        self.contrastive = self._contrastive  # its auxiliary prompt's tokenizer has the same limit

    def get_embedding_dimension(self) -> int:
        """Size of the LLM's hidden state, which is the embedding size."""
        return int(self.auto_model.config.hidden_size)

    # -- inference -----------------------------------------------------------------------------------------------

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, task: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Expand each text into its K filled prompts and tokenise them (padded on the tokenizer's side).

        A sentence-transformers ``prompt`` is put in front of the sentence inside the slot, so it never
        displaces the template. ``task`` (``encode_query`` passes "query", ``encode_document`` "document")
        selects that task's template set when one is configured, else the default set.
        """
        texts = list(inputs)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"MetaEOL embeds strings, but input {index} is a {type(text).__name__}. "
                    "Fix: pass a string or a list of strings."
                )
        window_counts = None
        if self.chunk_tokens is not None:
            texts, window_counts = split_into_windows(texts, self.tokenizer, self.chunk_tokens)
        prompt_tokenizer = self._task_prompt_tokenizers.get(task, self._prompt_tokenizer)
        batch = prompt_tokenizer.tokenize(texts, prefix=prompt or "")
        use_cache = self.prefix_cache and self._cache_argument is not None
        rows = [
            prompt_tokenizer.split_prefix(row, ids) if use_cache else (-1, ids)
            for row, ids in enumerate(batch.input_ids)
        ]
        # Right padding: every row's real tokens start at column 0, so a chunk can drop its trailing pad columns.
        padded = pad_batch([ids for _, ids in rows], self.tokenizer.pad_token_id, "right")
        templates = prompt_tokenizer.templates
        auxiliary = {}
        if self._contrastive is not None:
            aux = pad_batch(self._auxiliary_tokenizer.tokenize(texts, prefix=prompt or "").input_ids,
                            self.tokenizer.pad_token_id, "right")
            auxiliary = {"aux_input_ids": aux["input_ids"], "aux_attention_mask": aux["attention_mask"]}
        return {
            **padded,
            **auxiliary,
            "prefix_index": torch.tensor([index for index, _ in rows], dtype=torch.long),
            "prefixes": prompt_tokenizer.shared_prefixes,
            "num_prompts": batch.num_prompts,
            "prompt_layers": self._layer_plan(templates),
            # None: the plain mean over prompts (bit for bit as before ensembles existed).
            "prompt_weights": None if templates.is_uniform else templates.prompt_weights(),
            # Chunked pooling: how many consecutive windows belong to each input text (None: one per text).
            "window_counts": window_counts,
        }

    def forward(self, features: dict[str, Any], all_layers: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Run the LLM on all prompts and average each text's K last-token states (float32).

        Rows sharing a cached template prefix run together against its keys and values; each group is split into
        packs of at most ``min(PACK_TOKENS, max_tokens_per_forward)`` real tokens run end to end (core/packing.py),
        or, where the model cannot be packed, length-sorted chunks of at most ``max_tokens_per_forward`` padded
        tokens. With ``all_layers=True`` the
        output also holds ``layer_embeddings`` of shape ``(texts, num_layers + 1, hidden)``: the prompt mean at
        every layer (``hidden_states`` numbering), read from the same pass.
        """
        num_prompts = int(features["num_prompts"])
        plan = features["prompt_layers"]  # each prompt's layers, from preprocess
        needed = tuple(sorted({layer for layers in plan for layer in layers}))
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        lengths = attention_mask.sum(dim=1)
        read_layers = tuple(range(self.num_layers + 1)) if all_layers else needed
        states = torch.empty(
            len(read_layers), input_ids.shape[0], self.get_embedding_dimension(), device=input_ids.device
        )
        with torch.no_grad():
            auxiliary = self._auxiliary_vectors(features)
            for prefix_index, group in group_rows(features["prefix_index"]):
                prefix_cache = None
                if prefix_index >= 0:
                    prefix = tuple(features["prefixes"][prefix_index])
                    prefix_cache = self._prefix_store.get(self.auto_model, prefix, self._cache_argument)
                prefix_length = 0 if prefix_cache is None else prefix_cache.get_seq_length()
                packed = self._packing and fits_window(self.auto_model, prefix_length + int(lengths[group].max()))
                chunks = (token_packs(lengths[group], min(PACK_TOKENS, self.max_tokens_per_forward)) if packed
                          else length_buckets(lengths[group], self.max_tokens_per_forward))
                for chunk in chunks:
                    rows = group[chunk]
                    width = int(lengths[rows].max())
                    chunk_ids = input_ids[rows, :width]
                    states[:, rows] = last_token_states(
                        self.auto_model,
                        chunk_ids,
                        attention_mask[rows, :width],
                        read_layers,
                        self.num_layers,
                        self._pass_position_ids,
                        prefix_cache=prefix_cache,
                        cache_argument=self._cache_argument,
                        average_layers=False,
                        packed=packed,
                        **self._method_inputs(chunk_ids, rows, num_prompts, auxiliary),
                    )
        weights = features.get("prompt_weights")
        weights = None if weights is None else torch.tensor(weights, dtype=states.dtype, device=states.device)
        if all_layers:
            # (layers, texts * K, hidden) -> (texts, layers, hidden), pooled over each text's K prompts.
            by_text = states.view(states.shape[0], -1, num_prompts, states.shape[-1])
            pooled = by_text.mean(dim=2) if weights is None else (by_text * weights.view(1, 1, -1, 1)).sum(dim=2)
            features["layer_embeddings"] = pooled.transpose(0, 1)
            states = states[list(needed)]
        by_prompt = states.view(len(needed), -1, num_prompts, states.shape[-1])
        if len(set(plan)) == 1:
            per_prompt = by_prompt.mean(dim=0)
        else:
            # Templates read different layers (e.g. metaeol+ke: -1 and -2): each takes the mean of its own.
            share = torch.tensor([[1.0 / len(layers) if layer in layers else 0.0 for layer in needed] for layers in plan],
                                 dtype=states.dtype, device=states.device)
            per_prompt = torch.einsum("jtkh,kj->tkh", by_prompt, share)
        features["prompt_embeddings"] = per_prompt
        features["sentence_embedding"] = (
            per_prompt.mean(dim=1) if weights is None else (per_prompt * weights.view(1, -1, 1)).sum(dim=1)
        )
        counts = features.get("window_counts")
        if counts is not None:  # chunked pooling: each text's vectors are the mean over its windows
            for key in ("sentence_embedding", "prompt_embeddings", "layer_embeddings"):
                if key in features:
                    features[key] = mean_over_windows(features[key], counts)
        return features

    def _auxiliary_vectors(self, features: dict[str, Any]) -> torch.Tensor | None:
        """Contrastive Prompting's ``v_aux`` per text: one auxiliary pass for all templates, stopped at the layer."""
        if self._contrastive is None:
            return None
        target = output_projection(decoder_layers(self.auto_model)[self._contrastive.layer])
        ids, mask = features["aux_input_ids"], features["aux_attention_mask"]
        vectors = []
        for chunk in length_buckets(mask.sum(dim=1), self.max_tokens_per_forward):
            width = int(mask[chunk].sum(dim=1).max())
            vectors.append((chunk, input_at_last_token(self.auto_model, ids[chunk, :width], mask[chunk, :width],
                                                       target, self._pass_position_ids)))
        out = torch.empty(ids.shape[0], vectors[0][1].shape[-1], device=ids.device)
        for chunk, values in vectors:
            out[chunk] = values
        return out

    def _method_inputs(
        self, chunk_ids: torch.Tensor, rows: torch.Tensor, num_prompts: int, auxiliary: torch.Tensor | None
    ) -> dict[str, Any]:
        """What the active prompting methods add to one forward call (the seam of ``last_token_states``)."""
        inputs: dict[str, Any] = {"edits": []}
        layers = decoder_layers(self.auto_model) if (self._token_prepending or self._contrastive) else None
        if self._token_prepending is not None:
            placeholder = placeholder_positions(chunk_ids)

            def copy_last_into_placeholder(hidden: torch.Tensor, at: RowPositions) -> None:
                hidden[at(placeholder)] = hidden[at(at.last)]

            tp = self._token_prepending
            inputs["inputs_embeds"] = embed_with_placeholder(self.auto_model, chunk_ids)
            inputs["edits"] += [(layers[i], copy_last_into_placeholder) for i in range(tp.start, tp.exit)]
        if self._contrastive is not None:
            contrastive = self._contrastive
            v_aux = auxiliary[rows // num_prompts]  # rows are text-major: row // K is the text

            def subtract_auxiliary(values: torch.Tensor, at: RowPositions) -> None:
                last = at(at.last)
                values[last] = contrastive.combine(values[last].float(), v_aux).to(values.dtype)

            inputs["edits"].append((output_projection(layers[contrastive.layer]), subtract_auxiliary))
        return inputs

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Write ``metaeol_config.json`` into ``output_path``, and with ``weights="copy"`` also the LLM
        (safetensors) and its tokenizer; a ``"reference"`` folder names the base model's hub id instead."""
        if self.weights == "copy":
            # An int8 model is written as the float32 weights it computes with; loading quantizes them again to
            # the same int8 values (its config records quantize="int8").
            state_dict = dequantized_state_dict(self.auto_model) if self.quantize else None
            self.auto_model.save_pretrained(output_path, state_dict=state_dict, safe_serialization=safe_serialization)
            self.tokenizer.save_pretrained(output_path)
        self.save_config(output_path)
        self._declare_requirement(output_path)

    @staticmethod
    def _declare_requirement(output_path: str) -> None:
        # The module saves in the model root, next to the folder's config_sentence_transformers.json, which
        # sentence-transformers writes before the modules. Declaring the package there makes loading without it
        # fail with an ImportError that names the pip command, before any class lookup.
        from metaeol_integrations import __version__

        path = os.path.join(output_path, "config_sentence_transformers.json")
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        config.setdefault("requirements", {})[DISTRIBUTION_NAME] = {
            "specifier": f">={__version__}",
            "reason": "The MetaEOL module of this model comes from the metaeol-integrations package.",
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)

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
        """Load the module saved in a model folder.

        ``trust_remote_code`` given to ``SentenceTransformer`` only allows importing this class; it is not passed
        on to the base LLM (pass ``model_kwargs={"trust_remote_code": True}`` for that). Only the known keys of
        ``metaeol_config.json`` are read, so a folder cannot redirect loading to other files or options.
        """
        hub = dict(token=token, cache_folder=cache_folder, revision=revision, local_files_only=local_files_only)
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            logger.warning("Ignoring unknown keys %s in %s", unknown, cls.config_file_name)
        settings = {key: config[key] for key in cls.config_keys if key in config}
        if settings.get("weights") == "reference":
            # A weightless folder: the LLM comes from its hub id through the normal transformers cache. The folder's
            # revision/token apply to the folder; the base's revision is the one recorded at export.
            source = str(settings.get("base_model", ""))
            check_weights_mode("reference", source)
            model_kwargs = dict(model_kwargs or {})
            if settings.get("base_model_revision"):
                model_kwargs.setdefault("revision", settings["base_model_revision"])
            for key, value in (("token", token), ("local_files_only", local_files_only)):
                if value:
                    model_kwargs.setdefault(key, value)
        else:
            source = cls.load_dir_path(model_name_or_path, subfolder=subfolder, **hub)
        return cls(
            source,
            model_kwargs=model_kwargs,
            processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs,
            cache_folder=cache_folder,
            **settings,
        )

    def __repr__(self) -> str:
        return (
            f"MetaEOL(architecture={type(self.auto_model).__name__}, base_model={self.base_model!r}, "
            f"templates={self.template_set.name!r} ({len(self.template_set)} prompts), "
            f"task_templates={sorted(self._task_prompt_tokenizers)}, layer={self.effective_layer}, "
            f"max_seq_length={self.max_seq_length}"
            + ("" if self.chunk_tokens is None else f", chunk_tokens={self.chunk_tokens}") + ")"
        )


def check_weights_mode(weights: str, base_model: str) -> None:
    """Raise :class:`WeightsModeError` unless ``weights`` is a mode that can store a model based on ``base_model``."""
    if weights not in WEIGHTS_MODES:
        raise WeightsModeError(f"weights must be 'reference' or 'copy', not {weights!r}.")
    if weights == "reference" and not is_hub_id(base_model):
        raise WeightsModeError(
            f"The base model {base_model!r} is not a hub id (org/name), so a weightless folder cannot point at it. "
            "Fix: save with weights='copy' (CLI: --weights copy), which writes the weights into the folder."
        )
