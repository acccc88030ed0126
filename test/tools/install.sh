#!/usr/bin/env bash
# Installs every tool the tests need, idempotently: Debian packages, npm packages, and the Go tools
# (csi-sanity, helm, csi-probe, ghz, csi-reference) at pinned versions, cached outside the clone by version and linked into
# .tools/bin. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/../.."

CSI_SANITY_VERSION=v5.6.0   # csi-test tag; the Go proxy serves tags, not the master commit it contains
HELM_VERSION=v3.22.0        # lints and renders charts/tether
GHZ_VERSION=v0.121.0       # the gRPC load generator of the overhead benchmark (bench/suites/overhead.ts)
SNAPSHOTTER_VERSION=v8.6.0  # external-snapshotter, as the e2e builds it and the chart pins it: its VolumeSnapshot CRDs validate the chart's and examples' snapshot objects
PACKAGES=(openssh-server openssh-client sshfs fuse3 util-linux kmod iproute2
          # the partition test (test/partition): cuts links between network namespaces
          nftables
          # the NFS harness (test/nfs): a userspace NFS server, the kernel client's tools, a UML kernel
          # with the NFS client, and cc for its shim on AMX CPUs
          nfs-ganesha nfs-ganesha-vfs nfs-common rpcbind user-mode-linux gcc
          # the real-Kubernetes e2e (test/e2e): the container runtime and CNI plugins, dockerd to build the
          # image, debootstrap for its base, busybox for the workloads' image
          containerd runc docker.io containernetworking-plugins debootstrap busybox-static
          # the Docker tests (test/docker): runc built from its Go module links libseccomp
          libseccomp-dev pkg-config)

missing=()
for p in "${PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Go tools are built once per version into a cache outside the clone (CI clones afresh every run) and
# linked into .tools/bin, where the tests look for them.
CACHE=${TETHER_CACHE:-/var/cache/tether}
BIN=$PWD/.tools/bin
mkdir -p "$BIN" "$CACHE"
export GOFLAGS=-mod=mod

# go_tool NAME KEY BUILD...: runs BUILD with GOBIN set to a cache directory for KEY (once), links NAME.
go_tool() {
  local name=$1 key=$2; shift 2
  local dir="$CACHE/$name-$key"
  if [ ! -x "$dir/$name" ]; then
    echo "install.sh: building $name ($key)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    GOBIN="$dir.tmp" "$@"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/$name" "$BIN/$name"
}

go_tool csi-sanity "$CSI_SANITY_VERSION" go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION"
go_tool helm "$HELM_VERSION" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
PROBE_KEY=$(cat test/clients/csi-probe/go.mod test/clients/csi-probe/go.sum test/clients/csi-probe/main.go | sha256sum | cut -c1-16)
go_tool csi-probe "$PROBE_KEY" bash -c 'cd test/clients/csi-probe && GOFLAGS=-mod=readonly go build -o "$GOBIN/csi-probe" .'
go_tool ghz "$GHZ_VERSION" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
# The Go baseline of the overhead and process benchmarks: csi-driver-host-path's hostpathplugin is not
# served by the Go module proxy (no version of it is), so test/clients/csi-reference stands in for it,
# serving CSI the same way (see its main.go).
REFERENCE_KEY=$(cat test/clients/csi-reference/go.mod test/clients/csi-reference/go.sum test/clients/csi-reference/main.go | sha256sum | cut -c1-16)
go_tool csi-reference "$REFERENCE_KEY" bash -c 'cd test/clients/csi-reference && GOFLAGS=-mod=readonly go build -o "$GOBIN/csi-reference" .'

CRDS=$PWD/.tools/crds
if [ ! -f "$CRDS/.$SNAPSHOTTER_VERSION" ]; then
  echo "install.sh: VolumeSnapshot CRDs of external-snapshotter $SNAPSHOTTER_VERSION"
  dir=$(go mod download -json "github.com/kubernetes-csi/external-snapshotter/client/v8@$SNAPSHOTTER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$CRDS" && mkdir -p "$CRDS"
  cp "$dir/config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml" "$dir/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml" "$CRDS/"
  touch "$CRDS/.$SNAPSHOTTER_VERSION"
fi
