"""Post-pooling steps for retrieval: corpus mean removal (CorpusCenter / fit_center) and EmbedFilter, each against an
independent computation (numpy means and SVDs of weights read straight from the checkpoint), saved and loaded,
reached from the CLI, both adapters and the retrieval harness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sentence_transformers.base.modules import Dense, Normalize

import metaeol_integrations
from metaeol_integrations.cli.main import main
from metaeol_integrations.postprocessing import CorpusCenter, add_embed_filter, fit_center, unembedding_matrix

DOCS = ["A man is playing a guitar.", "The stock market fell today.", "A dog runs in the park.",
        "Proteins fold in the cell.", "Rain is expected tomorrow."]
QUERIES = ["Who plays music?", "What happened to stocks?"]


@pytest.fixture()
def model(tiny_model_dir):
    return metaeol_integrations.load(str(tiny_model_dir), device="cpu")


def _band(tiny_model_dir, tau: int) -> np.ndarray:
    """The authors' recipe with numpy on lm_head.weight read from the checkpoint itself."""
    with safe_open(str(tiny_model_dir / "model.safetensors"), framework="np") as handle:
        weight = handle.get_tensor("lm_head.weight").astype(np.float64)
    _, _, vh = np.linalg.svd(weight, full_matrices=False)
    d = weight.shape[1]
    k = d // tau
    return vh[(d - k) // 2 : (d - k) // 2 + k]


def _cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


@pytest.mark.slow
def test_fit_center_removes_the_numpy_mean_of_the_document_vectors(model, tiny_model_dir):
    plain = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    raw_docs, raw_queries = plain.encode_document(DOCS), plain.encode_query(QUERIES)
    mean = raw_docs.astype(np.float64).mean(axis=0)
    assert fit_center(model, DOCS) is model and isinstance(model[1], CorpusCenter) and model[1].num_texts == 5
    np.testing.assert_allclose(model.encode_document(DOCS), raw_docs - mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.encode_query(QUERIES), raw_queries - mean, rtol=1e-5, atol=1e-5)
    # Fitting again replaces the mean instead of stacking a second centering.
    fit_center(model, DOCS[:2])
    assert sum(isinstance(m, CorpusCenter) for m in model) == 1
    np.testing.assert_allclose(model.encode_document(DOCS), raw_docs - raw_docs[:2].astype(np.float64).mean(0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_centering_goes_before_normalize_and_saves_and_loads(model, tiny_model_dir, tmp_path):
    plain = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    raw = plain.encode_document(DOCS).astype(np.float64)
    model.append(Normalize())
    fit_center(model, DOCS)
    assert isinstance(model[1], CorpusCenter) and isinstance(model[2], Normalize)
    expected = raw - raw.mean(0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(model.encode_document(DOCS), expected, rtol=1e-5, atol=1e-5)
    metaeol_integrations.save(model, tmp_path / "centered")
    modules = json.loads((tmp_path / "centered" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["MetaEOL", "CorpusCenter", "Normalize"]
    loaded = metaeol_integrations.load(str(tmp_path / "centered"))
    np.testing.assert_array_equal(loaded.encode_document(DOCS), model.encode_document(DOCS))


@pytest.mark.slow
def test_projection_mode_removes_each_vectors_component_along_the_mean_and_round_trips(model, tiny_model_dir, tmp_path):
    plain = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    raw_docs, raw_queries = plain.encode_document(DOCS).astype(np.float64), plain.encode_query(QUERIES).astype(np.float64)
    unit = raw_docs.mean(axis=0) / np.linalg.norm(raw_docs.mean(axis=0))
    fit_center(model, DOCS, mode="project")
    assert model[1].mode == "project"
    expected = raw_docs - np.outer(raw_docs @ unit, unit)
    np.testing.assert_allclose(model.encode_document(DOCS), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.encode_document(DOCS) @ unit, 0.0, atol=1e-3)
    np.testing.assert_allclose(model.encode_query(QUERIES), raw_queries - np.outer(raw_queries @ unit, unit),
                               rtol=1e-4, atol=1e-4)
    metaeol_integrations.save(model, tmp_path / "projected")
    loaded = metaeol_integrations.load(str(tmp_path / "projected"))
    assert loaded[1].mode == "project"
    np.testing.assert_array_equal(loaded.encode_document(DOCS), model.encode_document(DOCS))
    # The harness's post-processing on cached vectors computes the same.
    from metaeol_integrations.evaluation.retrieval import PostProcessing

    queries, documents = PostProcessing(center="corpus", center_mode="project")(raw_queries, raw_docs)
    np.testing.assert_allclose(documents, expected, atol=1e-9)
    with pytest.raises(ValueError, match="centering mode"):
        fit_center(model, DOCS, mode="both")


def test_fit_center_refuses_no_texts(model):
    with pytest.raises(ValueError, match="non-empty list"):
        fit_center(model, [])


@pytest.mark.slow
def test_embed_filter_is_the_middle_singular_band_of_the_checkpoints_lm_head(model, tiny_model_dir):
    raw = model.encode(DOCS).astype(np.float64)
    add_embed_filter(model, tau=2)
    dense = model[1]
    assert isinstance(dense, Dense) and dense.linear.bias is None and model.get_embedding_dimension() == 32
    band = _band(tiny_model_dir, 2)
    # Singular vectors are defined up to sign: compare the projector and the cosines the filter gives.
    weight = dense.linear.weight.detach().double().numpy()
    np.testing.assert_allclose(weight.T @ weight, band.T @ band, atol=1e-5)
    filtered = model.encode(DOCS).astype(np.float64)
    np.testing.assert_allclose(_cosines(filtered), _cosines(raw @ band.T), atol=1e-5)


def test_embed_filter_reads_tied_input_embeddings(tmp_path):
    from transformers import LlamaConfig, LlamaModel

    from tests.conftest import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaModel(config).save_pretrained(tmp_path / "tied", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "tied")
    tied = metaeol_integrations.load(str(tmp_path / "tied"), device="cpu")
    with safe_open(str(tmp_path / "tied" / "model.safetensors"), framework="pt") as handle:
        embeddings = handle.get_tensor("embed_tokens.weight")
    torch.testing.assert_close(unembedding_matrix(tied[0]), embeddings)


def test_embed_filter_refusals(model):
    with pytest.raises(ValueError, match="tau"):
        add_embed_filter(model, tau=0)
    fit_center(model, DOCS)
    with pytest.raises(ValueError, match="first"):
        add_embed_filter(model, tau=2)


def test_cli_fit_center_writes_a_folder_with_filter_and_center(tiny_model_dir, tmp_path, capsys):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n\n", encoding="utf-8")
    folder = tmp_path / "rag"
    assert main(["fit-center", str(folder), "--model", str(tiny_model_dir), "--file", str(docs), "--embed-filter", "2",
                 "-q"]) == 0
    assert "mean over 5 documents removed after EmbedFilter (tau 2)" in capsys.readouterr().out
    loaded = metaeol_integrations.load(str(folder))
    assert [type(m).__name__ for m in loaded] == ["MetaEOL", "Dense", "CorpusCenter"]
    expected = add_embed_filter(metaeol_integrations.load(str(tiny_model_dir), device="cpu"), 2)
    fit_center(expected, DOCS)
    np.testing.assert_allclose(loaded.encode_document(DOCS), expected.encode_document(DOCS), rtol=1e-5, atol=1e-5)
    assert main(["fit-center", str(tmp_path / "none"), "--model", str(tiny_model_dir), "--file", "/dev/null"]) == 2


@pytest.mark.slow
def test_both_adapters_fit_centering_on_their_documents(tiny_model_dir):
    from metaeol_integrations.langchain import MetaEOLEmbeddings
    from metaeol_integrations.llama_index import MetaEOLEmbedding

    expected = fit_center(metaeol_integrations.load(str(tiny_model_dir), device="cpu"), DOCS)
    want = expected.encode_document(DOCS, normalize_embeddings=True)
    lc = MetaEOLEmbeddings(model=str(tiny_model_dir)).fit_center(DOCS)
    li = MetaEOLEmbedding(str(tiny_model_dir)).fit_center(DOCS)
    np.testing.assert_allclose(lc.embed_documents(DOCS), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(li.get_text_embedding_batch(DOCS), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lc.embed_query(QUERIES[0]), expected.encode_query(QUERIES[:1], normalize_embeddings=True)[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_harness_post_processing_equals_the_model_with_the_modules(tiny_model_dir, tmp_path):
    """`eval retrieval --embed-filter 2 --center corpus` on cached raw vectors == a model with both modules."""
    from metaeol_integrations.evaluation.beir import read_beir
    from metaeol_integrations.evaluation.retrieval import read_trec_run
    from tests.evaluation.test_retrieval import write_fake_beir

    beir_dir = write_fake_beir(tmp_path / "fake")
    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--data-dir", str(beir_dir), "--embed-filter", "2",
                 "--center", "corpus", "--label", "tiny", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 0
    run = read_trec_run(tmp_path / "tiny-fake-all.run.trec.gz")
    data = read_beir(data_dir=beir_dir)
    model = fit_center(add_embed_filter(metaeol_integrations.load(str(tiny_model_dir), device="cpu"), 2), data.doc_texts)
    queries = model.encode_query(data.query_texts, normalize_embeddings=True)
    documents = model.encode_document(data.doc_texts, normalize_embeddings=True)
    scores = queries @ documents.T
    for i, query in enumerate(data.query_ids):
        assert run[query] == pytest.approx({doc: float(scores[i, j]) for j, doc in enumerate(data.doc_ids)}, abs=1e-4)
    # Centering on a file of other documents: fitted on exactly those.
    other = tmp_path / "other.txt"
    other.write_text("\n".join(DOCS), encoding="utf-8")
    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--data-dir", str(beir_dir), "--center", str(other),
                 "--label", "tiny2", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 0
    run = read_trec_run(tmp_path / "tiny2-fake-all.run.trec.gz")
    model = fit_center(metaeol_integrations.load(str(tiny_model_dir), device="cpu"), DOCS)
    scores = model.encode_query(data.query_texts, normalize_embeddings=True) @ model.encode_document(
        data.doc_texts, normalize_embeddings=True).T
    assert run["q0"] == pytest.approx({doc: float(scores[0, j]) for j, doc in enumerate(data.doc_ids)}, abs=1e-4)
    record = json.loads((tmp_path / "tiny2-fake-all.json").read_text())
    assert record["meta"]["center"] == {"file": "other.txt", "texts": 5}
