"""Retrieval with LlamaIndex and MetaEOL, fully offline: build, persist, reload and query a vector index.

Run:  .venv/bin/python examples/rag_llamaindex.py [--model metaeol-smollm2-135m] [--persist-dir DIR]
Retrieval only: Settings.llm is None, so no generator LLM is needed; each query prints the best node and its score.
"""

from __future__ import annotations

import argparse
import tempfile

from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex, load_index_from_storage

from metaeol_integrations.llama_index import MetaEOLEmbedding

CORPUS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The stock market fell sharply today as investors worried about rising interest rates.",
    "A good sourdough bread needs a lively starter, flour, water, salt and a long fermentation.",
    "Volcanoes erupt when molten rock from deep inside the earth rises to the surface.",
]
QUERIES = ["Which landmark in France was finished in the nineteenth century?", "What do I need to bake bread?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-smollm2-135m", help="MetaEOL preset, folder or .gguf file")
    parser.add_argument("--persist-dir", help="where to persist the index (default: a temporary folder)")
    args = parser.parse_args()

    Settings.llm = None
    Settings.embed_model = MetaEOLEmbedding(args.model)
    persist_dir = args.persist_dir or tempfile.mkdtemp(prefix="metaeol-index-")

    VectorStoreIndex.from_documents([Document(text=text) for text in CORPUS]).storage_context.persist(persist_dir)
    index = load_index_from_storage(StorageContext.from_defaults(persist_dir=persist_dir))
    retriever = index.as_retriever(similarity_top_k=1)
    for query in QUERIES:
        best = retriever.retrieve(query)[0]
        print(f"Q: {query}\n   -> ({best.score:.3f}) {best.node.get_content()}")
    print(f"index persisted in {persist_dir}")


if __name__ == "__main__":
    main()
