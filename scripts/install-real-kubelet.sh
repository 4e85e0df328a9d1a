#!/usr/bin/env bash
# Installs what test/support/real-kubelet.ts needs to run the pinned kubelet against Debian's containerd, idempotently:
#   - Debian's containerd, runc and containernetworking-plugins (CNI bridge/host-local/loopback/portmap in /usr/lib/cni),
#     plus gcc and libc6-dev for the pause binary; installed only where missing (root only);
#   - a pause image built here, as no registry may be reachable: a static C program that reaps children and exits on
#     SIGTERM/SIGINT, packed as an OCI image tarball at $TOOLS_DIR/real-kubelet/pause-oci.tar, named
#     localhost/fednano/pause:static (real-kubelet.ts imports it into its own containerd and sets sandbox_image to it).
# It neither starts nor configures any containerd: the suite runs its own instance (own config, root, state, socket).
#
#   bash scripts/install-real-kubelet.sh      # scripts/install-tools.sh may call it after building the kubelet
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[real-kubelet] %s\n' "$*" >&2; }
TOOLS_DIR=${FEDNANO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fednano/tools}
OUT=$TOOLS_DIR/real-kubelet
PAUSE_REF=localhost/fednano/pause:static
mkdir -p "$OUT"

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || [ -e /usr/lib/libc.a ] || need+=(libc6-dev)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${need[*]} and this is not root: sudo apt-get install -y ${need[*]} and re-run"
    exit 1
  fi
  log "installing ${need[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -s "$OUT/pause-oci.tar" ] && [ "$(cat "$OUT/pause-oci.ref" 2>/dev/null)" = "$PAUSE_REF" ]; then
  log "pause image present: $OUT/pause-oci.tar ($PAUSE_REF)"
  exit 0
fi

w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
cat >"$w/pause.c" <<'C'
/* The Pod sandbox's process: holds the namespaces, reaps zombies, exits 0 on SIGTERM/SIGINT. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int s) { (void)s; _exit(0); }
static void on_chld(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction t = {0}, c = {0};
  t.sa_handler = on_term;
  sigaction(SIGINT, &t, 0);
  sigaction(SIGTERM, &t, 0);
  c.sa_handler = on_chld;
  c.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &c, 0);
  for (;;) pause();
}
C
gcc -static -Os -o "$w/pause" "$w/pause.c"
strip "$w/pause" 2>/dev/null || true

case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
mkdir -p "$w/rootfs" "$w/oci/blobs/sha256"
install -m 0755 "$w/pause" "$w/rootfs/pause"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$w/rootfs" -cf "$w/layer.tar" pause
diff_id=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$w/layer.tar" >"$w/layer.tgz"
blob() { # <file> -> moves it into the layout; prints "<digest> <size>"
  local d s; d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1"); mv "$1" "$w/oci/blobs/sha256/$d"; echo "$d $s"
}
read -r layer lsize < <(blob "$w/layer.tgz")
printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"],"WorkingDir":"/","User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/install-real-kubelet.sh (static C pause)"}]}' \
  "$arch" "$diff_id" >"$w/config.json"
read -r cfg csize < <(blob "$w/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$cfg" "$csize" "$layer" "$lsize" >"$w/manifest.json"
read -r man msize < <(blob "$w/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$man" "$msize" "$arch" "$PAUSE_REF" "${PAUSE_REF##*:}" >"$w/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
tar --numeric-owner --owner=0 --group=0 -C "$w/oci" -cf "$OUT/pause-oci.tar.tmp" oci-layout index.json blobs
mv "$OUT/pause-oci.tar.tmp" "$OUT/pause-oci.tar"
echo "$PAUSE_REF" >"$OUT/pause-oci.ref"
log "pause image: $OUT/pause-oci.tar ($PAUSE_REF)"
