"""The retrieval harness: metrics against an independent computation on its own stored run (plain-Python trec_eval
definitions and MTEB's evaluator), exact search against a brute-force ranking of the model's own vectors, query /
document encoding, seeded splits and samples, paired comparisons over queries, the CLI, and BM25 on real SciFact."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

import metaeol_integrations
from metaeol_integrations.cli.main import main
from metaeol_integrations.evaluation import beir
from metaeol_integrations.evaluation.encoders import MetaEOLEncoder
from metaeol_integrations.evaluation.paired import QueryScores, paired_query_bootstrap
from metaeol_integrations.evaluation.retrieval import (
    BM25Retriever,
    DenseRetriever,
    RetrievalResult,
    evaluate_retrieval,
    read_trec_run,
    score_run,
)

TOPICS = ("guitar music band song", "market stock price bank", "cell protein gene tumour", "rain storm wind cloud",
          "football goal match team", "bread flour oven bake")
# The shared data: $METAEOL_RETRIEVAL_DIR, else beside the checkout, else the CLI's default (relative to the cwd).
REAL_RETRIEVAL = next(
    (Path(p) for p in (os.environ.get(beir.RETRIEVAL_DIR_ENV_VAR),
                       Path(__file__).resolve().parents[3] / "shared" / "data" / "retrieval",
                       beir.DEFAULT_RETRIEVAL_DIR) if p and (Path(p) / "scifact" / "corpus.jsonl").is_file()),
    beir.DEFAULT_RETRIEVAL_DIR,
)


def write_fake_beir(root: Path, docs_per_topic: int = 6, seed: int = 0) -> Path:
    """A BEIR folder: documents about six topics, one query per topic judged against some of its documents
    (grades 1 and 2), one query with no judgement (dropped, as BEIR drops it)."""
    rng = random.Random(seed)
    (root / "qrels").mkdir(parents=True)
    corpus, qrels = [], ["query-id\tcorpus-id\tscore"]
    for t, topic in enumerate(TOPICS):
        words = topic.split()
        for i in range(docs_per_topic):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))
            corpus.append({"_id": f"d{t}-{i}", "title": f"{words[0]} {i}" if i % 2 else "", "text": text})
            if i < 3:
                qrels.append(f"q{t}\td{t}-{i}\t{1 + i % 2}")
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(doc) for doc in corpus) + "\n", encoding="utf-8")
    queries = [{"_id": f"q{t}", "text": f"what about {topic.split()[1]} and {topic.split()[2]}?"}
               for t, topic in enumerate(TOPICS)] + [{"_id": "unjudged", "text": "nothing"}]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def fake_beir(tmp_path_factory) -> Path:
    return write_fake_beir(tmp_path_factory.mktemp("beir") / "fake")


@pytest.fixture()
def dense_run(tiny, fake_beir, tmp_path):
    data = beir.read_beir(data_dir=fake_beir)
    retriever = DenseRetriever(MetaEOLEncoder(tiny, "tiny"), cache_dir=tmp_path / "cache", show_progress=False)
    return data, retriever, evaluate_retrieval(retriever, data)


# -- independent definitions (trec_eval's, written out) -----------------------------------------------------------

def _ranking(docs: dict[str, float]) -> list[str]:
    return [doc for doc, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def _ndcg_at_10(ranked: list[str], judged: dict[str, int]) -> float:
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    return 100 * dcg / sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))


def _recall_at_100(ranked: list[str], judged: dict[str, int]) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    return 100 * len(relevant & set(ranked[:100])) / len(relevant)


def _mrr_at_10(ranked: list[str], judged: dict[str, int]) -> float:
    return next((100 / (rank + 1) for rank, doc in enumerate(ranked[:10]) if judged.get(doc, 0) > 0), 0.0)


@pytest.mark.slow
def test_metrics_equal_the_trec_eval_definitions_and_mteb_on_the_stored_run(dense_run, tmp_path):
    data, retriever, result = dense_run
    from metaeol_integrations.evaluation.retrieval import write_retrieval_results

    _, _, run_path = write_retrieval_results(tmp_path, "tiny", result, {"label": "tiny"})
    stored = read_trec_run(run_path)
    assert set(stored) == set(data.query_ids) and "unjudged" not in stored
    for query, docs in stored.items():
        ranked = _ranking(docs)
        expected = {"ndcg_at_10": _ndcg_at_10(ranked, data.qrels[query]),
                    "recall_at_100": _recall_at_100(ranked, data.qrels[query]),
                    "mrr_at_10": _mrr_at_10(ranked, data.qrels[query])}
        assert result.per_query[query] == pytest.approx(expected, abs=1e-4)
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    mteb_scores = calculate_retrieval_scores(stored, data.qrels, [10, 100])
    assert result.scores["ndcg_at_10"] == pytest.approx(100 * mteb_scores.ndcg["NDCG@10"], abs=1e-3)
    assert result.scores["recall_at_100"] == pytest.approx(100 * mteb_scores.recall["Recall@100"], abs=1e-3)
    assert result.scores["mrr_at_10"] == pytest.approx(100 * mteb_scores.mrr["MRR@10"], abs=1e-3)


def test_a_query_without_retrieved_documents_scores_zero_instead_of_being_skipped():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    per_query = score_run({"a": {"x": 1.0}, "b": {}}, qrels)
    assert per_query["a"]["ndcg_at_10"] == pytest.approx(100) and per_query["b"] == {
        "ndcg_at_10": 0.0, "recall_at_100": 0.0, "mrr_at_10": 0.0}


@pytest.mark.slow
def test_dense_search_is_exact_cosine_of_encode_query_against_encode_document(dense_run, tiny):
    data, _, result = dense_run
    queries = tiny.encode_query(data.query_texts, normalize_embeddings=True, convert_to_numpy=True)
    documents = tiny.encode_document(data.doc_texts, normalize_embeddings=True, convert_to_numpy=True)
    scores = queries @ documents.T
    for i, query in enumerate(data.query_ids):
        expected = {data.doc_ids[j]: float(scores[i, j]) for j in range(len(data.doc_ids))}
        assert result.run[query] == pytest.approx(expected, abs=1e-5)  # every document: the corpus is < 100
    assert result.texts_embedded == len(data.doc_ids) + len(data.query_ids)


def test_queries_use_the_query_templates_and_documents_the_document_ones(tiny_model_dir, fake_beir, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", task_templates={"query": "ke"})
    data = beir.read_beir(data_dir=fake_beir)
    retriever = DenseRetriever(MetaEOLEncoder(model, "tiny"), cache_dir=tmp_path, show_progress=False)
    queries, computed = retriever.embed(data.query_texts, "query")
    documents, _ = retriever.embed(data.doc_texts[:3], "document")
    np.testing.assert_allclose(queries["embedding"], model.encode_query(data.query_texts), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(documents["embedding"], model.encode_document(data.doc_texts[:3]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(queries["embedding"], model.encode(data.query_texts), atol=1e-3)
    # The same texts as documents are a different cache entry, computed anew; as queries again, a cache hit.
    assert retriever.embed(data.query_texts, "query")[1] == 0 and computed == len(data.query_texts)
    assert retriever.embed(data.query_texts, "document")[1] == len(data.query_texts)


def test_reading_a_beir_folder(fake_beir, tmp_path):
    data = beir.read_beir(data_dir=fake_beir)
    assert data.query_ids == [f"q{t}" for t in range(len(TOPICS))]  # the unjudged query is dropped
    assert data.qrels["q0"] == {"d0-0": 1, "d0-1": 2, "d0-2": 1}
    assert data.doc_texts[1].startswith("guitar 1 ")  # title + " " + text
    assert beir.read_beir("fake", data_dir=fake_beir.parent).doc_ids == data.doc_ids  # parent folder + task
    with pytest.raises(metaeol_integrations.DataNotFoundError, match="--data-dir"):
        beir.read_beir("scifact", data_dir=tmp_path)


def test_query_halves_are_disjoint_seeded_and_cover_every_query():
    ids = [str(i) for i in range(301)]
    dev, test = beir.split_queries(ids, "dev", seed=0), beir.split_queries(ids, "test", seed=0)
    assert not set(dev) & set(test) and sorted(dev + test, key=int) == ids and len(dev) == 150
    assert beir.split_queries(list(reversed(ids)), "dev", seed=0) == list(reversed(dev))  # order-independent
    assert beir.split_queries(ids, "dev", seed=1) != dev
    with pytest.raises(ValueError, match="dev"):
        beir.split_queries(ids, "train")


def test_corpus_sample_keeps_every_judged_document_and_grows_by_distractors(fake_beir):
    data = beir.read_beir(data_dir=fake_beir).with_queries(["q0", "q3"])
    small, large = beir.sample_corpus(data, 10, seed=0), beir.sample_corpus(data, 20, seed=0)
    assert data.judged_doc_ids <= small and len(small) == 10 and small <= large and len(large) == 20
    assert beir.sample_corpus(data, 10, seed=1) != small
    assert beir.sample_corpus(data, 0) == set(data.doc_ids)
    assert beir.sample_queries(data.query_ids, 1, seed=0) in (["q0"], ["q3"])


def test_uniform_corpus_sample_keeps_the_halves_and_judgements_inside_it(fake_beir):
    full = beir.read_beir(data_dir=fake_beir)
    picked = beir.sample_corpus_uniform(full, 12, seed=0)
    assert len(picked) == 12 and picked <= beir.sample_corpus_uniform(full, 20, seed=0)
    assert beir.sample_corpus_uniform(full, 12, seed=1) != picked and beir.sample_corpus_uniform(full, 0) == set(full.doc_ids)
    for split in ("dev", "test"):
        data, total = beir.evaluation_data(None, fake_beir, split=split, corpus_sample=12, corpus_sampling="uniform")
        assert total == len(full.doc_ids) and set(data.doc_ids) == picked
        # The query's half is the one it has without a sample; a query kept has a relevant document in the sample,
        # and no judgement points outside it.
        half = beir.split_queries(full.query_ids, split)
        expected = [q for q in half if any(g > 0 and d in picked for d, g in full.qrels[q].items())]
        assert data.query_ids == expected
        assert all(set(data.qrels[q]) <= picked for q in data.query_ids)
        assert all(data.qrels[q] == {d: g for d, g in full.qrels[q].items() if d in picked} for q in data.query_ids)
    with pytest.raises(ValueError, match="uniform"):
        beir.evaluation_data(None, fake_beir, corpus_sample=12, corpus_sampling="random")


def test_cli_eval_retrieval_records_a_uniform_corpus_sample(fake_beir, tmp_path, capsys):
    args = ["eval", "retrieval", "--data-dir", str(fake_beir), "--model", "bm25", "--corpus-sample", "12",
            "--out", str(tmp_path)]
    assert main(args + ["--corpus-sampling", "uniform", "--label", "u"]) == 0
    assert main(args + ["--label", "j"]) == 0
    uniform = json.loads((tmp_path / "u-fake-all.json").read_text())
    judged = json.loads((tmp_path / "j-fake-all.json").read_text())
    assert uniform["meta"]["corpus_sampling"] == "uniform" and "corpus_sampling" not in judged["meta"]
    expected, _ = beir.evaluation_data(None, fake_beir, corpus_sample=12, corpus_sampling="uniform")
    assert uniform["results"][0]["n_queries"] == len(expected.query_ids)
    # Fusing uniform-sample runs scores against the sample's judgements: BM25 at full weight is BM25 alone.
    assert main(args + ["--corpus-sampling", "uniform", "--model", "bm25-stemmed", "--label", "s"]) == 0
    assert main(["eval", "fuse", str(tmp_path / "u-fake-all.json"), str(tmp_path / "s-fake-all.json"), "--method",
                 "zscore", "--weights", "1,0", "--data-dir", str(fake_beir), "--label", "f", "--out", str(tmp_path)]) == 0
    fused = json.loads((tmp_path / "f-fake-all.json").read_text())
    assert fused["results"][0]["per_query"] == uniform["results"][0]["per_query"]


def test_paired_query_bootstrap_equals_a_plain_resampling_loop():
    rng = np.random.default_rng(3)
    ids = [f"q{i}" for i in range(40)]
    a_values, b_values = rng.uniform(0, 100, 40), rng.uniform(0, 100, 40)
    a = QueryScores("t", ids, {"ndcg_at_10": a_values}, "ndcg_at_10")
    # B lists the same queries in another order: the comparison pairs them by id.
    order = rng.permutation(40)
    b = QueryScores("t", [ids[i] for i in order], {"ndcg_at_10": b_values[order]}, "ndcg_at_10")
    comparison = paired_query_bootstrap(a, b, resamples=300, seed=5)
    draws = np.random.default_rng(5).integers(0, 40, size=(300, 40))
    diffs = [np.mean(a_values[d]) - np.mean(b_values[d]) for d in draws]
    assert comparison.average.difference == pytest.approx(a_values.mean() - b_values.mean())
    assert (comparison.average.ci_low, comparison.average.ci_high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    identical = paired_query_bootstrap(a, a, resamples=50)
    assert (identical.average.difference, identical.average.ci_low, identical.average.ci_high) == (0, 0, 0)
    with pytest.raises(metaeol_integrations.IncomparableRunsError, match="different queries"):
        paired_query_bootstrap(a, QueryScores("t", ids[:-1], {"ndcg_at_10": a_values[:-1]}, "ndcg_at_10"))


@pytest.mark.slow
def test_cli_eval_retrieval_writes_scores_runs_and_compares_over_queries(tiny_model_dir, fake_beir, tmp_path, capsys):
    common = ["--data-dir", str(fake_beir), "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--label", "tiny", *common]) == 0
    assert main(["eval", "retrieval", "--model", "bm25", *common]) == 0
    assert main(["eval", "retrieval", "--model", "bm25", "--split", "dev", "--corpus-sample", "20", *common]) == 0
    printed = capsys.readouterr().out
    assert "bm25 on fake (dev): nDCG@10" in printed and "(N=3 queries, 20 of 36 documents)" in printed
    record = json.loads((tmp_path / "tiny-fake-all.json").read_text())
    result = record["results"][0]
    assert result["kind"] == "retrieval" and set(result["per_query"]) == {f"q{t}" for t in range(6)}
    assert result["scores"]["ndcg_at_10"] == pytest.approx(np.mean([v["ndcg_at_10"] for v in result["per_query"].values()]))
    assert record["meta"]["encoder"]["kind"] == "metaeol"
    assert (tmp_path / "tiny-fake-all.run.trec.gz").is_file()
    # BM25 matches words: every document it scores above 0 for a query is about that query's topic.
    bm25_run = read_trec_run(tmp_path / "bm25-fake-all.run.trec.gz")
    assert all(doc.startswith(f"d{query[1:]}-") for query, docs in bm25_run.items() for doc, s in docs.items() if s > 0)
    sample = json.loads((tmp_path / "bm25-fake-dev.json").read_text())
    assert sample["meta"]["corpus_sample"] == 20 and sample["results"][0]["n_documents_total"] == 36

    assert main(["eval", "compare", str(tmp_path / "bm25-fake-all.json"), str(tmp_path / "tiny-fake-all.json")]) == 0
    printed = capsys.readouterr().out
    assert "| nDCG@10 | 6 |" in printed and "Verdict on nDCG@10" in printed and "| average |" not in printed
    assert main(["eval", "compare", str(tmp_path / "bm25-fake-dev.json"), str(tmp_path / "tiny-fake-all.json")]) == 2
    assert "different queries" in capsys.readouterr().err


def test_cli_eval_retrieval_refuses_missing_data_before_loading_a_model(tmp_path, capsys):
    assert main(["eval", "retrieval", "--data-dir", str(tmp_path), "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "No BEIR data" in err and "--data-dir" in err and err.count("\n") == 1
    assert main(["eval", "retrieval", "--model", "bm25", "--layer", "2", "--data-dir", str(write_fake_beir(tmp_path / "b"))]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_RETRIEVAL / "scifact" / "corpus.jsonl").is_file(), reason="needs ../shared/data/retrieval")
def test_bm25_on_full_scifact_is_within_one_point_of_beirs_published_score():
    """BEIR's paper reports BM25 (Elasticsearch) nDCG@10 0.665 on SciFact; ours is bm25s with English stop words."""
    data = beir.read_beir("scifact", REAL_RETRIEVAL)
    result = evaluate_retrieval(BM25Retriever(), data)
    assert isinstance(result, RetrievalResult) and result.n_queries == 300 and result.n_documents == 5183
    assert abs(result.scores["ndcg_at_10"] - 66.5) <= 1.0


