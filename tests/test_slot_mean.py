"""readout="slot-mean": each prompt's vector is the mean over the text's own tokens inside the prompt, checked against
plain transformers with the span found by string search in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations import Recipe
from metaeol_integrations.core.templates import PROMPTEOL_TEMPLATES, preprocess_sentence
from metaeol_integrations.errors import TemplateError

TEXTS = ["A man is playing a guitar.", "The quick brown fox jumps over the lazy dog, twice, and then once more.",
         "", "Why?"]


def _slot_states(folder, text, layer=-1):
    """Hidden states (at ``layer``) of the text's tokens in its PromptEOL prompt, by plain transformers."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    template = PROMPTEOL_TEMPLATES.templates[0]
    sentence = preprocess_sentence(text)
    prompt = template.fill(sentence)
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    start = len(template.prefix)
    end = start + len(sentence)
    inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a and a < end and b > start]
    with torch.no_grad():
        states = model(torch.tensor([encoded["input_ids"]]), output_hidden_states=True).hidden_states[layer][0]
    return states[inside] if inside else states[-1:]  # an empty text: the prompt's last token


def _reference(folder, texts, layer=-1):
    return np.stack([_slot_states(folder, text, layer).mean(dim=0).numpy() for text in texts])


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_slot_mean_equals_the_mean_of_the_texts_token_states(tiny_model_dir, prefix_cache):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", readout="slot-mean",
                                      prefix_cache=prefix_cache, device="cpu")
    got = model.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    np.testing.assert_allclose(got, _reference(tiny_model_dir, TEXTS), atol=1e-5)


def test_slot_mean_at_a_layer_and_after_truncation(tiny_model_dir):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", readout="slot-mean", layer=2,
                                      device="cpu")
    np.testing.assert_allclose(model.encode(TEXTS[:2], convert_to_numpy=True),
                               _reference(tiny_model_dir, TEXTS[:2], layer=2), atol=1e-5)
    # Causal attention: the kept text tokens of a truncated prompt have the states of the same tokens in the whole
    # prompt, so the truncated vector is the mean over the first k of them, k = what fits beside the template.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_text = " ".join(["word"] * 200)
    template_tokens = len(tokenizer(PROMPTEOL_TEMPLATES.templates[0].fill(""))["input_ids"])
    model[0].layer = None
    model[0].max_seq_length = 60
    got = model.encode([long_text], convert_to_numpy=True)
    states = _slot_states(tiny_model_dir, long_text)
    assert len(states) > 60 - template_tokens
    np.testing.assert_allclose(got[0], states[: 60 - template_tokens].mean(dim=0).numpy(), atol=1e-5)


def test_slot_mean_does_not_depend_on_batch_neighbours_or_chunks(tiny_model_dir):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", readout="slot-mean", device="cpu")
    together = model.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    alone = np.stack([model.encode([text], convert_to_numpy=True)[0] for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    model[0].chunk_tokens = 4
    windows = model.encode(TEXTS[1:2], convert_to_numpy=True)
    model[0].chunk_tokens = None
    assert not np.allclose(windows, together[1:2], atol=1e-4)  # windows are embedded apart, then averaged


def test_slot_mean_refuses_methods_that_act_on_the_last_token():
    with pytest.raises(TemplateError, match="slot-mean"):
        Recipe(readout="slot-mean", token_prepending=True)
    with pytest.raises(TemplateError, match="slot-mean"):
        Recipe(readout="slot-mean", contrastive=True)
    with pytest.raises(TemplateError, match="readout"):
        Recipe(readout="mean")
