"""A small synthetic folder in SentEval's layout, so the harness is tested without the real data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from metaeol_integrations.evaluation.data import STS_YEAR_SUBSETS

WORDS = ("man", "woman", "dog", "guitar", "market", "plays", "runs", "fell", "red", "happy", "the", "a", "quickly")


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))) + " ."


def write_fake_senteval(root: Path, seed: int = 0, pairs_per_subset: int = 6, per_class: int = 12) -> Path:
    """Write every file the readers open; every third STS gold line is blank (an unscored pair)."""
    rng = random.Random(seed)
    for year, subsets in STS_YEAR_SUBSETS.items():
        folder = root / "STS" / f"{year}-en-test"
        folder.mkdir(parents=True)
        for subset in subsets:
            pairs = [f"{_sentence(rng)}\t{_sentence(rng)}" for _ in range(pairs_per_subset)]
            gold = ["" if i % 3 == 2 else f"{rng.uniform(0, 5):.3f}" for i in range(pairs_per_subset)]
            (folder / f"STS.input.{subset}.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
            (folder / f"STS.gs.{subset}.txt").write_text("\n".join(gold) + "\n", encoding="utf-8")
    bench = root / "STS" / "STSBenchmark"
    bench.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = [f"main-news\tfile\t2012\t{i:04d}\t{rng.uniform(0, 5):.3f}\t{_sentence(rng)}\t{_sentence(rng)}"
                 for i in range(16)]
        (bench / f"sts-{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sick = root / "SICK"
    sick.mkdir()
    for name in ("SICK_test_annotated.txt", "SICK_train.txt", "SICK_trial.txt"):
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"] + [
            f"{i}\t{_sentence(rng)}\t{_sentence(rng)}\t{rng.uniform(1, 5):.1f}\tNEUTRAL" for i in range(14)
        ]
        (sick / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for task, (pos, neg) in {"MR": ("rt-polarity.pos", "rt-polarity.neg"), "CR": ("custrev.pos", "custrev.neg"),
                             "SUBJ": ("subj.objective", "subj.subjective"), "MPQA": ("mpqa.pos", "mpqa.neg")}.items():
        (root / task).mkdir()
        # Positive texts mention "happy": a probe on any reasonable features beats chance.
        (root / task / pos).write_text("\n".join(f"happy {_sentence(rng)}" for _ in range(per_class)) + "\n")
        (root / task / neg).write_text("\n".join(_sentence(rng) for _ in range(per_class)) + "\n")
    sst = root / "SST" / "binary"
    sst.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = [f"{'happy ' if i % 2 else ''}{_sentence(rng)}\t{i % 2}" for i in range(2 * per_class)]
        (sst / f"sentiment-{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    trec = root / "TREC"
    trec.mkdir()
    labels = ("DESC:manner", "NUM:dist", "LOC:city")
    for name, count in (("train_5500.label", 3 * per_class), ("TREC_10.label", 12)):
        lines = [f"{labels[i % 3]} {_sentence(rng)}" for i in range(count)]
        (trec / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    mrpc = root / "MRPC"
    mrpc.mkdir()
    for split, count in (("train", 2 * per_class), ("test", 12)):
        lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + [
            f"{i % 2}\t{i}\t{i + 1000}\t{_sentence(rng)}\t{_sentence(rng)}" for i in range(count)
        ]
        (mrpc / f"msr_paraphrase_{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def fake_senteval(tmp_path_factory) -> Path:
    """Path of the synthetic SentEval folder."""
    return write_fake_senteval(tmp_path_factory.mktemp("senteval"))


REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "senteval"
