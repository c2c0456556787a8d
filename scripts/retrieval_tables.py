"""Markdown tables of the `metaeol eval retrieval` / `eval fuse` runs in a folder, one table per query set and corpus,
with each row's paired nDCG@10 difference (95% bootstrap interval over queries) against reference rows; then the
`metaeol eval doc-pairs` runs in its `doc-pairs` subfolder, with paired AUC differences over the pairs.

Usage: python scripts/retrieval_tables.py [docs/results/retrieval] [--against LABEL_REGEX ...] > tables.md
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from metaeol_integrations.evaluation.doc_pairs import compare_pair_results
from metaeol_integrations.evaluation.compare import read_query_scores
from metaeol_integrations.evaluation.paired import paired_query_bootstrap

DEFAULT_AGAINST = (r"^BM25 stemmed", r"^all-MiniLM-L6-v2", r"^SmolLM2 MetaEOL \(")
PAIRS_AGAINST = (r"default preset", r"^all-MiniLM-L6-v2")


def _runs(folder: Path) -> list[tuple[Path, dict, dict]]:
    runs = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        results = [r for r in record.get("results", []) if r.get("kind") == "retrieval"]
        if results:
            runs.append((path, record["meta"], results[0]))
    return runs


def tables(folder: Path, against: list[str], resamples: int = 1000) -> str:
    groups: dict[tuple, list] = {}
    for path, meta, result in _runs(folder):
        kind = (result.get("sampling") or {}).get("corpus_sampling", "judged")  # uniform samples score other queries
        key = (result["task"], result["split"], result["n_documents"], result["n_documents_total"], kind)
        groups.setdefault(key, []).append((path, meta, result))
    out = []
    for (task, split, docs, total, kind), runs in sorted(groups.items()):
        runs.sort(key=lambda run: -run[2]["scores"]["ndcg_at_10"])
        references = [next((run for run in runs if re.search(pattern, run[1]["label"])), None) for pattern in against]
        references = [run for run in references if run is not None]
        uniform = "uniform " if kind == "uniform" else ""
        corpus = "full corpus" if docs == total else f"{docs:,}-document seeded {uniform}sample of {total:,}"
        out.append(f"### {task}, {split} queries (N={runs[0][2]['n_queries']}), {corpus}\n")
        header = "| retriever | nDCG@10 | Recall@100 | MRR@10 | " + " | ".join(
            f"nDCG@10 vs {ref[1]['label']} [95% CI]" for ref in references) + " |"
        out += [header, "|---" * (4 + len(references)) + "|"]
        for path, meta, result in runs:
            cells = [f"{result['scores'][m]:.2f}" for m in ("ndcg_at_10", "recall_at_100", "mrr_at_10")]
            _, scores = read_query_scores(path)
            for ref_path, ref_meta, _ in references:
                if ref_path == path:
                    cells.append("-")
                    continue
                _, ref_scores = read_query_scores(ref_path)
                diff = paired_query_bootstrap(scores, ref_scores, resamples=resamples).average
                mark = "*" if diff.excludes_zero else ""
                cells.append(f"{diff.difference:+.2f}{mark} [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]")
            out.append(f"| {meta['label']} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("\\* the paired interval excludes 0.")
    return "\n".join(out)


def pair_table(folder: Path, against: tuple[str, ...] = PAIRS_AGAINST, resamples: int = 1000) -> str:
    """The `eval doc-pairs` runs in ``folder``: AUC, mean cosines, and paired AUC differences against references."""
    runs = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        result = record["results"][0]
        if result.get("kind") == "doc-pairs":
            runs.append((record["meta"], result))
    if not runs:
        return ""
    runs.sort(key=lambda run: -run[1]["scores"]["auc"])
    references = [next((run for run in runs if re.search(pattern, run[0]["label"])), None) for pattern in against]
    references = [run for run in references if run is not None]
    first = runs[0][1]
    out = [f"### {first['task']} document pairs: {first['n_related']} related + {first['n_unrelated']} unrelated, "
           f"{first['n_documents']} documents\n",
           "| model | AUC | mean cosine related | mean cosine unrelated | " + " | ".join(
               f"AUC vs {ref[0]['label']} [95% CI]" for ref in references) + " |",
           "|---" * (4 + len(references)) + "|"]
    for meta, result in runs:
        scores = result["scores"]
        cells = [f"{scores['auc']:.2f}", f"{scores['mean_cosine_related']:.3f}", f"{scores['mean_cosine_unrelated']:.3f}"]
        for ref_meta, ref_result in references:
            if ref_meta is meta:
                cells.append("-")
                continue
            diff = compare_pair_results(result, ref_result, resamples=resamples)
            mark = "*" if diff.excludes_zero else ""
            cells.append(f"{diff.difference:+.2f}{mark} [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]")
        out.append(f"| {meta['label']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="docs/results/retrieval")
    parser.add_argument("--against", nargs="*", default=list(DEFAULT_AGAINST),
                        help="regexes of the reference rows' labels (first match per table)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    print(tables(Path(args.folder), args.against, args.bootstrap))
    pairs = pair_table(Path(args.folder) / "doc-pairs", resamples=args.bootstrap)
    if pairs:
        print("\n" + pairs)


if __name__ == "__main__":
    main()
