"""Chunked pooling in the MetaEOL module: a long document's vector is the mean of its windows' vectors, each window
embedded as a text of its own by the plain model (independent computation), whatever the batch; queries are whole;
saved with the model; the same vectors the retrieval harness computes from cached windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

import metaeol_integrations
from metaeol_integrations.core.chunking import split_into_windows, token_windows

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Why? Because it can! \"Quotes\" and 'apostrophes'.",
    "short",
    "A man is playing a guitar. Someone plays an instrument. The stock market fell today.",
    "Sentiment, emotion, paraphrase, category, fact, opinion, entity, relation, news, review.",
]


@pytest.fixture(scope="module")
def chunked(tiny_model_dir):
    return metaeol_integrations.load(str(tiny_model_dir), device="cpu", chunk_tokens=6)


@pytest.mark.slow
def test_a_texts_vector_is_the_mean_of_its_windows_embedded_alone(chunked, tiny):
    counts = [len(token_windows(text, tiny[0].tokenizer, 6)) for text in TEXTS]
    assert counts[1] == 1 and min(counts[0], counts[2], counts[3]) > 2
    for encode in ("encode_document", "encode"):
        vectors = getattr(chunked, encode)(TEXTS)
        for text, vector in zip(TEXTS, vectors):
            windows = token_windows(text, tiny[0].tokenizer, 6)
            expected = getattr(tiny, encode)(windows).astype(np.float64).mean(axis=0)
            np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_queries_are_embedded_whole(chunked, tiny):
    """A query is one need: a window of its last token or two would weigh as much as the rest (measured on SciFact
    in docs/retrieval.md), so encode_query ignores chunk_tokens, as the retrieval harness always did."""
    np.testing.assert_allclose(chunked.encode_query(TEXTS), tiny.encode_query(TEXTS), rtol=1e-5, atol=1e-6)
    assert not np.allclose(chunked.encode_document(TEXTS[:1]), tiny.encode_document(TEXTS[:1]), atol=1e-3)


@pytest.mark.slow
def test_chunked_vectors_do_not_depend_on_the_batch(chunked):
    together = chunked.encode(TEXTS, batch_size=4)
    alone = np.stack([chunked.encode([text], batch_size=1)[0] for text in TEXTS])
    pairs = np.stack([chunked.encode(TEXTS[i : i + 2], batch_size=2) for i in (0, 2)]).reshape(len(TEXTS), -1)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together, pairs, rtol=1e-5, atol=1e-6)


def test_every_layer_and_prompt_output_is_pooled_per_text(chunked):
    out = chunked.encode(TEXTS[:2], output_value=None, all_layers=True)
    assert out[0]["layer_embeddings"].shape == (chunked[0].num_layers + 1, 64)
    assert out[0]["prompt_embeddings"].shape == (8, 64)
    np.testing.assert_allclose(out[0]["prompt_embeddings"].mean(dim=0), out[0]["sentence_embedding"], atol=1e-6)


@pytest.mark.slow
def test_chunk_tokens_is_saved_loaded_and_validated(chunked, tiny_model_dir, tmp_path):
    metaeol_integrations.save(chunked, tmp_path / "chunked")
    assert json.loads((tmp_path / "chunked" / "metaeol_config.json").read_text())["chunk_tokens"] == 6
    loaded = metaeol_integrations.load(str(tmp_path / "chunked"))
    np.testing.assert_array_equal(loaded.encode(TEXTS), chunked.encode(TEXTS))
    with pytest.raises(ValueError, match="positive number of tokens"):
        metaeol_integrations.load(str(tiny_model_dir), chunk_tokens=0)
    with pytest.raises(ValueError, match="positive number of tokens"):
        metaeol_integrations.load(str(tmp_path / "chunked"), chunk_tokens=-4)  # a folder override, set on the module


def test_windows_split_a_batch_of_texts_in_order(tiny):
    windows, counts = split_into_windows(TEXTS, tiny[0].tokenizer, 6)
    assert len(windows) == sum(counts) and "".join(windows[: counts[0]]) == TEXTS[0]


@pytest.mark.slow
def test_harness_chunking_from_cached_windows_equals_the_chunked_model(chunked, tiny, tmp_path):
    from metaeol_integrations.evaluation.encoders import MetaEOLEncoder
    from metaeol_integrations.evaluation.retrieval import DenseRetriever

    retriever = DenseRetriever(MetaEOLEncoder(tiny, "tiny"), cache_dir=tmp_path, show_progress=False, chunk_tokens=6)
    vectors, _ = retriever.document_vectors(TEXTS)
    np.testing.assert_allclose(vectors, chunked.encode_document(TEXTS), rtol=1e-5, atol=1e-6)


def test_token_windows_cover_the_text_at_token_boundaries(tiny):
    tokenizer = tiny[0].tokenizer
    text = "The quick brown fox jumps over the lazy dog. " * 7
    windows = token_windows(text, tokenizer, 10)
    assert "".join(windows) == text and len(windows) > 1
    assert all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) <= 11 for w in windows)  # BPE may merge 1
    assert token_windows("short text", tokenizer, 10) == ["short text"]
    with pytest.raises(ValueError, match="at least one token"):
        token_windows(text, tokenizer, 0)
