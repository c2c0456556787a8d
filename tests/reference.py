"""An independent, deliberately plain MetaEOL: one prompt at a time, no batching, no padding, no hooks.

Written from the spec (../shared/docs/metaeol-reference.md), not from the package's code, so the tests compare
two implementations.
"""

from __future__ import annotations

import torch


def official_preprocess(sentence: str) -> str:
    """The official evaluation script's sentence preprocessing (after stripping outer whitespace)."""
    s = sentence.strip()
    if len(s) > 0 and s[-1] not in '.?"\'':
        s += "."
    s = s.replace('"', "'")
    if len(s) > 0 and s[-1] == "?":
        s = s[:-1] + "."
    return s


def reference_embedding(model, tokenizer, text: str, templates: list[str], layer: int = -1) -> torch.Tensor:
    """Mean over templates of the hidden state of the last token at ``layer``, each prompt run alone."""
    vectors = []
    for template in templates:
        before, after = template.split("{sentence}")
        prompt = before + official_preprocess(text) + after
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=ids["input_ids"], output_hidden_states=True)
        vectors.append(out.hidden_states[layer][0, -1].float())
    return torch.stack(vectors).mean(0)


def assert_batch_invariant(model, texts: list[str], seed: int, rtol: float, atol: float) -> None:
    """Batch size 1, batch size 32 and a shuffled order with odd batches give the same vectors."""
    import random

    import numpy as np

    one = model.encode(texts, batch_size=1)
    many = model.encode(texts, batch_size=32)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    shuffled = model.encode([texts[i] for i in order], batch_size=3)
    np.testing.assert_allclose(many, one, rtol=rtol, atol=atol)
    np.testing.assert_allclose(shuffled, one[order], rtol=rtol, atol=atol)


def full_prompt_ids(features) -> list[list[int]]:
    """Each row's whole prompt from MetaEOL.preprocess output: its cached prefix (if any) plus its real tokens."""
    rows = []
    for index, ids, mask in zip(features["prefix_index"], features["input_ids"], features["attention_mask"]):
        prefix = list(features["prefixes"][index]) if index >= 0 else []
        rows.append(prefix + ids[mask.bool()].tolist())
    return rows
