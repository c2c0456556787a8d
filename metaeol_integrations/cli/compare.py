"""``metaeol eval compare``: whether one run beats another on the same pairs or queries (paired bootstrap)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from metaeol_integrations.cli.usage import UsageError


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


def add_compare_command(suites: argparse._SubParsersAction) -> None:
    """Register ``eval compare``."""
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
