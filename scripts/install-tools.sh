#!/usr/bin/env bash
# Installs what the real-Kubernetes suites need on a Debian machine, idempotently:
#   - Docker Engine (Debian's docker.io) and a running dockerd, when absent;
#   - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet and helm, built from Go modules at the versions
#     pinned in tools/*/go.mod, into $FEDNANO_TOOLS_DIR/<tool>-<version>/ (a second run finds them and builds nothing);
#   - the base images the Dockerfiles build on (scripts/base-images.sh), where they cannot be pulled, and the pause
#     image and CNI plugins the real kubelet needs (scripts/install-real-kubelet.sh).
#
#   bash scripts/install-tools.sh            # everything
#   bash scripts/install-tools.sh --no-docker  # only the Go-built tools
#
# Prints where the tools are; test/support/tools.ts finds them the same way (FEDNANO_TOOLS_DIR, else
# ${XDG_CACHE_HOME:-~/.cache}/fednano/tools). Needs Go >= 1.26 (the Kubernetes release pins it) and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[tools] %s\n' "$*" >&2; }
started=$(date +%s)
TOOLS_DIR=${FEDNANO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fednano/tools}
mkdir -p "$TOOLS_DIR"

with_docker=1
for arg in "$@"; do
  case "$arg" in
    --no-docker) with_docker=0 ;;
    *) log "unknown argument: $arg"; exit 2 ;;
  esac
done

# ---- Docker Engine ----
docker_ready() { timeout 10 docker info >/dev/null 2>&1; }
if [ "$with_docker" = 1 ]; then
  if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      log "dockerd is missing and this is not root: install docker.io (sudo apt-get install -y docker.io) and re-run"
      exit 1
    fi
    log "installing docker.io (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  command -v debootstrap >/dev/null 2>&1 || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq debootstrap >/dev/null; } || true
  if ! docker_ready; then
    # Debian's package would start dockerd through systemd; machines without an init system need it started here.
    log "starting dockerd (log: $TOOLS_DIR/dockerd.log)"
    nohup dockerd >"$TOOLS_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker_ready && break; sleep 1; done
    docker_ready || { log "dockerd did not come up; last lines of its log:"; tail -20 "$TOOLS_DIR/dockerd.log" >&2; exit 1; }
  fi
  log "docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
fi

# ---- Go-built tools ----
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || { log "Go is needed to build the control plane (https://go.dev/dl, >= 1.26)"; exit 1; }

# The version a tools module pins for `module` (from go.mod's require, or the replace that overrides it).
pinned() { (cd "$ROOT/tools/$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2"); }

# build <tools module> <folder name> <ldflags> <package>...: `go build` into $TOOLS_DIR/<folder>/ unless there.
build() {
  local module=$1 folder=$2 ldflags=$3
  shift 3
  local dest=$TOOLS_DIR/$folder missing=0 pkg
  for pkg in "$@"; do [ -x "$dest/$(basename "$pkg")" ] || missing=1; done
  if [ "$missing" = 0 ]; then
    log "$folder: cached in $dest"
    return
  fi
  local t0
  t0=$(date +%s)
  log "$folder: building $* (cold: several minutes on 2 cores)"
  mkdir -p "$dest.partial"
  (cd "$ROOT/tools/$module" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.partial/" "$@")
  rm -rf "$dest" && mv "$dest.partial" "$dest"
  log "$folder: built in $(($(date +%s) - t0)) s"
}

k8s=$(pinned kubernetes k8s.io/kubernetes)
# The binaries report this version (kubectl and helm read it for their skew checks and Chart kubeVersion).
k8s_minor=$(echo "$k8s" | cut -d. -f2)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s"
build kubernetes "kubernetes-$k8s" "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet

etcd=$(pinned etcd go.etcd.io/etcd/server/v3)
build etcd "etcd-$etcd" "" fednano.io/tools/etcd

helm=$(pinned helm helm.sh/helm/v4)
build helm "helm-$helm" "-X helm.sh/helm/v4/internal/version.version=$helm" helm.sh/helm/v4/cmd/helm

# One folder of links to the pinned versions, for PATH.
mkdir -p "$TOOLS_DIR/bin"
for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do ln -sfn "../kubernetes-$k8s/$tool" "$TOOLS_DIR/bin/$tool"; done
ln -sfn "../etcd-$etcd/etcd" "$TOOLS_DIR/bin/etcd"
ln -sfn "../helm-$helm/helm" "$TOOLS_DIR/bin/helm"
cat >"$TOOLS_DIR/versions.env" <<EOF
KUBERNETES_VERSION=$k8s
ETCD_VERSION=$etcd
HELM_VERSION=$helm
EOF

# ---- base images, and what the real kubelet runs on (Debian's containerd, CNI plugins, a local pause image) ----
if [ "$with_docker" = 1 ]; then
  bash scripts/base-images.sh
  bash scripts/install-real-kubelet.sh
fi

log "tools in $TOOLS_DIR/bin (kubernetes $k8s, etcd $etcd, helm $helm); took $(($(date +%s) - started)) s"
