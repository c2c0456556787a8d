"""Cosines that mean something: a centering mean fitted once on a broad, fixed sample of sentences, measured on
STS-B dev (every pair) for the default model: Spearman with a paired interval, and how far unrelated pairs now sit
below paraphrases.

The fit sample (seeded, 1,000 sentences): 500 STS-B train sentences and 100 from each of SICK train, MR, CR, SUBJ
and TREC train: news, captions, forums, reviews, questions; nothing from STS-B dev. Both CorpusCenter modes are
scored. Vectors come through the embedding cache (the fit sample takes about 3 min in float32 here).

With --retrieval the same mean is checked on the retrieval dev halves (SciFact 500-document sample, NFCorpus
800-document / 20-query sample), nDCG@10 of the centred against the plain vectors, paired over queries; in the dtype
given (default auto: what users run; about 40 min here in bfloat16 for MetaEOL's eight prompts per abstract).

Usage: python scripts/spread_center.py [--preset metaeol-smollm2-135m-paper] [--retrieval] [--out docs/results/spread]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from metaeol_integrations.evaluation.paired import STSPredictions, paired_bootstrap
from metaeol_integrations.evaluation.sts import cosine_similarities
from metaeol_integrations.postprocessing.center import remove_mean

EXAMPLE = ("A man is playing a guitar.", "The stock market fell today.", "Someone is playing an instrument.")


def fit_sentences(n_per_set: int = 100, seed: int = 0) -> list[str]:
    """The fixed, seeded fit sample (sorted pools, so file order does not matter)."""
    from metaeol_integrations.evaluation.data import read_sick_relatedness, read_sts_benchmark, read_transfer

    rng = random.Random(seed)
    stsb = read_sts_benchmark("train")
    sick = read_sick_relatedness("train")
    pools = {"STS-B train": (sorted(set(stsb.sentences1) | set(stsb.sentences2)), 5 * n_per_set),
             "SICK train": (sorted(set(sick.sentences1) | set(sick.sentences2)), n_per_set)}
    for task in ("MR", "CR", "SUBJ", "TREC"):
        data = read_transfer(task)
        split = data.splits.get("train") or data.splits["all"]
        pools[task] = (sorted(set(split.texts)), n_per_set)
    chosen: list[str] = []
    for name, (pool, count) in pools.items():
        chosen += rng.sample(pool, count)
    return list(dict.fromkeys(chosen))


def embed(preset: str, texts: list[str], cache_dir: str | None, task: str | None = None,
          dtype: str = "float32") -> np.ndarray:
    from metaeol_integrations.evaluation.encoders import build_encoder, encode_cached

    return encode_cached(build_encoder(preset, dtype=dtype), texts, task, cache_dir,
                         f"{preset} {task or 'texts'}")["embedding"].astype(np.float64)


RETRIEVAL_SAMPLES = {"scifact": {"corpus_sample": 500}, "nfcorpus": {"queries": 20, "corpus_sample": 800}}


def retrieval_rows(preset: str, mean: np.ndarray, cache_dir: str | None, dtype: str, resamples: int) -> list[dict]:
    """nDCG@10 of the centred vectors against the plain ones on each set's dev half (and test half), paired."""
    from metaeol_integrations.evaluation.beir import evaluation_data, split_queries
    from metaeol_integrations.evaluation.paired import paired_per_query
    from metaeol_integrations.evaluation.retrieval import cosine_scores, score_run, top_k_run

    rows = []
    for task, sampling in RETRIEVAL_SAMPLES.items():
        data, _ = evaluation_data(task, **sampling)
        queries = embed(preset, data.query_texts, cache_dir, "query", dtype)
        documents = embed(preset, data.doc_texts, cache_dir, "document", dtype)
        scored = {}
        for name, mode in (("as is", None), ("subtract", "subtract"), ("project", "project")):
            q, d = (queries, documents) if mode is None else (centred(queries, mean, mode), centred(documents, mean, mode))
            per_query = score_run(top_k_run(cosine_scores(q, d), data.query_ids, data.doc_ids), data.qrels)
            scored[name] = {query: values["ndcg_at_10"] for query, values in per_query.items()}
        for split in ("dev", "test"):
            half = split_queries(data.query_ids, split)
            for name in ("subtract", "project"):
                diff = paired_per_query(scored[name], scored["as is"], half, task, resamples=resamples)
                rows.append({"task": task, "split": split, "variant": name, "n": diff.n, "score": diff.score_a,
                             "as_is": diff.score_b, "diff": diff.difference, "low": diff.ci_low, "high": diff.ci_high})
    return rows


