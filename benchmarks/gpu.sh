#!/usr/bin/env bash
# The benchmarks on a CUDA GPU (under 5 minutes), from the working tree alone: no downloads.
# Needs a Python with the project's dependencies (torch with CUDA, torchvision, timm, pillow,
# numpy, polars, pyarrow): the repo's .venv when there is one, else $PYTHON or python3.
#   benchmarks/gpu.sh [--out results.json] [--images 16384] [--pairs 2000000]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python
else py=python3; fi
"$py" - <<'PY' || { echo "gpu.sh: $py lacks a dependency (install the project: pip install -e .)" >&2; exit 2; }
import torch, torchvision, timm, PIL, numpy, polars, pyarrow  # noqa: F401
PY
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 300 "$py" benchmarks/gpu.py "$@"
