#!/bin/sh
# PID 1 of the UML guest started by uml-run.sh (see README.md). Never run it by hand.
# The root filesystem is the host's / through hostfs, read-only. Parameters come from the kernel
# command line, which hands unknown KEY=value words to init as environment:
#   TETHER_UML_RUN   the host's run dir (shared read-write): cmd.sh in; out, err, rc, status out
#   TETHER_UML_REPO  the repository (shared read-write at the same path; the command's cwd)
#   NFS_VERS         4 or 3 (3 also serves NFSv3)     TETHER_UML_VERBOSE  1: print timings
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022
RUN=$TETHER_UML_RUN
REPO=$TETHER_UML_REPO
HERE=$(dirname "$0")

up() { cut -d' ' -f1 /proc/uptime; }
# Before $RUN is mounted only the console (linux.uml's stdout, kept by the host) can take messages.
say() { if [ -w "$RUN/err" ]; then echo "uml-guest: $*" >> "$RUN/err"; else echo "uml-guest: $*"; fi; }
verbose() { [ "${TETHER_UML_VERBOSE:-}" = 1 ] && say "$*"; return 0; }
poweroff() {
  sync -f "$REPO" 2>/dev/null
  echo o > /proc/sysrq-trigger
  while :; do sleep 60; done   # PID 1 must not exit (that is a kernel panic)
}
fail() { # status word, message: tell the host, power off
  say "$2"
  echo "$1" > "$RUN/status"
  poweroff
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
T_INIT=$(up)
# Guest-private scratch space so nothing lands in the host's /run or /tmp.
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# The host dirs that must be writable: hostfs mounts at the same paths.
mkdir -p "$RUN"
mount -t hostfs -o "$RUN" hostfs "$RUN" || { say "cannot mount the run dir $RUN"; poweroff; }
echo booted > "$RUN/status"
mkdir -p "$REPO"   # below /tmp or /var/tmp the guest's tmpfs hides the host's directory: make the mount point
mount -t hostfs -o "$REPO" hostfs "$REPO" || fail setup-failed "cannot mount the repository $REPO writable"
verbose "init started at uptime ${T_INIT}s (kernel $(uname -r))"

# NFS client modules: Debian keeps UML's modules in /usr/lib/uml/modules/<version>, and the hostfs
# root has no /lib/modules, so modprobe gets a private root (-d), also for kernel auto-loading.
mkdir -p /run/modroot/lib/modules
mount --bind /usr/lib/uml/modules /run/modroot/lib/modules
printf '#!/bin/sh\nexec /sbin/modprobe -d /run/modroot "$@"\n' > /run/modprobe
chmod 0755 /run/modprobe
echo /run/modprobe > /proc/sys/kernel/modprobe
for m in nfsv4 nfsv3; do
  modprobe -d /run/modroot "$m" || fail setup-failed "modprobe $m failed"
done
verbose "NFS client modules loaded at uptime $(up)s"

hostname tether-uml
ip link set lo up || fail setup-failed "cannot bring up lo"
mkdir -p /tmp/home
[ "${TETHER_UML_VERBOSE:-}" = 1 ] && export NFS_SERVER_VERBOSE=1
NFS_VERS=${NFS_VERS:-4} "$HERE/nfs-server.sh" start 2>>"$RUN/err" \
  || fail setup-failed "the NFS server (nfs-ganesha) did not start"
verbose "NFS server ready at uptime $(up)s; running the command"

echo running > "$RUN/status"
cd "$REPO" || fail setup-failed "cannot cd to $REPO"
/bin/bash "$RUN/cmd.sh" </dev/null >>"$RUN/out" 2>>"$RUN/err"
rc=$?
verbose "command exited $rc at uptime $(up)s"
echo "$rc" > "$RUN/rc"
echo "done" > "$RUN/status"
sync -f "$RUN/rc"
poweroff
