"""``metaeol eval``, ``metaeol sweep`` and ``metaeol tune-layer``: the SentEval benchmark from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from metaeol_integrations.cli.options import add_recipe_options, add_runtime_options, recipe_options
from metaeol_integrations.cli.usage import UsageError
from metaeol_integrations.evaluation.data import DATA_DIR_ENV_VAR, STS_TASKS, TRANSFER_TASKS
from metaeol_integrations.evaluation.report import file_slug
from metaeol_integrations.evaluation.runner import DEFAULT_STS_LIMIT, DEFAULT_TRANSFER_LIMIT, EvalConfig, View

SUITES = {"sts": STS_TASKS, "transfer": TRANSFER_TASKS, "all": STS_TASKS + TRANSFER_TASKS}


def _add_encoder_options(parser: argparse.ArgumentParser, default_model: str, extra_models: str = "") -> None:
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


def _add_eval_options(parser: argparse.ArgumentParser, default_model: str) -> None:
    _add_encoder_options(parser, default_model)
    parser.add_argument("--data-dir", help=f"SentEval folder (default: ${DATA_DIR_ENV_VAR}, else ../shared/data/senteval)")
    parser.add_argument("--limit", type=int,
                        help=f"sample size for every task: pairs per STS task, examples per transfer task; 0 = full "
                        f"data (default: {DEFAULT_STS_LIMIT} STS pairs, {DEFAULT_TRANSFER_LIMIT} transfer examples)")
    parser.add_argument("--sts-limit", type=int, help="pairs per STS task (overrides --limit)")
    parser.add_argument("--transfer-limit", type=int, help="examples per transfer task (overrides --limit)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for STS intervals (0 = none)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks (names as in the tables' JSON, e.g. STS12 MR)")


def _config(args: argparse.Namespace) -> EvalConfig:
    def pick(specific: int | None, default: int) -> int:
        if specific is not None:
            return specific
        return args.limit if args.limit is not None else default

    return EvalConfig(
        data_dir=args.data_dir, sts_limit=pick(args.sts_limit, DEFAULT_STS_LIMIT),
        transfer_limit=pick(args.transfer_limit, DEFAULT_TRANSFER_LIMIT), seed=args.seed,
        cache_dir=args.cache_dir, bootstrap_resamples=args.bootstrap,
    )


def _encoder(args: argparse.Namespace):
    from metaeol_integrations.evaluation.encoders import build_encoder

    options = recipe_options(args)
    if args.handler in (cmd_retrieval, cmd_doc_pairs):
        options["chunk_tokens"] = None  # the harness chunks documents itself, from cached windows
    return build_encoder(args.model, pooling=args.pooling, dtype=args.dtype, device=args.device,
                         batch_size=args.batch_size, **options)


def _evaluator(args: argparse.Namespace):
    from metaeol_integrations.evaluation.runner import Evaluator

    config = _config(args)
    if config.data_dir is None:
        from metaeol_integrations.evaluation.data import resolve_data_dir

        resolve_data_dir(None)  # fail before loading a model when the data is missing
    return Evaluator(_encoder(args), config)


def _label(args: argparse.Namespace, layer: int | None) -> str:
    from metaeol_integrations.evaluation.report import run_label

    if args.label:
        return args.label
    return run_label(args.model, recipe_options(args), pooling=args.pooling, dtype=getattr(args, "dtype", None),
                     embed_filter=getattr(args, "embed_filter", None), center=getattr(args, "center", None),
                     layer=layer)


def _selected_tasks(args: argparse.Namespace, suite: tuple[str, ...]) -> list[str]:
    if not args.tasks:
        return list(suite)
    unknown = [task for task in args.tasks if task not in suite]
    if unknown:
        raise UsageError(f"unknown task(s) {', '.join(unknown)}. Fix: choose from {', '.join(suite)}.")
    return [task for task in suite if task in args.tasks]


def cmd_eval(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.report import text_table, write_results

    started = time.perf_counter()
    evaluator = _evaluator(args)
    view = View(layer=args.view_layer)
    results = []
    for task in _selected_tasks(args, SUITES[args.suite]):
        if task in TRANSFER_TASKS:
            results.append(evaluator.run_transfer(task, view))
        else:
            results.append(evaluator.run_sts(task, view))
        out.write(f"{task}: {results[-1].score:.2f} (N={results[-1].n}, {results[-1].seconds:.0f} s)\n")
        out.flush()
    label = _label(args, args.view_layer)
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


def cmd_retrieval(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.beir import evaluation_data
    from metaeol_integrations.evaluation.retrieval import BM25_MODELS, evaluate_retrieval, retriever_for

    started = time.perf_counter()
    if args.task is None and args.data_dir is None:
        raise UsageError("eval retrieval needs --task or --data-dir. Fix: e.g. --task scifact.")
    if args.model in BM25_MODELS and args.view_layer is not None:
        raise UsageError("--layer reads a MetaEOL model's layers; BM25 has none. Fix: drop --layer.")
    # Read before loading a model, so missing data fails fast.
    data, total_docs = evaluation_data(args.task, args.data_dir, split=args.split, queries=args.queries,
                                       corpus_sample=args.corpus_sample, seed=args.seed)
    encoder = None if args.model in BM25_MODELS else _encoder(args)
    retriever = retriever_for(args.model, encoder, cache_dir=args.cache_dir, layer=args.view_layer,
                              chunk_tokens=args.chunk_tokens)
    postprocessing = _postprocessing(args, retriever)
    sampling = {"split": args.split, "queries": args.queries, "corpus_sample": args.corpus_sample, "seed": args.seed,
                **postprocessing, **({"chunk_tokens": args.chunk_tokens} if args.chunk_tokens else {})}
    result = evaluate_retrieval(retriever, data, split=args.split, n_documents_total=total_docs, sampling=sampling)
    label = args.label or _label(args, args.view_layer)
    meta = {"label": label, "model": args.model, "pooling": args.pooling, "layer": args.view_layer,
            "wall_seconds": round(time.perf_counter() - started, 1), "encoder": retriever.identity(), **sampling}
    return _report_retrieval(result, meta, args.out, out)


def _report_retrieval(result: Any, meta: dict[str, Any], folder: str, out: TextIO) -> int:
    """Print a retrieval result's scores and write its JSON, Markdown and TREC run (``eval retrieval`` / ``fuse``)."""
    from metaeol_integrations.evaluation.retrieval import METRIC_NAMES, write_retrieval_results

    label = meta["label"]
    scores = ", ".join(f"{METRIC_NAMES[m]} {v:.2f}" for m, v in result.scores.items())
    out.write(f"{label} on {result.task} ({result.split}): {scores} (N={result.n_queries} queries, "
              f"{result.n_documents:,} of {result.n_documents_total:,} documents)\n")
    paths = write_retrieval_results(folder, file_slug(f"{label}-{result.task}-{result.split}"), result, meta)
    out.write("wrote " + ", ".join(str(path) for path in paths) + "\n")
    return 0


