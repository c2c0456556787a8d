"""Hybrid retrieval with LangChain: MetaEOL vectors fused with BM25 by the fusion this project measured.

Run:  .venv/bin/python examples/hybrid_langchain.py [--model metaeol-rag-smollm2-135m] [--fusion zscore|minmax|rrf]
`hybrid_retriever` builds the vector store (InMemoryVectorStore), a BM25 retriever (bm25s with Snowball stemming,
the BM25 our numbers use) and fuses them with the model's chosen fusion: for metaeol-rag-smollm2-135m z-score fusion
with dense weight 0.2, chosen on the dev halves of SciFact and NFCorpus. Equal-weight RRF (LangChain's
EnsembleRetriever default) falls below BM25 alone on those sets; docs/retrieval.md has the numbers. Retrieval only.
"""

from __future__ import annotations

import argparse

from langchain_core.documents import Document

from metaeol_integrations.langchain import hybrid_retriever
from metaeol_integrations.hybrid import FUSION_METHODS
from rag_langchain import CORPUS  # the same small corpus as the dense-only example (same folder)

QUERIES = ["How do plants make sugar from sunlight?", "What makes a volcano erupt?", "Why did the stock market fall?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-rag-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    parser.add_argument("--fusion", choices=FUSION_METHODS, help="override the model's fusion method")
    parser.add_argument("--k", type=int, default=3, help="documents returned per query (default 3)")
    args = parser.parse_args()

    documents = [Document(page_content=text, metadata={"topic": topic}) for topic, text in CORPUS]
    hybrid = hybrid_retriever(documents, model=args.model, k=args.k, fusion=args.fusion)
    for query in QUERIES:
        best = hybrid.invoke(query)[0]
        print(f"Q: {query}\n   -> [{best.metadata['topic']}] {best.page_content}")


if __name__ == "__main__":
    main()
