"""Readers for the SentEval downstream files (STS12-16, STS-B, SICK-R and the seven transfer tasks).

Each reader follows SentEval's own loader: the same files, splits, subsets, label mapping and the same dropping of
STS pairs without a gold score. Sentences are whitespace-normalised the way SentEval's batcher sees them
(``" ".join(sentence.split())``). The data is read in place and never copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metaeol_integrations.errors import DataNotFoundError

DATA_DIR_ENV_VAR = "METAEOL_SENTEVAL_DIR"
# Where this project's machines keep the data, relative to the working directory (the repository root).
DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "senteval"

# Subsets per STS year, as SentEval lists them (STS13's SMT is not distributed, so SentEval leaves it out).
STS_YEAR_SUBSETS: dict[str, tuple[str, ...]] = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
STS_TASKS = (*STS_YEAR_SUBSETS, "STSBenchmark", "SICKRelatedness")
TRANSFER_TASKS = ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The SentEval folder: ``data_dir``, else ``$METAEOL_SENTEVAL_DIR``, else ``../shared/data/senteval``."""
    candidate = data_dir or os.environ.get(DATA_DIR_ENV_VAR) or DEFAULT_DATA_DIR
    path = Path(candidate).expanduser()
    if not (path / "STS").is_dir():
        raise DataNotFoundError(
            f"No SentEval data in {str(path)!r} (expected its STS/, SICK/, MR/, ... folders). "
            f"Fix: pass --data-dir PATH or set {DATA_DIR_ENV_VAR}=PATH to the SentEval 'downstream' folder."
        )
    return path


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _lines(path: Path, encoding: str = "utf-8") -> list[str]:
    if not path.is_file():
        raise DataNotFoundError(f"Missing data file {str(path)!r}. Fix: check --data-dir / ${DATA_DIR_ENV_VAR}.")
    with open(path, encoding=encoding, errors="strict") as handle:
        return handle.read().splitlines()


