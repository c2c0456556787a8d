"""``metaeol eval retrieval``, ``eval doc-pairs`` and ``eval fuse``: BEIR retrieval, document-pair similarity and
hybrid fusion from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from metaeol_integrations.cli.harness import add_encoder_options, add_view_layer, build_encoder_from, label_of
from metaeol_integrations.cli.usage import UsageError
from metaeol_integrations.evaluation.beir import CORPUS_SAMPLINGS
from metaeol_integrations.evaluation.report import file_slug
from metaeol_integrations.hybrid.fusion import FUSION_METHODS
from metaeol_integrations.postprocessing.center import CENTER_MODES


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
                                       corpus_sample=args.corpus_sample, seed=args.seed,
                                       corpus_sampling=args.corpus_sampling)
    encoder = None if args.model in BM25_MODELS else build_encoder_from(args)
    retriever = retriever_for(args.model, encoder, cache_dir=args.cache_dir, layer=args.view_layer,
                              chunk_tokens=args.chunk_tokens)
    postprocessing = _postprocessing(args, retriever)
    sampling = {"split": args.split, "queries": args.queries, "corpus_sample": args.corpus_sample, "seed": args.seed,
                **({"corpus_sampling": args.corpus_sampling} if args.corpus_sampling != "judged" else {}),
                **postprocessing, **({"chunk_tokens": args.chunk_tokens} if args.chunk_tokens else {})}
    result = evaluate_retrieval(retriever, data, split=args.split, n_documents_total=total_docs, sampling=sampling)
    label = args.label or label_of(args, args.view_layer)
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
    if center is not None and args.center_mode != "subtract":
        record["center_mode"] = args.center_mode
    retriever.transform = PostProcessing(projection, center, fit_vectors, center_mode=args.center_mode)
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
    retriever = retriever_for(args.model, build_encoder_from(args), cache_dir=args.cache_dir, layer=args.view_layer,
                              chunk_tokens=args.chunk_tokens)
    vectors, computed = retriever.document_vectors(pairs.doc_texts)
    cosines = pair_cosines(pairs, vectors)
    scores = pair_scores(cosines, pairs.related)
    label = args.label or label_of(args, args.view_layer)
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
    from metaeol_integrations.evaluation.beir import evaluation_data
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
    # The queries, documents and judgements the runs scored, rebuilt from their sampling record.
    sampling = first.get("sampling") or {}
    data, _ = evaluation_data(first["task"] if args.data_dir is None else None, args.data_dir,
                              split=sampling.get("split", "all"), queries=sampling.get("queries", 0),
                              corpus_sample=sampling.get("corpus_sample", 0), seed=sampling.get("seed", 0),
                              corpus_sampling=sampling.get("corpus_sampling", "judged"))
    data = data.with_queries([q for q in data.query_ids if q in first["per_query"]])
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    fused = fuse_runs(runs, args.method, weights=weights, rrf_k=args.rrf_k)
    labels = [record["meta"].get("label", "run") for record, _ in records]
    label = args.label or f"{' + '.join(labels)} ({args.method})"
    result = RetrievalResult.from_run(fused, data, split=first["split"], n_documents=first["n_documents"],
                                      n_documents_total=first["n_documents_total"],
                                      protocol=f"fusion of {len(runs)} runs ({args.method}, weights {weights or 'equal'}); pytrec_eval",
                                      sampling=first.get("sampling", {}))
    meta = {"label": label, "fused": args.runs, "method": args.method, "weights": weights, "rrf_k": args.rrf_k,
            **first.get("sampling", {})}
    return _report_retrieval(result, meta, args.out, out)


def add_retrieval_commands(suites: argparse._SubParsersAction, default_model: str) -> None:
    """Register ``eval retrieval``, ``eval doc-pairs`` and ``eval fuse``."""
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
    retrieval.add_argument("--corpus-sampling", choices=CORPUS_SAMPLINGS, default="judged",
                           help="--corpus-sample: 'judged' (default: every judged document of the queries plus "
                           "distractors) or 'uniform' (N seeded random documents; queries without a relevant one "
                           "among them are dropped, judgements outside it ignored: many queries on a small corpus)")
    add_view_layer(retrieval)
    retrieval.add_argument("--embed-filter", type=int, metavar="TAU",
                           help="EmbedFilter: project the vectors onto the middle d/TAU singular band of the LLM's "
                           "unembedding matrix (what metaeol_integrations.add_embed_filter adds to a model)")
    retrieval.add_argument("--center", metavar="corpus|FILE",
                           help="remove a mean vector from queries and documents, fitted on the evaluated corpus "
                           "('corpus') or on the documents in FILE, one per line (what fit_center adds to a model)")
    retrieval.add_argument("--center-mode", choices=CENTER_MODES, default="subtract",
                           help="--center: subtract the mean (default) or project out its direction ('project')")
    add_encoder_options(retrieval, default_model, extra_models=", 'bm25' (bm25s, English stop words), 'bm25-stemmed' (plus Snowball stemming)")
    retrieval.set_defaults(handler=cmd_retrieval, harness_chunks=True)

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
    add_view_layer(pairs)
    add_encoder_options(pairs, default_model)
    pairs.set_defaults(handler=cmd_doc_pairs, harness_chunks=True)

    fuse = suites.add_parser(
        "fuse", help="hybrid retrieval: fuse two or more `eval retrieval` runs (e.g. a dense model and BM25)",
        description="Fuse the stored runs of `metaeol eval retrieval` (same task, split and corpus) by the formulas "
        "of the hybrid retrievers (metaeol_integrations.hybrid) and score the fused run: rrf (weighted reciprocal-rank "
        "fusion, sum of w / (k + rank): LangChain's EnsembleRetriever), minmax (weighted sum of min-max normalised "
        "scores: LlamaIndex's relative_score) or zscore (the same scaled by mean +- 3 std: LlamaIndex's "
        "dist_based_score). Each run contributes its top 100 documents per query.",
    )
    fuse.add_argument("runs", nargs="+", help="JSON files written by `metaeol eval retrieval` (their .run.trec.gz "
                      "files must be beside them)")
    fuse.add_argument("--method", choices=FUSION_METHODS, default="rrf", help="fusion (default rrf)")
    fuse.add_argument("--weights", help="comma-separated weight per run, in the order given (default equal)")
    fuse.add_argument("--rrf-k", type=int, default=60, help="rrf: the k in 1 / (k + rank) (default 60)")
    fuse.add_argument("--data-dir", help="the BEIR folder of the runs' task, for its judgements (default: as for "
                      "`eval retrieval`)")
    fuse.add_argument("--out", default="eval-results", help="folder for the JSON/Markdown/run output")
    fuse.add_argument("--label", help="name of the fused run (default: the runs' labels and the method)")
    fuse.set_defaults(handler=cmd_fuse)
