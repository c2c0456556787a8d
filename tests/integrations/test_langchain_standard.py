"""LangChain's standard test suites, unmodified: embeddings on the tiny model, and the hybrid's retrievers."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from metaeol_integrations.hybrid import Fusion
from metaeol_integrations.langchain import MetaEOLEmbeddings
from metaeol_integrations.langchain.hybrid import BM25Retriever, ScoreFusionRetriever
from tests.conftest import tiny_model_path


HYBRID_TEXTS = ["A man plays the guitar on stage.", "Guitar music fills the hall.", "The market fell today.",
                "Rain is expected tomorrow.", "She bakes bread every morning.", "The band played a new song."]


class _OnTinyModel:
    """What both suites need: the class under test and how to build it."""

    @property
    def embeddings_class(self) -> type[MetaEOLEmbeddings]:
        return MetaEOLEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": str(tiny_model_path()), "model_kwargs": {"device": "cpu"}}


class TestMetaEOLEmbeddingsUnit(_OnTinyModel, EmbeddingsUnitTests):
    pass


@pytest.mark.slow  # builds the model once per test
class TestMetaEOLEmbeddingsIntegration(_OnTinyModel, EmbeddingsIntegrationTests):
    pass


class _HybridQuery:
    @property
    def retriever_query_example(self) -> str:
        return "guitar music"


class TestBM25RetrieverStandard(_HybridQuery, RetrieversIntegrationTests):
    """The bm25s retriever behind langchain.hybrid_retriever, through LangChain's standard retriever suite."""

    @property
    def retriever_constructor(self) -> type[BM25Retriever]:
        return BM25Retriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"documents": [Document(page_content=text) for text in HYBRID_TEXTS]}


class TestScoreFusionRetrieverStandard(_HybridQuery, RetrieversIntegrationTests):
    """The convex-fusion retriever, over an in-memory store of LangChain's deterministic fake embeddings."""

    @property
    def retriever_constructor(self) -> type[ScoreFusionRetriever]:
        return ScoreFusionRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        documents = [Document(page_content=text, id=str(i)) for i, text in enumerate(HYBRID_TEXTS)]
        store = InMemoryVectorStore.from_documents(documents, DeterministicFakeEmbedding(size=16))
        return {"vector_store": store, "lexical": BM25Retriever(documents=documents, k=len(documents)),
                "fusion": Fusion("zscore", 0.2)}
