# syntax=docker/dockerfile:1
# Image for the FedNano llm-host: the frozen LLM over gRPC with dynamic batching (services/llm-host), CPU execution provider.
# Build from the repository root (the context must be the root; llm-host.Dockerfile.dockerignore beside this file trims it):
#   docker build -f docker/llm-host.Dockerfile -t fednano/llm-host:0.1.0 .

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: install the whole workspace, then prune it to what services/llm-host needs at run time ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY packages/ packages/
COPY services/ services/
COPY operator/ operator/
# ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would download the CUDA provider (and fails
# offline); the CPU provider ships in the npm package.
RUN --mount=type=cache,target=/root/.npm ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
# Read at run time: the update and gRPC schemas (proto/) and the Federation CRD (crds/, the settings schema).
COPY proto/ proto/
COPY crds/ crds/
COPY docker/prune.ts docker/prune.ts
RUN node --import tsx docker/prune.ts services/llm-host && rm -rf docker

# ---- runtime: Node.js 20, the pruned tree, non-root ----
FROM ${NODE_IMAGE}
RUN groupadd --system --gid 65532 fednano \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin fednano
WORKDIR /app
# The services run their TypeScript sources through tsx (kept by the prune). TSX_DISABLE_CACHE: tsx would otherwise
# write a compile cache under /tmp and fail to start on a read-only root filesystem.
ENV NODE_ENV=production \
    TSX_DISABLE_CACHE=1
COPY --from=build /app /app
COPY LICENSE /app/LICENSE
# The frozen reference model (models/reference, ~10 MB: ONNX graphs and manifest).
COPY models/reference/ models/reference/
# The reference model ships in the image; a Federation's spec.model.path (or --model) may point elsewhere.
ENV FEDNANO_MODEL=/app/models/reference
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["node", "services/llm-host/bin/llm-host.mjs"]
