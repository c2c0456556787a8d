"""The BM25 this project measures: ``bm25s`` (Lucene's scoring, k1=1.5, b=0.75), English stop words, optionally
Snowball stemming. One index class for the evaluation harness and the LangChain hybrid retriever, so both rank alike
(LlamaIndex's own ``BM25Retriever`` is the same bm25s set-up and is used as is)."""

from __future__ import annotations

from collections.abc import Sequence


def _libraries():
    """bm25s and PyStemmer's module, or an ImportError naming the extras that install them."""
    try:
        import bm25s
        import Stemmer
    except ImportError as error:
        raise ImportError('BM25 needs bm25s and PyStemmer, which are not installed. Fix: pip install '
                          '"metaeol-integrations[langchain]" (or [llama-index], [eval]).') from error
    return bm25s, Stemmer


class BM25Index:
    """A BM25 index over ``texts``; :meth:`search` returns each query's best ``(position, score)`` pairs."""

    def __init__(self, texts: Sequence[str], stemmed: bool = True) -> None:
        if not texts:
            raise ValueError("A BM25 index needs at least one text.")
        self._bm25s, stemmer = _libraries()
        self.stemmed, self.size = stemmed, len(texts)
        self._stemmer = stemmer.Stemmer("english") if stemmed else None
        self._index = self._bm25s.BM25()
        self._index.index(self._tokenize(list(texts)), show_progress=False)

    def _tokenize(self, texts: list[str]):
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Each query's ``k`` best texts (at most the index size) as ``(position, score)``, best first."""
        if not queries:
            return []
        docs, scores = self._index.retrieve(self._tokenize(list(queries)), k=min(k, self.size),
                                            show_progress=False, n_threads=1)
        return [[(int(j), float(s)) for j, s in zip(docs[i], scores[i])] for i in range(len(queries))]
