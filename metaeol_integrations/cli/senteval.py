"""``metaeol eval sts|transfer|all``, ``sweep``, ``tune-layer`` and ``tune``: SentEval scores and the choices made
on STS-B dev."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from metaeol_integrations.cli.harness import (
    add_eval_options,
    add_view_layer,
    build_evaluator,
    build_metaeol_evaluator,
    label_of,
    selected_tasks,
)
from metaeol_integrations.cli.usage import UsageError
from metaeol_integrations.evaluation.data import STS_TASKS, TRANSFER_TASKS
from metaeol_integrations.evaluation.report import file_slug
from metaeol_integrations.evaluation.evaluator import View

SUITES = {"sts": STS_TASKS, "transfer": TRANSFER_TASKS, "all": STS_TASKS + TRANSFER_TASKS}


def cmd_eval(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.report import text_table, write_results

    started = time.perf_counter()
    evaluator = build_evaluator(args)
    view = View(layer=args.view_layer)
    results = []
    for task in selected_tasks(args, SUITES[args.suite]):
        if task in TRANSFER_TASKS:
            results.append(evaluator.run_transfer(task, view))
        else:
            results.append(evaluator.run_sts(task, view))
        out.write(f"{task}: {results[-1].score:.2f} (N={results[-1].n}, {results[-1].seconds:.0f} s)\n")
        out.flush()
    label = label_of(args, args.view_layer)
    meta = {
        "label": label, "model": args.model, "pooling": args.pooling, "layer": args.view_layer,
        "sts_limit": evaluator.config.sts_limit, "transfer_limit": evaluator.config.transfer_limit,
        "seed": args.seed, "wall_seconds": round(time.perf_counter() - started, 1),
        "encoder": evaluator.encoder.identity(), "warnings": evaluator.warnings,
    }
    out.write(f"\n{label}\n{text_table(results)}\n")
    for warning in evaluator.warnings:
        out.write(f"warning: {warning}\n")
    json_path, md_path = write_results(args.out, file_slug(label) + f"-{args.suite}", results, meta)
    out.write(f"wrote {json_path} and {md_path}\n")
    return 0


def cmd_sweep(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.report import plot_curve
    from metaeol_integrations.evaluation.sweeps import layer_sweep, meta_task_sweep, prompt_count_sweep

    evaluator = build_evaluator(args)
    tasks = selected_tasks(args, STS_TASKS)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_slug(label_of(args, None))
    sweeps = {}
    if args.kind in ("layers", "all"):
        sweeps["layers"] = (layer_sweep(evaluator, tasks), "output layer (hidden_states numbering)")
    if args.kind in ("prompts", "all"):
        sweeps["prompts"] = (prompt_count_sweep(evaluator, tasks, seed=args.seed), "number of prompts (random subsets)")
        sweeps["meta-tasks"] = (meta_task_sweep(evaluator, tasks), "meta-tasks included")
    for name, (sweep, xlabel) in sweeps.items():
        series = {"STS avg": sweep.average, **sweep.scores}
        path = plot_curve(folder / f"{stem}-sweep-{name}.png", sweep.x, series, xlabel,
                          f"{label_of(args, None)}: STS vs {name} (N={evaluator.config.sts_limit or 'full'}/task)",
                          xticklabels=sweep.labels if name == "meta-tasks" else None)
        best = sweep.best_index()
        out.write(f"{name}: best STS avg {sweep.average[best]:.2f} at {sweep.labels[best]}; "
                  f"last point {sweep.average[-1]:.2f}; plot {path}\n")
    (folder / f"{stem}-sweeps.json").write_text(
        json.dumps({name: sweep.to_dict() for name, (sweep, _) in sweeps.items()}, indent=2), encoding="utf-8"
    )
    return 0


def cmd_tune_layer(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.sweeps import TUNING_TASK, tune_layer

    evaluator = build_metaeol_evaluator(args)
    best, sweep = tune_layer(evaluator)
    scores = sweep.scores[TUNING_TASK]
    out.write(f"best layer on STS-B dev (N={len(evaluator.sts_data(TUNING_TASK)[0])}): {best} "
              f"(Spearman {scores[best]:.2f}; last layer {scores[-1]:.2f})\n")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"best_layer": best, "tuning_task": TUNING_TASK, "n": len(evaluator.sts_data(TUNING_TASK)[0]),
              "scores_by_layer": scores, "seed": args.seed}
    path = folder / f"{file_slug(label_of(args, None))}-tune-layer.json"
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    out.write(f"wrote {path}\n")
    if args.export:
        module = evaluator.encoder.module
        module.layer = best
        evaluator.encoder.model.save(args.export)
        out.write(f"wrote {args.export} with layer={best}\n")
    return 0


def _comma_list(convert: Any, what: str) -> Any:
    """An argparse type for a comma-separated list of ``convert``-ed values."""
    def parse(value: str) -> list:
        try:
            return [convert(part) for part in value.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of {what}.") from error

    return parse


_ints, _floats = _comma_list(int, "integers"), _comma_list(float, "numbers")


def _read_recipes(path: str | None) -> list:
    """The recipe list of ``tune recipe --candidates FILE`` (a JSON list of objects)."""
    if not path:
        raise UsageError('tune recipe needs --candidates. Fix: a JSON file such as [{"templates": "metaeol"}, '
                         '{"templates": "ck", "contrastive": {"layer": 4, "mode": "ns", "alpha": 2}}].')
    try:
        recipes = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the recipes in {path} ({error}). Fix: a JSON list of recipe objects.") from error
    if not isinstance(recipes, list) or not recipes:
        raise UsageError(f"{path} holds no recipe list. Fix: a non-empty JSON list of recipe objects.")
    return recipes


def cmd_tune_method(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from dataclasses import replace

    from metaeol_integrations.evaluation.evaluator import Evaluator
    from metaeol_integrations.evaluation.sweeps import (
        TUNING_TASK,
        candidate_recipe,
        method_candidates,
        recipe_candidates,
        tune_method,
    )

    if args.knob == "tp" and not args.exits:
        raise UsageError("tune tp needs --exits. Fix: e.g. --exits 3,5,7,9 (with --start 1).")
    if args.knob == "cp" and (not args.layers or (args.mode == "ns" and not args.alphas)):
        raise UsageError("tune cp needs --layers (and --alphas for ns). Fix: e.g. --layers 2,4,6 --alphas 1,2,3.")
    if args.knob == "recipe":
        try:
            candidates = recipe_candidates(_read_recipes(args.candidates))
        except ValueError as error:
            raise UsageError(f"{error} Fix: edit {args.candidates}.") from error
    else:
        candidates = method_candidates(args.knob, start=args.start, exits=args.exits or (), layers=args.layers or (),
                                       alphas=args.alphas or (), mode=args.mode)
    base = build_metaeol_evaluator(args)
    module = base.encoder.module
    given = module.recipe

    def evaluator_for(setting: dict) -> Evaluator:
        # tp/cp: the other knob keeps what --token-prepending / --contrastive set; recipes set every knob.
        module.recipe = candidate_recipe(given, setting, whole=args.knob == "recipe")
        return Evaluator(base.encoder, replace(base.config))

    best, sweep = tune_method(evaluator_for, candidates)
    scores = sweep.scores[TUNING_TASK]
    n = len(base.sts_data(TUNING_TASK)[0])
    labels = [candidate.get("label", label) for candidate, label in zip(candidates, sweep.labels)]
    for label, score in zip(labels, scores):
        out.write(f"{label}: {score:.2f}\n")
    out.write(f"best on STS-B dev (N={n}): {labels[best]} (Spearman {scores[best]:.2f})\n")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"knob": args.knob, "best": candidates[best], "tuning_task": TUNING_TASK, "n": n, "seed": args.seed,
              "candidates": candidates, "scores": scores}
    path = folder / f"{file_slug(label_of(args, None))}-tune-{args.knob}.json"
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    out.write(f"wrote {path}\n")
    return 0


def add_senteval_commands(commands: argparse._SubParsersAction, suites: argparse._SubParsersAction,
                          default_model: str) -> None:
    """Register ``eval sts|transfer|all`` (on ``suites``) and ``sweep``, ``tune-layer``, ``tune`` (on ``commands``)."""
    for suite, what in (("sts", "the 7 STS tasks"), ("transfer", "the 7 transfer tasks"), ("all", "all 14 tasks")):
        run = suites.add_parser(suite, help=f"score {what}", description=f"Score a model on {what}.")
        add_view_layer(run)
        add_eval_options(run, default_model)
        run.set_defaults(handler=cmd_eval)

    sweep = commands.add_parser(
        "sweep", help="plot STS against the output layer and the number of prompts",
        description="The paper's Figures 3 and 4 on your model: STS scores at every output layer, for growing "
        "numbers of prompts and meta-tasks. One forward pass per text (cached); PNG plots and JSON go to --out.",
    )
    sweep.add_argument("kind", nargs="?", choices=("layers", "prompts", "all"), default="all")
    add_eval_options(sweep, default_model)
    sweep.set_defaults(handler=cmd_sweep, view_layer=None)

    tune = commands.add_parser(
        "tune-layer", help="choose the output layer on STS-B dev",
        description="Score every output layer on the STS-B dev split only (never on test data), print the best, "
        "and with --export write a model folder that uses it.",
    )
    tune.add_argument("--export", help="write a SentenceTransformer folder with the tuned layer here")
    add_eval_options(tune, default_model)
    tune.set_defaults(handler=cmd_tune_layer, view_layer=None)

    method = commands.add_parser(
        "tune", help="choose Token Prepending / Contrastive Prompting settings or a whole recipe on STS-B dev",
        description="Score Token Prepending exits (tp), Contrastive Prompting layers and alphas (cp) or whole recipes "
        "(recipe: templates, layer and methods from a JSON file) on the STS-B dev split only (never on test data) "
        "and print the best. Each setting is one forward pass per dev sentence (cached per setting).",
    )
    method.add_argument("knob", choices=("tp", "cp", "recipe"),
                        help="tp: Token Prepending; cp: Contrastive Prompting; recipe: whole recipes from --candidates")
    method.add_argument("--start", type=int, default=1, help="tp: first decoder layer of the copy (default 1)")
    method.add_argument("--exits", type=_ints, help="tp: exit layers to try (exclusive, 0-based), e.g. 3,5,7,9")
    method.add_argument("--layers", type=_ints, help="cp: decoder layers to try (0-based), e.g. 2,4,6")
    method.add_argument("--alphas", type=_floats, help="cp ns: alphas to try, e.g. 0.5,1,2,3,4")
    method.add_argument("--mode", choices=("ns", "nr"), default="ns", help="cp: ns (scaled, default) or nr")
    method.add_argument("--candidates", help="recipe: JSON file with a list of recipes, each an object of Recipe "
                        "options (templates, layer, token_prepending, contrastive, chunk_tokens, ...; templates, layer "
                        "and the methods left out = their defaults, the others as given on the command line) and an "
                        "optional label")
    add_eval_options(method, default_model)
    method.set_defaults(handler=cmd_tune_method, view_layer=None)
