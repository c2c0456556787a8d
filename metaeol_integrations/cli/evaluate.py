"""``metaeol eval`` and the tuning commands: the parser of ``eval`` and its families, each registered by its own file
(cli/senteval.py, cli/retrieval.py, cli/compare.py)."""

from __future__ import annotations

import argparse

from metaeol_integrations.cli.compare import add_compare_command
from metaeol_integrations.cli.retrieval import add_retrieval_commands
from metaeol_integrations.cli.senteval import add_senteval_commands


def add_eval_commands(commands: argparse._SubParsersAction, default_model: str) -> None:
    """Register ``eval`` (sts, transfer, all, retrieval, doc-pairs, fuse, compare), ``sweep``, ``tune-layer`` and
    ``tune`` on the ``metaeol`` parser."""
    evaluate = commands.add_parser(
        "eval", help="score a model on SentEval STS / transfer tasks, or compare two runs",
        description="Score a model on the SentEval tasks (STS12-16, STS-B, SICK-R; MR, CR, SUBJ, MPQA, SST-2, TREC, "
        "MRPC). By default a seeded, stratified sample per task (the full data takes hours on a CPU; --limit 0 runs "
        "it). Prints a paper-style table and writes JSON and Markdown to --out. `eval compare` tells whether one "
        "run beats another on the same pairs.",
    )
    suites = evaluate.add_subparsers(dest="suite", required=True, metavar="{sts,transfer,all,retrieval,doc-pairs,fuse,compare}")
    add_senteval_commands(commands, suites, default_model)
    add_retrieval_commands(suites, default_model)
    add_compare_command(suites)
