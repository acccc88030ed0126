#!/usr/bin/env bash
# Packs a directory into a one-layer image in docker-archive format (what `docker save` writes;
# `ctr images import` and `docker load` read it), for images made without a registry or a builder.
#   pack-image.sh OUT.tar NAME:TAG ROOTFS ENTRYPOINT_JSON CMD_JSON [ENV=VALUE...]   (JSON arrays, or null)
set -euo pipefail
out=$1 name=$2 rootfs=$3 entrypoint=$4 cmd=$5
shift 5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$rootfs" -cf "$work/layer.tar" .
layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
env='"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'
for e in "$@"; do env+=",\"$e\""; done
printf '{"architecture":"amd64","os":"linux","config":{"Env":[%s],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$env" "$entrypoint" "$cmd" "$layer" > "$work/config.json"
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mkdir "$work/$layer"
mv "$work/layer.tar" "$work/$layer/layer.tar"
mv "$work/config.json" "$work/$config.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config" "$name" "$layer" > "$work/manifest.json"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work" -cf "$out.tmp" manifest.json "$config.json" "$layer"
mv "$out.tmp" "$out"