@pytest.mark.slow
def test_rrf_fusion_scores_are_weighted_cormack_and_order_documents_as_langchains_ensemble_retriever():
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever as LangChainBM25
    from langchain_core.documents import Document

    from metaeol_integrations.evaluation.retrieval import fuse_runs

    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(30)]
    runs = [{q: {d: float(s) for d, s in zip(rng.permutation(docs)[:20], rng.normal(size=20))} for q in ("a", "b")}
            for _ in range(2)]
    fused = fuse_runs(runs, "rrf")
    placeholder = LangChainBM25.from_texts(["x"])
    ensemble = EnsembleRetriever(retrievers=[placeholder, placeholder], weights=[0.5, 0.5])
    for query in ("a", "b"):
        ranked = [_ranking(run[query]) for run in runs]
        expected = {}
        for ranking in ranked:
            for rank, doc in enumerate(ranking, start=1):
                expected[doc] = expected.get(doc, 0.0) + 0.5 / (60 + rank)  # EnsembleRetriever's default weights
        assert fused[query] == pytest.approx(expected)
        order = ensemble.weighted_reciprocal_rank([[Document(page_content=d) for d in r] for r in ranked])
        scores = [fused[query][doc.page_content] for doc in order]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_minmax_fusion_is_the_weighted_sum_of_min_max_normalised_scores():
    from metaeol_integrations.evaluation.retrieval import fuse_runs

    runs = [{"q": {"x": 3.0, "y": 1.0, "z": 2.0}}, {"q": {"x": 0.1, "y": 0.5, "w": 0.3}}]
    fused = fuse_runs(runs, "minmax", weights=[0.7, 0.3])
    assert fused["q"] == pytest.approx({"x": 0.7 * 1.0, "y": 0.3 * 1.0, "z": 0.7 * 0.5, "w": 0.3 * 0.5})
    with pytest.raises(ValueError, match="one weight per run"):
        fuse_runs(runs, "minmax", weights=[1.0])


