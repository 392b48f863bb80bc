#!/usr/bin/env bash
# Debian packages the toolkit and the tests need: PyTorch, onnx and pytest for the Python toolkit
# (there is no PyPI here; OpenBLAS makes its matmuls fast), Redis for the queue, Chromium for the playground's browser test.
set -euo pipefail
pkgs=(python3-torch python3-onnx python3-pytest python3-regex python3-pil libopenblas0 redis-server chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
