"""Shared-text execution (core/shared_text.py): text-first prompts compute their text once, and every vector equals
each whole prompt run alone through plain transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metaeol_integrations
from metaeol_integrations.core.templates import BUILTIN_TEMPLATE_SETS
from tests.reference import reference_embedding

TEXTS = [
    "A man is playing a guitar.",
    "Short.",
    "",
    '"quoted" start',
    "-dash first",
    "🙂 emoji and é accent",
    "A considerably longer sentence about the weather in the mountains, the rivers and the valleys. " * 3,
]
LONG = "word " * 400  # truncated inside the slot


def textfirst(path, **options):
    return metaeol_integrations.load(str(path), device="cpu", **{"templates": "metaeol-textfirst", **options})


@pytest.fixture(scope="module")
def tiny_textfirst(tiny_model_dir):
    return textfirst(tiny_model_dir)


def plain_vectors(model_dir, texts, template_set="metaeol-textfirst", layer=-1):
    """Each prompt whole and alone through plain transformers (tests/reference.py), no package code."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    templates = [template.text for template in BUILTIN_TEMPLATE_SETS[template_set].templates]
    return np.stack([reference_embedding(model, tokenizer, text, templates, layer).numpy() for text in texts])


def test_prompts_of_a_text_share_one_cached_prefix_and_the_text(tiny_textfirst):
    features = tiny_textfirst[0].preprocess(["A man is playing a guitar."])
    assert len(set(features["prefix_index"].tolist())) == 1  # identical template prefixes share one cache entry
    ids, lengths = features["input_ids"], features["attention_mask"].sum(1)
    from metaeol_integrations.core.shared_text import texts_of_group

    (text,) = texts_of_group(ids, lengths, torch.arange(8), 8)
    assert text.shared >= len(tiny_textfirst.tokenizer("A man is playing a guitar.")["input_ids"])


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_equals_whole_prompts_run_alone_on_the_tiny_model(tiny_textfirst, tiny_model_dir, batch_size):
    expected = plain_vectors(tiny_model_dir, TEXTS)
    got = tiny_textfirst.encode(TEXTS, batch_size=batch_size)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_neighbours_and_order_do_not_change_a_vector(tiny_textfirst):
    alone = np.stack([tiny_textfirst.encode([text])[0] for text in TEXTS])
    order = [6, 2, 0, 5, 1, 4, 3]
    shuffled = tiny_textfirst.encode([TEXTS[i] for i in order], batch_size=4)
    np.testing.assert_allclose(shuffled, alone[order], rtol=1e-5, atol=1e-5)


def test_shared_path_equals_the_whole_prompt_path_at_every_layer_and_in_ensembles(tiny_model_dir):
    for options in ({"layer": 1}, {"layer": [1, -1]}, {"templates": "metaeol-textfirst+ke-textfirst"},
                    {"templates": "ke-textfirst"}):
        shared = textfirst(tiny_model_dir, **options)
        whole = textfirst(tiny_model_dir, **options, prefix_cache=False)
        np.testing.assert_allclose(shared.encode(TEXTS + [LONG]), whole.encode(TEXTS + [LONG]), rtol=1e-5,
                                   atol=1e-5, err_msg=str(options))


def test_truncation_cuts_the_text_never_a_tail(tiny_textfirst, tiny_model_dir):
    features = tiny_textfirst[0].preprocess([LONG])
    tokenizer = tiny_textfirst.tokenizer
    for row, template in enumerate(BUILTIN_TEMPLATE_SETS["metaeol-textfirst"].templates):
        ids = features["input_ids"][row][features["attention_mask"][row].bool()].tolist()
        ending = tokenizer(template.suffix, add_special_tokens=False)["input_ids"][-6:]
        assert ids[-len(ending):] == ending
    whole = textfirst(tiny_model_dir, prefix_cache=False)
    np.testing.assert_allclose(tiny_textfirst.encode([LONG]), whole.encode([LONG]), rtol=1e-5, atol=1e-5)


