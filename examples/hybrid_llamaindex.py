"""Hybrid retrieval with LlamaIndex: a MetaEOL vector index fused with BM25 by the fusion this project measured.

Run:  .venv/bin/python examples/hybrid_llamaindex.py [--model metaeol-rag-smollm2-135m] [--fusion zscore|minmax|rrf]
`hybrid_retriever` returns LlamaIndex's own QueryFusionRetriever over a VectorStoreIndex retriever and LlamaIndex's
BM25Retriever (bm25s, Snowball stemming), in the mode and with the weights chosen for the model (z-score fusion =
mode "dist_based_score", dense weight 0.2 for metaeol-rag-smollm2-135m) and num_queries=1, so no LLM is called.
docs/retrieval.md has the numbers. Retrieval only.
"""

from __future__ import annotations

import argparse

from metaeol_integrations.hybrid import FUSION_METHODS
from metaeol_integrations.llama_index import hybrid_retriever
from rag_llamaindex import CORPUS  # the same small corpus as the dense-only example (same folder)

QUERIES = ["Which tower in Paris was completed in 1889?", "What do I need for sourdough bread?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-rag-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    parser.add_argument("--fusion", choices=FUSION_METHODS, help="override the model's fusion method")
    parser.add_argument("--k", type=int, default=3, help="nodes returned per query (default 3)")
    args = parser.parse_args()

    hybrid = hybrid_retriever(CORPUS, model=args.model, similarity_top_k=args.k, fusion=args.fusion)
    for query in QUERIES:
        best = hybrid.retrieve(query)[0]
        print(f"Q: {query}\n   -> ({best.score:.4f}) {best.node.get_content()}")


if __name__ == "__main__":
    main()
