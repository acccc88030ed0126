#!/usr/bin/env bash
# Makes the directory `docker plugin create` takes — config.json and rootfs/ — from tether's image:
#   bash examples/swarm-plugin/make-plugin.sh ghcr.io/tether-csi/tether:0.1.0 /tmp/tether-plugin
#   docker plugin create tether-csi:latest /tmp/tether-plugin
# DOCKER (default: docker) is the CLI to use, with its -H if any.
set -euo pipefail
image=$1 out=$2
docker=(${DOCKER:-docker})
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$out" && mkdir -p "$out/rootfs"
id=$("${docker[@]}" create "$image")
trap '"${docker[@]}" rm "$id" > /dev/null' EXIT
"${docker[@]}" export "$id" | tar -x -C "$out/rootfs"
mkdir -p "$out/rootfs/data/published" "$out/rootfs/data/staged" "$out/rootfs/etc/tether" "$out/rootfs/run/tether" "$out/rootfs/run/docker/plugins"
cp "$here/config.json" "$out/config.json"
