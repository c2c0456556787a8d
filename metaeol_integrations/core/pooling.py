"""From per-prompt last-token states to vectors: pure tensor maths, no model.

A text's vector is the mean over its K prompts (weighted for ensembles) of each prompt's state, where a prompt's state
is the mean over the layers it reads (templates may read different layers, e.g. metaeol+ke: -1 and -2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def layers_needed(plan: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """Every layer some prompt reads, sorted."""
    return tuple(sorted({layer for layers in plan for layer in layers}))


def _mean_over_prompts(per_prompt: torch.Tensor, weights: torch.Tensor | None, prompt_dim: int) -> torch.Tensor:
    if weights is None:
        return per_prompt.mean(dim=prompt_dim)
    shape = [1] * per_prompt.dim()
    shape[prompt_dim] = -1
    return (per_prompt * weights.view(shape)).sum(dim=prompt_dim)


def pool_prompts(
    states: torch.Tensor,
    read_layers: Sequence[int],
    plan: Sequence[tuple[int, ...]],
    num_prompts: int,
    weights: Sequence[float] | None = None,
    all_layers: bool = False,
) -> dict[str, torch.Tensor]:
    """Vectors from ``states`` of shape ``(len(read_layers), texts * num_prompts, hidden)`` (rows text-major).

    Returns ``prompt_embeddings`` ``(texts, K, hidden)`` (each prompt at its own layers), ``sentence_embedding``
    ``(texts, hidden)``, and with ``all_layers`` also ``layer_embeddings`` ``(texts, len(read_layers), hidden)``:
    the prompt mean at every read layer. ``weights``: per-prompt weights summing to 1, None for the plain mean.
    """
    hidden = states.shape[-1]
    weight = None if weights is None else torch.tensor(weights, dtype=states.dtype, device=states.device)
    outputs: dict[str, torch.Tensor] = {}
    if all_layers:
        by_text = states.view(states.shape[0], -1, num_prompts, hidden)
        outputs["layer_embeddings"] = _mean_over_prompts(by_text, weight, 2).transpose(0, 1)
    needed = layers_needed(plan)
    position = {layer: index for index, layer in enumerate(read_layers)}
    if tuple(read_layers) != needed:
        states = states[[position[layer] for layer in needed]]
    by_prompt = states.view(len(needed), -1, num_prompts, hidden)
    if len(set(plan)) == 1:
        per_prompt = by_prompt.mean(dim=0)
    else:
        share = torch.tensor([[1.0 / len(layers) if layer in layers else 0.0 for layer in needed] for layers in plan],
                             dtype=states.dtype, device=states.device)
        per_prompt = torch.einsum("jtkh,kj->tkh", by_prompt, share)
    outputs["prompt_embeddings"] = per_prompt
    outputs["sentence_embedding"] = _mean_over_prompts(per_prompt, weight, 1)
    return outputs
