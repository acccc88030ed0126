#!/usr/bin/env bash
# A real single-node Kubernetes for the e2e stage, on loopback and inside one run directory:
# containerd + runc (Debian), etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
# (test/e2e/build), the CSI snapshot CRDs and snapshot-controller (what a cluster's distribution
# installs). Nothing listens beyond 127.0.0.1; pods get addresses only inside their own namespaces.
#   cluster.sh up RUN_DIR BIN_DIR IMAGES_DIR    starts it all (each process's log in RUN_DIR/log) and imports the images
#   cluster.sh down RUN_DIR                     stops what up started, unmounts what is below RUN_DIR; idempotent
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=$1 run=$2
NODE=e2e-node
CTRD_SOCK=$run/containerd/containerd.sock
ETCD_PORT=23790
BRIDGE=tether-e2e0
T0=${E2E_T0:-$(date +%s)}
say() { printf '[e2e %4d s] %s\n' "$(($(date +%s) - T0))" "$*"; }

# start NAME COMMAND...: runs it in the background, logging to log/NAME.log, its PID in pids/NAME
start() {
  local name=$1; shift
  "$@" > "$run/log/$name.log" 2>&1 &
  echo $! > "$run/pids/$name"
}
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.5 s; fails with the last lines of the logs if it never succeeds
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" > /dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      say "timed out after $limit s waiting for: $what"
      for f in "$run"/log/*.log; do echo "--- ${f##*/}"; tail -3 "$f" | cut -c1-300; done
      return 1
    fi
    sleep 0.5
  done
  say "$what"
}