@dataclass(frozen=True)
class STSData:
    """Sentence pairs with gold similarity scores; ``subsets`` names each pair's source file."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray
    subsets: list[str]

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, indices: np.ndarray) -> STSData:
        """The pairs at ``indices``, in that order."""
        return STSData(
            self.name,
            [self.sentences1[i] for i in indices],
            [self.sentences2[i] for i in indices],
            self.scores[indices],
            [self.subsets[i] for i in indices],
        )


@dataclass(frozen=True)
class Split:
    """One split of a classification task: texts (or text pairs) and integer labels."""

    texts: list[str]
    labels: np.ndarray
    texts2: list[str] | None = None


@dataclass(frozen=True)
class TransferData:
    """A classification task. ``splits`` holds "all" (k-fold tasks) or "train"/"test" (and "dev" for SST-2)."""

    name: str
    splits: dict[str, Split]
    num_classes: int
    paired: bool = False
    label_names: list[str] = field(default_factory=list)


def read_sts_year(year: str, data_dir: str | os.PathLike | None = None) -> STSData:
    """STS12..STS16: all subsets of the year concatenated, pairs with an empty gold score dropped."""
    if year not in STS_YEAR_SUBSETS:
        raise ValueError(f"Unknown STS year {year!r}. Fix: use one of {', '.join(STS_YEAR_SUBSETS)}.")
    folder = resolve_data_dir(data_dir) / "STS" / f"{year}-en-test"
    first, second, scores, subsets = [], [], [], []
    for subset in STS_YEAR_SUBSETS[year]:
        pairs = _lines(folder / f"STS.input.{subset}.txt")
        gold = _lines(folder / f"STS.gs.{subset}.txt")
        if len(pairs) != len(gold):
            raise ValueError(f"{year}/{subset}: {len(pairs)} sentence pairs but {len(gold)} gold lines.")
        for number, (pair, score) in enumerate(zip(pairs, gold), start=1):
            if not score.strip():
                continue  # unscored pair: SentEval drops it
            fields = pair.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{year}/{subset} line {number}: expected two tab-separated sentences.")
            first.append(_normalise(fields[0]))
            second.append(_normalise(fields[1]))
            scores.append(float(score))
            subsets.append(subset)
    return STSData(year, first, second, np.asarray(scores, dtype=np.float64), subsets)


def read_sts_benchmark(split: str = "test", data_dir: str | os.PathLike | None = None) -> STSData:
    """STS Benchmark ``train``/``dev``/``test`` (score in column 5, sentences in columns 6 and 7)."""
    path = resolve_data_dir(data_dir) / "STS" / "STSBenchmark" / f"sts-{split}.csv"
    first, second, scores, subsets = [], [], [], []
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) < 7:
            raise ValueError(f"{path} line {number}: expected at least 7 tab-separated columns.")
        first.append(_normalise(fields[5]))
        second.append(_normalise(fields[6]))
        scores.append(float(fields[4]))
        subsets.append(fields[0])
    return STSData(f"STSBenchmark-{split}" if split != "test" else "STSBenchmark", first, second,
                   np.asarray(scores, dtype=np.float64), subsets)


def read_sick_relatedness(split: str = "test", data_dir: str | os.PathLike | None = None) -> STSData:
    """SICK-R: relatedness scores of the ``test`` (4,927 pairs), ``train`` or ``trial`` split."""
    name = {"test": "SICK_test_annotated.txt", "train": "SICK_train.txt", "trial": "SICK_trial.txt"}[split]
    lines = _lines(resolve_data_dir(data_dir) / "SICK" / name)
    first, second, scores, subsets = [], [], [], []
    for line in lines[1:]:  # header
        if not line.strip():
            continue
        fields = line.split("\t")
        first.append(_normalise(fields[1]))
        second.append(_normalise(fields[2]))
        scores.append(float(fields[3]))
        subsets.append(fields[4] if len(fields) > 4 else "SICK")
    return STSData("SICKRelatedness", first, second, np.asarray(scores, dtype=np.float64), subsets)


def read_sts(task: str, data_dir: str | os.PathLike | None = None) -> STSData:
    """Any of :data:`STS_TASKS` with its evaluation split."""
    if task in STS_YEAR_SUBSETS:
        return read_sts_year(task, data_dir)
    if task == "STSBenchmark":
        return read_sts_benchmark("test", data_dir)
    if task == "SICKRelatedness":
        return read_sick_relatedness("test", data_dir)
    raise ValueError(f"Unknown STS task {task!r}. Fix: use one of {', '.join(STS_TASKS)}.")


def _binary(name: str, pos: Path, neg: Path, encoding: str = "utf-8") -> TransferData:
    # Blank lines stay, as empty texts: SentEval keeps them, and its task sizes (CR 3,775, MPQA 10,606) count them.
    positive = [_normalise(line) for line in _lines(pos, encoding)]
    negative = [_normalise(line) for line in _lines(neg, encoding)]
    labels = np.asarray([1] * len(positive) + [0] * len(negative))
    return TransferData(name, {"all": Split(positive + negative, labels)}, 2, label_names=["negative", "positive"])


def _trec(path: Path) -> tuple[list[str], list[str]]:
    texts, coarse = [], []
    for line in _lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        label, text = line.split(" ", 1)
        coarse.append(label.split(":")[0])
        texts.append(_normalise(text))
    return texts, coarse


def _mrpc(path: Path) -> Split:
    first, second, labels = [], [], []
    for line in _lines(path, encoding="utf-8-sig")[1:]:
        if not line.strip():
            continue
        fields = line.split("\t")
        labels.append(int(fields[0]))
        first.append(_normalise(fields[3]))
        second.append(_normalise(fields[4]))
    return Split(first, np.asarray(labels), texts2=second)


def read_transfer(task: str, data_dir: str | os.PathLike | None = None) -> TransferData:
    """Any of :data:`TRANSFER_TASKS` with SentEval's splits and labels."""
    root = resolve_data_dir(data_dir)
    if task == "MR":
        return _binary(task, root / "MR" / "rt-polarity.pos", root / "MR" / "rt-polarity.neg", "latin-1")
    if task == "CR":
        return _binary(task, root / "CR" / "custrev.pos", root / "CR" / "custrev.neg", "latin-1")
    if task == "SUBJ":
        data = _binary(task, root / "SUBJ" / "subj.objective", root / "SUBJ" / "subj.subjective", "latin-1")
        return TransferData(task, data.splits, 2, label_names=["subjective", "objective"])
    if task == "MPQA":
        return _binary(task, root / "MPQA" / "mpqa.pos", root / "MPQA" / "mpqa.neg", "latin-1")
    if task == "SST2":
        splits = {}
        for split in ("train", "dev", "test"):
            texts, labels = [], []
            for line in _lines(root / "SST" / "binary" / f"sentiment-{split}"):
                if not line.strip():
                    continue
                text, label = line.rsplit("\t", 1)
                texts.append(_normalise(text))
                labels.append(int(label))
            splits[split] = Split(texts, np.asarray(labels))
        return TransferData(task, splits, 2, label_names=["negative", "positive"])
    if task == "TREC":
        train_texts, train_labels = _trec(root / "TREC" / "train_5500.label")
        test_texts, test_labels = _trec(root / "TREC" / "TREC_10.label")
        names = sorted(set(train_labels))
        index = {name: i for i, name in enumerate(names)}
        return TransferData(
            task,
            {
                "train": Split(train_texts, np.asarray([index[label] for label in train_labels])),
                "test": Split(test_texts, np.asarray([index[label] for label in test_labels])),
            },
            len(names),
            label_names=names,
        )
    if task == "MRPC":
        splits = {split: _mrpc(root / "MRPC" / f"msr_paraphrase_{split}.txt") for split in ("train", "test")}
        return TransferData(task, splits, 2, paired=True, label_names=["not paraphrase", "paraphrase"])
    raise ValueError(f"Unknown transfer task {task!r}. Fix: use one of {', '.join(TRANSFER_TASKS)}.")


# Common English function words that are not also Portuguese/Spanish/French words ("a", "as", "do", "no" are).
_ENGLISH_MARKERS = frozenset(
    "the is are was were of and with for to this that in on it by at from has have be not or i you he she we they "
    "his its what how who which will can does did an there".split()
)


def english_share(texts: list[str], sample: int = 500) -> float:
    """Share of (the first ``sample``) texts containing a common English function word: a cheap language check.

    The paper's numbers are on the English SentEval files; a translated copy gives scores that are not comparable,
    so the reports warn when a task looks non-English. On the English SentEval STS files every task scores 0.8-1.0
    (headline-style STS13 is lowest); the warning threshold is 0.5.
    """
    chosen = texts[:sample]
    if not chosen:
        return 1.0
    hits = sum(1 for text in chosen if _ENGLISH_MARKERS & set(text.lower().split()))
    return hits / len(chosen)
