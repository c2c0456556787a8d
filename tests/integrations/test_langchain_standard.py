"""LangChain's standard embeddings test suites, unmodified, on the tiny model."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from metaeol_integrations.langchain import MetaEOLEmbeddings
from tests.conftest import tiny_model_path


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
