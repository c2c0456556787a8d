"""Turn sentences into token ids of filled prompts, truncating inside the sentence slot only.

A prompt that fits is tokenised exactly as ``tokenizer(prompt)`` would (the paper's code does that), so the
embedding matches a plain forward pass. A prompt that does not fit keeps the template's head and its
``in one word:"`` tail: tokens are dropped from the end of the sentence, the sentence is cut at the character
where the last kept token ends, and the prompt is tokenised again. The result is therefore always the
tokenisation of a real prompt around a shorter sentence, including any merge across the closing quote.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from metaeol_integrations.core.templates import PromptTemplate, TemplateSet, preprocess_sentence
from metaeol_integrations.core.token_prepending import PLACEHOLDER_ID, split_at_placeholder, with_placeholder
from metaeol_integrations.errors import SequenceLengthError


# Sentences probing how a template's opening quote tokenises before different first characters. Most first
# characters leave the quote a token of its own; some merge with it (e.g. '"-' or '""' in SmolLM2's vocabulary).
# Each distinct length the probes agree on becomes a candidate prefix; every real prompt is checked again and
# uses the longest candidate it really starts with (see split_prefix).
_PREFIX_PROBES = ("a", "", "A", "0", " a", ".", "'", "-", "(", "\u00e9", "\u4e2d", "\U0001f642", "\t", "_x", "{")


@dataclass(frozen=True)
class PromptBatch:
    """Token ids of ``len(texts) * num_prompts`` prompts, text-major (all prompts of text 0 first)."""

    input_ids: list[list[int]]
    num_prompts: int
    truncated: list[bool]
    # Per prompt, [start, end) of the text's own tokens (only when asked for): tokens whose characters overlap the
    # slot; an empty text gets its prompt's last token.
    slot_spans: list[tuple[int, int]] | None = None


def _common_prefix(sequences: Sequence[Sequence[int]]) -> tuple[int, ...]:
    first = sequences[0]
    length = 0
    while length < len(first) and all(len(seq) > length and seq[length] == first[length] for seq in sequences):
        length += 1
    return tuple(first[:length])


class PromptTokenizer:
    """Fills every template with every sentence and tokenises the prompts within ``max_seq_length``.

    With ``placeholder=True`` (Token Prepending) each template gets the ``<PST>`` placeholder, which appears in the
    ids as :data:`~metaeol_integrations.core.token_prepending.PLACEHOLDER_ID`; ``templates`` stays the user's set.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, templates: TemplateSet, max_seq_length: int, placeholder: bool = False
    ) -> None:
        self.tokenizer = tokenizer
        self.templates = templates
        self.placeholder = bool(placeholder)
        self._prompt_templates = tuple(
            with_placeholder(t) if placeholder else t for t in templates.templates
        )
        self.max_seq_length = int(max_seq_length)
        # Rust tokenizers raise "Already borrowed" when two threads use one tokenizer and either changes its
        # settings; a shared model must survive concurrent encode calls.
        self._lock = threading.Lock()
        self._check_templates_fit()
        self.shared_prefixes, self.prefix_candidates = self._shared_prefixes()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; the multi-process pool pickles the model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not self.placeholder:
            with self._lock:
                return self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        # Around the placeholder the way transformers splits text around an added token: the part before with
        # the special tokens (BOS), the part after without.
        parts = [split_at_placeholder(text) for text in texts]
        with self._lock:
            before = self.tokenizer([p[0] for p in parts], add_special_tokens=True)["input_ids"]
            after = self.tokenizer([p[1] for p in parts], add_special_tokens=False)["input_ids"]
        return [first + [PLACEHOLDER_ID] + second for first, second in zip(before, after)]

    def _check_templates_fit(self) -> None:
        empty_prompts = [template.fill("") for template in self._prompt_templates]
        longest = max(len(ids) for ids in self._encode(empty_prompts))
        if self.max_seq_length < longest + 1:
            raise SequenceLengthError(
                f"max_seq_length={self.max_seq_length} cannot hold the longest template ({longest} tokens without "
                f"a sentence) plus one sentence token. Fix: set max_seq_length to at least {longest + 1}."
            )

    def _shared_prefixes(self) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
        """Candidate cached prefixes: all of them (flat), and per template their indices, longest first.

        Computed on whole prompts, never on the template's text alone, because tokenisers can merge the opening
        quote with the sentence's first characters.
        """
        prefixes: list[tuple[int, ...]] = []
        candidates = []
        for template in self._prompt_templates:
            first, *others = self._encode([template.fill(probe) for probe in _PREFIX_PROBES])
            if PLACEHOLDER_ID in first:
                # The placeholder's keys and values depend on the sentence: share only what comes before it.
                cut = first.index(PLACEHOLDER_ID)
                first, others = first[:cut], [ids[:cut] for ids in others]
            lengths = sorted({len(_common_prefix([first, ids])) for ids in others}, reverse=True)
            indices = []
            for length in lengths:
                if length > 0:
                    prefix = tuple(first[:length])
                    # Templates with the same head (text-first sets) share one entry, so their rows run together.
                    if prefix not in prefixes:
                        prefixes.append(prefix)
                    indices.append(prefixes.index(prefix))
            candidates.append(tuple(indices))
        return tuple(prefixes), tuple(candidates)

    def split_prefix(self, row: int, ids: Sequence[int]) -> tuple[int, list[int]]:
        """``(index into shared_prefixes, remaining ids)`` for the longest candidate prefix prompt ``row`` really
        starts with and has tokens after, else ``(-1, all ids)``."""
        for index in self.prefix_candidates[row % len(self.prefix_candidates)]:
            prefix = self.shared_prefixes[index]
            if len(prefix) < len(ids) and tuple(ids[: len(prefix)]) == prefix:
                return index, list(ids[len(prefix) :])
        return -1, list(ids)

    def tokenize(self, texts: Sequence[str], prefix: str = "", slot_spans: bool = False) -> PromptBatch:
        """Tokenise all prompts of ``texts``; ``prefix`` (a sentence-transformers prompt) goes inside the slot.
        ``slot_spans``: also locate each prompt's text tokens (not with the Token Prepending placeholder)."""
        sentences = [preprocess_sentence(text) for text in texts]
        if prefix:
            sentences = [prefix + sentence for sentence in sentences]
        templates = self._prompt_templates
        prompts = [template.fill(sentence) for sentence in sentences for template in templates]
        input_ids = self._encode(prompts)
        truncated = [False] * len(prompts)
        kept = [sentences[row // len(templates)] for row in range(len(prompts))]
        for row, ids in enumerate(input_ids):
            if len(ids) > self.max_seq_length:
                input_ids[row], kept[row] = self._truncate(templates[row % len(templates)], kept[row], len(ids))
                truncated[row] = True
        spans = self._slot_spans(input_ids, kept, len(templates)) if slot_spans else None
        return PromptBatch(input_ids=input_ids, num_prompts=len(templates), truncated=truncated, slot_spans=spans)

    def _slot_spans(self, input_ids: list[list[int]], sentences: list[str], num_prompts: int) -> list[tuple[int, int]]:
        if self.placeholder:
            raise ValueError("Slot spans are not located in prompts with the Token Prepending placeholder.")
        templates = self._prompt_templates
        prompts = [templates[row % num_prompts].fill(sentence) for row, sentence in enumerate(sentences)]
        with self._lock:
            encoded = self.tokenizer(prompts, add_special_tokens=True, return_offsets_mapping=True)
        spans = []
        for row, (ids, offsets) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"])):
            if list(ids) != list(input_ids[row]):
                raise ValueError("A prompt tokenised differently with offsets; cannot locate its text.")
            start = len(templates[row % num_prompts].prefix)
            end = start + len(sentences[row])
            inside = [index for index, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
            spans.append((inside[0], inside[-1] + 1) if inside else (len(ids) - 1, len(ids)))
        return spans

    def _truncate(self, template: PromptTemplate, sentence: str, length: int) -> tuple[list[int], str]:
        """Drop sentence tokens from the end until the filled template fits, keeping the sentence's beginning;
        the prompt's ids and the part of the sentence kept."""
        with self._lock:
            offsets = self.tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        ends = [end for _, end in offsets]
        keep, cut = len(ends), len(sentence)
        while length > self.max_seq_length:
            # Each pass drops at least one token, so the loop ends; the template check in __init__ guarantees an
            # empty sentence fits.
            keep = max(0, min(keep - 1, keep - (length - self.max_seq_length)))
            cut = ends[keep - 1] if keep > 0 else 0
            ids = self._encode([template.fill(sentence[:cut])])[0]
            length = len(ids)
        return ids, sentence[:cut]


def pad_batch(input_ids: Sequence[Sequence[int]], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Pad rows to one length on ``side`` ("left" or "right"); the mask marks real tokens."""
    width = max(len(ids) for ids in input_ids)
    ids_tensor = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, ids in enumerate(input_ids):
        span = slice(width - len(ids), width) if side == "left" else slice(0, len(ids))
        ids_tensor[row, span] = torch.tensor(ids, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids_tensor, "attention_mask": mask}
