"""The paper's Figure 3 (STS against the number of prompts / meta-tasks) and Figure 4 (against the output layer),
and layer tuning on STS-B dev. Every point is a slice of cached arrays from one forward pass per text."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.errors import MetaEOLError
from metaeol_integrations.evaluation.evaluator import Evaluator, View

TUNING_TASK = "STSBenchmark-dev"


@dataclass
class Sweep:
    """Scores per task (rows) at each point of ``x`` (columns), with the average over tasks."""

    x: list
    labels: list[str]
    scores: dict[str, list[float]]

    @property
    def average(self) -> list[float]:
        return [float(v) for v in np.mean([self.scores[t] for t in self.scores], axis=0)]

    def best_index(self) -> int:
        """Index of the best average score, ignoring undefined (NaN) points."""
        return int(np.nanargmax(self.average))

    def to_dict(self) -> dict:
        return {"x": self.x, "labels": self.labels, "scores": self.scores, "average": self.average}


def layer_sweep(evaluator: Evaluator, tasks: Sequence[str]) -> Sweep:
    """Spearman x100 of each STS task at every layer 0..N (``hidden_states`` numbering; N is the final output)."""
    num_layers = evaluator.encoder.num_layers
    if num_layers is None:
        raise ValueError(f"{evaluator.encoder.name} has no per-layer vectors; layer sweeps need a MetaEOL model.")
    views = [View(layer=layer) for layer in range(num_layers + 1)]
    scores = {task: evaluator.sts_scores(task, views) for task in tasks}
    return Sweep(list(range(num_layers + 1)), [str(layer) for layer in range(num_layers + 1)], scores)


def prompt_count_sweep(evaluator: Evaluator, tasks: Sequence[str], subsets_per_size: int = 10, seed: int = 0) -> Sweep:
    """Mean Spearman x100 over up to ``subsets_per_size`` seeded random prompt subsets of each size 1..K."""
    groups = evaluator.encoder.template_groups
    if not groups:
        raise ValueError(f"{evaluator.encoder.name} has no per-prompt vectors; prompt sweeps need a MetaEOL model.")
    rng = np.random.default_rng(seed)
    count = len(groups)
    sizes, views = list(range(1, count + 1)), []
    for size in sizes:
        combos = list(itertools.combinations(range(count), size))
        picked = rng.choice(len(combos), size=min(subsets_per_size, len(combos)), replace=False)
        views.append([View(prompts=combos[i]) for i in sorted(picked)])
    scores = {}
    for task in tasks:
        flat = evaluator.sts_scores(task, [view for group in views for view in group])
        position, row = 0, []
        for group in views:
            row.append(float(np.mean(flat[position : position + len(group)])))
            position += len(group)
        scores[task] = row
    return Sweep(sizes, [str(size) for size in sizes], scores)


def meta_task_sweep(evaluator: Evaluator, tasks: Sequence[str]) -> Sweep:
    """Spearman x100 with the meta-tasks added one at a time, in the template set's order (TC, +SA, +PI, +IE)."""
    groups = evaluator.encoder.template_groups
    if not groups:
        raise ValueError(f"{evaluator.encoder.name} has no per-prompt vectors; meta-task sweeps need a MetaEOL model.")
    names = list(dict.fromkeys(groups))
    views, labels = [], []
    for end in range(1, len(names) + 1):
        included = set(names[:end])
        views.append(View(prompts=tuple(i for i, group in enumerate(groups) if group in included)))
        labels.append(("+" if end > 1 else "") + names[end - 1])
    scores = {task: evaluator.sts_scores(task, views) for task in tasks}
    return Sweep(list(range(1, len(names) + 1)), labels, scores)


def tune_layer(evaluator: Evaluator) -> tuple[int, Sweep]:
    """The layer (``hidden_states`` numbering, non-negative) with the best Spearman on STS-B dev, and the sweep.

    Layers whose vectors give no ranking (constant similarities, e.g. layer 0, the input embedding of the same
    last token in every prompt) score NaN and are never chosen.
    """
    sweep = layer_sweep(evaluator, [TUNING_TASK])
    best = int(np.nanargmax(sweep.scores[TUNING_TASK]))
    return best, sweep


def method_candidates(knob: str, *, start: int = 1, exits: Sequence[int] = (), layers: Sequence[int] = (),
                      alphas: Sequence[float] = (), mode: str = "ns") -> list[dict]:
    """Settings to try: Token Prepending ``(start, exit)`` for each exit, or Contrastive Prompting for each
    ``layer x alpha`` (NR ignores alpha, so it tries each layer once)."""
    if knob == "tp":
        return [{"token_prepending": [start, exit_]} for exit_ in exits]
    if knob == "cp":
        if mode == "nr":
            return [{"contrastive": {"layer": layer, "mode": "nr"}} for layer in layers]
        return [{"contrastive": {"layer": layer, "mode": mode, "alpha": float(alpha)}}
                for layer in layers for alpha in alphas]
    raise ValueError(f"Unknown knob {knob!r}: tp or cp.")


# The options a whole-recipe candidate resets to their defaults when it leaves them out, so every candidate is scored
# as written and not with the previous candidate's leftovers; the other options (max_seq_length...) stay as given.
RECIPE_KNOBS = ("templates", "layer", "token_prepending", "contrastive")


def recipe_candidates(recipes: Sequence[dict]) -> list[dict]:
    """Check whole-recipe candidates: objects of :class:`~metaeol_integrations.Recipe` options plus an optional
    ``label``, each a valid recipe."""
    candidates = []
    for recipe in recipes:
        if not isinstance(recipe, dict):
            raise ValueError(f"A recipe is a JSON object such as {{\"templates\": \"ck\"}}, not {recipe!r}.")
        options = {key: value for key, value in recipe.items() if key != "label"}
        try:
            Recipe.from_options(options)
        except (TypeError, ValueError, MetaEOLError) as error:
            raise ValueError(str(error)) from error
        candidates.append(dict(recipe))
    return candidates


def candidate_recipe(base: Recipe, candidate: dict, whole: bool) -> Recipe:
    """``base`` with a candidate's options: a whole recipe (``whole``) first resets :data:`RECIPE_KNOBS`."""
    if whole:
        default = Recipe()
        base = base.replace(**{knob: getattr(default, knob) for knob in RECIPE_KNOBS})
    return base.with_overrides({key: value for key, value in candidate.items() if key != "label"})


def tune_method(evaluator_for: Callable[[dict], Evaluator], candidates: Sequence[dict]) -> tuple[int, Sweep]:
    """Score each candidate setting on STS-B dev only (``evaluator_for(setting)`` gives an evaluator whose model uses
    it; each setting has its own embedding cache) and return the best candidate's index and the sweep."""
    if not candidates:
        raise ValueError("No candidate settings to tune over.")
    scores = [evaluator_for(candidate).sts_scores(TUNING_TASK, [View()])[0] for candidate in candidates]
    labels = [json.dumps(candidate, sort_keys=True) for candidate in candidates]
    sweep = Sweep(list(range(len(candidates))), labels, {TUNING_TASK: scores})
    return int(np.nanargmax(scores)), sweep
