#!/usr/bin/env bash
# Runs the Python toolkit with an interpreter that has PyTorch and onnx.
# Debian's python3-torch lands in /usr/bin/python3, which may not be the python3 first on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${STYLECLIP_PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch, onnx' >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "styleclip toolkit: no python3 with torch and onnx found (Debian: apt-get install python3-torch python3-onnx; or set STYLECLIP_PYTHON)" >&2
  exit 1
fi
export PYTHONPATH="$here/models/toolkit${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$@"
