"""The MetaEOL module on a tiny random Llama: pooling, layers, invariance, persistence, errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

import metaeol_integrations
from metaeol_integrations import METAEOL_TEMPLATES, PROMPTEOL_TEMPLATES, LayerError, MetaEOL
from tests.reference import assert_batch_invariant, full_prompt_ids, reference_embedding

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument",
    "Why is the sky blue?",
    'She said "hello" to {sentence} and {0}',
    "",
    "   ",
    "The quick brown fox jumps over the lazy dog, again and again and again, until it is tired.",
    "Wow!",
]
TEMPLATES = [t.text for t in METAEOL_TEMPLATES.templates]


@pytest.fixture(scope="module")
def plain(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.slow
def test_embeddings_equal_the_plain_one_prompt_at_a_time_computation(tiny, plain):
    got = tiny.encode(SENTENCES, batch_size=3, convert_to_tensor=True)
    expected = torch.stack([reference_embedding(*plain, text, TEMPLATES) for text in SENTENCES])
    assert got.shape == (len(SENTENCES), 64)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("layer", [0, 1, 2, -2, 3, -1, [1, -1], [0, 2]])
def test_every_layer_matches_output_hidden_states(tiny, plain, layer):
    module: MetaEOL = tiny[0]
    module.layer = layer
    try:
        got = tiny.encode(SENTENCES[:4], batch_size=4, convert_to_tensor=True)
    finally:
        module.layer = -1
    layers = layer if isinstance(layer, list) else [layer]
    expected = torch.stack(
        [torch.stack([reference_embedding(*plain, s, TEMPLATES, l) for l in layers]).mean(0) for s in SENTENCES[:4]]
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [4, -5, 100])
def test_layer_out_of_range_is_a_clear_error(tiny, layer):
    before = tiny[0].layer  # the shared fixture's layer, whatever earlier tests left
    with pytest.raises(LayerError, match=r"valid layers are 0\.\.3"):
        tiny[0].layer = layer
    assert tiny[0].layer == before


@pytest.mark.slow
def test_batch_size_order_and_neighbours_do_not_change_vectors(tiny):
    assert_batch_invariant(tiny, SENTENCES * 4, seed=0, rtol=1e-5, atol=1e-5)


def test_padding_side_does_not_matter(tiny):
    tokenizer = tiny[0].tokenizer
    original = tokenizer.padding_side
    try:
        tokenizer.padding_side = "left"
        left = tiny.encode(SENTENCES, batch_size=8)
        tokenizer.padding_side = "right"
        right = tiny.encode(SENTENCES, batch_size=8)
    finally:
        tokenizer.padding_side = original
    np.testing.assert_allclose(left, right, atol=1e-5, rtol=1e-5)


def test_pad_token_falls_back_to_eos(tiny):
    assert tiny[0].tokenizer.pad_token == "<|endoftext|>" == tiny[0].tokenizer.eos_token


def test_prompteol_is_the_one_template_case(tiny_model_dir, plain):
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", device="cpu")
    got = model.encode(SENTENCES[:3], convert_to_tensor=True)
    expected = torch.stack([reference_embedding(*plain, s, [PROMPTEOL_TEMPLATES.templates[0].text]) for s in SENTENCES[:3]])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_empty_and_whitespace_texts_get_the_empty_slot_embedding(tiny, plain):
    empty, spaces, newline = tiny.encode(["", "   ", "\n\t"], convert_to_tensor=True)
    assert torch.isfinite(empty).all()
    torch.testing.assert_close(spaces, empty)
    torch.testing.assert_close(newline, empty)
    torch.testing.assert_close(empty, reference_embedding(*plain, "", TEMPLATES), rtol=1e-4, atol=1e-5)


def test_user_text_cannot_change_the_template(tiny):
    features = tiny[0].preprocess(['x "{sentence}" in one word:"'])
    decoded = tiny[0].tokenizer.decode(full_prompt_ids(features)[0], skip_special_tokens=True)
    template = METAEOL_TEMPLATES.templates[0]
    assert decoded == template.prefix + "x '{sentence}' in one word:'" + template.suffix


@pytest.mark.parametrize("bad", [[1, 2], [None], ["ok", 3.5], [b"bytes"], [["nested"]]])
def test_non_string_input_raises_type_error(tiny, bad):
    with pytest.raises(TypeError, match="strings"):
        tiny.encode(bad)


@pytest.mark.slow
def test_sentence_transformers_encode_options_work(tiny):
    texts = SENTENCES[:4]
    raw = tiny.encode(texts)
    normalised = tiny.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalised, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert tiny.encode(texts, truncate_dim=16).shape == (4, 16)
    assert tiny.encode(texts, precision="int8").dtype == np.int8
    assert tiny.encode(texts, precision="ubinary").shape == (4, 8)
    assert isinstance(tiny.encode(texts, convert_to_tensor=True), torch.Tensor)
    assert tiny.encode("one text").shape == (64,)
    assert tiny.get_embedding_dimension() == 64
    assert tiny.similarity_fn_name == "cosine"


@pytest.mark.slow
def test_a_prompt_goes_inside_the_slot(tiny, plain):
    got = tiny.encode(["the cat"], prompt="query: ", convert_to_tensor=True)[0]
    features = tiny[0].preprocess(["the cat"], prompt="query: ")
    decoded = tiny[0].tokenizer.decode(full_prompt_ids(features)[0], skip_special_tokens=True)
    assert '"query: the cat." should be' in decoded
    expected = reference_embedding(*plain, "query: the cat", TEMPLATES)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_prompt_embeddings_are_exposed_per_template(tiny):
    out = tiny.encode(["a b"], output_value=None)[0]
    assert out["prompt_embeddings"].shape == (8, 64)
    torch.testing.assert_close(out["prompt_embeddings"].mean(0), out["sentence_embedding"])


@pytest.mark.slow
def test_save_load_round_trip_is_identical(tiny, tmp_path):
    tiny[0].layer = [1, -1]
    try:
        expected = tiny.encode(SENTENCES)
        tiny.save(str(tmp_path))
    finally:
        tiny[0].layer = -1
    config = json.loads((tmp_path / "metaeol_config.json").read_text())
    assert config["layer"] == [1, -1]
    assert config["templates"] == METAEOL_TEMPLATES.to_dict()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llama"
    assert (tmp_path / "model.safetensors").is_file()
    st_config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert "metaeol-integrations" in st_config["requirements"]

    reloaded = SentenceTransformer(str(tmp_path), trust_remote_code=True, device="cpu")
    assert isinstance(reloaded[0], MetaEOL)
    np.testing.assert_array_equal(reloaded.encode(SENTENCES), expected)
    via_package = metaeol_integrations.load(str(tmp_path), device="cpu")
    np.testing.assert_array_equal(via_package.encode(SENTENCES), expected)


def test_loading_a_folder_without_the_package_names_the_pip_command(tiny, tmp_path, monkeypatch):
    tiny.save(str(tmp_path))
    import sentence_transformers.util.environment as environment

    real = environment.get_installed_version
    monkeypatch.setattr(
        environment, "get_installed_version", lambda name: None if name == "metaeol-integrations" else real(name)
    )
    with pytest.raises(ImportError, match=r'pip install -U "metaeol-integrations>='):
        SentenceTransformer(str(tmp_path), trust_remote_code=True)


def test_a_saved_folder_cannot_turn_on_remote_code_or_options(tiny, tmp_path):
    tiny.save(str(tmp_path))
    config_path = tmp_path / "metaeol_config.json"
    config = json.loads(config_path.read_text())
    config["model_kwargs"] = {"trust_remote_code": True}
    config_path.write_text(json.dumps(config))
    module = MetaEOL.load(str(tmp_path), trust_remote_code=True)
    assert module.base_model == config["base_model"]
    assert not hasattr(module, "model_kwargs")


def test_package_loader_refuses_foreign_module_classes(tiny, tmp_path):
    tiny.save(str(tmp_path))
    modules = json.loads((tmp_path / "modules.json").read_text())
    modules[0]["type"] = "evil_package.Module"
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(metaeol_integrations.UnknownModelError, match="evil_package"):
        metaeol_integrations.load(str(tmp_path))


@pytest.mark.slow
def test_model_pickles_for_the_multi_process_pool(tiny):
    tiny[0].layer = [1, -1]
    try:
        before = tiny.encode(SENTENCES[:3])
        clone = pickle.loads(pickle.dumps(tiny))
        np.testing.assert_array_equal(clone.encode(SENTENCES[:3]), before)
    finally:
        tiny[0].layer = -1


def test_hooks_are_removed_after_each_call(tiny):
    tiny[0].layer = 1
    try:
        tiny.encode(["a"])
    finally:
        tiny[0].layer = -1
    assert all(not layer._forward_pre_hooks for layer in tiny[0].auto_model.layers)


def test_max_seq_length_truncates_inside_the_slot(tiny):
    tiny.max_seq_length = 260
    try:
        features = tiny[0].preprocess(["word " * 500])
    finally:
        tiny.max_seq_length = 512
    prompts = full_prompt_ids(features)
    assert max(len(ids) for ids in prompts) <= 260
    decoded = tiny[0].tokenizer.batch_decode(prompts, skip_special_tokens=True)
    for text, template in zip(decoded, METAEOL_TEMPLATES.templates):
        assert text.endswith(template.suffix)


@pytest.mark.slow
def test_multi_process_pool_gives_the_same_vectors(tiny):
    tiny[0].layer = [1, -1]
    try:
        # Each worker encodes one chunk of 3 texts as one batch: the same batches here isolate the process boundary.
        # Against one batch of all texts, vectors may differ by batch-composition rounding, which the project
        # bounds at 1e-5 (test_batch_size_order_and_neighbours_do_not_change_vectors).
        same_batches = np.concatenate([tiny.encode(SENTENCES[i:i + 3]) for i in range(0, len(SENTENCES), 3)])
        one_batch = tiny.encode(SENTENCES)
        pooled = tiny.encode(SENTENCES, device=["cpu", "cpu"], chunk_size=3)
    finally:
        tiny[0].layer = -1
    np.testing.assert_allclose(pooled, same_batches, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled, one_batch, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_encode_query_and_document_use_the_same_templates_by_default(tiny):
    texts = SENTENCES[:3]
    np.testing.assert_allclose(tiny.encode_query(texts), tiny.encode(texts), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tiny.encode_document(texts), tiny.encode(texts), rtol=1e-6, atol=1e-6)


def test_query_templates_apply_to_encode_query_only(tiny_model_dir, plain, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir), task_templates={"query": "prompteol"}, device="cpu")
    text = ["where is the cat"]
    query = model.encode_query(text, convert_to_tensor=True)[0]
    document = model.encode_document(text, convert_to_tensor=True)[0]
    torch.testing.assert_close(
        query, reference_embedding(*plain, text[0], [PROMPTEOL_TEMPLATES.templates[0].text]), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(document, reference_embedding(*plain, text[0], TEMPLATES), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.encode(text, convert_to_tensor=True)[0], document)

    model.save(str(tmp_path))
    reloaded = SentenceTransformer(str(tmp_path), trust_remote_code=True, device="cpu")
    assert reloaded[0].task_template_sets == {"query": PROMPTEOL_TEMPLATES}
    np.testing.assert_array_equal(reloaded.encode_query(text), model.encode_query(text))


def test_a_rejected_setting_leaves_the_module_unchanged(tiny):
    module: MetaEOL = tiny[0]
    with pytest.raises(metaeol_integrations.TemplateError):
        module.task_template_sets = {"query": "no slot"}
    with pytest.raises(metaeol_integrations.SequenceLengthError):
        module.max_seq_length = 10
    assert module.task_template_sets == {} and module.max_seq_length == 512


@pytest.mark.slow
def test_threads_sharing_one_model_get_sequential_vectors(tiny):
    from concurrent.futures import ThreadPoolExecutor

    tiny[0].layer = [1, -1]  # the hook path is the one that must keep threads apart
    try:
        batches = [SENTENCES[i:] + SENTENCES[:i] for i in range(8)]
        expected = [tiny.encode(batch, batch_size=3) for batch in batches]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda batch: tiny.encode(batch, batch_size=3), batches))
    finally:
        tiny[0].layer = -1
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_forward_between_the_two_steps_of_hook_registration_is_unaffected(tiny):
    """torch registers a with-kwargs pre-hook in two dict writes; another thread's forward can run in between."""
    import threading
    from collections import OrderedDict

    from metaeol_integrations.core.readout import last_token_states

    model = tiny[0].auto_model
    num_layers = model.config.num_hidden_layers
    layer = model.layers[1]
    input_ids = torch.tensor([[5, 6, 7, 8, 9]])
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        want_last = last_token_states(model, input_ids, attention_mask, (num_layers,), num_layers)
        want_both = last_token_states(model, input_ids, attention_mask, (1, num_layers), num_layers)
    half_registered, resume = threading.Event(), threading.Event()

    class PausingFlags(OrderedDict):
        def __setitem__(self, key, value):
            half_registered.set()
            resume.wait(timeout=30)
            super().__setitem__(key, value)

    results: dict[str, torch.Tensor] = {}

    def owner() -> None:
        with torch.no_grad():
            results["both"] = last_token_states(model, input_ids, attention_mask, (1, num_layers), num_layers)

    original = layer._forward_pre_hooks_with_kwargs
    layer._forward_pre_hooks_with_kwargs = PausingFlags(original)
    thread = threading.Thread(target=owner)
    try:
        thread.start()
        assert half_registered.wait(timeout=30)
        with torch.no_grad():
            got_last = last_token_states(model, input_ids, attention_mask, (num_layers,), num_layers)
    finally:
        resume.set()
        thread.join(timeout=30)
        layer._forward_pre_hooks_with_kwargs = original
    torch.testing.assert_close(got_last, want_last)
    torch.testing.assert_close(results["both"], want_both)
    assert not layer._forward_pre_hooks