@pytest.mark.slow
def test_cli_eval_fuse_scores_the_fused_run_of_two_stored_runs(tiny_model_dir, fake_beir, tmp_path, capsys):
    from metaeol_integrations.evaluation.retrieval import fuse_runs

    common = ["--data-dir", str(fake_beir), "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--label", "tiny", *common]) == 0
    assert main(["eval", "retrieval", "--model", "bm25", *common]) == 0
    runs = [str(tmp_path / "tiny-fake-all.json"), str(tmp_path / "bm25-fake-all.json")]
    assert main(["eval", "fuse", *runs, "--data-dir", str(fake_beir), "--out", str(tmp_path), "--label", "hybrid"]) == 0
    assert "hybrid on fake (all): nDCG@10" in capsys.readouterr().out
    stored = read_trec_run(tmp_path / "hybrid-fake-all.run.trec.gz")
    expected = fuse_runs([read_trec_run(r.replace(".json", ".run.trec.gz")) for r in runs], "rrf")
    assert stored["q0"] == pytest.approx(expected["q0"], abs=1e-6)
    result = json.loads((tmp_path / "hybrid-fake-all.json").read_text())["results"][0]
    assert result["per_query"] == score_run(stored, beir.read_beir(data_dir=fake_beir).qrels)
    assert main(["eval", "compare", str(tmp_path / "hybrid-fake-all.json"), runs[1]]) == 0
    assert main(["eval", "fuse", runs[0], str(tmp_path / "nothing.json"), "--data-dir", str(fake_beir)]) == 1  # unreadable


