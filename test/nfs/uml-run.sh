#!/usr/bin/env bash
# uml-run.sh [--] command [args...]
#
# Runs the command inside a user-mode Linux guest (Debian's linux.uml, a kernel with a real NFS
# client) next to an nfs-ganesha server that runs in the same guest. See README.md.
#   * guest root = the host's / read-only; the repository is writable (same path) and is the cwd;
#     /tmp, /run are guest-private tmpfs; no network but the guest's own loopback.
#   * the command's stdout/stderr come back on this script's stdout/stderr; the exit status is
#     the command's, 125 if the guest died or could not be set up, 77 if UML cannot run here
#     ("NFS TESTS SKIPPED: <reason>"), 2 for a usage error.
# Environment:
#   NFS_VERS=4|3        4 (default): server speaks NFSv4.0-4.2; 3: NFSv3 too, with rpcbind
#   UML_MEM=768M        guest memory (a file of that size in /dev/shm or UML_TMPDIR)
#   UML_TIMEOUT=900     seconds until the guest is killed (exit 125)
#   UML_PASS_ENV="A B"  more variables to pass to the command (always: CI, TETHER_*, NODE_OPTIONS,
#                       FORCE_COLOR, NO_COLOR, LANG, LC_ALL, TZ, DEBUG)
#   UML_VERBOSE=1       print boot/server timings and the guest console
#   UML_KEEP=1          keep the run dir (console log, ...) for debugging
# In the guest the command gets: NFS_SERVER=127.0.0.1 NFS_SHARE=/export NFS_EXPORT_DIR (the
# server's backing dir) NFS_VERS NFS_SERVER_CTL (test/nfs/nfs-server.sh) IN_UML=1 HOME PATH.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
T_START=$(date +%s.%N)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "uml-run.sh: $*" >&2; exit 2; }
skip() {
  printf '\n######################################################################\n' >&2
  printf '### NFS TESTS SKIPPED: %s\n' "$*" >&2
  printf '######################################################################\n\n' >&2
  exit 77
}
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }

[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || usage
# The guest mounts its own tmpfs over /tmp and /var/tmp, then the repository at its path (below them
# too, if it is there): the repository can live anywhere but at those roots themselves.
case "$REPO" in /|/tmp|/var/tmp|/run)
  die "refusing to share $REPO read-write with the guest: the repository must not be /, /tmp, /var/tmp or /run" ;; esac
case "$REPO" in *[!A-Za-z0-9_./+-]*) die "the repository path '$REPO' must not contain spaces or special characters (it goes on the kernel command line)" ;; esac

NFS_VERS=${NFS_VERS:-4}
case "$NFS_VERS" in 3|4) ;; *) die "NFS_VERS must be 3 or 4, not '$NFS_VERS'" ;; esac
UML_MEM=${UML_MEM:-768M}
[[ "$UML_MEM" =~ ^([0-9]+)([KMG]?)$ ]] || die "UML_MEM must look like 768M, not '$UML_MEM'"
case "${BASH_REMATCH[2]}" in
  '') MEM_KB=$((BASH_REMATCH[1] / 1024)) ;; K) MEM_KB=${BASH_REMATCH[1]} ;;
  M) MEM_KB=$((BASH_REMATCH[1] * 1024)) ;;  G) MEM_KB=$((BASH_REMATCH[1] * 1024 * 1024)) ;;
esac
UML_TIMEOUT=${UML_TIMEOUT:-900}
if ! [[ "$UML_TIMEOUT" =~ ^[0-9]+$ ]] || [ "$UML_TIMEOUT" -eq 0 ]; then die "UML_TIMEOUT must be a number of seconds"; fi

# --- can UML run here? Anything missing is a loud skip (exit 77), never a silent pass. ---
[ "$(id -u)" = 0 ] || skip "uml-run.sh must run as root"
command -v linux.uml >/dev/null || skip "no linux.uml (apt-get install user-mode-linux)"
KVER=$(linux.uml --version 2>/dev/null) || skip "linux.uml --version failed"
[ -f "/usr/lib/uml/modules/$KVER/kernel/fs/nfs/nfsv4.ko" ] || skip "no NFS client modules for UML $KVER in /usr/lib/uml/modules"
command -v modprobe >/dev/null || skip "no modprobe (apt-get install kmod)"
command -v mount.nfs >/dev/null || skip "no mount.nfs (apt-get install nfs-common)"
command -v ganesha.nfsd >/dev/null || skip "no ganesha.nfsd (apt-get install nfs-ganesha nfs-ganesha-vfs)"
compgen -G "/usr/lib/*/ganesha/libfsalvfs.so" >/dev/null || compgen -G "/usr/lib*/ganesha/libfsalvfs.so" >/dev/null \
  || skip "no ganesha VFS FSAL (apt-get install nfs-ganesha-vfs)"
