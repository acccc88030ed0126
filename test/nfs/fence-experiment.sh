#!/usr/bin/env bash
# What reaches an NFS server from a client whose link was cut, for each fence the kernel client
# allows — the measurement behind the README's NFS fence statement. Runs INSIDE the guest:
#   NODE_OPTIONS=--experimental-vm-modules bash test/nfs/uml-run.sh test/nfs/fence-experiment.sh \
#     "e1 4.2 fsync5 none" "e2 4.2 fsync5 umountf" "e3 4.2 reopen umountf" "e4 4.2 reopen kill+umountf"
# Each case: NAME NFS-VERSION WRITER-MODE FENCE [TIMEO]. A client in a network namespace of its own
# mounts the export over a veth link and appends records (test/partition/writer.js); the link is
# cut (the server's end of the veth goes down: packets vanish, no reset), the fence runs 4 s later,
# a second writer appends 50 records on the server itself, the link comes back, and 20 s later the
# server's file is checked as the partition test checks it (test/partition/verify.ts).
# Needs `npm run build` first.
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
EXPORT=${NFS_EXPORT_DIR:-/run/tether-nfs/export}
W=$REPO/dist/test/partition/writer.js
ip netns add cli
ip link add vh type veth peer name vc netns cli
ip addr add 10.232.1.1/24 dev vh; ip link set vh up
ip addr add 10.232.0.1/32 dev lo
ip -n cli addr add 10.232.1.2/24 dev vc; ip -n cli link set vc up; ip -n cli link set lo up
ip -n cli route add 10.232.0.1/32 via 10.232.1.1
run() { # name vers mode fence timeo
  local name=$1 vers=$2 mode=$3 fence=$4 timeo=${5:-20}
  rm -rf $EXPORT/$name; mkdir -p $EXPORT/$name/data; rm -f /tmp/progA-$name /tmp/progB-$name
  cat > /tmp/inner.sh <<EOS
mkdir -p /tmp/mnt-$name
mount -t nfs -o vers=$vers,soft,timeo=$timeo,retrans=2 10.232.0.1:$NFS_SHARE/$name /tmp/mnt-$name || { echo mount failed: share=$NFS_SHARE server=$NFS_SERVER; ip addr; nsenter -t 1 -n $NFS_SERVER_CTL status; exit 1; }
node $W /tmp/mnt-$name/data/log A $mode 0 /tmp/progA-$name 2>/dev/null &
wp=\$!
sleep 1.5
nsenter -t 1 -n ip link set vh down
for i in 1 2 3 4 5 6 7 8; do sleep 0.5; echo "t+\$i/2 s: \$(ss -tnH dst 10.232.0.1 | awk '{print \$1, \$3}' | tr '\n' ' ')"; done
t0=\$(date +%s%N)
case $fence in
  none) ;;
  umountf) umount -f --no-canonicalize /tmp/mnt-$name ;;
  kill+umountf) kill -9 \$wp; for i in 1 2 3; do umount -f --no-canonicalize /tmp/mnt-$name; sleep 0.1; done ;;
esac
echo "after fence: \$(ss -tnH dst 10.232.0.1 | awk '{print \$1, \$3}' | tr '\n' ' ')"
echo "fence $fence took \$(( (\$(date +%s%N) - t0) / 1000000 )) ms"
sleep 1
nsenter -t 1 -n node $W $EXPORT/$name/data/log B fsync1 50 /tmp/progB-$name
nsenter -t 1 -n ip link set vh up
sleep 20
kill -9 \$wp 2>/dev/null
sleep 1
umount -f -l /tmp/mnt-$name
EOS
  timeout 120 ip netns exec cli bash /tmp/inner.sh
  node --input-type=module -e "
    import { durableRecords, verifyRound } from '$REPO/dist/test/partition/verify.js';
    import { readFileSync } from 'node:fs';
    const f = readFileSync('$EXPORT/$name/data/log', 'utf8');
    const d = durableRecords(readFileSync('/tmp/progA-$name', 'utf8'));
    const p = verifyRound(f, d, 50);
    console.log('RESULT $name vers=$vers timeo=$timeo mode=$mode fence=$fence:', p.length ? p.join('; ') : 'ok', '| A records', (f.match(/^A /gm)||[]).length, 'durable', d.size, '| A errors:', readFileSync('/tmp/progA-$name','utf8').split('\n').filter(l=>l.startsWith('e')).slice(0,3).join(','));
  "
}
for combo in "$@"; do run $combo; done