@pytest.mark.slow
def test_chunked_pooling_is_the_mean_of_the_windows_document_vectors(tiny, fake_beir, tmp_path):
    from metaeol_integrations.core.chunking import token_windows

    data = beir.read_beir(data_dir=fake_beir)
    retriever = DenseRetriever(MetaEOLEncoder(tiny, "tiny"), cache_dir=tmp_path, show_progress=False, chunk_tokens=4)
    vectors, _ = retriever.document_vectors(data.doc_texts[:4])
    for text, vector in zip(data.doc_texts[:4], vectors):
        windows = token_windows(text, tiny[0].tokenizer, 4)
        assert len(windows) > 1
        np.testing.assert_allclose(vector, tiny.encode_document(windows).astype(np.float64).mean(axis=0),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_token_weighted_windows_weigh_each_window_by_its_token_count(tiny, fake_beir, tmp_path):
    from metaeol_integrations.core.chunking import token_windows

    tokenizer = tiny[0].tokenizer
    text = beir.read_beir(data_dir=fake_beir).doc_texts[0] + " and then some more words to leave a short tail"
    retriever = DenseRetriever(MetaEOLEncoder(tiny, "tiny"), cache_dir=tmp_path, show_progress=False, chunk_tokens=4,
                               window_weighting="tokens")
    vector = retriever.document_vectors([text])[0][0]
    windows = token_windows(text, tokenizer, 4)
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens % 4 and len(windows) == -(-n_tokens // 4)  # a short last window, so the weights differ
    weights = [4] * (len(windows) - 1) + [n_tokens % 4]
    expected = np.average(tiny.encode_document(windows).astype(np.float64), axis=0, weights=weights)
    np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'uniform' or 'tokens'"):
        DenseRetriever(MetaEOLEncoder(tiny, "tiny"), cache_dir=tmp_path, chunk_tokens=4, window_weighting="length")


def test_default_labels_name_the_templates_and_every_retrieval_setting():
    import argparse

    from metaeol_integrations.cli.harness import label_of as _label

    args = argparse.Namespace(label=None, model="metaeol-smollm2-135m", pooling="last-token", templates="ke",
                              chunk_tokens=32, embed_filter=2, center="corpus", query_templates="retrieval-query")
    assert _label(args, None) == ("metaeol-smollm2-135m, ke, chunks of 32 tokens, EmbedFilter tau 2, centered on "
                                  "corpus, queries retrieval-query")
    args.pooling, args.center = "mean", None
    assert _label(args, None) == "metaeol-smollm2-135m, mean pooling, chunks of 32 tokens, EmbedFilter tau 2, " \
                                 "queries retrieval-query"
