# A Ryuk-compatible reaper for testcontainers (packages/testcontainers/reaper/ryuk.mjs: plain Node.js, no
# dependencies), for machines where testcontainers/ryuk cannot be pulled. @fednano/testcontainers builds it and points
# testcontainers at it with RYUK_CONTAINER_IMAGE. Build from the repository root:
#   docker build -f docker/reaper.Dockerfile -t fednano/reaper:0.1.0 .
# Works with the classic builder (DOCKER_BUILDKIT=0) and with BuildKit. NODE_IMAGE: node:20-bookworm-slim, or the
# local stand-in of scripts/base-images.sh.
# It runs as root, as testcontainers/ryuk does: it talks to the Docker socket that testcontainers mounts at
# /var/run/docker.sock (root:docker 0660 on the host). Port 8080; logs "Started" when listening.

ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE}
COPY packages/testcontainers/reaper/ryuk.mjs /reaper/ryuk.mjs
LABEL org.opencontainers.image.title="fednano reaper" \
      org.opencontainers.image.description="Ryuk-protocol reaper for testcontainers, built without pulling testcontainers/ryuk" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV RYUK_PORT=8080
EXPOSE 8080
ENTRYPOINT ["node", "/reaper/ryuk.mjs"]
