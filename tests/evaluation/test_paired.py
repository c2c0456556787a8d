"""Paired bootstrap comparison of two runs: against a plain per-resample loop with scipy, degenerate and clear-cut
cases, refusals, and the `metaeol eval compare` command on real run files of the tiny model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from metaeol_integrations.cli.main import main
from metaeol_integrations.errors import IncomparableRunsError
from metaeol_integrations.evaluation.compare import compare_runs
from metaeol_integrations.evaluation.paired import STSPredictions, paired_bootstrap, spearman_rows


def _task(name: str, n: int, seed: int, noise: float) -> tuple[STSPredictions, STSPredictions]:
    rng = np.random.default_rng(seed)
    gold = np.round(rng.uniform(0, 5, n) * 2) / 2  # half-point gold scores: many ties, as in STS
    a = gold + rng.normal(0, noise, n)
    b = np.round(gold + rng.normal(0, 2 * noise, n), 1)  # rounded: ties in the predictions too
    indices = np.arange(n) * 3
    return STSPredictions(name, indices, gold, a), STSPredictions(name, indices, gold, b)


@pytest.fixture()
def two_tasks():
    first, second = _task("T1", 12, 1, 1.5), _task("T2", 9, 2, 1.5)
    return [first[0], second[0]], [first[1], second[1]]


def test_interval_equals_a_plain_loop_over_resamples_with_scipy(two_tasks):
    a, b = two_tasks
    resamples, seed = 300, 7
    result = paired_bootstrap(a, b, resamples=resamples, seed=seed)

    rng = np.random.default_rng(seed)
    per_task = []
    for first, second in zip(a, b):
        draws = rng.integers(0, len(first.gold), size=(resamples, len(first.gold)))
        diffs = []
        for idx in draws:
            score_a = spearmanr(first.predicted[idx], first.gold[idx]).statistic * 100
            score_b = spearmanr(second.predicted[idx], second.gold[idx]).statistic * 100
            diffs.append(score_a - score_b)
        per_task.append(diffs)
        low, high = np.percentile(diffs, [2.5, 97.5])
        row = next(t for t in result.tasks if t.name == first.task)
        assert row.difference == pytest.approx(
            (spearmanr(first.predicted, first.gold).statistic - spearmanr(second.predicted, second.gold).statistic)
            * 100, abs=1e-9)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-9)
    average = [np.mean(column) for column in zip(*per_task)]
    assert (result.average.ci_low, result.average.ci_high) == pytest.approx(
        tuple(np.percentile(average, [2.5, 97.5])), abs=1e-9)
    assert result.average.difference == pytest.approx(np.mean([t.difference for t in result.tasks]), abs=1e-12)


def test_spearman_rows_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    predicted = np.round(rng.normal(size=(5, 40)), 1)
    gold = np.round(rng.uniform(0, 5, size=(5, 40)))
    expected = [spearmanr(p, g).statistic * 100 for p, g in zip(predicted, gold)]
    assert spearman_rows(predicted, gold) == pytest.approx(expected, abs=1e-9)


def test_identical_runs_differ_by_exactly_zero(two_tasks):
    a, _ = two_tasks
    result = paired_bootstrap(a, a, "A", "A again", resamples=200)
    for row in [*result.tasks, result.average]:
        assert row.difference == 0 and row.ci_low == 0 and row.ci_high == 0
        assert not row.excludes_zero
    assert result.verdict().startswith("no difference")


def test_a_clearly_better_run_wins_and_the_order_flips_the_sign():
    first = _task("T1", 200, 3, 0.3)
    second = _task("T2", 150, 4, 0.3)
    worse = [STSPredictions(p.task, p.indices, p.gold, np.random.default_rng(9).permutation(p.predicted))
             for p in (first[1], second[1])]
    better = [first[0], second[0]]
    result = paired_bootstrap(better, worse, "good", "shuffled", resamples=300)
    assert result.average.ci_low > 0 and result.verdict() == "good beats shuffled"
    flipped = paired_bootstrap(worse, better, "shuffled", "good", resamples=300)
    assert flipped.average.difference == pytest.approx(-result.average.difference)
    assert flipped.average.ci_high < 0 and flipped.verdict() == "good beats shuffled"


def test_different_pairs_or_tasks_are_refused(two_tasks):
    a, b = two_tasks
    moved = [STSPredictions(b[0].task, b[0].indices + 1, b[0].gold, b[0].predicted), b[1]]
    with pytest.raises(IncomparableRunsError, match="different pairs"):
        paired_bootstrap(a, moved)
    with pytest.raises(IncomparableRunsError, match="different STS tasks"):
        paired_bootstrap(a, b[:1])


def _eval(args, tiny_model_dir, fake_senteval, tmp_path):
    out = io.StringIO()
    code = main(["eval", "sts", "--model", str(tiny_model_dir), "--data-dir", str(fake_senteval), "--bootstrap", "20",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), *args], out=out)
    assert code == 0, out.getvalue()


@pytest.mark.slow
def test_cli_compare_on_two_real_runs(tiny_model_dir, fake_senteval, tmp_path, capsys):
    _eval(["--sts-limit", "10", "--label", "last"], tiny_model_dir, fake_senteval, tmp_path)
    _eval(["--sts-limit", "10", "--layer", "1", "--label", "first"], tiny_model_dir, fake_senteval, tmp_path)
    run_a, run_b = tmp_path / "out" / "last-sts.json", tmp_path / "out" / "first-sts.json"
    record = json.loads(run_a.read_text())
    for result in record["results"]:  # the stored predictions reproduce the reported score
        assert spearmanr(result["predictions"], result["gold"]).statistic * 100 == pytest.approx(result["score"])
        assert len(result["pair_indices"]) == result["n"] == 10

    out = io.StringIO()
    assert main(["eval", "compare", str(run_a), str(run_b), "--bootstrap", "100", "--json",
                 str(tmp_path / "cmp.json")], out=out) == 0
    text = out.getvalue()
    assert "A = last" in text and "B = first" in text and "| average |" in text and "Verdict" in text
    saved = json.loads((tmp_path / "cmp.json").read_text())
    direct = compare_runs(run_a, run_b, resamples=100)
    assert saved["average"]["difference"] == pytest.approx(direct.average.difference)
    scores = {r["task"]: r["score"] for r in record["results"]}
    assert {t["name"]: t["score_a"] for t in saved["tasks"]} == pytest.approx(scores)

    _eval(["--sts-limit", "8", "--label", "smaller"], tiny_model_dir, fake_senteval, tmp_path)
    capsys.readouterr()
    assert main(["eval", "compare", str(run_a), str(tmp_path / "out" / "smaller-sts.json")]) == 2
    error = capsys.readouterr().err
    assert "IncomparableRunsError" in error and "different pairs" in error and "Traceback" not in error


def test_cli_compare_refuses_missing_and_old_files(tmp_path, capsys):
    assert main(["eval", "compare", str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    assert "No run file" in capsys.readouterr().err
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"meta": {"label": "old"}, "results": [
        {"task": "STS12", "kind": "sts", "score": 50.0, "n": 10, "n_total": 10}]}))
    assert main(["eval", "compare", str(old), str(old)]) == 2
    assert "no per-pair predictions" in capsys.readouterr().err


@pytest.mark.slow
def test_comparisons_against_a_baseline_pair_each_run_with_it_only(tiny_model_dir, fake_senteval, tmp_path):
    from metaeol_integrations.evaluation.report import paired_comparisons

    for options in (["--label", "base"], ["--layer", "1", "--label", "one"], ["--layer", "2", "--label", "two"],
                    ["--sts-limit", "8", "--label", "other-sample"]):
        _eval(["--sts-limit", "10", *options], tiny_model_dir, fake_senteval, tmp_path)
    files = [tmp_path / "out" / f"{name}-sts.json" for name in ("one", "base", "two", "other-sample")]
    comparisons = paired_comparisons(files, resamples=50, baseline=files[1])
    assert [(c.label_a, c.label_b) for c in comparisons] == [("one", "base"), ("two", "base")]
    direct = compare_runs(files[2], files[1], resamples=50)
    assert comparisons[1].average.difference == pytest.approx(direct.average.difference)
    assert len(paired_comparisons(files, resamples=50)) == 3  # all pairs of the three runs on the same sample
