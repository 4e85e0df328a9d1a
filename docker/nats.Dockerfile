# NATS server with JetStream, from Debian's nats-server package (the version the project is tested with, 2.9.x).
# Build from the repository root (the context is not used; the root .dockerignore keeps it small):
#   docker build -f docker/nats.Dockerfile -t fednano/nats:0.1.0 .
# Works with the classic builder (DOCKER_BUILDKIT=0) and with BuildKit. DEBIAN_IMAGE: debian:bookworm-slim for
# everybody; where it cannot be pulled, scripts/base-images.sh makes a local stand-in under that name.
# Run: docker run -p 4222:4222 -p 8222:8222 [-v nats-data:/data] fednano/nats:0.1.0   (JetStream store in /data, a
# volume; monitoring on 8222: /healthz, /varz, /jsz). Arguments replace the defaults below (nats-server flags).

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- build: Debian's package, for its binary (it also pulls adduser and a systemd unit, not wanted at run time) ----
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/* \
 && /usr/sbin/nats-server --version

# ---- runtime: the binary (dynamically linked against glibc only), its copyright file, a store owned by 65532 ----
FROM ${DEBIAN_IMAGE}
COPY --from=build /usr/sbin/nats-server /usr/local/bin/nats-server
COPY --from=build /usr/share/doc/nats-server/copyright /usr/share/doc/nats-server/copyright
RUN mkdir -p /data && chown 65532:65532 /data
USER 65532:65532
# The JetStream store: a volume, so the container runs with a read-only root filesystem.
VOLUME /data
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
