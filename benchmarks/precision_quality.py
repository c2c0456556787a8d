"""Quality of ``dtype="auto"`` against float32, per preset, on data no recipe was chosen on in this comparison:
STS-B dev (Spearman x100 of cosine, every pair unless --pairs) and, for the retrieval presets, the SciFact dev half on
the 500-document sample (nDCG@10), each with a paired bootstrap interval of auto - float32 over the same pairs or
queries, and the cosine between each text's auto and float32 vectors (min and mean). Vectors go through the resumable
embedding cache (keyed by the compute dtype), so a stopped run picks up where it was.

Run:  .venv/bin/python benchmarks/precision_quality.py [--presets a,b] [--pairs 0] [--retrieval-presets a,b]
      [--out STEM]
Writes benchmarks/results/precision_quality.json and .md (or STEM.json / .md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STS_PRESETS = ("metaeol-smollm2-135m", "metaeol-plus-smollm2-135m", "metaeol-plus-gemma3-270m")
RETRIEVAL_PRESETS = ("metaeol-rag-smollm2-135m", "metaeol-rag-gemma3-270m")


def embed(preset: str, dtype: str, texts: list[str], cache_dir: str | None, task: str | None = None) -> np.ndarray:
    from metaeol_integrations.evaluation.encoders import build_encoder, encode_cached

    return encode_cached(build_encoder(preset, dtype=dtype), texts, task, cache_dir, f"{preset} {dtype}")["embedding"]


def sts_row(preset: str, pairs: int, cache_dir: str | None, resamples: int) -> dict:
    from metaeol_integrations.evaluation.data import read_sts_benchmark
    from metaeol_integrations.evaluation.paired import STSPredictions, paired_bootstrap
    from metaeol_integrations.evaluation.sts import cosine_similarities

    data = read_sts_benchmark("dev")
    indices = (np.arange(len(data.scores)) if not pairs
               else np.sort(np.random.default_rng(0).choice(len(data.scores), pairs, replace=False)))
    first = [data.sentences1[i] for i in indices]
    second = [data.sentences2[i] for i in indices]
    texts = list(dict.fromkeys(first + second))
    predictions, vectors = {}, {}
    for dtype in ("float32", "auto"):
        started = time.perf_counter()
        table = dict(zip(texts, embed(preset, dtype, texts, cache_dir)))
        vectors[dtype] = np.stack([table[t] for t in texts])
        predicted = cosine_similarities(np.stack([table[t] for t in first]), np.stack([table[t] for t in second]))
        predictions[dtype] = STSPredictions("STSBenchmark-dev", indices, data.scores[indices], predicted)
        print(f"{preset} {dtype}: STS-B dev embedded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    comparison = paired_bootstrap([predictions["auto"]], [predictions["float32"]], "auto", "float32",
                                  resamples=resamples)
    cosine = cosine_similarities(vectors["auto"], vectors["float32"])
    task = comparison.tasks[0]
    return {"preset": preset, "data": "STS-B dev", "n": task.n, "metric": "Spearman x100",
            "float32": task.score_b, "auto": task.score_a, "difference": task.difference,
            "ci_low": task.ci_low, "ci_high": task.ci_high,
            "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()), "texts": len(texts)}


def retrieval_row(preset: str, cache_dir: str | None, resamples: int) -> dict:
    from metaeol_integrations.evaluation.beir import evaluation_data
    from metaeol_integrations.evaluation.paired import QueryScores, paired_query_bootstrap
    from metaeol_integrations.evaluation.retrieval import cosine_scores, score_run, top_k_run
    from metaeol_integrations.evaluation.sts import cosine_similarities

    data, _ = evaluation_data("scifact", None, split="dev", queries=0, corpus_sample=500, seed=0)
    per_query, vectors = {}, {}
    for dtype in ("float32", "auto"):
        started = time.perf_counter()
        queries = embed(preset, dtype, data.query_texts, cache_dir, task="query")
        documents = embed(preset, dtype, data.doc_texts, cache_dir, task="document")
        vectors[dtype] = np.concatenate([queries, documents])
        run = top_k_run(cosine_scores(queries, documents), data.query_ids, data.doc_ids)
        per_query[dtype] = score_run(run, data.qrels)
        print(f"{preset} {dtype}: SciFact dev embedded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    shared = list(data.query_ids)
    scores = {dtype: QueryScores("scifact", shared, {"ndcg_at_10": np.asarray(
        [per_query[dtype].get(q, {}).get("ndcg_at_10", 0.0) for q in shared])}, "ndcg_at_10")
              for dtype in per_query}
    comparison = paired_query_bootstrap(scores["auto"], scores["float32"], "auto", "float32", resamples=resamples)
    difference = comparison.tasks[0]
    cosine = cosine_similarities(vectors["auto"], vectors["float32"])
    return {"preset": preset, "data": "SciFact dev half, 500-doc sample", "n": difference.n, "metric": "nDCG@10",
            "float32": difference.score_b, "auto": difference.score_a, "difference": difference.difference,
            "ci_low": difference.ci_low, "ci_high": difference.ci_high,
            "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()), "texts": len(cosine)}


def markdown(report: dict) -> str:
    lines = [f"# Quality of dtype=\"auto\" against float32 ({report['date']})", "",
             f"`auto` computed in: {report['auto_choice']}; CPU flags: {', '.join(report['cpu_flags']) or 'none'}. "
             f"Paired 95% bootstrap intervals ({report['resamples']} resamples) of auto - float32.", "",
             "| preset | data | N | metric | float32 | auto | auto - float32 [95% CI] | cosine auto vs float32 "
             "(min / mean) |", "|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['preset']} | {row['data']} | {row['n']} | {row['metric']} | {row['float32']:.2f} | "
                     f"{row['auto']:.2f} | {row['difference']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] | "
                     f"{row['cosine_min']:.5f} / {row['cosine_mean']:.5f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(STS_PRESETS), help="presets scored on STS-B dev")
    parser.add_argument("--retrieval-presets", default=",".join(RETRIEVAL_PRESETS),
                        help="presets scored on the SciFact dev half ('' for none)")
    parser.add_argument("--pairs", type=int, default=0, help="STS-B dev pairs (0 = all 1,500)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--cache-dir", help="embedding cache (default: the evaluation's)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "precision_quality"))
    args = parser.parse_args()
    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, auto_precision, cpu_flags

    report = {"date": time.strftime("%Y-%m-%d"), "auto_choice": auto_precision("cpu").describe(),
              "cpu_flags": list(cpu_flags(CPU_MATRIX_FLAGS)), "resamples": args.resamples, "rows": []}

    def write() -> None:  # after every row: a stopped run keeps what it measured
        Path(f"{args.out}.json").write_text(json.dumps(report, indent=2))
        Path(f"{args.out}.md").write_text(markdown(report))

    for preset in filter(None, args.retrieval_presets.split(",")):
        report["rows"].append(retrieval_row(preset, args.cache_dir, args.resamples))
        write()
    for preset in filter(None, args.presets.split(",")):
        report["rows"].append(sts_row(preset, args.pairs, args.cache_dir, args.resamples))
        write()
    print(markdown(report))


if __name__ == "__main__":
    main()