command -v ip >/dev/null || skip "no ip (apt-get install iproute2)"
if [ "$NFS_VERS" = 3 ]; then
  if ! command -v rpcbind >/dev/null || ! command -v rpcinfo >/dev/null; then skip "NFS_VERS=3 needs rpcbind (apt-get install rpcbind)"; fi
fi
# UML's memory is a file of UML_MEM bytes in a tmpfs (as UML itself picks: $TMPDIR, else /dev/shm);
# it must fit and be mappable executable.
MEM_DIR=${UML_TMPDIR:-/dev/shm}
[ -d "$MEM_DIR" ] || skip "no $MEM_DIR for UML's memory file (set UML_TMPDIR)"
findmnt -n -o OPTIONS -T "$MEM_DIR" | grep -qw noexec && skip "$MEM_DIR is mounted noexec; set UML_TMPDIR to an exec-allowed tmpfs"
AVAIL_KB=$(df -Pk "$MEM_DIR" | awk 'NR == 2 {print $4}')
[ "$AVAIL_KB" -ge "$MEM_KB" ] || skip "only ${AVAIL_KB} KiB free in $MEM_DIR, UML_MEM=$UML_MEM needs ${MEM_KB} KiB"

# Lines every boot prints on the console (sed script that drops them).
CONSOLE_NOISE='/^SELinux: /d; /^mmapper_init - /d; /^Failed to initialize ubd/d; /^sysrq: Power Off/d; /^reboot: Power down/d'

# --- run dir (shared read-write with the guest), cleanup, timeout ---
# A run killed with SIGKILL cannot clean up (its linux.uml and helpers still die: pdeathsig);
# remove such leftovers: run dirs whose owner is gone.
for d in "${TMPDIR:-/tmp}"/tether-uml.*; do
  [ -f "$d/owner" ] && ! kill -0 "$(cat "$d/owner")" 2>/dev/null && rm -rf "$d"
done
RUN=$(mktemp -d "${TMPDIR:-/tmp}/tether-uml.XXXXXX")
echo $$ > "$RUN/owner"
case "$RUN" in *[!A-Za-z0-9_./+-]*) rm -rf "$RUN"; die "run dir '$RUN' has special characters: set TMPDIR" ;; esac
UML_PID='' SLEEP_PID='' FINISHED='' TAIL_PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? i
  set +e
  if [ -n "$UML_PID" ] && kill -0 "$UML_PID" 2>/dev/null; then
    # linux.uml called setsid(): only its own PID reaches it. SIGTERM makes it halt and reap its
    # host processes (one per guest address space); SIGKILL if it does not within 10 s.
    kill -TERM "$UML_PID" 2>/dev/null
    for i in $(seq 100); do kill -0 "$UML_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$UML_PID" 2>/dev/null
  fi
  [ -n "$SLEEP_PID" ] && kill "$SLEEP_PID" 2>/dev/null
  for i in "${TAIL_PIDS[@]}"; do kill "$i" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${UML_KEEP:-}" ]; then echo "uml-run.sh: kept $RUN" >&2; else rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# The command, with a clean, explicit environment.
{
  echo '# generated by uml-run.sh; run by guest-init.sh with cwd = the repository'
  # shellcheck disable=SC2016  # expands in the guest
  echo 'for v in $(compgen -e); do unset "$v" 2>/dev/null; done'
  guest_path=$PATH
  case ":$guest_path:" in *:/usr/sbin:*) ;; *) guest_path=$guest_path:/usr/sbin ;; esac
  case ":$guest_path:" in *:/sbin:*) ;; *) guest_path=$guest_path:/sbin ;; esac
  vars=(PATH="$guest_path" HOME=/tmp/home TERM=dumb IN_UML=1 NFS_VERS="$NFS_VERS"
        NFS_SERVER=127.0.0.1 NFS_SHARE=/export NFS_EXPORT_DIR=/run/tether-nfs/export
        NFS_SERVER_CTL="$HERE/nfs-server.sh")
  for name in CI NODE_OPTIONS FORCE_COLOR NO_COLOR LANG LC_ALL TZ DEBUG ${UML_PASS_ENV:-} $(compgen -e TETHER_ || true); do
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "UML_PASS_ENV: bad variable name '$name'"
    [ -n "${!name+set}" ] && vars+=("$name=${!name}")
  done
  for v in "${vars[@]}"; do printf 'export %q\n' "$v"; done
  printf 'cd %q || exit 125\n' "$REPO"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$RUN/cmd.sh"
