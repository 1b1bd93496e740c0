#!/usr/bin/env bash
# Create .venv (once) and install falab with the CPU build of torch pinned to 2.13.0.
# Any other torch version pulls a multi-GB CUDA build, so the pin lives here, not in pyproject.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
