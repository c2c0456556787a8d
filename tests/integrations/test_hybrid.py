"""Hybrid (dense + BM25) retrieval: the fusion formulas, and the LangChain and LlamaIndex constructors against the
evaluation harness's fused ranking on the same inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from metaeol_integrations.evaluation.beir import RetrievalData
from metaeol_integrations.evaluation.retrieval import BM25Retriever, cosine_scores, fuse_runs, top_k_run
from metaeol_integrations.hybrid import Fusion, fuse_lists, fuse_ranked
from metaeol_integrations.presets import DEFAULT_FUSION, PRESETS, fusion_for

TOPICS = {
    "music": "guitar piano song band concert melody chord",
    "weather": "rain storm cloud wind sunny forecast snow",
    "finance": "market stock price investor bank interest rate",
    "cooking": "bread oven flour recipe soup kitchen spice",
}
QUERIES = ["guitar concert tonight", "storm and heavy rain forecast", "stock market price falls", "bread recipe with flour"]


def synthetic_corpus(n: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    names = sorted(TOPICS)
    return [" ".join(rng.choice(TOPICS[names[i % 4]].split() + ["the", "a", "today", "people"])
                     for _ in range(rng.randint(4, 12))) for i in range(n)]


def harness_ranking(model, documents: list[str], queries: list[str], fusion: Fusion) -> dict[str, dict[str, float]]:
    """The harness's fused run (document -> fused score, best first): exact cosine of encode_query /
    encode_document, the harness's stemmed BM25, and fuse_runs over each side's top ``fusion.candidates``."""
    doc_ids, query_ids = [str(i) for i in range(len(documents))], [f"q{i}" for i in range(len(queries))]
    scores = cosine_scores(model.encode_query(queries), model.encode_document(documents))
    dense = top_k_run(scores, query_ids, doc_ids, k=fusion.candidates)
    data = RetrievalData("synthetic", doc_ids, documents, query_ids, queries, {q: {} for q in query_ids})
    lexical, _ = BM25Retriever(stemmed=True).retrieve(data, k=fusion.candidates)
    fused = fuse_runs([dense, lexical], fusion.method, list(fusion.weights), rrf_k=fusion.rrf_k,
                      candidates=fusion.candidates)
    return {query: fused[qid] for qid, query in zip(query_ids, queries)}


def assert_same_ranking(got: list[str], expected: dict[str, float], k: int) -> None:
    """``got`` is the harness's top ``k`` up to the order of documents whose fused scores tie (BM25 gives equal
    scores to equally long documents with the same matches; each side breaks such ties its own way)."""
    assert len(got) >= k and set(got[:k]) <= set(expected)
    assert [expected[doc] for doc in got[:k]] == pytest.approx(list(expected.values())[:k], abs=1e-12)


def test_score_fusions_are_llama_index_formulas_written_out():
    dense = [("x", 0.9), ("y", 0.5), ("z", 0.1)]
    lexical = [("y", 12.0), ("w", 4.0), ("x", 2.0)]
    minmax = dict(fuse_ranked(dense, lexical, Fusion("minmax", 0.3)))
    assert minmax == pytest.approx({"x": 0.3 * 1.0 + 0.7 * 0.0, "y": 0.3 * 0.5 + 0.7 * 1.0, "z": 0.0,
                                    "w": 0.7 * 0.2})
    # z-score: each list scaled by mean +- 3 population standard deviations.
    d, b = np.array([0.9, 0.5, 0.1]), np.array([12.0, 4.0, 2.0])
    dz, bz = (d - d.mean() + 3 * d.std()) / (6 * d.std()), (b - b.mean() + 3 * b.std()) / (6 * b.std())
    zscore = dict(fuse_ranked(dense, lexical, Fusion("zscore", 0.3)))
    assert zscore == pytest.approx({"x": 0.3 * dz[0] + 0.7 * bz[2], "y": 0.3 * dz[1] + 0.7 * bz[0],
                                    "z": 0.3 * dz[2], "w": 0.7 * bz[1]})
    rrf = dict(fuse_ranked(dense, lexical, Fusion("rrf", 0.3, rrf_k=60)))
    assert rrf == pytest.approx({"x": 0.3 / 61 + 0.7 / 63, "y": 0.3 / 62 + 0.7 / 61, "z": 0.3 / 63, "w": 0.7 / 62})
    # Each list is cut to its candidates before normalising; equal scores follow LlamaIndex's rule.
    assert dict(fuse_ranked(dense, lexical, Fusion("minmax", 0.5, candidates=1))) == {"x": 0.5, "y": 0.5}
    assert fuse_lists([[("a", 0.0), ("b", 0.0)]], [1.0], "minmax") == [("a", 0.0), ("b", 0.0)]


def test_minmax_and_rrf_scores_equal_ranx():
    from ranx import Run, fuse

    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(30)]
    runs = [{q: {d: float(s) for d, s in zip(rng.permutation(docs)[:20], rng.normal(size=20))} for q in ("a", "b")}
            for _ in range(2)]
    ours = fuse_runs(runs, "minmax", [0.3, 0.7])
    theirs = fuse([Run(r) for r in runs], norm="min-max", method="wsum", params={"weights": [0.3, 0.7]}).to_dict()
    ours_rrf, theirs_rrf = fuse_runs(runs, "rrf", [1.0, 1.0]), fuse([Run(r) for r in runs], method="rrf").to_dict()
    for query in ("a", "b"):
        assert ours[query] == pytest.approx(theirs[query])
        assert ours_rrf[query] == pytest.approx(theirs_rrf[query])


def test_fusion_options_are_checked_and_round_trip():
    with pytest.raises(ValueError, match="Unknown fusion"):
        Fusion("borda")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Fusion("minmax", 1.5)
    fusion = Fusion("rrf", 0.25, candidates=50, rrf_k=10)
    assert Fusion.from_dict(fusion.to_dict()) == fusion
    assert "dense 0.25 / BM25 0.75" in fusion.describe()


def test_the_retrieval_presets_carry_their_measured_fusion():
    assert fusion_for("metaeol-rag-smollm2-135m") == PRESETS["metaeol-rag-smollm2-135m"].fusion == Fusion("zscore", 0.2)
    assert fusion_for("metaeol-smollm2-135m") == DEFAULT_FUSION and fusion_for(object()) == DEFAULT_FUSION
    for preset in PRESETS.values():
        assert (preset.fusion is None) == (preset.fusion_measured is None)


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [Fusion("zscore", 0.2), Fusion("minmax", 0.6, candidates=7), Fusion("rrf", 0.3)])
def test_langchain_hybrid_retriever_ranks_as_the_harness(tiny, fusion):
    from metaeol_integrations.langchain import MetaEOLEmbeddings, hybrid_retriever

    documents = synthetic_corpus()
    expected = harness_ranking(tiny, documents, QUERIES, fusion)
    retriever = hybrid_retriever(documents, k=5, embeddings=MetaEOLEmbeddings(client=tiny), fusion=fusion)
    for query in QUERIES:
        assert_same_ranking([document.id for document in retriever.invoke(query)], expected[query], 5)
    if fusion.method == "rrf":
        from langchain_classic.retrievers import EnsembleRetriever

        assert isinstance(retriever, EnsembleRetriever) and retriever.weights == [0.3, 0.7]


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [Fusion("zscore", 0.2), Fusion("minmax", 0.6, candidates=7), Fusion("rrf", 0.3)])
def test_llama_index_hybrid_retriever_ranks_as_the_harness(tiny, fusion):
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode

    from metaeol_integrations.llama_index import MetaEOLEmbedding, hybrid_retriever

    documents = synthetic_corpus()
    expected = harness_ranking(tiny, documents, QUERIES, fusion)
    nodes = [TextNode(text=text, id_=str(i)) for i, text in enumerate(documents)]
    retriever = hybrid_retriever(nodes, similarity_top_k=5, embed_model=MetaEOLEmbedding(model=tiny), fusion=fusion)
    assert isinstance(retriever, QueryFusionRetriever) and retriever.num_queries == 1
    for query in QUERIES:
        hits = retriever.retrieve(query)
        assert len(hits) == 5
        assert_same_ranking([hit.node.node_id for hit in hits], expected[query], 5)


@pytest.mark.slow
def test_dense_weight_zero_is_bm25_alone_in_both_ecosystems(tiny):
    from metaeol_integrations.langchain import MetaEOLEmbeddings
    from metaeol_integrations.langchain import hybrid_retriever as langchain_hybrid
    from metaeol_integrations.llama_index import MetaEOLEmbedding
    from metaeol_integrations.llama_index import hybrid_retriever as llama_index_hybrid

    documents = synthetic_corpus()
    ids = [str(i) for i in range(len(documents))]
    data = RetrievalData("synthetic", ids, documents, QUERIES, QUERIES, {q: {} for q in QUERIES})
    bm25, _ = BM25Retriever(stemmed=True).retrieve(data)
    for method in ("minmax", "zscore", "rrf"):
        lc = langchain_hybrid(documents, k=4, embeddings=MetaEOLEmbeddings(client=tiny), fusion=method, weights=(0, 1))
        li = llama_index_hybrid(documents, similarity_top_k=4, embed_model=MetaEOLEmbedding(model=tiny),
                                fusion=method, weights=(0, 1))
        for query in QUERIES:
            alone = dict(sorted(bm25[query].items(), key=lambda item: -item[1]))
            assert_same_ranking([document.id for document in lc.invoke(query)], alone, 4)
            assert_same_ranking([str(documents.index(hit.node.get_content())) for hit in li.retrieve(query)], alone, 4)


def test_hybrid_constructors_refuse_bad_input():
    from metaeol_integrations.langchain import hybrid_retriever

    with pytest.raises(ValueError, match="at least one document"):
        hybrid_retriever([])
    with pytest.raises(ValueError, match="weights are"):
        hybrid_retriever(["a"], weights=(0, 0))


FUSION_RECORDS = Path(__file__).parents[2] / "docs" / "results" / "retrieval" / "fusion"


@pytest.mark.parametrize("name, setting", [("metaeol-rag-smollm2-135m", "full"), ("metaeol-rag-gemma3-270m", "sample")])
def test_retrieval_presets_fusion_is_the_committed_dev_choice_and_quotes_its_test_rows(name, setting):
    """A retrieval preset's fusion is the grid's choice on both dev halves (scripts/fusion_grid.py's record), and its
    card text quotes the held-out test rows of that record."""
    record = json.loads((FUSION_RECORDS / f"fusion-grid-{setting}.json").read_text())["models"][name]
    preset = PRESETS[name]
    assert preset.fusion == Fusion.from_dict(record["chosen"])
    best = max(row["mean"] for row in record["grid"])
    assert record["chosen_dev"]["mean"] == best
    for task in ("scifact", "nfcorpus"):
        ci = record["reports"][f"chosen | {task} | test"]["vs_bm25"]
        assert f"{ci['diff']:+.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}]" in preset.fusion_measured


def test_model_card_states_the_fusion_and_how_to_build_the_hybrid():
    from metaeol_integrations.core.recipe import Recipe
    from metaeol_integrations.sharing.model_card import CardFacts, render_model_card

    recipe, preset = Recipe(templates="prompteol"), PRESETS["metaeol-rag-smollm2-135m"]
    facts = CardFacts(base_model="x/y", template_set=recipe.templates, layer=-1, max_seq_length=512, weights="copy",
                      fusion=preset.fusion, fusion_measured=preset.fusion_measured)
    card = render_model_card(facts, model_id="me/rag")
    assert "## Hybrid retrieval with BM25" in card and preset.fusion.describe() in card
    assert 'hybrid_retriever(documents, model="me/rag", k=10, fusion=Fusion(method="zscore", dense_weight=0.2))' in card
    assert "Hybrid retrieval" not in render_model_card(CardFacts(base_model="x/y", template_set=recipe.templates,
                                                                 layer=-1, max_seq_length=512, weights="copy"))


def test_a_query_without_any_bm25_match_keeps_the_dense_order():
    """BM25 scores every document 0 for a query of stop words or unknown words; the fusion then gives BM25's side 0
    for all (LlamaIndex's rule for equal scores) and the dense ranking decides."""
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    from metaeol_integrations.langchain.hybrid import BM25Retriever, ScoreFusionRetriever

    documents = [Document(page_content=text, id=str(i)) for i, text in enumerate(synthetic_corpus(12))]
    store = InMemoryVectorStore.from_documents(documents, DeterministicFakeEmbedding(size=16))
    for method in ("minmax", "zscore"):
        retriever = ScoreFusionRetriever(vector_store=store, lexical=BM25Retriever(documents=documents, k=12),
                                         fusion=Fusion(method, 0.2), k=5)
        for query in ("the a", "zebra"):
            dense = [document.id for document, _ in store.similarity_search_with_score(query, k=5)]
            assert [document.id for document in retriever.invoke(query)] == dense
