"""SentEval readers: subsets, dropped pairs, split sizes, and errors for missing data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from metaeol_integrations.errors import DataNotFoundError
from metaeol_integrations.evaluation import data as senteval
from metaeol_integrations.evaluation.sampling import stratified_indices
from tests.evaluation.conftest import REAL_DATA

real_data = Path(os.environ.get(senteval.DATA_DIR_ENV_VAR, REAL_DATA))
needs_real_data = pytest.mark.skipif(not (real_data / "STS").is_dir(), reason=f"no SentEval data at {real_data}")


def _scored_lines(folder: Path, subsets) -> int:
    """Count scored pairs straight from the gold files, independently of the reader."""
    total = 0
    for subset in subsets:
        with open(folder / f"STS.gs.{subset}.txt", encoding="utf-8") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def test_sts_year_concatenates_subsets_and_drops_unscored_pairs(fake_senteval):
    data = senteval.read_sts_year("STS12", fake_senteval)
    assert len(data) == _scored_lines(fake_senteval / "STS" / "STS12-en-test", senteval.STS_YEAR_SUBSETS["STS12"])
    assert len(data) == 5 * 4  # 6 pairs per subset, every third unscored
    assert list(dict.fromkeys(data.subsets)) == list(senteval.STS_YEAR_SUBSETS["STS12"])
    assert not np.isnan(data.scores).any()


@needs_real_data
@pytest.mark.parametrize(("task", "expected"), [
    ("STS12", 3108), ("STS13", 1500), ("STS14", 3750), ("STS15", 3000), ("STS16", 1186),
    ("STSBenchmark", 1379), ("SICKRelatedness", 4927),
])
def test_real_sts_sizes_match_the_files_and_senteval(task, expected):
    data = senteval.read_sts(task, real_data)
    assert len(data) == expected
    if task in senteval.STS_YEAR_SUBSETS:
        folder = real_data / "STS" / f"{task}-en-test"
        assert len(data) == _scored_lines(folder, senteval.STS_YEAR_SUBSETS[task])


@needs_real_data
@pytest.mark.parametrize(("task", "sizes"), [
    ("MR", {"all": 10662}), ("CR", {"all": 3775}), ("SUBJ", {"all": 10000}), ("MPQA", {"all": 10606}),
    ("SST2", {"train": 67349, "dev": 872, "test": 1821}), ("TREC", {"train": 5452, "test": 500}),
    ("MRPC", {"train": 4076, "test": 1725}),
])
def test_real_transfer_sizes_match_senteval(task, sizes):
    data = senteval.read_transfer(task, real_data)
    assert {name: len(split.labels) for name, split in data.splits.items()} == sizes
    for split in data.splits.values():
        assert len(split.texts) == len(split.labels)
        if data.paired:
            assert len(split.texts2) == len(split.labels)
    if task == "TREC":
        assert data.num_classes == 6


def test_missing_data_folder_is_a_typed_error_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(senteval.DATA_DIR_ENV_VAR, raising=False)
    with pytest.raises(DataNotFoundError, match="Fix: pass --data-dir"):
        senteval.resolve_data_dir(tmp_path / "nowhere")
    assert isinstance(DataNotFoundError("x"), FileNotFoundError)


def test_environment_variable_sets_the_data_folder(fake_senteval, monkeypatch):
    monkeypatch.setenv(senteval.DATA_DIR_ENV_VAR, str(fake_senteval))
    assert senteval.resolve_data_dir() == fake_senteval
    assert len(senteval.read_sts("STSBenchmark")) == 16


def test_missing_file_inside_the_folder_names_it(fake_senteval, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fake_senteval, copy)
    (copy / "STS" / "STS13-en-test" / "STS.input.FNWN.txt").unlink()
    with pytest.raises(DataNotFoundError, match="STS.input.FNWN.txt"):
        senteval.read_sts("STS13", copy)


def test_stratified_sample_is_proportional_seeded_and_sorted():
    strata = ["a"] * 600 + ["b"] * 300 + ["c"] * 100
    first = stratified_indices(strata, 100, seed=3)
    assert len(first) == 100 and list(first) == sorted(first)
    counts = {s: sum(1 for i in first if strata[i] == s) for s in "abc"}
    assert counts == {"a": 60, "b": 30, "c": 10}
    assert np.array_equal(first, stratified_indices(strata, 100, seed=3))
    assert not np.array_equal(first, stratified_indices(strata, 100, seed=4))
    assert np.array_equal(stratified_indices(strata, 0, seed=3), np.arange(1000))


@needs_real_data
@pytest.mark.parametrize("task", senteval.STS_TASKS)
def test_english_check_stays_silent_on_the_english_sts_files(task):
    data = senteval.read_sts(task, real_data)
    for sentences in (data.sentences1, data.sentences2):
        assert senteval.english_share(sentences) > 0.75


def test_english_check_flags_translated_text():
    assert senteval.english_share(["The cat is on the mat .", "A man plays with the dog ."]) == 1.0
    portuguese = ["O gato está no tapete .", "Um homem brinca com o cachorro .", "uma mulher está cortando cebolas .",
                  "o que você acha disso ?", "eu não sei se ele vai ."]
    assert senteval.english_share(portuguese) == 0.0
