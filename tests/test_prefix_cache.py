"""The shared-prefix KV cache and length bucketing: same vectors as whole prompts, fewer tokens."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import metaeol_integrations
from metaeol_integrations.core.batching import length_buckets
from tests.reference import full_prompt_ids

# First characters that a tokenizer may merge with the opening quote, sentences of very different lengths,
# empty text, and text that will be truncated.
MIXED = [
    "-dash first",
    "_underscore",
    "{brace} first",
    '"quoted" start',
    "'apostrophe'",
    "",
    "🙂 emoji",
    "é accent",
    "A man is playing a guitar.",
    "Short.",
    "A considerably longer sentence about the weather in the mountains, the rivers, the valleys and the people. " * 3,
    "word " * 400,
]


@pytest.fixture(scope="module")
def tiny_pair(tiny_model_dir):
    cached = metaeol_integrations.load(str(tiny_model_dir), device="cpu", max_seq_length=300)
    uncached = metaeol_integrations.load(str(tiny_model_dir), device="cpu", max_seq_length=300, prefix_cache=False)
    return cached, uncached


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_cached_equals_uncached_on_the_tiny_model(tiny_pair, batch_size):
    cached, uncached = tiny_pair
    np.testing.assert_allclose(
        cached.encode(MIXED, batch_size=batch_size), uncached.encode(MIXED, batch_size=32), rtol=1e-5, atol=1e-5
    )


@pytest.mark.slow
def test_single_sentence_batch_and_every_layer(tiny_pair):
    cached, uncached = tiny_pair
    for layer in [0, 1, -1, [1, -1]]:
        cached[0].layer = uncached[0].layer = layer
        try:
            np.testing.assert_allclose(cached.encode(["Short."]), uncached.encode(["Short."]), rtol=1e-5, atol=1e-5)
        finally:
            cached[0].layer = uncached[0].layer = -1


def test_split_prompts_are_exactly_the_plain_tokenisation(tiny_pair, smollm2):
    for model in (tiny_pair[0], smollm2):
        module = model[0]
        untruncated = MIXED[:10]
        features = module.preprocess(untruncated)
        templates = module.template_set.templates
        prompts = [t.fill(metaeol_integrations.preprocess_sentence(s)) for s in untruncated for t in templates]
        assert full_prompt_ids(features) == [model.tokenizer(p)["input_ids"] for p in prompts]
        # Ordinary sentences really use a cached prefix.
        assert (features["prefix_index"][8 * 8 : 9 * 8] >= 0).all()


def test_longest_matching_candidate_is_used(smollm2):
    module = smollm2[0]
    features = module.preprocess(["A man.", "-dash"])
    prefixes = features["prefixes"]
    lengths = [len(prefixes[i]) for i in features["prefix_index"].tolist()]
    # SmolLM2 merges '"-' into one token, so the dash sentence needs the shorter candidate (one token shorter).
    assert all(a == b + 1 for a, b in zip(lengths[:8], lengths[8:]))


def test_cached_equals_uncached_on_smollm2(smollm2):
    uncached = metaeol_integrations.load("metaeol-smollm2-135m-paper", device="cpu", prefix_cache=False)
    texts = MIXED[:6] + MIXED[8:11]
    smollm2.max_seq_length = uncached.max_seq_length = 128
    try:
        got = smollm2.encode(texts + ["word " * 400], batch_size=4)
        expected = uncached.encode(texts + ["word " * 400], batch_size=16)
    finally:
        smollm2.max_seq_length = uncached.max_seq_length = 512
    relative = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() <= 1e-4, relative


def test_prefix_caches_are_built_once_and_not_pickled(tiny_model_dir):
    model = metaeol_integrations.load(str(tiny_model_dir), device="cpu")
    store = model[0].runner.prefix_store
    assert len(store) == 0
    model.encode(["a", "b c"])
    built = len(store)
    assert 8 <= built <= 16  # one or two candidate prefixes per template
    model.encode(["d e f", "g"])
    assert len(store) == built
    clone = pickle.loads(pickle.dumps(model))
    assert len(clone[0].runner.prefix_store) == 0
    np.testing.assert_array_equal(clone.encode(["a"]), model.encode(["a"]))


def test_the_cache_saves_tokens(tiny_pair):
    counts = {}
    for name, model in zip(["cached", "uncached"], tiny_pair):
        model.encode(MIXED[:4])  # fill the prefix cache
        seen: list[int] = []
        handle = model[0].auto_model.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(kwargs["input_ids"].numel()), with_kwargs=True
        )
        try:
            model.encode(MIXED[:10])
        finally:
            handle.remove()
        counts[name] = sum(seen)
    assert counts["cached"] < 0.6 * counts["uncached"], counts


def test_length_buckets_cover_every_row_once_within_budget():
    lengths = torch.tensor([5, 40, 39, 12, 11, 10, 100, 3, 38, 1])
    chunks = length_buckets(lengths, max_tokens=90, min_fill=0.75)
    rows = torch.cat(chunks).tolist()
    assert sorted(rows) == list(range(len(lengths)))
    for chunk in chunks:
        longest = int(lengths[chunk].max())
        assert len(chunk) == 1 or len(chunk) * longest <= 90
        assert all(int(lengths[i]) >= 0.75 * longest for i in chunk)
    assert [lengths[c].tolist() for c in chunks][:2] == [[100], [40, 39]]
