#!/usr/bin/env bash
# Makes the base images of docker/ available to the local engine: node:20-bookworm-slim (NODE_IMAGE of the four
# FedNano images) and debian:bookworm-slim (the NATS image).
#
#   scripts/base-images.sh [--force]
#
# For each image: already present -> nothing to do; pullable -> pulled; neither (no registry reachable) -> a local
# stand-in is made: `debootstrap --variant=minbase bookworm` (trimmed like the slim images), and for node the host's
# own Node 20 binary and npm, put in with `docker import` and labelled `io.fednano.stand-in=true`. The stand-in holds
# the host's CA bundle at /etc/ssl/certs/ca-certificates.crt, so that `npm ci` in a build stage can pass a TLS proxy
# the host trusts (the Dockerfiles only use it when the build passes --build-arg NODE_EXTRA_CA_CERTS=...).
# A stand-in is for this machine only: never push it.
#
# The debootstrapped rootfs is cached as a tarball under $FEDNANO_TOOLS_DIR/base/ (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/fednano/tools/base/), keyed by suite and architecture (and, for node, the host's
# node version), so a second run after `docker system prune -a` only re-imports. --force re-makes stand-ins (and the
# tarballs). Needs root (or sudo) for debootstrap.
#
# Environment: NODE_IMAGE, DEBIAN_IMAGE (names to provide), FEDNANO_BASE_PULL=0 (do not try to pull),
# FEDNANO_BASE_SUITE (bookworm), FEDNANO_DEBIAN_MIRROR (http://deb.debian.org/debian), FEDNANO_NODE_BIN (node on PATH).
set -euo pipefail

NODE_IMAGE=${NODE_IMAGE:-node:20-bookworm-slim}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:bookworm-slim}
SUITE=${FEDNANO_BASE_SUITE:-bookworm}
MIRROR=${FEDNANO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TOOLS_DIR=${FEDNANO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fednano/tools}
CACHE="$TOOLS_DIR/base"
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "base-images: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

T0=$(date +%s.%N)
log() { printf 'base-images: %s\n' "$*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "no docker CLI on PATH (install docker.io and start dockerd)"
docker info >/dev/null 2>&1 || die "the docker engine does not answer ('docker info' fails): start dockerd, or check DOCKER_HOST"

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)

present() { docker image inspect "$1" >/dev/null 2>&1; }
standin() { [ "$(docker image inspect -f '{{ index .Config.Labels "io.fednano.stand-in" }}' "$1" 2>/dev/null)" = true ]; }

# Tries a pull (unless FEDNANO_BASE_PULL=0); quiet when no registry is reachable, which fails within a second here.
try_pull() {
  [ "${FEDNANO_BASE_PULL:-1}" = 0 ] && return 1
  local t out
  t=$(date +%s.%N)
  if out=$(timeout 120 docker pull -q "$1" 2>&1); then
    log "$1: pulled ($(since "$t"))"
    return 0
  fi
  log "$1: not pullable ($(printf '%s' "$out" | tail -n 1 | cut -c1-160)); making a local stand-in"
  return 1
}

# The minbase rootfs tarball, trimmed the way debian:*-slim is (no docs, man pages, locales, apt lists).
DEBIAN_TAR="$CACHE/debian-$SUITE-minbase-$ARCH.tar"
debian_tarball() {
  if [ -s "$DEBIAN_TAR" ] && [ "$FORCE" = 0 ]; then
    log "rootfs: cached $DEBIAN_TAR"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install -y debootstrap)"
  mkdir -p "$CACHE"
  local t dir
  t=$(date +%s.%N)
  dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  log "rootfs: debootstrap --variant=minbase $SUITE $MIRROR (about a minute)"
  if ! "${SUDO[@]}" debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    "${SUDO[@]}" rm -rf "$dir"
    die "debootstrap failed (log above; full log $dir.log)"
  fi
  # What the official slim images do: dpkg drops docs, man pages and locales of later installs; apt keeps no cache.
  "${SUDO[@]}" sh -c "
    set -e
    cat >'$dir/etc/dpkg/dpkg.cfg.d/docker' <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >'$dir/etc/apt/apt.conf.d/docker-clean' <<'EOF'
DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };
APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };
Dir::Cache::pkgcache \"\";
Dir::Cache::srcpkgcache \"\";
EOF
    echo 'Acquire::GzipIndexes \"true\"; Acquire::CompressionTypes::Order:: \"gz\";' >'$dir/etc/apt/apt.conf.d/docker-gzip-indexes'
    echo 'APT::Install-Recommends \"false\"; APT::Install-Suggests \"false\";' >'$dir/etc/apt/apt.conf.d/docker-no-recommends'
    rm -f '$dir/etc/apt/sources.list'
    cat >'$dir/etc/apt/sources.list.d/debian.sources' <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find '$dir/usr/share/doc' -mindepth 1 -not -name copyright -not -type d -delete
    find '$dir/usr/share/doc' -mindepth 1 -type d -empty -delete
    rm -rf '$dir/usr/share/man/'* '$dir/usr/share/info/'* '$dir/var/lib/apt/lists/'* '$dir/var/cache/apt/'*.bin \
      '$dir/var/cache/apt/archives/'*.deb '$dir/var/log/'*.log '$dir/var/log/apt/'* '$dir/debootstrap' \
      '$dir/etc/hostname' '$dir/etc/resolv.conf' '$dir/etc/machine-id'
    find '$dir/usr/share/locale' -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    : >'$dir/etc/machine-id'
    tar --numeric-owner -C '$dir' -cf '$DEBIAN_TAR.part' .
    mv '$DEBIAN_TAR.part' '$DEBIAN_TAR'
    rm -rf '$dir'
  "
  rm -f "$dir.log"
  log "rootfs: $DEBIAN_TAR ($(du -m "$DEBIAN_TAR" | cut -f1) MB) in $(since "$t")"
}

