"""Packed calls (core/packing.py): rows of a template end to end, no padding computed, the same vectors as plain
transformers running one whole prompt at a time."""

from __future__ import annotations

import pytest
import torch

import metaeol_integrations
from metaeol_integrations.core.batching import token_packs
from metaeol_integrations.core.packing import PackedRows
from tests.reference import official_preprocess, reference_embedding

TEXTS = [
    "A man is playing a guitar.",
    "Short.",
    "",
    "A considerably longer sentence about the weather in the mountains, the rivers and the valleys. " * 2,
    "🙂 emoji and é accent",
    "Two dogs run across a field of grass while a child watches them.",
]


def test_token_packs_hold_every_row_once_within_the_cap():
    lengths = torch.tensor([5, 40, 7, 7, 120, 1, 33, 64])
    packs = token_packs(lengths, 64)
    flat = torch.cat(packs).tolist()
    assert sorted(flat) == list(range(len(lengths)))
    assert [int(lengths[i]) for i in flat] == sorted(lengths.tolist(), reverse=True)
    for pack in packs:  # over the cap only as a row of its own
        assert int(lengths[pack].sum()) <= 64 or len(pack) == 1


def test_packed_layout_and_masks_match_an_explicit_construction():
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    layout = PackedRows.from_mask(mask, prefix_length=2)
    ids = torch.tensor([[10, 11, 12], [20, 0, 0], [30, 31, 0]])
    assert layout.pack(ids).tolist() == [[10, 11, 12, 20, 30, 31]]
    assert layout.position_ids().tolist() == [[2, 3, 4, 2, 2, 3]]
    expected = torch.zeros(6, 8, dtype=torch.bool)
    segments = [(0, 3), (3, 4), (4, 6)]
    for begin, end in segments:
        for query in range(begin, end):
            expected[query, :2] = True  # the shared prefix
            expected[query, 2 + begin : 2 + query + 1] = True  # own row, causal
    assert torch.equal(layout.block_mask()[0, 0], expected)
    with pytest.raises(ValueError, match="right-padded"):
        PackedRows.from_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]), prefix_length=0)


def _count_tokens(model) -> list[int]:
    counted: list[int] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        counted.append(int(ids.shape[0] * ids.shape[1]))

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return counted


@pytest.mark.slow
@pytest.mark.parametrize("prefix_cache", [True, False])
def test_packed_module_computes_only_real_tokens_and_equals_whole_prompts(tiny_model_dir, prefix_cache,
                                                                          monkeypatch):
    from types import SimpleNamespace

    from transformers import AutoModel, AutoTokenizer

    import metaeol_integrations.core.packing as packing

    per_row_calls = []

    def spy(*args, **kwargs):  # the per-row attention (the dense 4D-mask fallback would also be exact, but slow)
        per_row_calls.append(kwargs["attn_mask"].shape)
        return torch.nn.functional.scaled_dot_product_attention(*args, **kwargs)

    monkeypatch.setattr(packing, "F", SimpleNamespace(scaled_dot_product_attention=spy))
    model = metaeol_integrations.load(str(tiny_model_dir), device="cpu", prefix_cache=prefix_cache)
    module = model[0]
    assert module.packing
    features = module.preprocess(TEXTS)
    module.forward(dict(module.preprocess(TEXTS[:1])))  # fill the prefix cache outside the count
    counted = _count_tokens(module.auto_model)
    per_row_calls.clear()
    got = module.forward(dict(features))["sentence_embedding"]
    assert sum(counted) == int(features["attention_mask"].sum())  # no padding token computed
    assert len(per_row_calls) == len(counted) * module.num_layers  # every layer of every call went per row

    plain = AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    templates = [t.text for t in module.template_set.templates]
    for text, vector in zip(TEXTS, got):
        want = reference_embedding(plain, tokenizer, text, templates)
        torch.testing.assert_close(vector, want, rtol=1e-5, atol=1e-5)
    assert official_preprocess("x") == "x."  # the reference's preprocessing is the paper's


@pytest.mark.slow
def test_packed_equals_padded_with_every_layer_token_prepending_and_contrastive(tiny_model_dir):
    packed = metaeol_integrations.load(str(tiny_model_dir), device="cpu", token_prepending=(1, 2),
                                       contrastive={"layer": 1, "alpha": 2.0})
    padded = metaeol_integrations.load(str(tiny_model_dir), device="cpu", token_prepending=(1, 2),
                                       contrastive={"layer": 1, "alpha": 2.0},
                                       model_kwargs={"attn_implementation": "eager"})
    assert packed[0].packing and not padded[0].packing
    got, want = (model[0].forward(dict(model[0].preprocess(TEXTS)), all_layers=True) for model in (packed, padded))
    torch.testing.assert_close(got["layer_embeddings"], want["layer_embeddings"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["sentence_embedding"], want["sentence_embedding"], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_gemma3_dir(tmp_path_factory):
    """A 4-layer random Gemma3 text model (sliding-window and full attention layers) with the tiny tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from tests.conftest import build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-gemma3")
    tokenizer = build_tiny_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, sliding_window=512, max_position_embeddings=4096,
        layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        initializer_range=0.1, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("window", [512, 24])
def test_gemma3_packs_within_its_window_and_equals_whole_prompts(tiny_gemma3_dir, window):
    from transformers import AutoModel, AutoTokenizer

    model = metaeol_integrations.load(str(tiny_gemma3_dir), device="cpu", config_kwargs={"sliding_window": window})
    module = model[0]
    assert module.packing
    features = module.preprocess(TEXTS)
    module.forward(dict(module.preprocess(TEXTS[:1])))
    counted = _count_tokens(module.auto_model)
    got = module.forward(dict(features))["sentence_embedding"]
    # Prompts longer than a 24-token window run padded (a pack's mask has no window); all fit in 512.
    computed_only_real = sum(counted) == int(features["attention_mask"].sum())
    assert computed_only_real == (window == 512)

    plain = AutoModel.from_pretrained(tiny_gemma3_dir, dtype=torch.float32, attn_implementation="eager",
                                      sliding_window=window).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    templates = [t.text for t in module.template_set.templates]
    for text, vector in zip(TEXTS, got):
        want = reference_embedding(plain, tokenizer, text, templates)
        torch.testing.assert_close(vector, want, rtol=1e-5, atol=1e-5)
