"""The clients users wire to an OpenAI-compatible endpoint, against the running server: each gets the local vectors
(with the caveats docs/serving.md lists)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serving.conftest import KEY

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

DOCUMENTS = ["A man is playing a guitar.", "Why is the sky blue?", "Zebras have stripes."]
QUERY = "who plays the guitar?"


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float32), expected, atol=1e-5, rtol=0)


def test_official_openai_client_base64_default_and_float(server, tiny_query_model):
    from openai import OpenAI

    url, _ = server
    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    default = client.embeddings.create(model="tiny", input=DOCUMENTS)  # the client asks for base64 and decodes it
    as_float = client.embeddings.create(model="tiny-query", input=QUERY, encoding_format="float")
    close([item.embedding for item in default.data], tiny_query_model.encode_document(DOCUMENTS))
    close(as_float.data[0].embedding, tiny_query_model.encode_query([QUERY])[0])
    assert [model.id for model in client.models.list()] == ["tiny", "tiny-query"]


def test_openai_client_errors_are_typed(server):
    import openai

    url, _ = server
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(model="tiny", input="a")
    with pytest.raises(openai.NotFoundError, match="not served here"):
        openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0).embeddings.create(model="gpt", input="a")


def test_langchain_openai_embeddings(server, tiny_query_model):
    from langchain_openai import OpenAIEmbeddings

    url, _ = server
    # check_embedding_ctx_length=False: otherwise LangChain sends tiktoken ids (refused with a 400 naming this fix).
    documents = OpenAIEmbeddings(model="tiny", base_url=f"{url}/v1", api_key=KEY, check_embedding_ctx_length=False)
    queries = OpenAIEmbeddings(model="tiny-query", base_url=f"{url}/v1", api_key=KEY,
                               check_embedding_ctx_length=False)
    close(documents.embed_documents(DOCUMENTS), tiny_query_model.encode_document(DOCUMENTS))
    close(queries.embed_query(QUERY), tiny_query_model.encode_query([QUERY])[0])


def test_llama_index_openai_like_embedding(server, tiny_query_model):
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    url, _ = server
    documents = OpenAILikeEmbedding(model_name="tiny", api_base=f"{url}/v1", api_key=KEY, max_retries=0)
    queries = OpenAILikeEmbedding(model_name="tiny-query", api_base=f"{url}/v1", api_key=KEY, max_retries=0)
    close(documents.get_text_embedding_batch(DOCUMENTS), tiny_query_model.encode_document(DOCUMENTS))
    close(queries.get_query_embedding(QUERY), tiny_query_model.encode_query([QUERY])[0])
    # Caveat: LlamaIndex's OpenAI classes replace newlines with spaces before sending.
    with_newline = "first line\nsecond line"
    sent = documents.get_text_embedding(with_newline)
    close(sent, tiny_query_model.encode_document([with_newline.replace("\n", " ")])[0])
    assert np.abs(np.asarray(sent) - tiny_query_model.encode_document([with_newline])[0]).max() > 1e-3
