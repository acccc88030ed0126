#!/usr/bin/env bash
# nfs-server.sh start|stop|kill|restart|status — the NFS server of the UML guest (see README.md).
# Runs INSIDE the guest only; tests find it as $NFS_SERVER_CTL.
#
# nfs-ganesha (userspace, FSAL VFS) on the guest's loopback, exporting a guest tmpfs
# ($NFS_EXPORT_DIR, default /run/tether-nfs/export) as the NFSv4 pseudo path /export.
# NFS_VERS=3 also serves NFSv3 (and starts rpcbind, which v3 needs); 4 serves 4.0/4.1/4.2.
#   start    start ganesha; returns once it logs "NFS SERVER INITIALIZED"; no-op if running
#   stop     SIGTERM (clean shutdown)
#   kill     SIGKILL: the server dies as in a crash; clients see it as gone
#   restart  stop if running, then start again; the export's data are kept
#   restore  stop, move the export's files onto a new filesystem (as a restore from backup or a
#            migration to a new disk does), start: same data, new file handles, so every client
#            that had the export mounted gets ESTALE ("Stale file handle")
#   status   "running <pid>" (exit 0) or "stopped" (exit 3)
set -u
STATE=/run/tether-nfs
EXPORT_DIR=${NFS_EXPORT_DIR:-$STATE/export}
VERS=${NFS_VERS:-4}
PIDFILE=$STATE/ganesha.pid
LOG=$STATE/ganesha.log

die() { echo "nfs-server.sh: $*" >&2; exit 1; }
# Never on the host: it would mount over host paths and bind the host's port 2049.
grep -q '^model name.*UML' /proc/cpuinfo 2>/dev/null || { echo "nfs-server.sh: runs only inside the UML guest (test/nfs/uml-run.sh)" >&2; exit 2; }
case "$VERS" in 3|4) ;; *) die "NFS_VERS must be 3 or 4, not '$VERS'" ;; esac

alive() { # pid: true if it exists and is not a zombie
  local s
  s=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$s" ] && [ "$s" != Z ]
}
server_pid() { [ -s "$PIDFILE" ] && alive "$(cat "$PIDFILE")" && cat "$PIDFILE"; }
now() { cut -d' ' -f1 /proc/uptime; }

write_config() { # protocols
  cat > "$STATE/ganesha.conf" <<EOF
# Written by test/nfs/nfs-server.sh. No Bind_addr: with lo as the only interface, an explicit
# 127.0.0.1 makes ganesha exit at start; unset, it listens on all (= loopback only) addresses.
NFS_CORE_PARAM {
  Protocols = $1;
  NFS_Port = 2049;
  MNT_Port = 20048;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
  mount_path_pseudo = true;
}
NFSV4 {
  Graceless = true;                 # otherwise every start means ~90 s of NFS4ERR_GRACE
  Only_Numeric_Owners = true;
  RecoveryBackend = fs;
  RecoveryRoot = $STATE/recovery;
}
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1;
  Path = $EXPORT_DIR;               # tmpfs: FSAL VFS needs file handles (hostfs has none)
  Pseudo = /export;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = $1;
  Transports = TCP;
  FSAL { Name = VFS; }
}
EOF
}

start_rpcbind() {
  rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0
  mkdir -p /run/rpcbind
  setsid rpcbind -f </dev/null >"$STATE/rpcbind.out" 2>&1 &
  echo $! > "$STATE/rpcbind.pid"
  for _ in $(seq 200); do rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0; sleep 0.05; done
  die "rpcbind did not come up: $(cat "$STATE/rpcbind.out")"
}

start() {
  local pid t0 protos=4
  server_pid >/dev/null && return 0
  t0=$(now)
  mkdir -p "$STATE/recovery" "$EXPORT_DIR"
  mountpoint -q "$EXPORT_DIR" || mount -t tmpfs -o mode=0755 tmpfs "$EXPORT_DIR" || die "cannot mount tmpfs on $EXPORT_DIR"
  if [ "$VERS" = 3 ]; then protos="3, 4"; start_rpcbind; fi
  write_config "$protos"
  [ -f "$LOG" ] && mv -f "$LOG" "$LOG.prev"
  # Own session and no inherited stdout/stderr: a caller that reads our output through a pipe
  # (execFileSync) must not wait for the server to close it.
  setsid ganesha.nfsd -F -f "$STATE/ganesha.conf" -L "$LOG" -p "$STATE/ganesha.nfsd.pid" -N NIV_EVENT \
    </dev/null >"$STATE/ganesha.out" 2>&1 &
  pid=$!
  echo "$pid" > "$PIDFILE"
  for _ in $(seq 600); do   # up to 30 s: process start-up is slow under UML
    grep -q "NFS SERVER INITIALIZED" "$LOG" 2>/dev/null && {
      [ -n "${NFS_SERVER_VERBOSE:-}" ] && echo "nfs-server.sh: ganesha $pid ready in $(awk "BEGIN{print $(now) - $t0}") s" >&2
      return 0; }
    alive "$pid" || break
    sleep 0.05
  done
  echo "nfs-server.sh: ganesha did not start (pid $pid); its log:" >&2
  cat "$LOG" "$STATE/ganesha.out" >&2 2>/dev/null
  kill -KILL "$pid" 2>/dev/null
  rm -f "$PIDFILE"
  return 1
}

stop() { # signal
  local pid
  pid=$(server_pid) || { rm -f "$PIDFILE"; return 0; }
  kill -"$1" "$pid" 2>/dev/null
  for _ in $(seq 400); do alive "$pid" || break; sleep 0.05; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
  alive "$pid" && die "ganesha $pid does not die"
  rm -f "$PIDFILE"
}

restore() {
  local saved=$STATE/restore.tar
  stop TERM || return 1
  tar -C "$EXPORT_DIR" -cf "$saved" . || die "cannot save $EXPORT_DIR"
  umount "$EXPORT_DIR" || die "cannot unmount the old filesystem at $EXPORT_DIR"
  mount -t tmpfs -o mode=0755 tmpfs "$EXPORT_DIR" || die "cannot mount a new tmpfs on $EXPORT_DIR"
  tar -C "$EXPORT_DIR" -xpf "$saved" || die "cannot restore into $EXPORT_DIR"
  rm -f "$saved"
  start
}

case "${1:-}" in
  start) start ;;
  restore) restore ;;
  stop) stop TERM ;;
  kill) stop KILL ;;
  restart) stop TERM && start ;;
  status) if pid=$(server_pid); then echo "running $pid (log $LOG)"; else echo stopped; exit 3; fi ;;
  *) echo "usage: $0 start|stop|kill|restart|restore|status" >&2; exit 2 ;;
esac
