"""What every evaluation command shares: the encoder and data options, and the objects built from them."""

from __future__ import annotations

import argparse

from metaeol_integrations.cli.options import add_recipe_options, add_runtime_options, recipe_options
from metaeol_integrations.cli.usage import UsageError
from metaeol_integrations.evaluation.data import DATA_DIR_ENV_VAR
from metaeol_integrations.evaluation.evaluator import DEFAULT_STS_LIMIT, DEFAULT_TRANSFER_LIMIT, EvalConfig


def add_encoder_options(parser: argparse.ArgumentParser, default_model: str, extra_models: str = "") -> None:
    """The options that choose and configure the encoder (shared by every evaluation command)."""
    parser.add_argument("--model", default=default_model,
                        help="preset, MetaEOL or LLM folder, .gguf file, SentenceTransformer folder, "
                        f"'all-minilm-l6-v2'{extra_models} (default: {default_model})")
    parser.add_argument("--pooling", choices=("last-token", "mean"), default="last-token",
                        help="last-token: MetaEOL/PromptEOL (default); mean: the no-prompt mean-pooling baseline")
    add_recipe_options(parser, layer=False)
    add_runtime_options(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="texts per encode batch (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and cross-validation seed (default 0)")
    parser.add_argument("--cache-dir", help="embedding cache folder (default: ~/.cache/metaeol-integrations/embeddings)")
    parser.add_argument("--out", default="eval-results", help="folder for the JSON/Markdown/PNG output")
    parser.add_argument("--label", help="name of this run in tables and file names")


def add_view_layer(parser: argparse.ArgumentParser) -> None:
    """``--layer`` of the scoring commands: which layer's vector to score, read from the one cached pass (not a recipe
    option: the recipe's ``--layer`` would change what is cached)."""
    parser.add_argument("--layer", dest="view_layer", type=int,
                        help="MetaEOL: score this layer's vector (hidden_states numbering, -1 = last); every layer "
                        "comes from one cached pass (write negative values as --layer=-2)")


def add_eval_options(parser: argparse.ArgumentParser, default_model: str) -> None:
    add_encoder_options(parser, default_model)
    parser.add_argument("--data-dir", help=f"SentEval folder (default: ${DATA_DIR_ENV_VAR}, else ../shared/data/senteval)")
    parser.add_argument("--limit", type=int,
                        help=f"sample size for every task: pairs per STS task, examples per transfer task; 0 = full "
                        f"data (default: {DEFAULT_STS_LIMIT} STS pairs, {DEFAULT_TRANSFER_LIMIT} transfer examples)")
    parser.add_argument("--sts-limit", type=int, help="pairs per STS task (overrides --limit)")
    parser.add_argument("--transfer-limit", type=int, help="examples per transfer task (overrides --limit)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for STS intervals (0 = none)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks (names as in the tables' JSON, e.g. STS12 MR)")


def eval_config(args: argparse.Namespace) -> EvalConfig:
    def pick(specific: int | None, default: int) -> int:
        if specific is not None:
            return specific
        return args.limit if args.limit is not None else default

    return EvalConfig(
        data_dir=args.data_dir, sts_limit=pick(args.sts_limit, DEFAULT_STS_LIMIT),
        transfer_limit=pick(args.transfer_limit, DEFAULT_TRANSFER_LIMIT), seed=args.seed,
        cache_dir=args.cache_dir, bootstrap_resamples=args.bootstrap,
    )


def build_encoder_from(args: argparse.Namespace):
    from metaeol_integrations.evaluation.encoders import build_encoder

    options = recipe_options(args)
    if getattr(args, "harness_chunks", False):
        options["chunk_tokens"] = None  # the retrieval harness chunks documents itself, from cached windows
    return build_encoder(args.model, pooling=args.pooling, dtype=args.dtype, device=args.device,
                         batch_size=args.batch_size, **options)


def build_evaluator(args: argparse.Namespace):
    from metaeol_integrations.evaluation.evaluator import Evaluator

    config = eval_config(args)
    if config.data_dir is None:
        from metaeol_integrations.evaluation.data import resolve_data_dir

        resolve_data_dir(None)  # fail before loading a model when the data is missing
    return Evaluator(build_encoder_from(args), config)


def label_of(args: argparse.Namespace, layer: int | None) -> str:
    from metaeol_integrations.evaluation.report import run_label

    if args.label:
        return args.label
    return run_label(args.model, recipe_options(args), pooling=args.pooling, dtype=getattr(args, "dtype", None),
                     embed_filter=getattr(args, "embed_filter", None), center=getattr(args, "center", None),
                     layer=layer)


def selected_tasks(args: argparse.Namespace, suite: tuple[str, ...]) -> list[str]:
    if not args.tasks:
        return list(suite)
    unknown = [task for task in args.tasks if task not in suite]
    if unknown:
        raise UsageError(f"unknown task(s) {', '.join(unknown)}. Fix: choose from {', '.join(suite)}.")
    return [task for task in suite if task in args.tasks]


def build_metaeol_evaluator(args: argparse.Namespace):
    """The evaluator of a tuning command, which needs per-layer vectors of a MetaEOL model."""
    from metaeol_integrations.evaluation.encoders import MetaEOLEncoder

    evaluator = build_evaluator(args)
    if not isinstance(evaluator.encoder, MetaEOLEncoder):
        raise UsageError("needs a MetaEOL model (last-token pooling). Fix: drop --pooling mean, use a MetaEOL model.")
    return evaluator