def test_switch_off_runs_every_prompt_against_the_template_prefix_only(tiny_model_dir):
    model = textfirst(tiny_model_dir)
    shared = model.encode(TEXTS)
    model[0].shared_text = False
    np.testing.assert_allclose(model.encode(TEXTS), shared, rtol=1e-5, atol=1e-5)


def test_equals_whole_prompts_run_alone_on_smollm2(smollm2, smollm2_reference):
    model, tokenizer = smollm2_reference
    texts = TEXTS[:2] + TEXTS[5:]
    smollm2[0].templates = "metaeol-textfirst"
    try:
        got = smollm2.encode(texts, batch_size=2)
    finally:
        smollm2[0].templates = "metaeol"
    templates = [template.text for template in BUILTIN_TEMPLATE_SETS["metaeol-textfirst"].templates]
    expected = np.stack([reference_embedding(model, tokenizer, text, templates).numpy() for text in texts])
    relative = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() <= 1e-4, relative


TEXT_AT_START = {"no_head": ['{sentence}" means in one word:"', '{sentence}" is about this in one word:"',
                             '{sentence}" , which in one word is:"']}


def test_text_at_the_very_start_without_a_cached_prefix(tiny_model_dir):
    shared = textfirst(tiny_model_dir, templates=TEXT_AT_START)
    assert set(shared[0].preprocess(TEXTS)["prefix_index"].tolist()) == {-1}  # nothing before the text to cache
    whole = textfirst(tiny_model_dir, templates=TEXT_AT_START, prefix_cache=False)
    np.testing.assert_allclose(shared.encode(TEXTS + [LONG], batch_size=3), whole.encode(TEXTS + [LONG]),
                               rtol=1e-5, atol=1e-5)
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    expected = np.stack([reference_embedding(model, tokenizer, text, TEXT_AT_START["no_head"]).numpy()
                         for text in TEXTS])
    np.testing.assert_allclose(shared.encode(TEXTS), expected, rtol=1e-4, atol=1e-4)


def test_the_text_is_computed_once(tiny_model_dir):
    model = textfirst(tiny_model_dir)
    embeddings = model[0].auto_model.get_input_embeddings()
    counted: list[int] = []
    handle = embeddings.register_forward_hook(lambda _m, args, _out: counted.append(int(args[0].numel())))
    text = "A considerably longer sentence about the weather in the mountains, the rivers and the valleys. " * 2
    try:
        model.encode([text])
        shared_tokens = sum(counted)
        counted.clear()
        model[0].shared_text = False
        model.encode([text])
        per_prompt_tokens = sum(counted)
    finally:
        handle.remove()
    text_tokens = len(model.tokenizer(text)["input_ids"])
    # Without sharing the text runs in all 8 prompts; with it, once (plus padding of the tails' row).
    assert per_prompt_tokens - shared_tokens >= 6 * text_tokens, (shared_tokens, per_prompt_tokens, text_tokens)


def test_the_shared_parts_run_packed_without_padding_and_equal_the_padded_call(tiny_model_dir):
    """Stage 1 packs the texts end to end (no padding computed); its keys and values, laid out per text, give the
    vectors the padded stage 1 gives."""
    model = textfirst(tiny_model_dir)
    texts = ["Short.", TEXTS[-1]]
    model.encode(texts)  # the template prefix's keys and values are built and cached here
    embeddings = model[0].auto_model.get_input_embeddings()
    calls: list[tuple[int, ...]] = []
    handle = embeddings.register_forward_hook(lambda _m, args, _out: calls.append(tuple(args[0].shape)))
    try:
        packed = model.encode(texts, batch_size=16)
        packed_calls = list(calls)
        calls.clear()
        model[0].packing = False
        padded = model.encode(texts, batch_size=16)
        padded_calls = list(calls)
    finally:
        handle.remove()
    np.testing.assert_allclose(packed, padded, rtol=1e-5, atol=1e-5)
    # Stage 1 is the first call: one packed row holding both texts' real tokens, against two padded rows.
    assert packed_calls[0][0] == 1 and padded_calls[0][0] == 2
    assert packed_calls[0][1] < padded_calls[0][0] * padded_calls[0][1]
