# Sourced by the test runners (test/run-all.sh, test/nfs/in-guest.sh): `stage NAME COMMAND...` runs
# one stage of the suite, prints its name and duration, and sets status=1 if it failed.
status=${status:-0}
stage() {
  local name=$1 start=$SECONDS; shift
  echo "=== $name"
  "$@" || status=1
  echo "=== $name took $((SECONDS - start)) s"
}
