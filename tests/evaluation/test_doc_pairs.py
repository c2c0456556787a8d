"""Document-pair similarity derived from BEIR judgements: the pairs are what they claim (related pairs share a
query at the grade asked, unrelated ones share none, both from one pool, seeded), AUC equals counting pairs of
pairs, the paired bootstrap equals a plain resampling loop, and the CLI's cosines are the model's own
``encode_document`` vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import metaeol_integrations
from metaeol_integrations.cli.main import main
from metaeol_integrations.evaluation import beir
from metaeol_integrations.evaluation.doc_pairs import document_pairs, paired_auc_bootstrap, pair_scores

from .test_retrieval import fake_beir  # noqa: F401  (fixture)


def _shared_query(data, a: str, b: str, min_grade: int) -> bool:
    return any(docs.get(a, 0) >= min_grade and docs.get(b, 0) >= min_grade for docs in data.qrels.values())


def test_related_pairs_share_a_query_and_unrelated_pairs_share_none(fake_beir):  # noqa: F811
    data = beir.read_beir(data_dir=fake_beir)
    pairs = document_pairs(data, n_related=10, min_grade=1, seed=0)
    assert len(pairs) == 20 and pairs.related.sum() == 10
    for a, b, related in zip(pairs.first, pairs.second, pairs.related):
        assert a != b and a in pairs.doc_ids and b in pairs.doc_ids
        assert _shared_query(data, a, b, 1) if related else not _shared_query(data, a, b, 1)
    related_docs = {d for a, b, r in zip(pairs.first, pairs.second, pairs.related) if r for d in (a, b)}
    assert set(pairs.doc_ids) == related_docs  # unrelated pairs reuse the related pairs' documents
    assert dict(zip(data.doc_ids, data.doc_texts))[pairs.doc_ids[0]] == pairs.doc_texts[0]
    again = document_pairs(data, n_related=10, min_grade=1, seed=0)
    assert (again.first, again.second) == (pairs.first, pairs.second)
    assert document_pairs(data, n_related=10, min_grade=1, seed=1).first != pairs.first
    # Grade 2: each fake query has one such document, so there is no related pair to draw.
    with pytest.raises(ValueError, match="fewer than 10"):
        document_pairs(data, n_related=10, min_grade=2)
    with pytest.raises(ValueError, match="at least 1"):
        document_pairs(data, n_related=10, min_grade=0)


def test_auc_is_the_share_of_related_unrelated_pairs_ordered_right():
    rng = np.random.default_rng(0)
    related = np.r_[np.ones(30, bool), np.zeros(40, bool)]
    cosines = np.round(rng.normal(related * 0.3, 0.5), 1)  # rounded: ties count one half
    counted = np.mean([(p > n) + 0.5 * (p == n) for p in cosines[related] for n in cosines[~related]])
    scores = pair_scores(cosines, related)
    assert scores["auc"] == pytest.approx(100 * counted)
    assert scores["mean_cosine_related"] == pytest.approx(cosines[:30].mean())


def test_paired_auc_bootstrap_equals_a_plain_stratified_resampling_loop():
    rng = np.random.default_rng(1)
    related = np.r_[np.ones(12, bool), np.zeros(15, bool)]
    a, b = rng.normal(related * 0.5, 1), rng.normal(related * 0.2, 1)

    def auc(cos, lab):
        pos, neg = cos[lab], cos[~lab]
        return 100 * np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])

    draws = np.random.default_rng(4)
    diffs = []
    for _ in range(200):
        draw = np.r_[draws.choice(np.arange(12), 12), draws.choice(np.arange(12, 27), 15)]
        labels = np.r_[np.ones(12, bool), np.zeros(15, bool)]
        diffs.append(auc(a[draw], labels) - auc(b[draw], labels))
    difference = paired_auc_bootstrap(a, b, related, resamples=200, seed=4)
    assert difference.difference == pytest.approx(auc(a, related) - auc(b, related))
    assert (difference.ci_low, difference.ci_high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    same = paired_auc_bootstrap(a, a, related, resamples=20)
    assert (same.difference, same.ci_low, same.ci_high) == (0, 0, 0)


@pytest.mark.slow
def test_cli_eval_doc_pairs_scores_encode_document_cosines_and_compares(tiny_model_dir, fake_beir, tmp_path,  # noqa: F811
                                                                        capsys):
    common = ["--data-dir", str(fake_beir), "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
              "--pairs", "10", "--min-grade", "1"]
    assert main(["eval", "doc-pairs", "--model", str(tiny_model_dir), "--label", "tiny", *common]) == 0
    assert main(["eval", "doc-pairs", "--model", str(tiny_model_dir), "--label", "tiny pe", "--templates",
                 "prompteol", *common]) == 0
    printed = capsys.readouterr().out
    assert "tiny on fake document pairs: AUC" in printed and "(N=10 related + 10 unrelated pairs" in printed
    record = json.loads((tmp_path / "tiny-fake-doc-pairs.json").read_text())
    result = record["results"][0]
    assert result["kind"] == "doc-pairs" and len(result["pairs"]) == 20 and record["meta"]["encoder"]["kind"] == "metaeol"

    model = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    text_of = dict(zip(*(lambda d: (d.doc_ids, d.doc_texts))(beir.read_beir(data_dir=fake_beir))))
    firsts = model.encode_document([text_of[p["first"]] for p in result["pairs"]], normalize_embeddings=True)
    seconds = model.encode_document([text_of[p["second"]] for p in result["pairs"]], normalize_embeddings=True)
    np.testing.assert_allclose([p["cosine"] for p in result["pairs"]], np.sum(firsts * seconds, axis=1), atol=1e-5)

    assert main(["eval", "compare", str(tmp_path / "tiny-fake-doc-pairs.json"),
                 str(tmp_path / "tiny-pe-fake-doc-pairs.json"), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "| AUC | 20 |" in printed and "Verdict on AUC" in printed
    assert main(["eval", "retrieval", "--model", "bm25", "--data-dir", str(fake_beir), "--out", str(tmp_path)]) == 0
    assert main(["eval", "compare", str(tmp_path / "tiny-fake-doc-pairs.json"),
                 str(tmp_path / "bm25-fake-all.json")]) == 2
    assert "eval doc-pairs" in capsys.readouterr().err
    assert main(["eval", "doc-pairs", "--model", "bm25", *common]) == 2
