"""Does a retriever hold on long queries as well as on short ones? Two committed runs compared query by query within
thirds of the queries by length (words), with paired 95% bootstrap intervals of the nDCG@10 difference.

Usage: python scripts/query_length.py RUN_A.json RUN_B.json [RUN_A2.json RUN_B2.json ...] [--out FILE.md]
(the `metaeol eval retrieval` JSON files; each pair must score the same queries.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from metaeol_integrations.evaluation.beir import read_beir
from metaeol_integrations.evaluation.paired import paired_per_query


def _per_query(path: str) -> tuple[str, str, str, dict[str, float]]:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    result = next(r for r in record["results"] if r.get("kind") == "retrieval")
    return (record["meta"].get("label", Path(path).stem), result["task"], result["split"],
            {q: v["ndcg_at_10"] for q, v in result["per_query"].items()})


def compare(path_a: str, path_b: str, resamples: int = 1000) -> list[str]:
    label_a, task, split, a = _per_query(path_a)
    label_b, task_b, _, b = _per_query(path_b)
    if task != task_b or set(a) != set(b):
        raise SystemExit(f"{path_a} and {path_b} scored different queries.")
    data = read_beir(task)
    words = {q: len(text.split()) for q, text in zip(data.query_ids, data.query_texts) if q in a}
    ordered = sorted(a, key=lambda q: (words[q], q))
    thirds = np.array_split(np.asarray(ordered), 3)
    lines = []
    for name, queries in zip(("short", "middle", "long"), thirds):
        queries = list(queries)
        rows = paired_per_query(a, b, queries, task, resamples=resamples)
        span = f"{words[queries[0]]}-{words[queries[-1]]}"
        lines.append(f"| {label_a} vs {label_b} | {task} {split} | {name} ({span} words) | {rows.n} | "
                     f"{rows.score_a:.2f} | {rows.score_b:.2f} | {rows.difference:+.2f} [{rows.ci_low:+.2f}, "
                     f"{rows.ci_high:+.2f}] |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="pairs of `eval retrieval` JSON files (A B A B ...)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", help="write the Markdown table here too")
    args = parser.parse_args()
    if len(args.runs) % 2:
        raise SystemExit("Give the runs in pairs (A B A B ...).")
    lines = ["| A vs B | set | queries by length | N | A | B | A - B [95% CI] |", "|---|---|---|---|---|---|---|"]
    for first, second in zip(args.runs[::2], args.runs[1::2]):
        lines += compare(first, second, args.resamples)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text("# nDCG@10 by query length (thirds of the queries by word count)\n\n" + text,
                                  encoding="utf-8")


if __name__ == "__main__":
    main()