def _postprocessing(args: argparse.Namespace, retriever: Any) -> dict[str, Any]:
    """Set the harness-side EmbedFilter / centering of ``eval retrieval`` on ``retriever``; what was set, for the
    run's record."""
    if args.embed_filter is None and args.center is None:
        return {}
    from metaeol_integrations.evaluation.encoders import MetaEOLEncoder
    from metaeol_integrations.evaluation.retrieval import PostProcessing

    encoder = getattr(retriever, "encoder", None)
    if not isinstance(encoder, MetaEOLEncoder):
        raise UsageError("--embed-filter / --center post-process a MetaEOL model's vectors. Fix: use a MetaEOL model.")
    projection = fit_vectors = None
    record: dict[str, Any] = {}
    if args.embed_filter is not None:
        from metaeol_integrations.evaluation.retrieval import embed_filter_projection

        projection = embed_filter_projection(encoder.module, args.embed_filter)
        record["embed_filter"] = args.embed_filter
    center = args.center
    if center is not None and center != "corpus":
        texts = [line.strip() for line in Path(center).read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise UsageError(f"{center} holds no text. Fix: one document per line.")
        arrays, _ = retriever.embed(texts, "document")
        fit_vectors = retriever.select(arrays)
        record["center"] = {"file": Path(center).name, "texts": len(texts)}
        center = "texts"
    elif center == "corpus":
        record["center"] = "corpus"
    retriever.transform = PostProcessing(projection, center, fit_vectors)
    return record


def cmd_doc_pairs(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.beir import read_beir
    from metaeol_integrations.evaluation.doc_pairs import document_pairs, pair_cosines, pair_scores, write_pair_results
    from metaeol_integrations.evaluation.retrieval import BM25_MODELS, retriever_for

    started = time.perf_counter()
    if args.task is None and args.data_dir is None:
        raise UsageError("eval doc-pairs needs --task or --data-dir. Fix: e.g. --task nfcorpus.")
    if args.model in BM25_MODELS:
        raise UsageError("eval doc-pairs compares embedding vectors; BM25 has none. Fix: give an embedding model.")
    if args.pairs < 1:
        raise UsageError("--pairs must be at least 1. Fix: e.g. --pairs 200.")
    data = read_beir(args.task, args.data_dir)  # before loading a model, so missing data fails fast
    try:
        pairs = document_pairs(data, n_related=args.pairs, min_grade=args.min_grade, seed=args.seed)
    except ValueError as error:
        raise UsageError(str(error)) from error
    retriever = retriever_for(args.model, _encoder(args), cache_dir=args.cache_dir, layer=args.view_layer,
                              chunk_tokens=args.chunk_tokens)
    vectors, computed = retriever.document_vectors(pairs.doc_texts)
    cosines = pair_cosines(pairs, vectors)
    scores = pair_scores(cosines, pairs.related)
    label = args.label or _label(args, args.view_layer)
    meta = {"label": label, "model": args.model, "pooling": args.pooling, "layer": args.view_layer,
            "pairs": args.pairs, "min_grade": args.min_grade, "seed": args.seed,
            "texts_embedded": computed, "wall_seconds": round(time.perf_counter() - started, 1),
            "encoder": retriever.identity(), **({"chunk_tokens": args.chunk_tokens} if args.chunk_tokens else {})}
    out.write(f"{label} on {pairs.name} document pairs: AUC {scores['auc']:.2f}, mean cosine related "
              f"{scores['mean_cosine_related']:.3f}, unrelated {scores['mean_cosine_unrelated']:.3f} "
              f"(N={int(pairs.related.sum())} related + {int((~pairs.related).sum())} unrelated pairs, "
              f"{len(pairs.doc_ids)} documents)\n")
    paths = write_pair_results(args.out, file_slug(f"{label}-{pairs.name}-doc-pairs"), pairs, cosines, scores, meta)
    out.write("wrote " + ", ".join(str(path) for path in paths) + "\n")
    return 0


def cmd_fuse(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.beir import read_beir
    from metaeol_integrations.evaluation.retrieval import RetrievalResult, fuse_runs, read_trec_run

    records, runs = [], []
    for path in args.runs:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        result = next((r for r in record.get("results", []) if r.get("kind") == "retrieval"), None)
        run_file = Path(path[: -len(".json")] + ".run.trec.gz") if path.endswith(".json") else None
        if result is None or run_file is None or not run_file.is_file():
            raise UsageError(f"{path} is not an `eval retrieval` JSON with its .run.trec.gz beside it. Fix: give the "
                             "JSON files `metaeol eval retrieval` wrote.")
        records.append((record, result))
        runs.append(read_trec_run(run_file))
    first = records[0][1]
    if any((r["task"], r["split"], r["n_documents"], sorted(r["per_query"])) !=
           (first["task"], first["split"], first["n_documents"], sorted(first["per_query"])) for _, r in records):
        raise UsageError("the runs scored different queries or corpora. Fix: fuse runs of the same task, --split, "
                         "--queries, --corpus-sample and seed.")
    data = read_beir(first["task"] if args.data_dir is None else None, args.data_dir)
    data = data.with_queries([q for q in data.query_ids if q in first["per_query"]])
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    fused = fuse_runs(runs, args.method, weights=weights, rrf_k=args.rrf_k)
    labels = [record["meta"].get("label", "run") for record, _ in records]
    label = args.label or f"{' + '.join(labels)} ({args.method})"
    # The judgements come from the full set; the corpus size is the fused runs' own.
    result = RetrievalResult.from_run(fused, data, split=first["split"], n_documents=first["n_documents"],
                                      n_documents_total=first["n_documents_total"],
                                      protocol=f"fusion of {len(runs)} runs by ranx ({args.method}); pytrec_eval",
                                      sampling=first.get("sampling", {}))
    meta = {"label": label, "fused": args.runs, "method": args.method, "weights": weights, "rrf_k": args.rrf_k,
            **first.get("sampling", {})}
    return _report_retrieval(result, meta, args.out, out)


def cmd_compare(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.compare import comparison_table, compare_runs

    if args.bootstrap < 1:
        raise UsageError("--bootstrap must be at least 1. Fix: e.g. --bootstrap 1000.")
    if not 0 < args.level < 1:
        raise UsageError("--level must be between 0 and 1. Fix: e.g. --level 0.95.")
    comparison = compare_runs(args.run_a, args.run_b, tasks=args.tasks, resamples=args.bootstrap, seed=args.seed,
                              level=args.level)
    out.write(f"A = {comparison.label_a}\nB = {comparison.label_b}\n\n{comparison_table(comparison)}\n\n")
    decided_on = (comparison.average.name if comparison.average in comparison.tasks
                  else f"the {len(comparison.tasks)}-task average")
    out.write(f"* interval excludes 0. Verdict on {decided_on}: {comparison.verdict()}\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(comparison.to_dict(), indent=2), encoding="utf-8")
        out.write(f"wrote {args.json_out}\n")
    return 0


def cmd_sweep(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.evaluation.report import plot_curve
    from metaeol_integrations.evaluation.sweeps import layer_sweep, meta_task_sweep, prompt_count_sweep

    evaluator = _evaluator(args)
    tasks = _selected_tasks(args, STS_TASKS)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_slug(_label(args, None))
    sweeps = {}
    if args.kind in ("layers", "all"):
        sweeps["layers"] = (layer_sweep(evaluator, tasks), "output layer (hidden_states numbering)")
    if args.kind in ("prompts", "all"):
        sweeps["prompts"] = (prompt_count_sweep(evaluator, tasks, seed=args.seed), "number of prompts (random subsets)")
        sweeps["meta-tasks"] = (meta_task_sweep(evaluator, tasks), "meta-tasks included")
    for name, (sweep, xlabel) in sweeps.items():
        series = {"STS avg": sweep.average, **sweep.scores}
        path = plot_curve(folder / f"{stem}-sweep-{name}.png", sweep.x, series, xlabel,
                          f"{_label(args, None)}: STS vs {name} (N={evaluator.config.sts_limit or 'full'}/task)",
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

    evaluator = _metaeol_evaluator(args)
    best, sweep = tune_layer(evaluator)
    scores = sweep.scores[TUNING_TASK]
    out.write(f"best layer on STS-B dev (N={len(evaluator.sts_data(TUNING_TASK)[0])}): {best} "
              f"(Spearman {scores[best]:.2f}; last layer {scores[-1]:.2f})\n")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"best_layer": best, "tuning_task": TUNING_TASK, "n": len(evaluator.sts_data(TUNING_TASK)[0]),
              "scores_by_layer": scores, "seed": args.seed}
    path = folder / f"{file_slug(_label(args, None))}-tune-layer.json"
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


def _metaeol_evaluator(args: argparse.Namespace):
    """The evaluator of a tuning command, which needs per-layer vectors of a MetaEOL model."""
    from metaeol_integrations.evaluation.encoders import MetaEOLEncoder

    evaluator = _evaluator(args)
    if not isinstance(evaluator.encoder, MetaEOLEncoder):
        raise UsageError("needs a MetaEOL model (last-token pooling). Fix: drop --pooling mean, use a MetaEOL model.")
    return evaluator


def cmd_tune_method(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from dataclasses import replace

    from metaeol_integrations.evaluation.runner import Evaluator
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
    base = _metaeol_evaluator(args)
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
    path = folder / f"{file_slug(_label(args, None))}-tune-{args.knob}.json"
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    out.write(f"wrote {path}\n")
    return 0


def add_eval_commands(commands: argparse._SubParsersAction, default_model: str) -> None:
    """Register ``eval``, ``sweep`` and ``tune-layer`` on the ``metaeol`` parser."""
    evaluate = commands.add_parser(
        "eval", help="score a model on SentEval STS / transfer tasks, or compare two runs",
        description="Score a model on the SentEval tasks (STS12-16, STS-B, SICK-R; MR, CR, SUBJ, MPQA, SST-2, TREC, "
        "MRPC). By default a seeded, stratified sample per task (the full data takes hours on a CPU; --limit 0 runs "
        "it). Prints a paper-style table and writes JSON and Markdown to --out. `eval compare` tells whether one "
        "run beats another on the same pairs.",
    )
    suites = evaluate.add_subparsers(dest="suite", required=True, metavar="{sts,transfer,all,retrieval,doc-pairs,fuse,compare}")
    for suite, what in (("sts", "the 7 STS tasks"), ("transfer", "the 7 transfer tasks"), ("all", "all 14 tasks")):
        run = suites.add_parser(suite, help=f"score {what}", description=f"Score a model on {what}.")
        run.add_argument("--layer", dest="view_layer", type=int, help="score this layer's vector (hidden_states numbering, -1 = last); "
                         "all layers come from one cached pass (write negative values as --layer=-2)")
        _add_eval_options(run, default_model)
        run.set_defaults(handler=cmd_eval)

    retrieval = suites.add_parser(
        "retrieval", help="score a retriever on a BEIR set (SciFact, NFCorpus, or any BEIR folder)",
        description="Retrieve documents for each query of a BEIR set by exact cosine over the whole corpus (queries "
        "through encode_query, documents through encode_document, both cached) or by BM25, and score the run with "
        "pytrec_eval: nDCG@10 (main), Recall@100, MRR@10, each per query. Writes JSON (with per-query scores, for "
        "`eval compare`), Markdown and the TREC run to --out. BEIR sets have no dev split: choose settings on "
        "--split dev (a seeded half of the queries) and report on --split test.",
    )
    retrieval.add_argument("--task", choices=("scifact", "nfcorpus"),
                           help="BEIR set under --data-dir (default data: ../shared/data/retrieval)")
    retrieval.add_argument("--data-dir", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or the "
                           "parent of --task's folder (default: $METAEOL_RETRIEVAL_DIR, else ../shared/data/retrieval)")
    retrieval.add_argument("--split", choices=("all", "dev", "test"), default="all",
                           help="all queries (default), or one seeded half: dev for choices, test for reporting")
    retrieval.add_argument("--queries", type=int, default=0, help="seeded sample of N queries, before --split (0 = all)")
    retrieval.add_argument("--corpus-sample", type=int, default=0,
                           help="N documents: every judged document of the sampled queries plus seeded random "
                           "distractors (0 = the whole corpus); the same for both --split halves")
    retrieval.add_argument("--layer", dest="view_layer", type=int, help="MetaEOL: score this layer's vector (hidden_states numbering; "
                           "write negative values as --layer=-2), from the same cached pass")
    retrieval.add_argument("--embed-filter", type=int, metavar="TAU",
                           help="EmbedFilter: project the vectors onto the middle d/TAU singular band of the LLM's "
                           "unembedding matrix (what metaeol_integrations.add_embed_filter adds to a model)")
    retrieval.add_argument("--center", metavar="corpus|FILE",
                           help="remove a mean vector from queries and documents, fitted on the evaluated corpus "
                           "('corpus') or on the documents in FILE, one per line (what fit_center adds to a model)")
    _add_encoder_options(retrieval, default_model, extra_models=", 'bm25' (bm25s, English stop words), 'bm25-stemmed' (plus Snowball stemming)")
    retrieval.set_defaults(handler=cmd_retrieval)

    pairs = suites.add_parser(
        "doc-pairs", help="document-level similarity: related vs unrelated abstract pairs from a BEIR set's judgements",
        description="Score how well cosine separates pairs of documents judged relevant to the same query (at "
        "--min-grade or above) from pairs of the same documents that no query judges together: ROC AUC x100, and "
        "the mean cosine of each kind. The pairs are seeded; documents go through encode_document (cached, as in "
        "`eval retrieval`). Writes JSON (with every pair's cosine, for `eval compare`) and Markdown to --out.",
    )
    pairs.add_argument("--task", choices=("scifact", "nfcorpus"),
                       help="BEIR set under --data-dir (default data: ../shared/data/retrieval); nfcorpus has the "
                       "graded judgements this needs")
    pairs.add_argument("--data-dir", help="a BEIR folder or the parent of --task's folder (as for `eval retrieval`)")
    pairs.add_argument("--pairs", type=int, default=200, help="related pairs, and as many unrelated (default 200)")
    pairs.add_argument("--min-grade", type=int, default=2, help="grade both documents of a related pair have for "
                       "one query (default 2: NFCorpus's direct citations)")
    pairs.add_argument("--layer", dest="view_layer", type=int, help="MetaEOL: score this layer's vector (hidden_states "
                       "numbering; write negative values as --layer=-2), from the same cached pass")
    _add_encoder_options(pairs, default_model)
    pairs.set_defaults(handler=cmd_doc_pairs)

    fuse = suites.add_parser(
        "fuse", help="hybrid retrieval: fuse two or more `eval retrieval` runs (e.g. a dense model and BM25)",
        description="Fuse the stored runs of `metaeol eval retrieval` (same task, split and corpus) with ranx and "
        "score the fused run: rrf (reciprocal-rank fusion, k=60, equal weights: what LangChain's EnsembleRetriever "
        "and LlamaIndex's QueryFusionRetriever do by default) or minmax (weighted sum of min-max normalised scores). "
        "Each run contributes its top 100 documents per query.",
    )
    fuse.add_argument("runs", nargs="+", help="JSON files written by `metaeol eval retrieval` (their .run.trec.gz "
                      "files must be beside them)")
    fuse.add_argument("--method", choices=("rrf", "minmax"), default="rrf", help="fusion (default rrf)")
    fuse.add_argument("--weights", help="minmax: comma-separated weight per run (default equal)")
    fuse.add_argument("--rrf-k", type=int, default=60, help="rrf: the k in 1 / (k + rank) (default 60)")
    fuse.add_argument("--data-dir", help="the BEIR folder of the runs' task, for its judgements (default: as for "
                      "`eval retrieval`)")
    fuse.add_argument("--out", default="eval-results", help="folder for the JSON/Markdown/run output")
    fuse.add_argument("--label", help="name of the fused run (default: the runs' labels and the method)")
    fuse.set_defaults(handler=cmd_fuse)

    compare = suites.add_parser(
        "compare", help="paired bootstrap difference of two runs' STS, retrieval or document-pair scores",
        description="Compare two `metaeol eval` JSON files scored on the same pairs (same sample size and seed): "
        "the difference A - B per STS task and of the task average, with a paired percentile-bootstrap interval "
        "(the same resampled pairs for both runs). Two `eval retrieval` files are compared over their queries, "
        "per metric, the verdict on nDCG@10; two `eval doc-pairs` files over their pairs (AUC, related and "
        "unrelated pairs resampled separately). 'A beats B' only when the interval excludes 0.",
    )
    compare.add_argument("run_a", help="JSON file written by `metaeol eval` (A)")
    compare.add_argument("run_b", help="JSON file written by `metaeol eval` (B)")
    compare.add_argument("--tasks", nargs="+", help="only these STS tasks (default: every STS task of the runs)")
    compare.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    compare.add_argument("--seed", type=int, default=0, help="resampling seed (default 0)")
    compare.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    compare.add_argument("--json", dest="json_out", help="also write the comparison to this JSON file")
    compare.set_defaults(handler=cmd_compare)

    sweep = commands.add_parser(
        "sweep", help="plot STS against the output layer and the number of prompts",
        description="The paper's Figures 3 and 4 on your model: STS scores at every output layer, for growing "
        "numbers of prompts and meta-tasks. One forward pass per text (cached); PNG plots and JSON go to --out.",
    )
    sweep.add_argument("kind", nargs="?", choices=("layers", "prompts", "all"), default="all")
    _add_eval_options(sweep, default_model)
    sweep.set_defaults(handler=cmd_sweep, view_layer=None)

    tune = commands.add_parser(
        "tune-layer", help="choose the output layer on STS-B dev",
        description="Score every output layer on the STS-B dev split only (never on test data), print the best, "
        "and with --export write a model folder that uses it.",
    )
    tune.add_argument("--export", help="write a SentenceTransformer folder with the tuned layer here")
    _add_eval_options(tune, default_model)
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
    _add_eval_options(method, default_model)
    method.set_defaults(handler=cmd_tune_method, view_layer=None)
