"""Retrieval with LangChain and MetaEOL, fully offline: index a small corpus in FAISS and answer queries.

Run:  .venv/bin/python examples/rag_langchain.py [--model metaeol-smollm2-135m]
Retrieval only: there is no generator LLM; each query prints the best-matching passage.
Needs faiss-cpu and langchain-community besides the `langchain` extra (both come with `[all]`).
"""

from __future__ import annotations

import argparse

from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document

from metaeol_integrations.langchain import MetaEOLEmbeddings

CORPUS = [
    ("landmarks", "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889."),
    ("biology", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen."),
    ("finance", "The stock market fell sharply today as investors worried about rising interest rates."),
    ("cooking", "A good sourdough bread needs a lively starter, flour, water, salt and a long fermentation."),
    ("geology", "Volcanoes erupt when molten rock from deep inside the earth rises to the surface."),
]
QUERIES = ["How do plants make their food from light?", "What causes a volcanic eruption?", "Why did share prices drop?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    args = parser.parse_args()

    embeddings = MetaEOLEmbeddings(model=args.model)
    documents = [Document(page_content=text, metadata={"topic": topic}) for topic, text in CORPUS]
    store = FAISS.from_documents(documents, embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    for query in QUERIES:
        best = retriever.invoke(query)[0]
        print(f"Q: {query}\n   -> [{best.metadata['topic']}] {best.page_content}")


if __name__ == "__main__":
    main()
