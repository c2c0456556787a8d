"""Retrieval data in BEIR format (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``), read in place.

Also the seeded cuts a CPU run needs: a dev/test half of the queries (BEIR sets ship no dev split, so choices are
made on one seeded half and reported on the other), a query sample, and a corpus sample: either every judged
document of the chosen queries plus random distractors ("judged"), or seeded random documents scored for every query
that keeps a relevant one among them ("uniform": for sets like NFCorpus, whose queries' judged documents are most of
the corpus, so that many queries fit a corpus a CPU can embed).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from metaeol_integrations.errors import DataNotFoundError

RETRIEVAL_DIR_ENV_VAR = "METAEOL_RETRIEVAL_DIR"
# Where this project's machines keep the data, relative to the working directory (the repository root).
DEFAULT_RETRIEVAL_DIR = Path("..") / "shared" / "data" / "retrieval"
RETRIEVAL_TASKS = ("scifact", "nfcorpus")
QUERY_SPLITS = ("all", "dev", "test")
CORPUS_SAMPLINGS = ("judged", "uniform")


@dataclass(frozen=True)
class RetrievalData:
    """A corpus, its queries and their graded judgements (``qrels[query_id][doc_id] = grade``).

    Documents are embedded as ``title + " " + text`` (BEIR's and MTEB's convention), in corpus order.
    """

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]

    @property
    def judged_doc_ids(self) -> set[str]:
        """Documents judged relevant (grade > 0) for at least one of the queries."""
        return {doc for query in self.query_ids for doc, grade in self.qrels.get(query, {}).items() if grade > 0}

    def with_queries(self, query_ids: list[str]) -> RetrievalData:
        """The same corpus with only ``query_ids`` (in that order)."""
        position = {query: i for i, query in enumerate(self.query_ids)}
        return replace(self, query_ids=list(query_ids), query_texts=[self.query_texts[position[q]] for q in query_ids],
                       qrels={q: self.qrels[q] for q in query_ids})

    def with_documents(self, doc_ids: set[str]) -> RetrievalData:
        """The same queries against only the documents in ``doc_ids`` (corpus order kept), judged on those alone:
        a judgement outside them would count in an ideal ranking no retriever can reach."""
        kept = [i for i, doc in enumerate(self.doc_ids) if doc in doc_ids]
        qrels = {query: {doc: grade for doc, grade in judged.items() if doc in doc_ids}
                 for query, judged in self.qrels.items()}
        return replace(self, doc_ids=[self.doc_ids[i] for i in kept], doc_texts=[self.doc_texts[i] for i in kept],
                       qrels=qrels)


def resolve_retrieval_dir(task: str | None, data_dir: str | os.PathLike | None = None) -> Path:
    """The BEIR folder of ``task``: ``data_dir`` itself when it holds ``corpus.jsonl``, else ``data_dir/task``;
    ``data_dir`` defaults to ``$METAEOL_RETRIEVAL_DIR``, else ``../shared/data/retrieval``."""
    root = Path(data_dir or os.environ.get(RETRIEVAL_DIR_ENV_VAR) or DEFAULT_RETRIEVAL_DIR).expanduser()
    folder = root if (root / "corpus.jsonl").is_file() or task is None else root / task
    missing = [name for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv") if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(
            f"No BEIR data in {str(folder)!r} (missing {', '.join(missing)}). Fix: pass --data-dir to a BEIR folder "
            f"(corpus.jsonl, queries.jsonl, qrels/test.tsv) or its parent, or set {RETRIEVAL_DIR_ENV_VAR}."
        )
    return folder


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_beir(task: str | None = None, data_dir: str | os.PathLike | None = None) -> RetrievalData:
    """Read a BEIR folder; queries without a judgement in ``qrels/test.tsv`` are left out (BEIR does the same)."""
    folder = resolve_retrieval_dir(task, data_dir)
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, None)
        if header is None or header[:2] != ["query-id", "corpus-id"]:
            raise DataNotFoundError(f"{folder / 'qrels' / 'test.tsv'} has no 'query-id corpus-id score' header. "
                                    "Fix: use BEIR's qrels format.")
        for query, doc, grade in rows:
            qrels.setdefault(str(query), {})[str(doc)] = int(grade)
    corpus = _jsonl(folder / "corpus.jsonl")
    queries = [q for q in _jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels]
    return RetrievalData(
        name=task or folder.name,
        doc_ids=[str(doc["_id"]) for doc in corpus],
        doc_texts=[f"{doc.get('title') or ''} {doc.get('text') or ''}".strip() for doc in corpus],
        query_ids=[str(q["_id"]) for q in queries],
        query_texts=[q["text"] for q in queries],
        qrels={str(q["_id"]): qrels[str(q["_id"])] for q in queries},
    )


def split_queries(query_ids: list[str], split: str, seed: int = 0) -> list[str]:
    """One seeded half of the queries (``dev`` / ``test``) or all of them, in their original order.

    The halves come from one permutation of the sorted ids, so they are disjoint, cover every query, and do not
    depend on the file's order.
    """
    if split not in QUERY_SPLITS:
        raise ValueError(f"Unknown query split {split!r}. Fix: use one of {', '.join(QUERY_SPLITS)}.")
    if split == "all":
        return list(query_ids)
    order = np.random.default_rng(seed).permutation(len(query_ids))
    ranked = sorted(query_ids)
    dev = {ranked[i] for i in order[: len(ranked) // 2]}
    return [q for q in query_ids if (q in dev) == (split == "dev")]


def sample_queries(query_ids: list[str], limit: int, seed: int = 0) -> list[str]:
    """``limit`` seeded queries (0 or more than there are = all), in their original order."""
    if limit <= 0 or limit >= len(query_ids):
        return list(query_ids)
    chosen = set(np.random.default_rng(seed).permutation(sorted(query_ids))[:limit].tolist())
    return [q for q in query_ids if q in chosen]


def sample_corpus(data: RetrievalData, size: int, seed: int = 0) -> set[str]:
    """Every judged document of ``data``'s queries plus seeded random distractors, ``size`` documents in all.

    With the same seed a larger sample contains a smaller one. A ``size`` of 0 (or at least the corpus) keeps the
    whole corpus; a ``size`` below the number of judged documents keeps just those.
    """
    if size <= 0 or size >= len(data.doc_ids):
        return set(data.doc_ids)
    judged = data.judged_doc_ids & set(data.doc_ids)
    others = [doc for doc in sorted(data.doc_ids) if doc not in judged]
    order = np.random.default_rng(seed).permutation(len(others))
    return judged | {others[i] for i in order[: max(size - len(judged), 0)]}


def sample_corpus_uniform(data: RetrievalData, size: int, seed: int = 0) -> set[str]:
    """``size`` seeded random documents, judged or not (0 or at least the corpus = the whole corpus).

    With the same seed a larger sample contains a smaller one.
    """
    if size <= 0 or size >= len(data.doc_ids):
        return set(data.doc_ids)
    return set(np.random.default_rng(seed).permutation(sorted(data.doc_ids))[:size].tolist())


def evaluation_data(task: str | None, data_dir: str | os.PathLike | None = None, *, split: str = "all",
                    queries: int = 0, corpus_sample: int = 0, seed: int = 0,
                    corpus_sampling: str = "judged") -> tuple[RetrievalData, int]:
    """The queries and documents one retrieval run scores, and the full corpus's size.

    Order of the cuts: a seeded sample of ``queries`` (0 = all), then the corpus sample (``corpus_sampling``:
    "judged" builds it around *those* queries' judged documents, "uniform" draws random documents), then the
    ``split`` half of the queries, so the dev and test halves of one setting share one corpus and keep the halves
    of the whole set. Under "uniform" a query left without any relevant document in the sample is dropped (it could
    only score 0 whatever the retriever).
    """
    if corpus_sampling not in CORPUS_SAMPLINGS:
        raise ValueError(f"Unknown corpus sampling {corpus_sampling!r}. Fix: use one of {', '.join(CORPUS_SAMPLINGS)}.")
    data = read_beir(task, data_dir)
    chosen = sample_queries(data.query_ids, queries, seed)
    if corpus_sampling == "uniform":
        documents = sample_corpus_uniform(data, corpus_sample, seed)
    else:
        documents = sample_corpus(data.with_queries(chosen), corpus_sample, seed)
    halves = data.with_queries(split_queries(chosen, split, seed)).with_documents(documents)
    if corpus_sampling == "uniform":
        halves = halves.with_queries([query for query in halves.query_ids
                                      if any(grade > 0 for grade in halves.qrels[query].values())])
    return halves, len(data.doc_ids)
