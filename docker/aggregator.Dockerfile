# syntax=docker/dockerfile:1
# Image for the FedNano aggregator: one federation's adapter updates from NATS JetStream (services/aggregator).
# Build from the repository root (the context must be the root; aggregator.Dockerfile.dockerignore beside this file trims it):
#   docker build -f docker/aggregator.Dockerfile -t fednano/aggregator:0.1.0 .

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: install the whole workspace, then prune it to what services/aggregator needs at run time ----
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
RUN node --import tsx docker/prune.ts services/aggregator && rm -rf docker

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
# The model's manifest gives d_model for the initial adapter the aggregator writes as round 0 (--model).
COPY models/reference/manifest.json models/reference/manifest.json
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["node", "services/aggregator/bin/aggregator.mjs"]
