"""Texts to the features of one forward: filled prompts, their ids split at the cached prefix, and the read plan.

:class:`Prompting` is a recipe applied to one tokenizer and model depth; building it checks everything that can only
be checked there (every layer exists, the templates fit in ``max_seq_length``), so a module swaps in a new recipe only
once its ``Prompting`` was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from metaeol_integrations.core.backbone import resolve_layers
from metaeol_integrations.core.chunking import split_into_windows
from metaeol_integrations.core.methods import BoundMethod, marks_slot
from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.core.templates import TemplateSet
from metaeol_integrations.core.tokenization import PromptTokenizer, pad_batch


class Prompting:
    """The prompt tokenizers of a recipe (default set and per-task sets) and each template's readout layers."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, recipe: Recipe, num_layers: int, methods: Sequence[BoundMethod],
        caches_prefixes: bool,
    ) -> None:
        placeholder = marks_slot(methods)
        self.tokenizer, self.recipe, self.num_layers, self.methods = tokenizer, recipe, num_layers, tuple(methods)
        self.default = PromptTokenizer(tokenizer, recipe.templates, recipe.max_seq_length, placeholder)
        self.by_task = {task: PromptTokenizer(tokenizer, templates, recipe.max_seq_length, placeholder)
                        for task, templates in recipe.task_templates.items()}
        self.layers = None if recipe.layer is None else resolve_layers(recipe.layer, num_layers)
        for prompts in (self.default, *self.by_task.values()):
            for own_layer in prompts.templates.prompt_layers():
                if own_layer is not None:
                    resolve_layers(own_layer, num_layers)  # a set's own layer must exist in this model
        self.use_prefix_cache = recipe.prefix_cache and caches_prefixes

    def tokenizer_for(self, task: str | None) -> PromptTokenizer:
        """The prompt tokenizer of ``task``'s template set, else the default set's."""
        return self.by_task.get(task, self.default)

    def layer_plan(self, templates: TemplateSet) -> tuple[tuple[int, ...], ...]:
        """For each template, the resolved layers whose (mean) state is its vector."""
        if self.layers is not None:
            return (self.layers,) * len(templates)
        return tuple(resolve_layers(-1 if own is None else own, self.num_layers) for own in templates.prompt_layers())

    def features(self, texts: Sequence[str], prompt: str | None = None, task: str | None = None) -> dict[str, Any]:
        """Every text's K filled prompts, tokenised and right-padded, with what the forward needs to pool them.

        A sentence-transformers ``prompt`` goes in front of the text inside the slot, so it never displaces the
        template. With chunked pooling a text becomes its consecutive windows (``window_counts`` per text), except
        for ``task`` "query": a query is one need, and a window of its last few tokens would weigh as much as the rest.
        """
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"MetaEOL embeds strings, but input {index} is a {type(text).__name__}. "
                    "Fix: pass a string or a list of strings."
                )
        window_counts = None
        if self.recipe.chunk_tokens is not None and task != "query":
            texts, window_counts = split_into_windows(texts, self.tokenizer, self.recipe.chunk_tokens)
        prompts = self.tokenizer_for(task)
        slot_mean = self.recipe.readout == "slot-mean"
        batch = prompts.tokenize(texts, prefix=prompt or "", slot_spans=slot_mean)
        rows = [prompts.split_prefix(row, ids) if self.use_prefix_cache else (-1, ids)
                for row, ids in enumerate(batch.input_ids)]
        # Right padding: every row's real tokens start at column 0, so a chunk can drop its trailing pad columns.
        padded = pad_batch([ids for _, ids in rows], self.tokenizer.pad_token_id, "right")
        features: dict[str, Any] = {
            **padded,
            "prefix_index": torch.tensor([index for index, _ in rows], dtype=torch.long),
            "prefixes": prompts.shared_prefixes,
            "num_prompts": batch.num_prompts,
            "prompt_layers": self.layer_plan(prompts.templates),
            # None: the plain mean over prompts (bit for bit as before ensembles existed).
            "prompt_weights": None if prompts.templates.is_uniform else prompts.templates.prompt_weights(),
            "window_counts": window_counts,
            "reuse_keys_values": self.use_prefix_cache,
        }
        if slot_mean:  # the text's tokens, in the columns of what runs after the cached prefix
            shifts = [len(full) - len(rest) for full, (_, rest) in zip(batch.input_ids, rows)]
            features["slot_spans"] = torch.tensor(
                [(max(start - shift, 0), end - shift) for (start, end), shift in zip(batch.slot_spans, shifts)],
                dtype=torch.long)
        for method in self.methods:
            features.update(method.features(texts, prompt or ""))
        return features
