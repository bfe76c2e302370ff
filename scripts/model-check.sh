#!/usr/bin/env bash
# Checks the Promela model of the Redlock client protocol (model/redlock.pml)
# with spin: installs spin and gcc (Debian packages) when missing, builds one
# verifier per check in a temporary directory (the repository is left as it
# was), runs it, and compares what spin found with what is expected. Prints
# one line per check and exits non-zero when any expectation fails.
# model/README.md explains the model, the checks and their bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$PWD/model/redlock.pml"

missing=()
command -v spin >/dev/null 2>&1 || missing+=(spin)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> ${missing[*]} missing: installing with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> $(spin -V)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
start=$(date +%s)

# check NAME EXPECT DEFINES [SEARCH]
#   EXPECT: "violation" (spin must find a counterexample) or "none" (the
#   whole bounded state space is searched and no assertion fails).
#   DEFINES: the -D options choosing the variant and the property.
#   SEARCH: "bfs" searches breadth-first, so that a counterexample is a
#   shortest one; the default is spin's depth-first search, which needs far
#   less memory. A counterexample's events are printed (spin -t replays the
#   trail; the model's printf lines mark the events).
check() {
  local name=$1 expect=$2 defines=$3 search=${4:-dfs}
  local dir="$work/$name"
  mkdir -p "$dir"
  cp "$model" "$dir/redlock.pml"
  local mode=""
  if [ "$search" = bfs ]; then mode="-DBFS"; fi
  (
    cd "$dir"
    # shellcheck disable=SC2086
    spin -a $defines redlock.pml >spin.out 2>&1
    gcc -O2 -DSAFETY -DMEMLIM=3000 $mode -o pan pan.c >gcc.out 2>&1
    ./pan -m100000 >pan.out 2>&1 || true
  ) || { echo "$name: could not build the verifier (see spin/gcc output below)"; cat "$dir"/*.out; failures=$((failures + 1)); return; }
  local out="$dir/pan.out"
  local errors stored seconds found verdict
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -n1)
  stored=$(awk '/states, stored/ { print $1; exit }' "$out")
  seconds=$(awk '/pan: elapsed time/ { print $4; exit }' "$out")
  if [ -z "$errors" ]; then
    found="no result"
  elif [ "$errors" -gt 0 ]; then
    found="violation"
  elif grep -qi -e 'out of memory' -e 'max search depth too small' -e 'search not completed' -e 'MEMLIM' "$out"; then
    found="incomplete"
  else
    found="none"
  fi
  if [ "$found" = "$expect" ]; then verdict="ok"; else verdict="FAILED"; failures=$((failures + 1)); fi
  printf '%-52s expected %-9s found %-10s %10s states %6ss  %s\n' \
    "$name" "$expect" "$found" "${stored:-?}" "${seconds:-?}" "$verdict"
  if [ "$verdict" = FAILED ]; then sed 's/^/    pan: /' "$out"; fi
  if [ "$found" = violation ]; then
    # shellcheck disable=SC2086
    (cd "$dir" && spin -t $defines redlock.pml) | sed -n 's/^ *MSC: /    trace: /p'
  fi
}

# 1. Without quarantine and without persistence, a node that restarts empty
#    votes for a second client while the first still holds the lock.
check "1 mutual exclusion, no quarantine, no persistence" violation \
  "-DQUARANTINE=0 -DPERSIST=0 -DFENCING=0 -DCHECK=1" bfs
# 2. The quarantine closes that hole: a restarted node votes again only once
#    every lock it may have forgotten has expired.
check "2 mutual exclusion, quarantine, no persistence" none \
  "-DQUARANTINE=1 -DPERSIST=0 -DFENCING=0 -DCHECK=1"
# 3. So does persistence: the restarted node still holds the key.
check "3 mutual exclusion, persistence, no quarantine" none \
  "-DQUARANTINE=0 -DPERSIST=1 -DFENCING=0 -DCHECK=1"
# 4. With persistence, fencing tokens strictly increase. (An extension keeps
#    the token and touches no counter: left out to keep the search short.)
check "4 fencing tokens increase, persistence" none \
  "-DQUARANTINE=0 -DPERSIST=1 -DFENCING=1 -DCHECK=2 -DEXTEND=0"
# 5. Without persistence a restart forgets the counter: a later client may
#    be handed a token already handed out, quarantine or not. The client
#    cannot prevent this; the counters must persist (documented).
check "5 fencing tokens repeat, no persistence, quarantine" violation \
  "-DQUARANTINE=1 -DPERSIST=0 -DFENCING=1 -DCHECK=2 -DEXTEND=0"

echo "==> model checks finished in $(($(date +%s) - start)) s"
if [ "$failures" -gt 0 ]; then
  echo "==> $failures check(s) did not find what was expected"
  exit 1
fi
echo "==> every check found what was expected"
