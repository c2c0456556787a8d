"""Score one template set's cached retrieval vectors under every readout layer x EmbedFilter band x centering, on a
query half (choose on `dev`, never on `test`), without re-embedding: one `eval retrieval` run fills the cache first.

Centering: none, the evaluated corpus's mean ("corpus"), or the mean of unrelated general-domain text ("sts-b":
seeded STS-B train sentences from the SentEval folder, encoded as documents), the fit a shipped model can carry.
Usage: python scripts/retrieval_grid.py --templates prompteol [--query-templates retrieval-query] \
           [--split dev] [--taus 0,2,4,8] [--layers -1,-2,...] --out docs/results/retrieval/grids
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from metaeol_integrations.evaluation.beir import evaluation_data
from metaeol_integrations.evaluation.encoders import build_encoder
from metaeol_integrations.evaluation.retrieval import (
    METRICS,
    PostProcessing,
    RetrievalResult,
    cosine_scores,
    embed_filter_projection,
    retriever_for,
    top_k_run,
    write_retrieval_results,
)
from metaeol_integrations.evaluation.evaluator import View


def unrelated_texts(senteval_dir: str | None = None, n: int = 1000, seed: int = 0) -> list[str]:
    """Seeded general-domain sentences (STS-B train, both sides, deduplicated and sorted, then sampled): a centering
    fit that knows nothing of the corpus."""
    from metaeol_integrations.evaluation.data import read_sts_benchmark

    pairs = read_sts_benchmark("train", senteval_dir)
    texts = sorted(set(pairs.sentences1) | set(pairs.sentences2))
    return random.Random(seed).sample(texts, min(n, len(texts)))

def slug_of(label: str) -> str:
    from metaeol_integrations.evaluation.report import file_slug

    return file_slug(label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metaeol-smollm2-135m-paper")
    parser.add_argument("--templates")
    parser.add_argument("--query-templates")
    parser.add_argument("--pooling", default="last-token")
    parser.add_argument("--task", default="scifact")
    parser.add_argument("--data-dir")
    parser.add_argument("--senteval-dir")
    parser.add_argument("--split", default="dev", choices=("dev", "test", "all"))
    parser.add_argument("--corpus-sample", type=int, default=500)
    parser.add_argument("--corpus-sampling", default="judged", choices=("judged", "uniform"),
                        help="as `eval retrieval --corpus-sampling` (uniform: seeded random documents, many queries)")
    parser.add_argument("--queries", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", help="comma-separated hidden_states layers (default: every layer)")
    parser.add_argument("--taus", default="0,2,4,8", help="EmbedFilter band widths d/tau; 0 = no filter")
    parser.add_argument("--centers", default="none,corpus,sts-b")
    parser.add_argument("--chunk-tokens", type=int)
    parser.add_argument("--window-weighting", default="uniform", choices=("uniform", "tokens"),
                        help="with --chunk-tokens: a document's vector is the plain mean of its windows' vectors, or "
                        "weighted by each window's token count (the short last window counts for what it holds)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", default="docs/results/retrieval/grids")
    parser.add_argument("--write-run", metavar="FOLDER",
                        help="with one layer, tau and center: also write that setting's run as `eval retrieval` does "
                        "(JSON with per-query scores, Markdown, TREC run) into FOLDER, for `eval compare` / `eval fuse`")
    args = parser.parse_args()

    data, total = evaluation_data(args.task, args.data_dir, split=args.split, queries=args.queries,
                                  corpus_sample=args.corpus_sample, seed=args.seed,
                                  corpus_sampling=args.corpus_sampling)
    # An ensemble of built-in sets ("prompteol+ke") is scored from its members' caches: the module's ensemble vector
    # is the mean of its members' vectors, here each read at the same layer (kept here: the harness scores one
    # encoder, and an ensemble's grid over layers needs its members' cached arrays).
    members = args.templates.split("+") if args.templates and "+" in args.templates else [args.templates]
    retrievers = [retriever_for(args.model, build_encoder(args.model, pooling=args.pooling, templates=member,
                                                          query_templates=args.query_templates),
                                cache_dir=args.cache_dir, chunk_tokens=args.chunk_tokens,
                                window_weighting=args.window_weighting) for member in members]
    encoder = retrievers[0].encoder
    is_metaeol = hasattr(encoder, "module")
    layers = ([int(v) for v in args.layers.split(",")] if args.layers
              else list(range(-1, -encoder.num_layers - 2, -1)) if is_metaeol else [None])
    taus = [int(v) for v in args.taus.split(",")] if is_metaeol else [0]
    centers = args.centers.split(",")
    fit_texts = unrelated_texts(args.senteval_dir, seed=args.seed) if "sts-b" in centers else []

    projections = {0: None}
    for tau in filter(None, taus):  # one SVD of the unembedding per band width, not per layer
        projections[tau] = embed_filter_projection(encoder.module, tau)
    rows = []
    for layer in layers:
        documents = queries = unrelated = 0.0
        for member in retrievers:
            member.select = View(layer=layer).select
            documents = documents + member.document_vectors(data.doc_texts)[0] / len(retrievers)
            queries = queries + np.asarray(member.select(member.embed(data.query_texts, "query")[0]),
                                           np.float64) / len(retrievers)
            if fit_texts:
                unrelated = unrelated + np.asarray(member.select(member.embed(fit_texts, "document")[0]),
                                                   np.float64) / len(retrievers)
        unrelated = unrelated if fit_texts else None
        for tau in taus:
            for center in centers:
                post = PostProcessing(projections[tau], {"none": None, "corpus": "corpus", "sts-b": "texts"}[center],
                                      unrelated if center == "sts-b" else None)
                q, d = post(queries, documents)
                run = top_k_run(cosine_scores(q, d), data.query_ids, data.doc_ids)
                result = RetrievalResult.from_run(run, data, split=args.split, n_documents_total=total)
                rows.append({"layer": layer, "embed_filter": tau or None, "center": center,
                             **{m: round(result.scores[m], 3) for m in METRICS}})
                if args.write_run:
                    result.sampling = {
                        "split": args.split, "queries": args.queries, "corpus_sample": args.corpus_sample,
                        "corpus_sampling": args.corpus_sampling, "seed": args.seed, "layer": layer, "embed_filter": tau or None, "center": center}
                    meta = {"label": args.label, "model": args.model, "templates": args.templates,
                            "query_templates": args.query_templates, "computed_by": "scripts/retrieval_grid.py",
                            **result.sampling}
                    write_retrieval_results(args.write_run, slug_of(f"{args.label}-{args.task}-{args.split}"),
                                            result, meta)
                print(f"layer {layer} tau {tau} center {center}: nDCG@10 {result.scores['ndcg_at_10']:.2f}", flush=True)
    best = max(rows, key=lambda row: row["ndcg_at_10"])
    record = {"label": args.label, "model": args.model, "templates": args.templates,
              "query_templates": args.query_templates, "pooling": args.pooling, "chunk_tokens": args.chunk_tokens,
              "window_weighting": args.window_weighting,
              "task": args.task, "split": args.split, "corpus_sample": args.corpus_sample,
              "corpus_sampling": args.corpus_sampling, "seed": args.seed,
              "n_queries": len(data.query_ids), "n_documents": len(data.doc_ids),
              "unrelated_fit": f"{len(fit_texts)} seeded STS-B train sentences" if fit_texts else None,
              "best": best, "rows": rows}
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug_of(args.label)}-{args.task}-{args.split}-grid.json"
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"best on {args.task} {args.split} (N={len(data.query_ids)}): {best}; wrote {path}")
    last = [r for r in rows if r["layer"] in (-1, None) and not r["embed_filter"] and r["center"] == "none"]
    if last:
        print(f"plain (last layer, no post-processing): {last[0]['ndcg_at_10']:.2f}; mean over grid "
              f"{np.mean([r['ndcg_at_10'] for r in rows]):.2f}")


if __name__ == "__main__":
    main()
