"""Print the combined STS and transfer tables of docs/results.md from the JSON files of `metaeol eval`.

Usage: .venv/bin/python scripts/results_tables.py docs/results/*-all.json
"""

import sys

from metaeol_integrations.evaluation.report import combined_tables

if __name__ == "__main__":
    print(combined_tables(sys.argv[1:]))
