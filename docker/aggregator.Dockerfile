# Image for the FedNano aggregator: one federation's adapter updates from NATS JetStream (services/aggregator).
# Build from the repository root (the root .dockerignore trims the context; BuildKit users may keep the stricter
# docker/aggregator.Dockerfile.dockerignore beside this file):
#   docker build -f docker/aggregator.Dockerfile -t fednano/aggregator:0.1.0 .
# Works with the classic builder (DOCKER_BUILDKIT=0, Docker Engine 20.10 without buildx) and with BuildKit alike.
# NODE_IMAGE: node:20-bookworm-slim for everybody; where it cannot be pulled, scripts/base-images.sh makes a local
# stand-in under that name. The four Dockerfiles share their first steps word for word, so a build of one caches
# npm ci and tsc for the other three.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- manifests: only the workspaces' package.json files, so that npm ci reruns only when a manifest changes ----
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY packages/ packages/
COPY services/ services/
COPY operator/ operator/
RUN find packages services operator -type f ! -name package.json -delete \
 && find packages services operator -mindepth 1 -type d -empty -delete

# ---- build: npm ci of the whole workspace, tsc to dist/, then prune to what services/aggregator needs at run time ----
FROM ${NODE_IMAGE} AS build
# Only for a TLS proxy on the way to the npm registry: a CA bundle inside NODE_IMAGE, e.g.
# --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt (the local stand-in holds the host's bundle).
# Used by this stage only; nothing of it reaches the runtime image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=manifests /app/ ./
# ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would download the CUDA provider (and fails
# offline); the CPU provider ships in the npm package.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund \
 && rm -rf /root/.npm
COPY tsconfig.json tsconfig.build.json ./
COPY packages/ packages/
COPY services/ services/
COPY operator/ operator/
RUN node_modules/.bin/tsc -b tsconfig.build.json
# Read at run time: the update and gRPC schemas (proto/) and the Federation CRD (crds/, the settings schema).
COPY proto/ proto/
COPY crds/ crds/
COPY docker/prune.ts docker/prune.ts
RUN node --import tsx docker/prune.ts services/aggregator \
 && rm -rf docker package-lock.json tsconfig.json tsconfig.build.json

# ---- runtime: Node.js 20, the compiled and pruned tree (owned by root, read-only to the program), non-root ----
FROM ${NODE_IMAGE}
RUN groupadd --system --gid 65532 fednano \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin fednano
WORKDIR /app
# --conditions=fednano-dist: the workspace packages' exports (and the bin's '#main') resolve to the compiled dist/ JS.
ENV NODE_ENV=production \
    NODE_OPTIONS=--conditions=fednano-dist
COPY --from=build /app /app
COPY LICENSE /app/LICENSE
# The model (--model): its manifest gives d_model for the initial adapter (round 0), and with --evaluation-data the
# aggregator scores each new global adapter on the held-out set with the frozen model in its own process.
COPY models/reference/ models/reference/
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["node", "services/aggregator/bin/aggregator.mjs"]
