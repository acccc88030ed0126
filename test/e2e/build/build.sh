#!/usr/bin/env bash
# Builds the binaries the e2e stage runs — Kubernetes v1.36.1 (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl), etcd and the CSI sidecars — from this folder's Go module, into
# $1 (a cache directory keyed by this module's contents: see test/e2e/binaries.sh). Prints each
# binary's build time. Only what is missing is built.
set -euo pipefail
cd "$(dirname "$0")"
out=$1
mkdir -p "$out"
export GOFLAGS=-mod=readonly CGO_ENABLED=${CGO_ENABLED:-1}

K8S=v1.36.1
kver="-X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z -X k8s.io/client-go/pkg/version.gitVersion=$K8S -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=36"

# build NAME PACKAGE [LDFLAGS]
build() {
  local name=$1 pkg=$2 ld="-s -w ${3:-}"
  [ -x "$out/$name" ] && return 0
  local start=$SECONDS
  go build -trimpath -ldflags "$ld" -o "$out/$name.tmp" "$pkg"
  mv "$out/$name.tmp" "$out/$name"
  echo "e2e build: $name in $((SECONDS - start)) s"
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kver"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kver"
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kver"
build kubelet k8s.io/kubernetes/cmd/kubelet "$kver"
build kubectl k8s.io/kubernetes/cmd/kubectl "$kver"
build csi-provisioner github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner "-X main.version=v6.3.0"
build csi-attacher github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher "-X main.version=v4.12.0"
build csi-resizer github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer "-X main.version=v2.2.0"
build csi-snapshotter github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter "-X main.version=v8.6.0"
build snapshot-controller github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller "-X main.version=v8.6.0"
