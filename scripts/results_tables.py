"""Print the tables of docs/results.md from the JSON files of `metaeol eval`: the combined STS and transfer tables,
then the paired comparison of every two runs scored on the same STS pairs (also written as JSON with --pairs-json).

Usage: .venv/bin/python scripts/results_tables.py [--pairs-json FILE] [--baseline FILE] docs/results/*-all.json
With --baseline, each other run is compared with that run only (e.g. every method against MetaEOL).
"""

import argparse
import json
from pathlib import Path

from metaeol_integrations.evaluation.report import combined_tables, paired_comparisons, paired_summary_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON files written by `metaeol eval`")
    parser.add_argument("--pairs-json", help="write every paired comparison (per task and average) to this file")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    parser.add_argument("--baseline", help="compare every other run with this run only")
    args = parser.parse_args()
    print(combined_tables(args.files))
    comparisons = paired_comparisons(args.files, resamples=args.bootstrap, baseline=args.baseline)
    print("\n" + paired_summary_table(comparisons))
    if args.pairs_json:
        Path(args.pairs_json).write_text(json.dumps([c.to_dict() for c in comparisons], indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
