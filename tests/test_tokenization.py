"""Slot-aware truncation: the template's head and its `in one word:"` tail always survive."""

from __future__ import annotations

import pytest

from metaeol_integrations import METAEOL_TEMPLATES, PROMPTEOL_TEMPLATES, SequenceLengthError, preprocess_sentence
from metaeol_integrations.core.tokenization import PromptTokenizer

LONG = "The committee discussed the annual budget in great detail, " * 40


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    return smollm2.tokenizer


def test_prompts_that_fit_are_tokenised_like_the_plain_prompt(tokenizer):
    prompts = PromptTokenizer(tokenizer, METAEOL_TEMPLATES, 512)
    batch = prompts.tokenize(['Hi "there"', "Why?"])
    assert batch.num_prompts == 8 and not any(batch.truncated)
    expected = [
        tokenizer(template.fill(preprocess_sentence(text)))["input_ids"]
        for text in ['Hi "there"', "Why?"]
        for template in METAEOL_TEMPLATES.templates
    ]
    assert batch.input_ids == expected


@pytest.mark.parametrize("max_len", [80, 90, 120])
def test_truncation_cuts_the_sentence_and_keeps_the_tail(tokenizer, max_len):
    prompts = PromptTokenizer(tokenizer, METAEOL_TEMPLATES, max_len)
    batch = prompts.tokenize([LONG, "short."])
    sentence = preprocess_sentence(LONG)
    for row, template in enumerate(METAEOL_TEMPLATES.templates):
        ids = batch.input_ids[row]
        assert batch.truncated[row]
        assert len(ids) <= max_len
        full = tokenizer(template.fill(sentence))["input_ids"]
        # The last 5 tokens are the template's own words after the quote (e.g. ' means',' in',' one',' word',':"').
        assert ids[-5:] == full[-5:]
        text = tokenizer.decode(ids)
        assert text.startswith(template.prefix)
        assert text.endswith(template.suffix)
        kept = text[len(template.prefix) : len(text) - len(template.suffix)]
        assert sentence.startswith(kept)
        skeleton = len(tokenizer(template.fill(""))["input_ids"])
        if max_len - skeleton >= 3:
            assert kept
            # Nothing more than needed was cut (a token or two of slack for merges at the cut).
            assert len(ids) >= max_len - 3
    for row, template in enumerate(METAEOL_TEMPLATES.templates, start=8):
        plain = tokenizer(template.fill("short."))["input_ids"]
        if len(plain) <= max_len:
            assert batch.input_ids[row] == plain and not batch.truncated[row]


def test_truncated_prompt_is_the_plain_tokenisation_of_a_shorter_prompt(tokenizer):
    prompts = PromptTokenizer(tokenizer, PROMPTEOL_TEMPLATES, 24)
    ids = prompts.tokenize([LONG]).input_ids[0]
    assert tokenizer(tokenizer.decode(ids))["input_ids"] == ids


def test_hundred_thousand_characters_fit(tokenizer):
    prompts = PromptTokenizer(tokenizer, METAEOL_TEMPLATES, 128)
    batch = prompts.tokenize(["x" * 100_000])
    assert all(len(ids) <= 128 for ids in batch.input_ids)
    assert all(ids[-1] == batch.input_ids[0][-1] for ids in batch.input_ids)


def test_max_seq_length_too_small_for_the_template_is_a_clear_error(tokenizer):
    with pytest.raises(SequenceLengthError, match="at least"):
        PromptTokenizer(tokenizer, METAEOL_TEMPLATES, 30)
