"""The default preset's shipped centering: the paper's vectors minus a mean fitted once on general sentences, so
cosines spread (docs/decisions.md, "Cosines that mean something")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import metaeol_integrations
from metaeol_integrations.postprocessing import CorpusCenter
from metaeol_integrations.postprocessing.center import SHIPPED_MEANS
from metaeol_integrations.presets import PRESETS

RECORD = Path(__file__).parents[1] / "docs" / "results" / "spread" / "metaeol-smollm2-135m-paper.json"
SENTENCES = ["A man is playing a guitar.", "The stock market fell today.", "Someone is playing an instrument."]


def test_the_shipped_mean_is_the_committed_fit():
    """The packaged mean is the one scripts/spread_center.py fitted and scored (float32 of its float64 record)."""
    record = json.loads(RECORD.read_text())
    filename, mode = PRESETS["metaeol-smollm2-135m"].center
    mean = load_file(str(SHIPPED_MEANS / filename))["mean"]
    np.testing.assert_allclose(mean, np.asarray(record["mean"]), rtol=1e-6, atol=1e-6)
    assert record["fit_texts"] == 1000 and mode in {row["variant"] for row in record["rows"]}
    assert PRESETS["metaeol-smollm2-135m-paper"].center is None
    assert PRESETS["metaeol-smollm2-135m-paper"].recipe == PRESETS["metaeol-smollm2-135m"].recipe


@pytest.mark.slow
def test_default_preset_is_the_paper_vectors_minus_the_shipped_mean(smollm2, tmp_path):
    default = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", model_kwargs={"dtype": "float32"})
    assert [type(m).__name__ for m in default] == ["MetaEOL", "CorpusCenter"]
    filename, mode = PRESETS["metaeol-smollm2-135m"].center
    mean = load_file(str(SHIPPED_MEANS / filename))["mean"].astype(np.float64)
    paper = smollm2.encode(SENTENCES).astype(np.float64)
    direction = mean / np.linalg.norm(mean)
    expected = paper - mean if mode == "subtract" else paper - np.outer(paper @ direction, direction)
    np.testing.assert_allclose(default.encode(SENTENCES), expected, rtol=1e-4, atol=1e-4)
    # Cosines spread: the README's unrelated pair falls far below its paraphrase.
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    centred, plain = unit(expected), unit(paper)
    assert centred[0] @ centred[1] < 0.5 < 0.7 < centred[0] @ centred[2]
    assert plain[0] @ plain[1] > 0.8  # the paper's vectors: every pair high
    # Saved and loaded, the centering comes along.
    metaeol_integrations.save(default, tmp_path / "centred")
    np.testing.assert_array_equal(metaeol_integrations.load(str(tmp_path / "centred")).encode(SENTENCES),
                                  default.encode(SENTENCES))


@pytest.mark.slow
def test_the_shipped_centering_is_left_out_when_options_change_the_vectors():
    changed = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", templates="prompteol")
    assert not any(isinstance(m, CorpusCenter) for m in changed)
    layer = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", layer=28)
    assert not any(isinstance(m, CorpusCenter) for m in layer)
    shorter = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", max_seq_length=256)
    assert isinstance(shorter[1], CorpusCenter)  # cutting long texts does not change what the vectors are


def test_default_preset_card_quotes_the_spread_record():
    record = json.loads(RECORD.read_text())
    rows = {row["variant"]: row for row in record["rows"]}
    _, mode = PRESETS["metaeol-smollm2-135m"].center
    measured = PRESETS["metaeol-smollm2-135m"].measured
    assert f"Spearman {rows[mode]['spearman']:.2f} against {rows['as is']['spearman']:.2f}" in measured
    assert f"({rows[mode]['diff']:+.2f}, 95% CI [{rows[mode]['low']:+.2f}, {rows[mode]['high']:+.2f}])" in measured
    assert f"pairs (gold <= 1) {rows[mode]['unrelated_mean']:.2f} instead of {rows['as is']['unrelated_mean']:.2f}" in measured
    for split in ("dev", "test"):
        row = next(r for r in record["retrieval"] if (r["task"], r["split"], r["variant"]) == ("scifact", split, mode))
        assert f"{row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}] on the {split} half" in measured
