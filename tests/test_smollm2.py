"""The offline default model, SmolLM2-135M, against an independent plain-transformers computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import metaeol_integrations
from metaeol_integrations import METAEOL_TEMPLATES
from metaeol_integrations.cli.main import main as cli_main
from tests.reference import assert_batch_invariant, full_prompt_ids, reference_embedding

pytestmark = pytest.mark.slow  # the real SmolLM2

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument",
    "Is the stock market going to fall?",
    'The sign read "closed" {sentence}',
    "",
    "Three people are walking along a beach at sunset while a dog runs ahead of them chasing the waves.",
]
TEMPLATES = [t.text for t in METAEOL_TEMPLATES.templates]


def test_embeddings_equal_plain_transformers_one_prompt_at_a_time(smollm2, smollm2_reference):
    got = smollm2.encode(SENTENCES, batch_size=4, convert_to_tensor=True)
    expected = torch.stack([reference_embedding(*smollm2_reference, s, TEMPLATES) for s in SENTENCES])
    assert got.shape == (len(SENTENCES), 576)
    relative = (got - expected).norm(dim=1) / expected.norm(dim=1)
    assert relative.max().item() <= 1e-4, relative
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_dequantised_cache_tokenises_like_the_gguf(smollm2, smollm2_reference):
    _, reference_tokenizer = smollm2_reference
    for text in ['In this task, "quoted" text?', "emoji 🙂 and accents: déjà vu", "  spaces  "]:
        assert smollm2.tokenizer(text)["input_ids"] == reference_tokenizer(text)["input_ids"]


def test_batch_size_and_order_do_not_change_vectors(smollm2):
    texts = SENTENCES + ["Short.", "A somewhat longer sentence that is about the weather and the mountains."]
    assert_batch_invariant(smollm2, texts, seed=1, rtol=1e-4, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(smollm2):
    e = smollm2.encode(
        ["A man is playing a guitar.", "A man plays the guitar.", "The stock market fell sharply today."],
        normalize_embeddings=True,
    )
    assert e[0] @ e[1] > e[0] @ e[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported") / "metaeol-smollm2"
    assert cli_main(["export", "metaeol-smollm2-135m", str(folder)]) == 0
    return folder


def test_exported_folder_loads_in_plain_sentence_transformers(smollm2, exported):
    x = SENTENCES[:4]
    reloaded = SentenceTransformer(str(exported), trust_remote_code=True, device="cpu")
    np.testing.assert_array_equal(reloaded.encode(x), metaeol_integrations.load("metaeol-smollm2-135m").encode(x))
    # The default preset ships its centering: the exported folder is the paper's vectors with that mean removed
    # (tests/test_shipped_center.py checks the arithmetic).
    assert type(reloaded[1]).__name__ == "CorpusCenter" and reloaded[1].num_texts == 1000
    paper = smollm2.encode(x, convert_to_tensor=True)
    np.testing.assert_allclose(reloaded.encode(x), reloaded[1]({"sentence_embedding": paper})["sentence_embedding"],
                               rtol=1e-5, atol=1e-5)


def test_truncated_long_text_keeps_the_template_tail(smollm2):
    smollm2.max_seq_length = 128
    try:
        features = smollm2[0].preprocess(["word " * 2000])
        vector = smollm2.encode(["word " * 2000])
    finally:
        smollm2.max_seq_length = 512
    prompts = full_prompt_ids(features)
    assert max(len(ids) for ids in prompts) <= 128
    assert np.isfinite(vector).all()
    tail = smollm2.tokenizer.convert_ids_to_tokens([ids[-1] for ids in prompts])
    assert set(tail) == {':"'}
