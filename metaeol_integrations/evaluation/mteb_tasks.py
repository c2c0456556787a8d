"""A SentEval STS task for MTEB, read from the local files, so ``mteb.evaluate`` runs offline.

MTEB's own STS tasks download their data from the Hugging Face hub; this one reads the same SentEval folder as
``metaeol eval`` (``--data-dir`` / ``$METAEOL_SENTEVAL_DIR``), optionally a seeded stratified sample.
"""

from __future__ import annotations

import os

from metaeol_integrations._extras import missing_extra

try:
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("eval", "mteb") from error

from metaeol_integrations.evaluation.data import read_sts
from metaeol_integrations.evaluation.sampling import stratified_indices


class SentEvalLocalSTS(AbsTaskSTS):
    """One SentEval STS task (``STS12``..``STS16``, ``STSBenchmark``, ``SICKRelatedness``) from local files."""

    min_score = 0
    max_score = 5
    metadata = TaskMetadata(
        name="SentEvalLocalSTS",
        dataset={"path": "local/senteval-sts", "revision": "local"},
        description="A SentEval STS task read from local files (STS12-16 'all', STS-B test, SICK-R test).",
        reference="https://github.com/facebookresearch/SentEval",
        type="STS",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="cosine_spearman",
        date=("2012-01-01", "2017-12-31"),
        domains=["News", "Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    def __init__(
        self, task: str = "STSBenchmark", data_dir: str | os.PathLike | None = None, limit: int = 0, seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.senteval_task, self.data_dir, self.limit, self.seed = task, data_dir, limit, seed

    def load_data(self, num_proc: int | None = None, **kwargs) -> None:
        if self.data_loaded:
            return
        pairs = read_sts(self.senteval_task, self.data_dir)
        pairs = pairs.take(stratified_indices(pairs.subsets, self.limit, self.seed))
        columns = {"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores.tolist()}
        self.dataset = {"default": DatasetDict({"test": Dataset.from_dict(columns)})}
        self.data_loaded = True