up() {
  local bin=$1 images=$2
  export KUBECONFIG=$run/pki/admin.kubeconfig
  local kubectl="$bin/kubectl"
  mkdir -p "$run"/{log,pids,containerd,cni/net.d,etcd,kubelet/plugins_registry,pod-logs}
  bash "$here/pki.sh" "$run/pki" "$NODE"

  cat > "$run/containerd/config.toml" <<TOML
version = 2
root = "$run/containerd/root"
state = "$run/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTRD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # root here lacks CAP_SYS_RESOURCE: without this every pod sandbox fails to start (runc cannot lower oom_score_adj)
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$run/cni/net.d"
TOML
  # A bridge with no address on the host, no NAT, no routes: pod addresses exist only inside the pods.
  cat > "$run/cni/net.d/10-e2e.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "tether-e2e", "plugins": [{"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": "$run/cni/ipam"}}]}
JSON
  # libcni caches each pod's results under /var/lib/cni: note what is there, to remove only ours at the end.
  ls /var/lib/cni/results > "$run/cni-results-before" 2> /dev/null || true
  start containerd containerd --config "$run/containerd/config.toml"
  wait_for 20 "containerd answers" ctr -a "$CTRD_SOCK" version
  for tar in "$images"/*.tar; do ctr -a "$CTRD_SOCK" -n k8s.io images import --no-unpack "$tar" > /dev/null; done
  say "images imported: $(ctr -a "$CTRD_SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

  local p=$run/pki
  start etcd "$bin/etcd" --name e2e --data-dir "$run/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "e2e=http://127.0.0.1:$((ETCD_PORT + 10))" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 20))"
  # Loopback only: the Endpoints of the `kubernetes` Service may not hold a loopback address, so its reconciler is off.
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --endpoint-reconciler-type=none \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-cluster-ip-range=10.96.0.0/24 \
    --authorization-mode=Node,RBAC --allow-privileged=true --v=1
  wait_for 90 "kube-apiserver ready" "$kubectl" get --raw /readyz
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route' --v=1
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$KUBECONFIG" --authentication-kubeconfig="$KUBECONFIG" \
    --authorization-kubeconfig="$KUBECONFIG" --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --v=1

  sed -e "s#@RUN@#$run#g" -e "s#@CTRD_SOCK@#$CTRD_SOCK#g" "$here/kubelet.yaml" > "$run/kubelet.yaml"
  # --node-ip=127.0.0.1: the Node gets no address (the kubelet refuses a loopback one), so `kubectl logs/exec`
  # cannot reach it; the tests read pod logs from the kubelet's podLogsDir instead.
  start kubelet "$bin/kubelet" --config="$run/kubelet.yaml" --kubeconfig="$p/kubelet.kubeconfig" --root-dir="$run/kubelet" \
    --hostname-override=$NODE --node-ip=127.0.0.1 --v=1
  wait_for 90 "node $NODE Ready" "$kubectl" wait --for=condition=Ready "node/$NODE" --timeout=1s
  wait_for 60 "default ServiceAccount made" "$kubectl" get serviceaccount default

  local crds
  crds=$(cd "$here/../build" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd
  "$kubectl" apply -f "$crds/snapshot.storage.k8s.io_volumesnapshotclasses.yaml" -f "$crds/snapshot.storage.k8s.io_volumesnapshotcontents.yaml" \
    -f "$crds/snapshot.storage.k8s.io_volumesnapshots.yaml" > /dev/null
  wait_for 30 "VolumeSnapshot CRDs established" "$kubectl" wait --for=condition=Established crd/volumesnapshots.snapshot.storage.k8s.io --timeout=1s
  start snapshot-controller "$bin/snapshot-controller" --kubeconfig="$KUBECONFIG" --leader-election=false --v=1
  say "cluster up"
}

down() {
  [ -d "$run/pids" ] || return 0
  local bin
  set +e
  export KUBECONFIG=$run/pki/admin.kubeconfig
  # Stop in reverse order of start; then whatever the kubelet left in our containerd (shims, containers).
  for name in snapshot-controller kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  if [ -S "$CTRD_SOCK" ]; then
    for t in $(ctr -a "$CTRD_SOCK" -n k8s.io task ls -q 2> /dev/null); do
      ctr -a "$CTRD_SOCK" -n k8s.io task kill -s SIGKILL "$t" 2> /dev/null; sleep 0.2
      ctr -a "$CTRD_SOCK" -n k8s.io task delete -f "$t" > /dev/null 2>&1
    done
    for c in $(ctr -a "$CTRD_SOCK" -n k8s.io containers ls -q 2> /dev/null); do ctr -a "$CTRD_SOCK" -n k8s.io containers rm "$c" > /dev/null 2>&1; done
  fi
  stop containerd
  # Every mount below the run directory, deepest first (pods' volumes, sshfs stagings, containerd's overlays and netns).
  findmnt -rn -o TARGET | grep "^$run/" | sort -r | while read -r m; do umount "$m" 2> /dev/null || umount -l "$m"; done
  ip link del "$BRIDGE" 2> /dev/null
  # What the kubelet and containerd 1.6 keep at fixed paths, removed only if empty (or only ours).
  rm -rf /var/lib/kubelet/device-plugins 2> /dev/null; rmdir /var/lib/kubelet 2> /dev/null
  for f in /var/lib/cni/results/tether-e2e-* /var/lib/cni/results/cni-loopback-*; do
    [ -e "$f" ] && ! grep -qxF "${f##*/}" "$run/cni-results-before" 2> /dev/null && rm -f "$f"
  done
  rmdir /var/lib/cni/results /var/lib/cni 2> /dev/null
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd/fifo /run/containerd 2> /dev/null
  rm -rf "$run/pids"
  say "cluster down"
  return 0
}
# stop NAME: SIGTERM, then SIGKILL after 10 s
stop() {
  local pid
  pid=$(cat "$run/pids/$1" 2> /dev/null) || return 0
  kill "$pid" 2> /dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2> /dev/null
}

case $cmd in
  up) up "$3" "$4" ;;
  down) down ;;
  *) echo "usage: cluster.sh up RUN_DIR BIN_DIR IMAGES_DIR | down RUN_DIR" >&2; exit 2 ;;
esac