: > "$RUN/out"; : > "$RUN/err"; : > "$RUN/console"

# Debian's UML 6.1 fails on hosts whose XSAVE area is bigger than it expects (AMX CPUs):
# "ptrace set fp regs failed, errno = 14". uml-xstate-shim.c fixes that; build it if we can.
PRELOAD=
if command -v cc >/dev/null; then
  if cc -O2 -shared -fPIC -o "$RUN/uml-xstate-shim.so" "$HERE/uml-xstate-shim.c" -ldl 2>"$RUN/cc.log"; then
    PRELOAD=$RUN/uml-xstate-shim.so
  else
    echo "uml-run.sh: warning: building uml-xstate-shim.c failed: $(cat "$RUN/cc.log")" >&2
  fi
fi

# setpriv --pdeathsig: linux.uml gets SIGTERM even if this script is SIGKILLed.
env ${PRELOAD:+LD_PRELOAD=$PRELOAD} TMPDIR="$MEM_DIR" TMP="$MEM_DIR" TEMP="$MEM_DIR" \
  setpriv --pdeathsig TERM \
  linux.uml mem="$UML_MEM" rootfstype=hostfs rootflags=/ ro quiet \
    init="$HERE/guest-init.sh" con=null con0=null,fd:1 \
    TETHER_UML_RUN="$RUN" TETHER_UML_REPO="$REPO" NFS_VERS="$NFS_VERS" TETHER_UML_VERBOSE="${UML_VERBOSE:-0}" \
    </dev/null >"$RUN/console" 2>&1 &
UML_PID=$!   # env and setpriv exec: this is linux.uml's PID
# Stream the command's output while it runs (the guest appends to these files through hostfs).
# Each tail drains its file and exits once linux.uml has gone.
tail -c +1 -s 0.2 --pid="$UML_PID" -f "$RUN/out" & TAIL_PIDS+=($!)
tail -c +1 -s 0.2 --pid="$UML_PID" -f "$RUN/err" >&2 & TAIL_PIDS+=($!)
if [ "${UML_VERBOSE:-}" = 1 ]; then
  tail -c +1 -s 0.2 --pid="$UML_PID" -f "$RUN/console" > >(sed -u -e 's/\r$//' -e "$CONSOLE_NOISE" >&2) & TAIL_PIDS+=($!)
fi
setpriv --pdeathsig KILL sleep "$UML_TIMEOUT" & SLEEP_PID=$!

set +e
{ wait -n -p FINISHED "$UML_PID" "$SLEEP_PID"; } 2>/dev/null   # no "Aborted" job notice
UML_RC=$?
set -e
if [ "$FINISHED" = "$SLEEP_PID" ]; then
  SLEEP_PID=
  echo "uml-run.sh: UML_TIMEOUT=${UML_TIMEOUT}s reached: killing the guest" >&2
  exit 125   # the EXIT trap stops linux.uml
fi
UML_PID=
kill "$SLEEP_PID" 2>/dev/null; wait "$SLEEP_PID" 2>/dev/null || true; SLEEP_PID=
wait "${TAIL_PIDS[@]}" 2>/dev/null || true   # they end by themselves (--pid)
TAIL_PIDS=()

status=$(cat "$RUN/status" 2>/dev/null || true)
show_console() { echo "uml-run.sh: guest console:" >&2; sed -e 's/\r$//' -e "$CONSOLE_NOISE" "$RUN/console" | tail -n 40 | sed 's/^/  | /' >&2; }
if [ -s "$RUN/rc" ]; then
  rc=$(cat "$RUN/rc")
  [ "${UML_VERBOSE:-}" = 1 ] && echo "uml-run.sh: done in $(elapsed) s (command exit $rc)" >&2
  exit "$rc"
fi
if [ -z "$status" ]; then   # init never ran: this host cannot run UML
  if grep -q 'ptrace set fp regs failed' "$RUN/console"; then
    skip "linux.uml cannot run on this CPU (its XSAVE area is too big for UML $KVER) and the fix, test/nfs/uml-xstate-shim.c, could not be built (apt-get install gcc)"
  fi
  show_console
  skip "the UML guest did not boot (linux.uml exit $UML_RC; console above)"
fi
show_console
echo "uml-run.sh: the guest ended without a result (stage: $status, linux.uml exit $UML_RC)" >&2
exit 125
