"""Contrastive Prompting against an independent computation: the auxiliary prompt and each normal prompt run alone
through plain transformers, v_aux captured and the o_proj input replaced by hooks written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations.core.contrastive import AUXILIARY_TEMPLATE
from metaeol_integrations.core.templates import TemplateSet
from tests.reference import assert_batch_invariant, official_preprocess

SENTENCES = ["A man is playing a guitar.", "Why is the sky blue?", 'She said "hi" to {sentence}', "", "Wow!"]


@pytest.fixture(scope="module")
def plain(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _o_proj(model, layer):
    return model.layers[layer].self_attn.o_proj


def reference_cp(model, tokenizer, text, templates: TemplateSet, layer, mode, alpha=2.0, tp=None):
    sentence = official_preprocess(text)
    captured = []
    hook = _o_proj(model, layer).register_forward_pre_hook(lambda _m, args: captured.append(args[0][0, -1].clone()))
    with torch.no_grad():
        model(**tokenizer(AUXILIARY_TEMPLATE.replace("{sentence}", sentence), return_tensors="pt"))
    hook.remove()
    v_aux = captured[0]

    def replace(_module, args):
        x = args[0].clone()
        v = x[0, -1]
        d = v - v_aux
        x[0, -1] = alpha * d if mode == "ns" else d * v.norm() / (d.norm() + 1e-7)
        return (x,)

    vectors = []
    for template, own_layer in zip(templates.templates, templates.prompt_layers()):
        hooks = [_o_proj(model, layer).register_forward_pre_hook(replace)]
        if tp is None:
            inputs = dict(tokenizer(template.fill(sentence), return_tensors="pt"))
        else:  # Token Prepending as well: placeholder vector by hand, copy hooks
            before = tokenizer(template.prefix[:-1]).input_ids
            after = tokenizer(' "' + sentence + template.suffix, add_special_tokens=False).input_ids
            embeds = model.get_input_embeddings()(torch.tensor([before + [0] + after])).clone()
            embeds[0, len(before)] = torch.randn(embeds.shape[-1], generator=torch.Generator().manual_seed(3407))
            position = len(before)

            def copy(_module, args, kwargs):
                hidden = args[0] if args else kwargs["hidden_states"]
                hidden[0, position] = hidden[0, -1].clone()

            hooks += [model.layers[i].register_forward_pre_hook(copy, with_kwargs=True) for i in range(*tp)]
            inputs = {"inputs_embeds": embeds}
        try:
            with torch.no_grad():
                out = model(**inputs, output_hidden_states=True)
        finally:
            for handle in hooks:
                handle.remove()
        vectors.append(out.hidden_states[-1 if own_layer is None else own_layer][0, -1])
    return torch.stack(vectors).mean(0)


@pytest.mark.parametrize("config", [
    {"layer": 1, "mode": "ns", "alpha": 2.0}, {"layer": 0, "mode": "nr"}, {"layer": 2, "mode": "ns", "alpha": 0.5},
])
@pytest.mark.slow
@pytest.mark.parametrize("templates", ["prompteol", "ck", "metaeol"])
def test_module_equals_the_independent_computation(tiny_model_dir, plain, templates, config):
    model = metaeol_integrations.load(str(tiny_model_dir), templates=templates, contrastive=config)
    got = model.encode(SENTENCES, convert_to_tensor=True)
    expected = torch.stack([
        reference_cp(*plain, s, TemplateSet.coerce(templates), config["layer"], config["mode"], config.get("alpha", 2.0))
        for s in SENTENCES
    ])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    model[0].prefix_cache = False
    np.testing.assert_allclose(model.encode(SENTENCES), got.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_composes_with_token_prepending(tiny_model_dir, plain):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="metaeol", token_prepending=(1, 3),
                                      contrastive={"layer": 1, "mode": "ns", "alpha": 3.0})
    got = model.encode(SENTENCES, convert_to_tensor=True)
    expected = torch.stack([reference_cp(*plain, s, TemplateSet.coerce("metaeol"), 1, "ns", 3.0, tp=(1, 3))
                            for s in SENTENCES])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_invariance_persistence_and_refusals(tiny_model_dir, tmp_path):
    config = {"layer": 1, "mode": "nr"}
    model = metaeol_integrations.load(str(tiny_model_dir), templates="ck", contrastive=config)
    assert_batch_invariant(model, SENTENCES * 3, seed=3, rtol=1e-5, atol=1e-5)
    vectors = model.encode(SENTENCES)
    assert np.abs(vectors - metaeol_integrations.load(str(tiny_model_dir), templates="ck").encode(SENTENCES)).max() > 1e-3
    model.save(str(tmp_path / "cp"))
    again = metaeol_integrations.load(str(tmp_path / "cp"))
    assert again[0].contrastive == {**model[0].contrastive} and again[0].contrastive["mode"] == "nr"
    np.testing.assert_allclose(again.encode(SENTENCES), vectors, rtol=0, atol=0)
    with pytest.raises(metaeol_integrations.LayerError, match="does not exist"):
        metaeol_integrations.load(str(tiny_model_dir), contrastive=True)  # layer 4 of a 3-layer model
    for bad in [{"layer": 1, "mode": "sub"}, {"layer": 1, "colour": 2}, {"layer": "1"}, "yes"]:
        with pytest.raises(metaeol_integrations.LayerError):
            metaeol_integrations.load(str(tiny_model_dir), contrastive=bad)


def test_smollm2_equals_the_independent_computation(smollm2_reference):
    config = {"layer": 4, "mode": "ns", "alpha": 2.0}
    model = metaeol_integrations.load("metaeol-smollm2-135m", templates="prompteol", contrastive=config)
    got = model.encode(SENTENCES[:3], convert_to_tensor=True)
    expected = torch.stack([reference_cp(*smollm2_reference, s, TemplateSet.coerce("prompteol"), 4, "ns", 2.0)
                            for s in SENTENCES[:3]])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cli_flag_reaches_the_model(tiny_model_dir, capsys):
    import io

    from metaeol_integrations.cli.main import main

    assert main(["encode", "--model", str(tiny_model_dir), "--contrastive", "1,nr", "x"], out=io.StringIO()) == 0
    assert main(["encode", "--model", str(tiny_model_dir), "--contrastive", "9", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", "--model", str(tiny_model_dir), "--contrastive", "one,ns", "x"])
