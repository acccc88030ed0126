#!/usr/bin/env bash
# Smoke test of the NFS harness; runs INSIDE the guest:   test/nfs/uml-run.sh test/nfs/smoke.test.sh
# A real kernel NFS mount of the in-guest ganesha: write/read, server killed -> EIO within seconds,
# server restarted -> the mount recovers with its data, unmount. Then checks that the project's
# tools run in the guest (node, jest, csi-sanity) and prints how long they take.
# TAP-like output; exit 0 if every check passed.
set -uo pipefail
[ "${IN_UML:-}" = 1 ] || { echo "smoke.test.sh: runs inside the guest: test/nfs/uml-run.sh $0" >&2; exit 2; }

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # description, command...: ok if the command succeeds
  local d=$1; shift
  if "$@"; then ok "$d"; else not_ok "$d"; fi
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b - a}'; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
mem_used_mib() { awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{printf "%d", (t-a)/1024}' /proc/meminfo; }
is_mounted() { awk -v m="$1" '$2 == m {f=1} END{exit !f}' /proc/self/mounts; }

echo "# guest uptime at command start: $(uptime_s) s (boot + init + ganesha start); memory in use: $(mem_used_mib) MiB"
MNT=$(mktemp -d /tmp/nfs-smoke.XXXXXX)
cleanup() {
  "$NFS_SERVER_CTL" start >/dev/null 2>&1
  if is_mounted "$MNT"; then umount -f "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  rmdir "$MNT" 2>/dev/null
}
trap cleanup EXIT

# --- NFSv4.2 mount, write, read ---
t0=$(now)
check "mount -t nfs4 vers=4.2 $NFS_SERVER:$NFS_SHARE" \
  mount -t nfs4 -o vers=4.2,retry=0,soft,timeo=20,retrans=1 "$NFS_SERVER:$NFS_SHARE" "$MNT"
echo "# mount took $(since "$t0") s"
check "/proc/self/mounts shows an nfs4 vers=4.2 mount" \
  grep -qE "^$NFS_SERVER:$NFS_SHARE $MNT nfs4 .*vers=4\.2" /proc/self/mounts
echo "hello over nfs" > "$MNT/before.txt"
check "read back what was written" test "$(cat "$MNT/before.txt")" = "hello over nfs"
check "the server's backing dir has the file" test "$(cat "$NFS_EXPORT_DIR/before.txt")" = "hello over nfs"
head -c 8M /dev/urandom > /tmp/big.bin
t0=$(now); cp /tmp/big.bin "$MNT/big.bin" && sync -f "$MNT"; echo "# 8 MiB written in $(since "$t0") s"
check "8 MiB file identical on the server side" cmp -s /tmp/big.bin "$NFS_EXPORT_DIR/big.bin"
check "file owner is root (No_Root_Squash)" test "$(stat -c %u "$MNT/before.txt")" = 0

# --- server killed: a soft mount fails with EIO within seconds ---
"$NFS_SERVER_CTL" kill
check "server is down after 'kill'" test "$("$NFS_SERVER_CTL" status)" = stopped
t0=$(now)
err=$(timeout 60 sh -c "echo during > '$MNT/during.txt'" 2>&1); rc=$?
took=$(since "$t0")
echo "# write with the server dead: exit $rc after $took s: ${err##*: }"
check "write with the server dead fails with EIO" grep -q "Input/output error" <<<"$err"
check "... within 15 s" awk -v t="$took" 'BEGIN{exit !(t < 15)}'

# --- server restarted: the same mount works again, data kept ---
t0=$(now)
check "server restarts" "$NFS_SERVER_CTL" restart
echo "# restart took $(since "$t0") s"
t0=$(now)
check "data written before the crash is still there" test "$(cat "$MNT/before.txt" 2>&1)" = "hello over nfs"
echo "after" > "$MNT/after.txt"
check "writes work again" test "$(cat "$NFS_EXPORT_DIR/after.txt")" = "after"
echo "# recovered $(since "$t0") s after the restart"
check "umount" umount "$MNT"
check "no longer mounted" test "$(is_mounted "$MNT" && echo yes)" = ""

# --- NFSv3 (only when the server speaks it) ---
if [ "$NFS_VERS" = 3 ]; then
  check "mount -t nfs vers=3" \
    mount -t nfs -o vers=3,nolock,proto=tcp,mountproto=tcp,retry=0,soft,timeo=20,retrans=1 "$NFS_SERVER:$NFS_SHARE" "$MNT"
  check "v3 mount sees the v4 data" test "$(cat "$MNT/after.txt" 2>&1)" = "after"
  echo v3 > "$MNT/v3.txt"
  check "v3 write reaches the server" test "$(cat "$NFS_EXPORT_DIR/v3.txt")" = "v3"
  check "umount v3" umount "$MNT"
fi
echo "# memory in use after the NFS checks: $(mem_used_mib) MiB"

# --- the project's tools inside the guest ---
t0=$(now); check "node runs" node -e 'process.exit(0)'; echo "# node -e 0: $(since "$t0") s"
t0=$(now); v=$(npx --no-install jest --version 2>&1); rc=$?
echo "# npx jest --version -> $v: $(since "$t0") s"
check "npx jest --version" test "$rc" = 0
if [ -x .tools/bin/csi-sanity ]; then
  t0=$(now); out=$(.tools/bin/csi-sanity --help 2>&1)
  echo "# csi-sanity --help: $(since "$t0") s"
  check "csi-sanity runs (--help)" grep -q -- "csi.endpoint" <<<"$out"
else
  echo "# csi-sanity not built (.tools/bin/csi-sanity); skipped"
fi
echo "# memory in use at the end: $(mem_used_mib) MiB; guest uptime $(uptime_s) s"

echo "1..$n"
[ "$failed" = 0 ] && echo "# smoke: all $n checks passed" || echo "# smoke: $failed of $n checks FAILED"
[ "$failed" = 0 ]