# The host's CA bundle (for a TLS proxy on the way to the npm registry), only where the host has one.
host_ca() { [ -s /etc/ssl/certs/ca-certificates.crt ] && printf '%s' /etc/ssl/certs/ca-certificates.crt; }

import_debian() {
  local t=$(date +%s.%N) dir
  debian_tarball
  dir=$(mktemp -d "$CACHE/debian.XXXXXX")
  "${SUDO[@]}" tar --numeric-owner -C "$dir" -xf "$DEBIAN_TAR"
  if ca=$(host_ca); then "${SUDO[@]}" install -D -m 0644 "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"; fi
  "${SUDO[@]}" tar --numeric-owner -C "$dir" -c . | docker import \
    --change 'LABEL io.fednano.stand-in="true"' \
    --change "LABEL io.fednano.stand-in.of=\"$DEBIAN_IMAGE\"" \
    --change "LABEL org.opencontainers.image.description=\"Local stand-in for $DEBIAN_IMAGE made by scripts/base-images.sh: debootstrap --variant=minbase $SUITE ($ARCH), trimmed. For this machine only; do not push.\"" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    - "$DEBIAN_IMAGE" >/dev/null
  "${SUDO[@]}" rm -rf "$dir"
  log "$DEBIAN_IMAGE: imported local stand-in in $(since "$t")"
}

import_node() {
  local t=$(date +%s.%N) node npm version tar dir
  node=${FEDNANO_NODE_BIN:-$(command -v node || true)}
  [ -n "$node" ] && [ -x "$node" ] || die "no node binary on PATH for the $NODE_IMAGE stand-in (set FEDNANO_NODE_BIN)"
  node=$(readlink -f "$node")
  version=$("$node" --version)
  case "$version" in v20.*) ;; *) log "warning: host node is $version, not 20.x; the stand-in of $NODE_IMAGE will carry it" ;; esac
  npm=$(dirname "$(dirname "$node")")/lib/node_modules/npm
  [ -d "$npm" ] || npm=/usr/lib/node_modules/npm
  [ -f "$npm/package.json" ] || die "npm not found beside $node (looked in $npm)"
  tar="$CACHE/node-$version-$SUITE-minbase-$ARCH.tar"
  if [ ! -s "$tar" ] || [ "$FORCE" = 1 ]; then
    debian_tarball
    dir=$(mktemp -d "$CACHE/node.XXXXXX")
    "${SUDO[@]}" tar --numeric-owner -C "$dir" -xf "$DEBIAN_TAR"
    # The layout of the official image: /usr/local/bin/node, npm under /usr/local/lib/node_modules, user node (1000).
    "${SUDO[@]}" sh -c "
      set -e
      install -D -m 0755 '$node' '$dir/usr/local/bin/node'
      mkdir -p '$dir/usr/local/lib/node_modules'
      cp -a '$npm' '$dir/usr/local/lib/node_modules/npm'
      ln -sf ../lib/node_modules/npm/bin/npm-cli.js '$dir/usr/local/bin/npm'
      ln -sf ../lib/node_modules/npm/bin/npx-cli.js '$dir/usr/local/bin/npx'
      chroot '$dir' /usr/sbin/groupadd --gid 1000 node
      chroot '$dir' /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
      chroot '$dir' /usr/local/bin/node --version >/dev/null
      tar --numeric-owner -C '$dir' -cf '$tar.part' .
      mv '$tar.part' '$tar'
      rm -rf '$dir'
    "
    log "rootfs: $tar ($(du -m "$tar" | cut -f1) MB)"
  else
    log "rootfs: cached $tar"
  fi
  dir=$(mktemp -d "$CACHE/node.XXXXXX")
  "${SUDO[@]}" tar --numeric-owner -C "$dir" -xf "$tar"
  if ca=$(host_ca); then "${SUDO[@]}" install -D -m 0644 "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"; fi
  "${SUDO[@]}" tar --numeric-owner -C "$dir" -c . | docker import \
    --change 'LABEL io.fednano.stand-in="true"' \
    --change "LABEL io.fednano.stand-in.of=\"$NODE_IMAGE\"" \
    --change "LABEL org.opencontainers.image.description=\"Local stand-in for $NODE_IMAGE made by scripts/base-images.sh: debootstrap --variant=minbase $SUITE ($ARCH) plus the host's node $version and npm $(sed -n 's/^  \"version\": \"\(.*\)\",$/\1/p' "$npm/package.json" | head -n 1). For this machine only; do not push.\"" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${version#v}" \
    --change 'CMD ["node"]' \
    - "$NODE_IMAGE" >/dev/null
  "${SUDO[@]}" rm -rf "$dir"
  docker run --rm "$NODE_IMAGE" node -e 'process.exit(0)' || die "the $NODE_IMAGE stand-in does not run node"
  log "$NODE_IMAGE: imported local stand-in (node $version) in $(since "$t")"
}

provide() {
  local image=$1 make=$2
  if present "$image" && ! { [ "$FORCE" = 1 ] && standin "$image"; }; then
    if standin "$image"; then log "$image: present (local stand-in)"; else log "$image: present"; fi
    return
  fi
  try_pull "$image" || "$make"
}

provide "$DEBIAN_IMAGE" import_debian
provide "$NODE_IMAGE" import_node
log "done in $(since "$T0")"
