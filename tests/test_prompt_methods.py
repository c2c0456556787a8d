"""Template sets beyond the paper (PCoT, KE, CK) and ensembles: strings against the spec, readout layers and
member weighting against a plain one-prompt-at-a-time computation, persistence, and invariance."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations.core.templates import (
    BUILTIN_TEMPLATE_SETS,
    CK_TEMPLATES,
    KE_TEMPLATES,
    METAEOL_TEMPLATES,
    PCOT_TEMPLATES,
    TemplateError,
    TemplateSet,
)
from tests.reference import assert_batch_invariant, reference_embedding

SPEC = Path(__file__).resolve().parents[2] / "shared" / "docs" / "beyond-metaeol-reference.md"
SENTENCES = ["A man is playing a guitar.", "Why is the sky blue?", 'She said "hi" to {sentence}', "", "Wow!"]
METAEOL = [t.text for t in METAEOL_TEMPLATES.templates]
PCOT = 'After thinking step by step , this sentence : "{sentence}" means in one word:"'
KE = ("The essence of a sentence is often captured by its main subjects and actions, while descriptive terms provide "
      'additional but less central details. With this in mind , this sentence : "{sentence}" means in one word:"')


@pytest.fixture(scope="module")
def plain(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def test_template_strings_are_the_published_ones_character_for_character():
    assert PCOT_TEMPLATES.templates[0].text == PCOT and KE_TEMPLATES.templates[0].text == KE
    assert [t.text for t in CK_TEMPLATES.templates] == [PCOT, KE]
    if SPEC.is_file():  # the spec's own code block, as a second source
        spec = SPEC.read_text(encoding="utf-8")
        assert re.search(r"^PCoT:\s+(.*)$", spec, re.M).group(1) == PCOT
        assert re.search(r"^KE:\s+(.*)$", spec, re.M).group(1) == KE


def test_each_set_keeps_its_published_readout_layer():
    assert PCOT_TEMPLATES.prompt_layers() == (-2,) and KE_TEMPLATES.prompt_layers() == (-2,)
    assert CK_TEMPLATES.prompt_layers() == (-2, -2) and CK_TEMPLATES.prompt_weights() == (0.5, 0.5)
    assert set(METAEOL_TEMPLATES.prompt_layers()) == {None}


@pytest.mark.parametrize(("spec", "members"), [
    ("pcot", [([PCOT], -2)]),
    ("ke", [([KE], -2)]),
    ("ck", [([PCOT], -2), ([KE], -2)]),
    ("metaeol+ke", [(METAEOL, -1), ([KE], -2)]),
    ({"a": "prompteol", "b": "pcot"}, [(['This sentence : "{sentence}" means in one word:"'], -1), ([PCOT], -2)]),
])
@pytest.mark.slow
def test_sets_and_ensembles_equal_the_plain_computation(tiny_model_dir, plain, spec, members):
    """Each member: the mean of its prompts at its own layer, run one prompt at a time; members averaged."""
    model = metaeol_integrations.load(str(tiny_model_dir), templates=spec)
    got = model.encode(SENTENCES, convert_to_tensor=True)
    expected = torch.stack([
        torch.stack([reference_embedding(*plain, text, templates, layer) for templates, layer in members]).mean(0)
        for text in SENTENCES
    ])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_layer_given_by_the_user_overrides_the_sets_own(tiny_model_dir, plain):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="ck", layer=1)
    expected = torch.stack([reference_embedding(*plain, s, [PCOT, KE], 1) for s in SENTENCES])
    torch.testing.assert_close(model.encode(SENTENCES, convert_to_tensor=True), expected, rtol=1e-4, atol=1e-5)
    assert model[0].effective_layer == 1


@pytest.mark.slow
def test_every_layer_view_uses_the_member_weights(tiny_model_dir, plain):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="metaeol+ke")
    outputs = model.encode(SENTENCES[:2], output_value=None, all_layers=True)
    for text, output in zip(SENTENCES[:2], outputs):
        at_one = 0.5 * reference_embedding(*plain, text, METAEOL, 1) + 0.5 * reference_embedding(*plain, text, [KE], 1)
        torch.testing.assert_close(output["layer_embeddings"][1], at_one, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_ensembles_are_invariant_to_batching_and_survive_save_and_load(tiny_model_dir, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="metaeol+ke")
    assert_batch_invariant(model, SENTENCES * 3, seed=1, rtol=1e-5, atol=1e-5)
    cached = model.encode(SENTENCES)
    model[0].prefix_cache = False
    np.testing.assert_allclose(model.encode(SENTENCES), cached, rtol=1e-5, atol=1e-5)
    model[0].prefix_cache = True
    model.save(str(tmp_path / "ens"))
    again = metaeol_integrations.load(str(tmp_path / "ens"))
    assert again[0].template_set == model[0].template_set and again[0].layer is None
    np.testing.assert_allclose(again.encode(SENTENCES), cached, rtol=0, atol=0)


def test_to_dict_round_trips_and_plain_sets_keep_their_old_format():
    for template_set in BUILTIN_TEMPLATE_SETS.values():
        assert TemplateSet.from_dict(template_set.to_dict()) == template_set
    assert set(METAEOL_TEMPLATES.to_dict()) == {"name", "meta_tasks"}  # saved folders and cache keys unchanged
    ensemble = TemplateSet.coerce("metaeol+ke")
    assert TemplateSet.from_dict(ensemble.to_dict()) == ensemble and ensemble.name == "metaeol+ke"


def test_bad_ensembles_and_layers_are_clear_errors(tiny_model_dir):
    with pytest.raises(TemplateError, match="at least two members"):
        TemplateSet.ensemble(["ke"])
    with pytest.raises(TemplateError, match="twice"):
        TemplateSet.coerce("ke+ke")
    with pytest.raises(TemplateError, match="metaeol\\+ke"):
        TemplateSet.coerce("metaeol+nope")
    with pytest.raises(TemplateError, match="not have"):
        TemplateSet.from_dict({"meta_tasks": {"a": ['x "{sentence}" in one word:"']}, "layers": {"b": -2}})
    too_deep = TemplateSet.from_dict({"meta_tasks": {"a": ['x "{sentence}" in one word:"']}, "layers": {"a": 40}})
    with pytest.raises(metaeol_integrations.LayerError):
        metaeol_integrations.load(str(tiny_model_dir), templates=too_deep)
