"""Rocchio feedback on vectors, against the formula written out."""

from __future__ import annotations

import numpy as np
import pytest

from metaeol_integrations.evaluation.feedback import rocchio, top_rows


def test_rocchio_moves_each_unit_query_towards_the_mean_of_its_unit_feedback_documents():
    rng = np.random.default_rng(0)
    queries, documents = rng.normal(size=(3, 5)), rng.normal(size=(6, 5)) * 3
    moved = rocchio(queries, documents, [[0, 2], [], [5]], weight=0.5)
    for i, rows in enumerate([[0, 2], [], [5]]):
        expected = queries[i] / np.linalg.norm(queries[i])
        if rows:
            expected = expected + 0.5 * np.mean([documents[j] / np.linalg.norm(documents[j]) for j in rows], axis=0)
        np.testing.assert_allclose(moved[i], expected)
    with pytest.raises(ValueError, match="feedback lists"):
        rocchio(queries, documents, [[0]], weight=1.0)


def test_top_rows_follow_trec_eval_order_and_skip_unknown_documents():
    run = {"q": {"a": 1.0, "b": 3.0, "c": 1.0, "x": 9.0}}
    assert top_rows(run, ["q", "none"], ["a", "b", "c"], depth=3) == [[1, 2], []]  # x is not in the corpus
    assert top_rows(run, ["q", "none"], ["a", "b", "c"], depth=4) == [[1, 2, 0], []]
    assert top_rows(run, ["q"], ["a", "b", "c"], depth=2) == [[1]]
