# StyleCLIP bot images. Three targets:
#   runtime (default)  bot, playground and a CPU worker:   docker build -t styleclip .
#   worker-cuda        worker on the CUDA execution provider:
#                      docker build --target worker-cuda -t styleclip-worker-cuda .
#   worker-gradients   worker-cuda plus PyTorch (CUDA) and the toolkit: also serves method:optimize
#                      docker build --target worker-gradients -t styleclip-worker-gradients .
# Model packs: the demo tiny pack ships in the image (models/packs/tiny); mount real ones at /app/packs
# and set STYLECLIP_PACK / STYLECLIP_PACKS_DIR (see docs/operations.md).

# ---- dependencies (CPU build of onnxruntime-node; no dev dependencies) ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---- the application files both images run ----
FROM scratch AS source
COPY package.json package-lock.json /app/
COPY bin /app/bin
COPY src /app/src
COPY commands /app/commands
COPY models/README.md /app/models/README.md
COPY models/packs /app/models/packs
COPY models/detector /app/models/detector
# The toolkit: a worker with PyTorch runs latent optimization through it (scripts/toolkit.sh).
COPY scripts/toolkit.sh /app/scripts/toolkit.sh
COPY models/toolkit/styleclip_toolkit /app/models/toolkit/styleclip_toolkit

# ---- worker-cuda: the worker with onnxruntime-node's CUDA 12 execution provider ----
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS worker-cuda
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
  && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
  && apt-get install -y --no-install-recommends nodejs \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3001 STYLECLIP_DEVICE=cuda STYLECLIP_PACK=/app/models/packs/tiny
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Runs onnxruntime-node's install script (.npmrc skips it) to download the CUDA EP binaries it does not bundle.
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci --omit=dev --no-audit --no-fund --ignore-scripts=false
COPY --from=source /app ./
USER ubuntu
EXPOSE 3001
ENTRYPOINT ["node", "bin/styleclip.mjs"]
CMD ["worker"]

# ---- worker-gradients: worker-cuda plus PyTorch, so it also takes optimize jobs (the gradient lane) ----
# The Node worker stays the only queue consumer and runs one toolkit process per optimize job
# (docs/operations.md, "Gradient worker"). STYLECLIP_OPTIMIZE=on: without a working PyTorch it refuses to start.
FROM worker-cuda AS worker-gradients
USER root
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
  && rm -rf /var/lib/apt/lists/* \
  && python3 -m venv /opt/torch \
  && /opt/torch/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 torch \
  && /opt/torch/bin/pip install --no-cache-dir numpy onnx regex
ENV STYLECLIP_PYTHON=/opt/torch/bin/python STYLECLIP_OPTIMIZE=on OPTIMIZE_BUDGET_S=600
USER ubuntu
CMD ["worker"]

# ---- runtime (last, so the default target): start / bot / worker on CPU ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 STYLECLIP_PACK=/app/models/packs/tiny
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /app ./
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/styleclip.mjs"]
CMD ["start"]
