"""Token Prepending against an independent computation: each prompt alone through plain transformers, the
placeholder vector put in by hand and the copy done by hooks written here, read with output_hidden_states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations.core.templates import METAEOL_TEMPLATES, TemplateSet
from metaeol_integrations.core.token_prepending import PLACEHOLDER_ID, with_placeholder
from metaeol_integrations.core.tokenization import PromptTokenizer
from tests.reference import assert_batch_invariant, official_preprocess

SENTENCES = ["A man is playing a guitar.", "Why is the sky blue?", 'She said "hi" to {sentence} <PST>', "", "Wow!"]


@pytest.fixture(scope="module")
def plain(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def reference_tp(model, tokenizer, text: str, templates: TemplateSet, tp: tuple[int, int]) -> torch.Tensor:
    """Mean over templates; per template: ids around <PST>, the seeded N(0,1) vector at <PST>, and before each
    decoder layer start..exit-1 the last token's state copied into <PST>; readout at the template's own layer."""
    vectors = []
    for template, own_layer in zip(templates.templates, templates.prompt_layers()):
        assert template.prefix.endswith('"')
        before = tokenizer(template.prefix[:-1]).input_ids
        after = tokenizer(' "' + official_preprocess(text) + template.suffix, add_special_tokens=False).input_ids
        ids = torch.tensor([before + [0] + after])
        embeds = model.get_input_embeddings()(ids).clone()
        placeholder = len(before)
        embeds[0, placeholder] = torch.randn(embeds.shape[-1], generator=torch.Generator().manual_seed(3407))

        def copy(_module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            hidden[0, placeholder] = hidden[0, -1].clone()

        layers = model.layers
        hooks = [layers[i].register_forward_pre_hook(copy, with_kwargs=True) for i in range(*tp)]
        try:
            with torch.no_grad():
                out = model(inputs_embeds=embeds, output_hidden_states=True)
        finally:
            for hook in hooks:
                hook.remove()
        vectors.append(out.hidden_states[-1 if own_layer is None else own_layer][0, -1].float())
    return torch.stack(vectors).mean(0)


def test_placeholder_goes_before_the_slots_opening_quote_as_in_the_official_code():
    for template in METAEOL_TEMPLATES.templates:
        expected = template.text.replace('this sentence : "{sentence}"', 'this sentence : <PST> "{sentence}"')
        assert with_placeholder(template).text == expected


def test_ids_equal_the_tokenizer_with_pst_registered(tiny_model_dir):
    """The spec's check: prefix + placeholder + suffix ids == tokenising the whole string with <PST> added."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = PromptTokenizer(tokenizer, METAEOL_TEMPLATES, 512, placeholder=True)
    ours = prompts.tokenize(SENTENCES[:3]).input_ids
    registered = AutoTokenizer.from_pretrained(tiny_model_dir)
    registered.add_tokens(["<PST>"])
    pst = registered.convert_tokens_to_ids("<PST>")
    texts = [with_placeholder(t).fill(official_preprocess(s)) for s in SENTENCES[:3] for t in METAEOL_TEMPLATES.templates]
    expected = [[PLACEHOLDER_ID if i == pst else i for i in ids] for ids in registered(texts).input_ids]
    # A "<PST>" inside the user's text is text: only the template's placeholder is one.
    assert ours[:16] == expected[:16]
    assert all(ids.count(PLACEHOLDER_ID) == 1 for ids in ours)


@pytest.mark.slow
@pytest.mark.parametrize("tp", [(1, 2), (1, 3)])
@pytest.mark.parametrize("templates", ["prompteol", "metaeol", "ke"])
def test_module_equals_the_independent_computation(tiny_model_dir, plain, templates, tp):
    model = metaeol_integrations.load(str(tiny_model_dir), templates=templates, token_prepending=tp)
    got = model.encode(SENTENCES, convert_to_tensor=True)
    expected = torch.stack([reference_tp(*plain, s, TemplateSet.coerce(templates), tp) for s in SENTENCES])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    model[0].prefix_cache = False
    np.testing.assert_allclose(model.encode(SENTENCES), got.numpy(), rtol=1e-5, atol=1e-5)  # cached == uncached


@pytest.mark.slow
def test_it_changes_the_vectors_and_keeps_invariance_and_persistence(tiny_model_dir, tmp_path):
    without = metaeol_integrations.load(str(tiny_model_dir)).encode(SENTENCES)
    model = metaeol_integrations.load(str(tiny_model_dir), token_prepending=(1, 3))
    with_tp = model.encode(SENTENCES)
    assert np.abs(with_tp - without).max() > 1e-3
    assert_batch_invariant(model, SENTENCES * 3, seed=2, rtol=1e-5, atol=1e-5)
    model.save(str(tmp_path / "tp"))
    again = metaeol_integrations.load(str(tmp_path / "tp"))
    assert again[0].token_prepending == [1, 3]
    np.testing.assert_allclose(again.encode(SENTENCES), with_tp, rtol=0, atol=0)


def test_bad_ranges_are_clear_errors(tiny_model_dir):
    for bad in [(0, 2), (2, 2), (1, 4), "yes", (1.0, 2)]:
        with pytest.raises(metaeol_integrations.LayerError):
            metaeol_integrations.load(str(tiny_model_dir), token_prepending=bad)


def test_smollm2_equals_the_independent_computation(smollm2_reference):
    model = metaeol_integrations.load("metaeol-smollm2-135m", templates="prompteol", token_prepending=(1, 7))
    got = model.encode(SENTENCES[:3], convert_to_tensor=True)
    expected = torch.stack([reference_tp(*smollm2_reference, s, TemplateSet.coerce("prompteol"), (1, 7))
                            for s in SENTENCES[:3]])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_cli_flag_reaches_the_model(tiny_model_dir, capsys):
    import io

    from metaeol_integrations.cli.main import main

    out = io.StringIO()
    assert main(["encode", "--model", str(tiny_model_dir), "--token-prepending", "1,3", "--similarity", "a", "b"],
                out=out) == 0
    assert main(["encode", "--model", str(tiny_model_dir), "--token-prepending", "1,9", "x"]) == 2
    assert "LayerError" in capsys.readouterr().err
