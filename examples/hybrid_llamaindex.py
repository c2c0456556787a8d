"""Hybrid retrieval with LlamaIndex: a MetaEOL vector index fused with BM25 by LlamaIndex's QueryFusionRetriever.

Run:  .venv/bin/python examples/hybrid_llamaindex.py [--model metaeol-smollm2-135m]
mode="reciprocal_rerank" is reciprocal-rank fusion; num_queries=1 keeps the query as it is (more queries would need
a generator LLM). docs/retrieval.md has measured numbers for this wiring. Needs llama-index-retrievers-bm25 (in the
`test` extra, so in `[all]`). Retrieval only: Settings.llm is None.
"""

from __future__ import annotations

import argparse

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.retrievers.bm25 import BM25Retriever

from metaeol_integrations.llama_index import MetaEOLEmbedding
from rag_llamaindex import CORPUS  # the same small corpus as the dense-only example (same folder)

QUERIES = ["Which tower in Paris was completed in 1889?", "What do I need for sourdough bread?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    parser.add_argument("--k", type=int, default=3, help="documents each retriever contributes (default 3)")
    args = parser.parse_args()

    Settings.llm = None
    index = VectorStoreIndex.from_documents([Document(text=t) for t in CORPUS], embed_model=MetaEOLEmbedding(args.model))
    lexical = BM25Retriever.from_defaults(nodes=list(index.docstore.docs.values()), similarity_top_k=args.k)
    hybrid = QueryFusionRetriever([index.as_retriever(similarity_top_k=args.k), lexical], mode="reciprocal_rerank",
                                  similarity_top_k=args.k, num_queries=1, use_async=False)
    for query in QUERIES:
        best = hybrid.retrieve(query)[0]
        print(f"Q: {query}\n   -> ({best.score:.4f}) {best.node.get_content()}")


if __name__ == "__main__":
    main()
