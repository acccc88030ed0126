#!/usr/bin/env bash
# Prints the directory holding the Docker stage's binaries, building them first if they are not there:
#   dockerd  — the engine, from the Go module github.com/moby/moby/v2 (Debian's docker.io 20.10 has no
#              Swarm cluster volumes; this one runs on Debian's containerd 1.6)
#   docker   — the CLI, from github.com/docker/cli (its module has no go.mod: built with its vendor.mod as go.mod, the pinned dependencies from the module proxy)
#   runc     — Debian's runc 1.1 cannot make the time namespace the engine asks for
# Cached outside the clone in $TETHER_CACHE/docker-bin-<key>, keyed by these pins and the Go version.
# Cold, about 4 minutes (dockerd: ~160 s, 1.4 GB of memory). TETHER_DOCKER_NO_BUILD=1: a missing cache
# is not built; the script says so and exits 77 (the stage skips).
set -euo pipefail
MOBY_VERSION=v2.0.0-beta.24
CLI_VERSION=v29.9.3
RUNC_VERSION=v1.5.3
SWARMKIT_FOR_CLI=v2.1.3-0.20260828175525-ad0357aedfca   # moby v2.0.0-beta.24's own (go.mod)
key=$( (echo "$MOBY_VERSION $CLI_VERSION $RUNC_VERSION $SWARMKIT_FOR_CLI"; go env GOVERSION) | sha256sum | cut -c1-16)
dir=${TETHER_CACHE:-/var/cache/tether}/docker-bin-$key
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
if [ "${TETHER_DOCKER_NO_BUILD:-}" = 1 ]; then
  echo "docker: SKIPPED — the Docker binaries for key $key are not in $dir and TETHER_DOCKER_NO_BUILD=1 says not to build them" >&2
  exit 77
fi
mkdir -p "$(dirname "$dir")"
exec 8> "${dir}.lock"
flock 8
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
# runc's seccomp support links libseccomp: libseccomp-dev and pkg-config come from test/tools/install.sh.
echo "docker: building dockerd $MOBY_VERSION, the docker CLI $CLI_VERSION and runc $RUNC_VERSION into $dir (cold: minutes)" >&2
start=$SECONDS
rm -rf "$dir" && mkdir -p "$dir"
export GOFLAGS=-buildvcs=false GOBIN=$dir
go install -trimpath -ldflags "-s -w -X github.com/moby/moby/v2/dockerversion.Version=$MOBY_VERSION" "github.com/moby/moby/v2/cmd/dockerd@$MOBY_VERSION" >&2
go install -trimpath -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION" >&2
src=$(GOFLAGS=-mod=mod go mod download -json "github.com/docker/cli@$CLI_VERSION+incompatible" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/" && chmod -R u+w "$work"
cp "$work/vendor.mod" "$work/go.mod" && cp "$work/vendor.sum" "$work/go.sum"
# The module proxy refuses swarmkit v2.1.3 (403); the engine's own swarmkit, a commit just before that
# tag, serves the CLI's few types (service and node options) alike.
(cd "$work" && go mod edit -replace "github.com/moby/swarmkit/v2=github.com/moby/swarmkit/v2@$SWARMKIT_FOR_CLI")
(cd "$work" && rm -rf vendor && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w -X github.com/docker/cli/cli/version.Version=${CLI_VERSION#v}" -o "$dir/docker" ./cmd/docker) >&2
"$dir/dockerd" --version >&2 && "$dir/docker" --version >&2 && "$dir/runc" --version >&2
touch "$dir/.complete"
echo "docker: binaries built in $((SECONDS - start)) s" >&2
echo "$dir"
