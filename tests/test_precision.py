"""Low precision (bfloat16 / float16 blocks, float32 residual stream) and ``dtype="auto"``.

Every fast path in low precision is checked against whole prompts run one at a time by plain transformers in the same
precision mode, which this file sets up by hand: the attention and MLP of each decoder layer moved to the 16-bit type
with a pre-hook casting their inputs, everything else float32.

Tolerance: two computations of the same prompt in 16-bit blocks differ where a float32 difference of a few ulps (other
kernel shapes: packed rows, a cached prefix, padding) flips the rounding of a block input; one flip moves that input
by one unit in the last place, u = 2^-8 for bfloat16 and 2^-11 for float16. The vectors are held to 2u of their norm
(observed here: 2.8e-3 for bfloat16, 5.5e-4 for float16), and the float32 model must be further than that from the
bfloat16 reference (observed 1.2e-2), so the check sees whether low precision was applied at all.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations.core import precision
from metaeol_integrations.core.templates import TemplateSet
from metaeol_integrations.errors import QuantizationError, UnsupportedDTypeError
from tests.reference import reference_embedding
from tests.test_contrastive import reference_cp
from tests.test_packing import tiny_gemma3_dir  # noqa: F401  (a fixture)
from tests.test_token_prepending import reference_tp

SENTENCES = ["A man is playing a guitar.", "Why is the sky blue?", "The quick brown fox jumps over the dog. " * 5,
             "", "Wow!"]
ABSTRACT = (
    "Alterations of the architecture of cerebral white matter in the developing human brain can affect cortical "
    "development and result in functional disabilities. A line scan diffusion-weighted magnetic resonance imaging "
    "sequence with diffusion tensor analysis was applied to measure the apparent diffusion coefficient, to calculate "
    "relative anisotropy, and to delineate three-dimensional fiber architecture in cerebral white matter in preterm "
    "infants. To assess effects of prematurity on cerebral white matter development, early gestation preterm infants "
    "were studied a second time at term. Mean diffusion coefficients in central white matter were higher in preterm "
    "infants than in full-term infants, and relative anisotropy was lower."
)
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def _cast(value, dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_cast(item, dtype) for item in value)
    return value


def plain_in(model_dir, dtype) -> torch.nn.Module:
    """Plain transformers with self_attn and mlp of every decoder layer in ``dtype``, the rest float32."""
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    if dtype != torch.float32:
        for layer in model.layers:
            for block in (layer.self_attn, layer.mlp):
                block.to(dtype)
                block.register_forward_pre_hook(
                    lambda _m, args, kwargs: (_cast(args, dtype), {k: _cast(v, dtype) for k, v in kwargs.items()}),
                    with_kwargs=True)
    return model


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float(((got - expected).norm(dim=1) / expected.norm(dim=1)).max())


def whole_prompts(model, tokenizer, templates: str) -> torch.Tensor:
    template_set = TemplateSet.coerce(templates)
    return torch.stack([reference_embedding(model, tokenizer, s, [t.text for t in template_set.templates])
                        for s in SENTENCES])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_blocks_compute_in_16_bits_and_the_rest_stays_float32(tiny_model_dir, dtype):
    model = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": dtype}, device="cpu")
    module = model[0]
    assert module.precision == precision.PrecisionChoice(dtype, "requested")
    decoder = module.auto_model
    assert decoder.layers[0].mlp.up_proj.weight.dtype == dtype
    assert decoder.layers[0].self_attn.q_proj.weight.dtype == dtype
    for tensor in (decoder.embed_tokens.weight, decoder.norm.weight, decoder.layers[0].input_layernorm.weight):
        assert tensor.dtype == torch.float32
    assert precision.compute_dtype(decoder) == dtype
    vectors = model.encode(SENTENCES, convert_to_tensor=True)
    assert vectors.dtype == torch.float32 and torch.isfinite(vectors).all()
    assert str(dtype).removeprefix("torch.") in repr(module)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", ["packed+cache", "packed", "padded+cache", "padded"])
def test_every_batching_path_equals_whole_prompts_in_the_same_precision(tiny_model_dir, tokenizer, dtype, path):
    model = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": dtype}, device="cpu",
                                      prefix_cache=path.endswith("+cache"))
    model[0].packing = path.startswith("packed")
    expected = whole_prompts(plain_in(tiny_model_dir, dtype), tokenizer, "metaeol")
    tolerance = 2 * UNIT_ROUNDOFF[dtype]
    assert relative_error(model.encode(SENTENCES, convert_to_tensor=True), expected) <= tolerance
    if dtype == torch.bfloat16:  # the check can tell float32 from bfloat16
        float32 = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
        assert relative_error(float32.encode(SENTENCES, convert_to_tensor=True), expected) > tolerance


@pytest.mark.slow
def test_shared_text_equals_whole_prompts_in_bfloat16(tiny_model_dir, tokenizer):
    model = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, device="cpu",
                                      templates="metaeol-textfirst")
    assert model[0].shared_text
    expected = whole_prompts(plain_in(tiny_model_dir, torch.bfloat16), tokenizer, "metaeol-textfirst")
    assert relative_error(model.encode(SENTENCES, convert_to_tensor=True), expected) <= 2 * UNIT_ROUNDOFF[torch.bfloat16]


@pytest.mark.slow
def test_token_prepending_and_contrastive_equal_the_independent_computation_in_bfloat16(tiny_model_dir, tokenizer):
    plain = plain_in(tiny_model_dir, torch.bfloat16)
    tolerance = 2 * UNIT_ROUNDOFF[torch.bfloat16]
    tp = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, templates="metaeol",
                                   token_prepending=(1, 3))
    expected = torch.stack([reference_tp(plain, tokenizer, s, TemplateSet.coerce("metaeol"), (1, 3)) for s in SENTENCES])
    assert relative_error(tp.encode(SENTENCES, convert_to_tensor=True), expected) <= tolerance
    cp = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, templates="prompteol",
                                   contrastive={"layer": 1, "mode": "ns", "alpha": 2.0})
    expected = torch.stack([reference_cp(plain, tokenizer, s, TemplateSet.coerce("prompteol"), 1, "ns", 2.0)
                            for s in SENTENCES]).float()
    assert relative_error(cp.encode(SENTENCES, convert_to_tensor=True), expected) <= tolerance


@pytest.mark.slow
def test_gemma3_packed_in_bfloat16_equals_whole_prompts(tiny_gemma3_dir):  # noqa: F811
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    plain = plain_in(tiny_gemma3_dir, torch.bfloat16)
    model = metaeol_integrations.load(str(tiny_gemma3_dir), model_kwargs={"dtype": "bfloat16"}, device="cpu")
    assert model[0].packing
    expected = whole_prompts(plain, tokenizer, "metaeol")
    assert relative_error(model.encode(SENTENCES, convert_to_tensor=True), expected) <= 2 * UNIT_ROUNDOFF[torch.bfloat16]


@pytest.mark.slow
def test_low_precision_keeps_batch_invariance_chunking_and_a_save_load_round_trip(tiny_model_dir, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, device="cpu")
    one = model.encode(SENTENCES * 2, batch_size=1)
    many = model.encode(SENTENCES * 2, batch_size=32)
    np.testing.assert_allclose(many, one, rtol=0, atol=2 * UNIT_ROUNDOFF[torch.bfloat16] * np.abs(one).max())
    model.save(str(tmp_path / "bf16"))
    again = metaeol_integrations.load(str(tmp_path / "bf16"), model_kwargs={"dtype": "bfloat16"}, device="cpu")
    np.testing.assert_allclose(again.encode(SENTENCES), model.encode(SENTENCES), rtol=0, atol=1e-6)
    pickle.loads(pickle.dumps(model[0]))  # the blocks' pre-hooks pickle (the multi-process pool needs that)
    chunked = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, device="cpu",
                                        chunk_tokens=4)
    vector = chunked.encode([SENTENCES[2]], convert_to_tensor=True)
    from metaeol_integrations.core.chunking import split_into_windows

    windows = split_into_windows([SENTENCES[2]], chunked[0].tokenizer, 4)[0]
    by_window = model.encode(windows, convert_to_tensor=True).mean(dim=0, keepdim=True)
    assert relative_error(vector, by_window) <= 2 * UNIT_ROUNDOFF[torch.bfloat16]


def test_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda names=(), cpuinfo="": ())
    precision._auto_choice.cache_clear()
    assert precision.auto_precision("cpu").dtype == torch.float32
    monkeypatch.setattr(precision, "cpu_flags", lambda names=(), cpuinfo="": ("amx_bf16",))
    rates = {torch.float32: 100.0, torch.bfloat16: 800.0}
    monkeypatch.setattr(precision, "matmul_rate", lambda dtype, *a, **k: rates[dtype])
    precision._auto_choice.cache_clear()
    choice = precision.auto_precision("cpu")
    assert choice.dtype == torch.bfloat16 and "amx_bf16" in choice.reason and "8.0x" in choice.reason
    rates[torch.bfloat16] = 120.0  # units reported, but bfloat16 no faster here: float32
    precision._auto_choice.cache_clear()
    assert precision.auto_precision("cpu").dtype == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    precision._auto_choice.cache_clear()
    assert precision.auto_precision("cuda").dtype == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    precision._auto_choice.cache_clear()
    assert precision.auto_precision("cuda").dtype == torch.bfloat16
    assert precision.auto_precision("cuda", parameters=7_000_000_000).dtype == torch.bfloat16
    small = precision.auto_precision("cuda", parameters=135_000_000)  # launch-bound on a GPU: float32
    assert small.dtype == torch.float32 and "0.14 B" in small.reason
    assert precision.auto_precision("cpu", parameters=135_000_000).dtype == torch.float32  # the CPU rule above
    precision._auto_choice.cache_clear()


def test_load_defaults_to_auto_and_honours_the_environment(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("METAEOL_DTYPE", raising=False)
    assert metaeol_integrations.load(str(tiny_model_dir), device="cpu")[0].precision.reason.startswith("auto")
    monkeypatch.setenv("METAEOL_DTYPE", "bfloat16")
    assert metaeol_integrations.load(str(tiny_model_dir), device="cpu")[0].precision.dtype == torch.bfloat16
    explicit = metaeol_integrations.load(str(tiny_model_dir), device="cpu", model_kwargs={"dtype": "float32"})
    assert explicit[0].precision == precision.PrecisionChoice(torch.float32, "requested")
    monkeypatch.setenv("METAEOL_DTYPE", "float64")
    with pytest.raises(UnsupportedDTypeError, match="float32, bfloat16, float16 or auto"):
        metaeol_integrations.load(str(tiny_model_dir), device="cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu sse avx512_bf16 avx512_vnni\n")
    assert precision.cpu_flags(precision.CPU_MATRIX_FLAGS, str(cpuinfo)) == ("avx512_bf16", "avx512_vnni")
    assert precision.cpu_flags(precision.CPU_MATRIX_FLAGS, str(tmp_path / "missing")) == ()


def test_auto_is_float32_with_int8_and_bfloat16_with_int8_is_refused(tiny_model_dir):
    model = metaeol_integrations.load(str(tiny_model_dir), quantize="int8", model_kwargs={"dtype": "auto"})
    assert model[0].precision.dtype == torch.float32
    with pytest.raises(QuantizationError, match="float32"):
        metaeol_integrations.load(str(tiny_model_dir), quantize="int8", model_kwargs={"dtype": "bfloat16"})


def test_the_choice_is_shown_in_the_model_card_and_the_servers_model_list(tiny_model_dir):
    from metaeol_integrations.serving.service import EmbeddingService
    from metaeol_integrations.serving.settings import ServeSettings
    from metaeol_integrations.sharing.model_card import CardFacts, render_model_card

    model = metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "bfloat16"}, device="cpu")
    assert "bfloat16 (requested)" in render_model_card(CardFacts.of(model[0]))
    service = EmbeddingService(model, ServeSettings(served_model_name="tiny"))
    assert service.precision == {"dtype": "bfloat16", "dtype_reason": "requested"}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["metaeol-smollm2-135m", "metaeol-rag-smollm2-135m"])
def test_presets_in_bfloat16_stay_within_the_quality_bound_of_float32(preset):
    """The issue's bound: final vectors cosine >= 0.999 to float32 (the retrieval preset's EmbedFilter fell to 0.79
    with plain bfloat16)."""
    texts = [ABSTRACT, ABSTRACT[:300], *SENTENCES[:2], "The stock market fell today."]
    exact = metaeol_integrations.load(preset, device="cpu").encode(texts, convert_to_tensor=True)
    low = metaeol_integrations.load(preset, device="cpu", model_kwargs={"dtype": "bfloat16"}).encode(
        texts, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(low, exact).min() >= 0.999


@pytest.mark.slow
def test_a_preset_that_loses_quality_in_16_bits_computes_float32_under_auto(monkeypatch):
    from metaeol_integrations.presets import PRESETS

    assert PRESETS["metaeol-rag-smollm2-135m"].float32_under_auto
    monkeypatch.delenv("METAEOL_DTYPE", raising=False)
    auto = metaeol_integrations.load("metaeol-rag-smollm2-135m", device="cpu")[0].precision
    assert auto.dtype == torch.float32 and "for this preset" in auto.reason
    forced = metaeol_integrations.load("metaeol-rag-smollm2-135m", device="cpu", model_kwargs={"dtype": "bfloat16"})
    assert forced[0].precision.dtype == torch.bfloat16


def test_export_and_fit_center_write_exact_float32_weights_unless_asked(tiny_model_dir, tmp_path, monkeypatch):
    from safetensors import safe_open

    from metaeol_integrations.cli.main import main

    monkeypatch.setenv("METAEOL_DTYPE", "bfloat16")  # what auto picks on a CPU with bfloat16 units
    metaeol_integrations.export(str(tiny_model_dir), tmp_path / "exported", weights="copy")
    (tmp_path / "docs.txt").write_text("a b\nc d\n")
    assert main(["fit-center", str(tmp_path / "centered"), "--model", str(tiny_model_dir), "--file",
                 str(tmp_path / "docs.txt"), "-q"]) == 0
    for folder in ("exported", "centered"):
        with safe_open(str(tmp_path / folder / "model.safetensors"), "pt") as weights:
            assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float32}