def centred(vectors: np.ndarray, mean: np.ndarray | None, mode: str) -> np.ndarray:
    return vectors if mean is None else remove_mean(vectors, mean, mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="metaeol-smollm2-135m-paper", help="the model whose vectors the mean is fitted on (the paper's vectors)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--retrieval", action="store_true", help="also check the mean on the retrieval dev halves")
    parser.add_argument("--dtype", default="auto", help="--retrieval: the dtype of the retrieval vectors")
    parser.add_argument("--out", default="docs/results/spread")
    args = parser.parse_args()
    from metaeol_integrations.evaluation.data import read_sts_benchmark

    fit = fit_sentences()
    dev = read_sts_benchmark("dev")
    texts = list(dict.fromkeys(list(dev.sentences1) + list(dev.sentences2)))
    table = dict(zip(texts, embed(args.preset, texts, args.cache_dir)))
    fit_vectors = embed(args.preset, fit, args.cache_dir)
    mean = fit_vectors.mean(axis=0)
    example = embed(args.preset, list(EXAMPLE), args.cache_dir)
    first = np.stack([table[t] for t in dev.sentences1])
    second = np.stack([table[t] for t in dev.sentences2])
    gold = np.asarray(dev.scores)
    indices = np.arange(len(gold))
    rows, predictions = [], {}
    for name, (m, mode) in {"as is": (None, "subtract"), "subtract": (mean, "subtract"),
                            "project": (mean, "project")}.items():
        cos = cosine_similarities(centred(first, m, mode), centred(second, m, mode))
        predictions[name] = STSPredictions("STSBenchmark-dev", indices, gold, cos)
        ex = centred(example, m, mode)
        ex = ex / np.linalg.norm(ex, axis=1, keepdims=True)
        rows.append({"variant": name,
                     "unrelated_mean": float(cos[gold <= 1].mean()), "related_mean": float(cos[gold >= 4].mean()),
                     "unrelated_n": int((gold <= 1).sum()), "related_n": int((gold >= 4).sum()),
                     "all_mean": float(cos.mean()), "cos_p05": float(np.percentile(cos, 5)),
                     "cos_p95": float(np.percentile(cos, 95)),
                     "example_unrelated": float(ex[0] @ ex[1]), "example_paraphrase": float(ex[0] @ ex[2])})
    for row in rows[1:]:
        comparison = paired_bootstrap([predictions[row["variant"]]], [predictions["as is"]], row["variant"], "as is",
                                      resamples=args.resamples).tasks[0]
        row.update(spearman=comparison.score_a, diff=comparison.difference, low=comparison.ci_low,
                   high=comparison.ci_high)
    rows[0]["spearman"] = paired_bootstrap([predictions["as is"]], [predictions["as is"]], resamples=1).tasks[0].score_a
    record = {"preset": args.preset, "fit_texts": len(fit), "fit_sample": "500 STS-B train + 100 each of SICK train, "
              "MR, CR, SUBJ, TREC train (seed 0)", "data": f"STS-B dev, {len(gold)} pairs", "rows": rows,
              "mean": mean.tolist()}
    if args.retrieval:
        record["retrieval_dtype"] = args.dtype
        record["retrieval"] = retrieval_rows(args.preset, mean, args.cache_dir, args.dtype, args.resamples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.preset}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    (out / f"{args.preset}.md").write_text(markdown(record), encoding="utf-8")
    print(markdown(record), file=sys.stdout)


def markdown(record: dict) -> str:
    lines = [f"# Cosine spread of {record['preset']} with a fixed centering mean", "",
             f"Mean fitted on {record['fit_texts']} sentences ({record['fit_sample']}); scored on {record['data']} "
             "(Spearman x100 of cosine; difference to the vectors as they are with a paired 95% bootstrap interval). "
             "Unrelated: gold <= 1; related: gold >= 4. Example: \"A man is playing a guitar.\" against \"The stock "
             "market fell today.\" and \"Someone is playing an instrument.\"", "",
             "| vectors | Spearman | vs as is [95% CI] | cos unrelated (N) | cos related (N) | cos 5th-95th pct | "
             "example unrelated / paraphrase |", "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        diff = f"{row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]" if "diff" in row else "-"
        lines.append(f"| {row['variant']} | {row['spearman']:.2f} | {diff} | {row['unrelated_mean']:.3f} "
                     f"({row['unrelated_n']}) | {row['related_mean']:.3f} ({row['related_n']}) | "
                     f"{row['cos_p05']:.3f}-{row['cos_p95']:.3f} | {row['example_unrelated']:.3f} / "
                     f"{row['example_paraphrase']:.3f} |")
    if record.get("retrieval"):
        lines += ["", f"Retrieval with the same mean (vectors in {record['retrieval_dtype']}; SciFact 500-document sample, "
                  "NFCorpus 800-document / 20-query sample; nDCG@10, centred - as is, paired 95% interval):", "",
                  "| set | half | N | centring | nDCG@10 | as is | difference [95% CI] |", "|---|---|---|---|---|---|---|"]
        for row in record["retrieval"]:
            lines.append(f"| {row['task']} | {row['split']} | {row['n']} | {row['variant']} | {row['score']:.2f} | "
                         f"{row['as_is']:.2f} | {row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}] |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
