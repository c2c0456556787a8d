"""Hybrid retrieval with LangChain: MetaEOL vectors (FAISS) fused with BM25 by LangChain's own EnsembleRetriever.

Run:  .venv/bin/python examples/hybrid_langchain.py [--model metaeol-smollm2-135m]
EnsembleRetriever fuses the two ranked lists by weighted reciprocal-rank fusion (equal weights by default). On
SciFact our measured RRF of a training-free model with BM25 can land *below* BM25 alone; docs/retrieval.md has the
numbers and the weights and recipes that help. Needs langchain-community, langchain-classic, rank_bm25 and faiss-cpu
(all in the `test` extra, so in `[all]`). Retrieval only: no generator LLM.
"""

from __future__ import annotations

import argparse

from langchain_classic.retrievers import EnsembleRetriever
from langchain_community.retrievers import BM25Retriever
from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document

from metaeol_integrations.langchain import MetaEOLEmbeddings
from rag_langchain import CORPUS  # the same small corpus as the dense-only example (same folder)

QUERIES = ["How do plants make sugar from sunlight?", "What makes a volcano erupt?", "Why did the stock market fall?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    parser.add_argument("--k", type=int, default=3, help="documents each retriever contributes (default 3)")
    args = parser.parse_args()

    documents = [Document(page_content=text, metadata={"topic": topic}) for topic, text in CORPUS]
    dense = FAISS.from_documents(documents, MetaEOLEmbeddings(model=args.model)).as_retriever(search_kwargs={"k": args.k})
    lexical = BM25Retriever.from_documents(documents, k=args.k)
    hybrid = EnsembleRetriever(retrievers=[dense, lexical], weights=[0.5, 0.5])
    for query in QUERIES:
        best = hybrid.invoke(query)[0]
        print(f"Q: {query}\n   -> [{best.metadata['topic']}] {best.page_content}")


if __name__ == "__main__":
    main()
