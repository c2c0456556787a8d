"""Choose each dense model's fusion with BM25 on the dev halves of SciFact and NFCorpus together, report it on the
test halves and the full query sets, with paired intervals against BM25 alone; from the committed runs, no
re-embedding (each run's top 100 per query is what a hybrid retriever fuses).

The grid: min-max and z-score (distribution-based) convex fusion and weighted RRF, dense weight 0 to 1 in steps of
0.05 (weight 0 = BM25 alone, always a candidate). The choice maximises the mean over the two sets of the dev-half
gain in nDCG@10 over BM25; ties go to the smaller dense weight. Formulas: metaeol_integrations.hybrid.fusion.

Usage: python scripts/fusion_grid.py [--setting full|sample] [--runs docs/results/retrieval] \
           [--out docs/results/retrieval/fusion]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from metaeol_integrations.evaluation.beir import evaluation_data
from metaeol_integrations.evaluation.paired import paired_per_query
from metaeol_integrations.evaluation.retrieval import MAIN_METRIC, fuse_runs, read_trec_run, score_run
from metaeol_integrations.hybrid.fusion import FUSION_METHODS, Fusion

TASKS = ("scifact", "nfcorpus")
SETTINGS = {
    # Every query and document of both sets: what the shipped fusion is chosen on.
    "full": {"sampling": {}, "stem": "{model}-{task}-all",
             "models": ["metaeol-rag-smollm2-135m", "all-MiniLM-L6-v2"],
             "describe": "full corpora (SciFact 5,183 docs / 300 queries; NFCorpus 3,633 / 323)"},
    # The cheap samples the Gemma preset was run on (SciFact: 500 documents; NFCorpus: 20 queries, 800 documents).
    "sample": {"sampling": {"scifact": {"corpus_sample": 500}, "nfcorpus": {"queries": 20, "corpus_sample": 800}},
               "stem": {"scifact": "{model}-sample-500--scifact-all", "nfcorpus": "{model}-20-queries-sample-800--nfcorpus-all"},
               "models": ["metaeol-rag-smollm2-135m", "metaeol-rag-gemma3-270m", "all-MiniLM-L6-v2"],
               "describe": "samples (SciFact 500 docs / 300 queries; NFCorpus 800 docs / 20 queries)"},
}
BM25_MODEL = "BM25-stemmed"
WEIGHTS = [round(0.05 * i, 2) for i in range(21)]


def _stem(setting: dict, model: str, task: str) -> str:
    template = setting["stem"] if isinstance(setting["stem"], str) else setting["stem"][task]
    return template.format(model=model, task=task)


def _mean_ndcg(per_query: dict, queries: list[str]) -> float:
    return float(np.mean([per_query[q][MAIN_METRIC] for q in queries]))


def _interval(a: dict, b: dict, task: str, queries: list[str], resamples: int) -> dict:
    row = paired_per_query({q: a[q][MAIN_METRIC] for q in queries}, {q: b[q][MAIN_METRIC] for q in queries}, queries,
                           task, MAIN_METRIC, resamples)
    return {"diff": row.difference, "low": row.ci_low, "high": row.ci_high, "n": row.n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="full")
    parser.add_argument("--runs", default="docs/results/retrieval", help="folder of the committed runs")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", default="docs/results/retrieval/fusion")
    args = parser.parse_args()
    setting, runs_dir = SETTINGS[args.setting], Path(args.runs)

    halves, qrels, bm25 = {}, {}, {}
    for task in TASKS:
        sampling = setting["sampling"].get(task, {}) if setting["sampling"] else {}
        for split in ("dev", "test", "all"):
            data, _ = evaluation_data(task, split=split, **sampling)
            halves[task, split] = data.query_ids
        qrels[task] = data.qrels
        bm25[task] = read_trec_run(runs_dir / f"{_stem(setting, BM25_MODEL, task)}.run.trec.gz")
    bm25_scores = {task: score_run(bm25[task], qrels[task]) for task in TASKS}

    record = {"setting": args.setting, "data": setting["describe"], "bm25": "bm25s + Snowball stemming, English "
              "stop words (BM25 stemmed)", "weights": WEIGHTS, "methods": list(FUSION_METHODS),
              "rule": "max over the grid of the mean over SciFact and NFCorpus of the dev-half nDCG@10 gain over "
              "BM25; ties to the smaller dense weight", "models": {}}
    for model in setting["models"]:
        dense = {task: read_trec_run(runs_dir / f"{_stem(setting, model, task)}.run.trec.gz") for task in TASKS}
        grid, scored = [], {}
        for method in FUSION_METHODS:
            for weight in WEIGHTS:
                fusion = Fusion(method=method, dense_weight=weight)
                gains = {}
                for task in TASKS:
                    per_query = score_run(fuse_runs([dense[task], bm25[task]], method, list(fusion.weights)),
                                          qrels[task])
                    scored[method, weight, task] = per_query
                    gains[task] = (_mean_ndcg(per_query, halves[task, "dev"])
                                   - _mean_ndcg(bm25_scores[task], halves[task, "dev"]))
                grid.append({"method": method, "dense_weight": weight, "dev_gain": gains,
                             "mean": float(np.mean(list(gains.values()))), "worst": float(min(gains.values()))})
        best = max(grid, key=lambda row: (round(row["mean"], 6), -row["dense_weight"]))
        chosen = Fusion(method=best["method"], dense_weight=best["dense_weight"])
        reports = {}
        for name, (method, weight) in {"chosen": (chosen.method, chosen.dense_weight), "minmax 0.5": ("minmax", 0.5),
                                       "rrf equal": ("rrf", 0.5), "dense alone": ("minmax", 1.0)}.items():
            for task in TASKS:
                for split in ("dev", "test", "all"):
                    queries = halves[task, split]
                    per_query = scored[method, weight, task]
                    reports[f"{name} | {task} | {split}"] = {
                        "ndcg_at_10": _mean_ndcg(per_query, queries), "bm25": _mean_ndcg(bm25_scores[task], queries),
                        "vs_bm25": _interval(per_query, bm25_scores[task], task, queries, args.resamples)}
        record["models"][model] = {"grid": grid, "chosen": chosen.to_dict(), "chosen_dev": best, "reports": reports}
        print(f"{model}: {chosen.describe()}; dev gain mean {best['mean']:+.2f}, worst {best['worst']:+.2f}")
        for task in TASKS:
            for split in ("test", "all"):
                row = reports[f"chosen | {task} | {split}"]
                ci = row["vs_bm25"]
                print(f"  {task} {split}: {row['ndcg_at_10']:.2f} vs BM25 {row['bm25']:.2f}: "
                      f"{ci['diff']:+.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}] (N={ci['n']})")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fusion-grid-{args.setting}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    (out / f"fusion-grid-{args.setting}.md").write_text(markdown(record), encoding="utf-8")
    print(f"wrote {out / f'fusion-grid-{args.setting}.md'}")


def markdown(record: dict) -> str:
    """The chosen fusions and their held-out rows, with paired intervals against BM25 alone."""
    lines = [f"# Hybrid fusion with BM25, chosen on both dev halves ({record['setting']})", "",
             f"Data: {record['data']}. BM25: {record['bm25']}. Rule: {record['rule']}. Grid: "
             f"{', '.join(record['methods'])} x dense weight {record['weights'][0]:g}..{record['weights'][-1]:g} "
             "(step 0.05). nDCG@10; hybrid - BM25 with a paired 95% bootstrap interval over queries. `all` holds the "
             "dev queries too, so only the test rows are held out.", ""]
    for model, entry in record["models"].items():
        chosen, dev = Fusion.from_dict(entry["chosen"]), entry["chosen_dev"]
        lines += [f"## {model}", "", f"Chosen: **{chosen.describe()}**; dev gain over BM25: "
                  + ", ".join(f"{task} {gain:+.2f}" for task, gain in dev["dev_gain"].items())
                  + f" (mean {dev['mean']:+.2f}).", "",
                  "| fusion | set | queries | N | hybrid | BM25 | hybrid - BM25 [95% CI] |", "|---|---|---|---|---|---|---|"]
        for key, row in entry["reports"].items():
            name, task, split = key.split(" | ")
            if split == "dev" and name != "chosen":
                continue
            ci = row["vs_bm25"]
            lines.append(f"| {name} | {task} | {split} | {ci['n']} | {row['ndcg_at_10']:.2f} | {row['bm25']:.2f} | "
                         f"{ci['diff']:+.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}] |")
        lines.append("")
        best_of = {}
        for row in entry["grid"]:
            if row["method"] not in best_of or row["mean"] > best_of[row["method"]]["mean"]:
                best_of[row["method"]] = row
        lines += ["Best dev point of each method: " + "; ".join(
            f"{m} at dense {r['dense_weight']:g}: mean {r['mean']:+.2f} (worst set {r['worst']:+.2f})"
            for m, r in best_of.items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
