# tether-csi: the CSI driver for NFS and sshfs volumes.
#
#   docker build -t ghcr.io/tether-csi/tether:0.1.0 .
#   docker build --build-arg NODE_IMAGE=node:20.20.2-bookworm-slim -t tether:dev .
#
# Build args:
#   NODE_IMAGE   the Node.js 20 base of both stages, pinned to an exact release (default below)
#
# One image serves every mode (--mode controller | node | all); the chart runs it with the
# kubernetes-csi controller sidecars. No HEALTHCHECK: the kubelet probes tether's own /healthz
# (--health-address: a Probe through its CSI socket).
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- build: compile the TypeScript ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

# ---- runtime: the driver and the programs it runs ----
FROM ${NODE_IMAGE}
# sshfs + fuse3: sshfs volumes; nfs-common: mount.nfs; util-linux: mount, umount, findmnt;
# openssh-client: the ssh that sshfs runs; iproute2: ss, which resets a fenced mount's connections;
# coreutils (stat, cp) come with the base.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sshfs fuse3 nfs-common util-linux openssh-client iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/proto ./proto
ENV NODE_ENV=production
ENTRYPOINT ["node", "/app/dist/src/main.js"]
