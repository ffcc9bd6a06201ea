#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the same figure whatever
# else the machine is doing, so two builds can be compared on a busy machine, and a function's
# share (inclusive, with its callees) can be read from the call graph. The kernel's part
# (system calls) is not counted; `PERF=1 bench/proxy/run.sh` counts those.
#
#   bench/proxy/instructions.sh                          # `dist` build of this checkout
#   PROFILE=release bench/proxy/instructions.sh          # the faster-building profile
#   GATEHOUSE_BIN=/tmp/old/gatehouse bench/proxy/instructions.sh
#   N=20000 CONC=16 bench/proxy/instructions.sh
#   GH_LOG='info,sqlx=warn' bench/proxy/instructions.sh   # the default log filter (default here: warn)
#
# Runs Gatehouse (server.workers = 1, one tokio thread) under `valgrind --tool=callgrind` in
# front of examples/bench_upstream, signs in, warms up, then counts N keep-alive requests of
# `ab` for (c) the public route without a cookie and (d) the authenticated route with the
# session cookie, and prints instructions per request for each, with the top functions.
# Needs valgrind and ab (Debian: valgrind, apache2-utils). All traffic stays on 127.0.0.1.
set -euo pipefail

N=${N:-20000}
CONC=${CONC:-16}
PORT_BASE=${PORT_BASE:-18180}
UP_PORT=$((PORT_BASE + 1))
GH_PORT=$((PORT_BASE + 3))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-dist}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/instructions-$STAMP"
mkdir -p "$OUT"

for tool in valgrind ab curl; do
  command -v "$tool" >/dev/null || {
    echo "instructions: $tool is missing (Debian: valgrind, apache2-utils, curl)" >&2
    exit 1
  }
done
if [ -z "${GATEHOUSE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --profile "$PROFILE" --quiet --bin gatehouse --example bench_upstream)
fi
GATEHOUSE=${GATEHOUSE_BIN:-$ROOT/target/$PROFILE/gatehouse}
UPSTREAM=${UPSTREAM_BIN:-$ROOT/target/$PROFILE/examples/bench_upstream}

WORK=$(mktemp -d /tmp/gatehouse-instr.XXXXXX)
PIDS=()

die() {
  echo "instructions: $*" >&2
  exit 1
}
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

TOKIO_WORKER_THREADS=1 "$UPSTREAM" "127.0.0.1:$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

write_gatehouse_toml "$WORK/gatehouse.toml" "$GH_PORT" 1 "$UP_PORT" "sqlite://$WORK/gh-data/gatehouse.db" "$WORK/gh-data"
PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$PASSWORD" | "$GATEHOUSE" --config "$WORK/gatehouse.toml" --log warn \
  user create --username bench --email bench@example.com --password-stdin >"$WORK/user-create.log" 2>&1

TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$OUT/callgrind.out.%p" \
  "$GATEHOUSE" --config "$WORK/gatehouse.toml" --log "${GH_LOG:-warn}" serve >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
GH="http://127.0.0.1:$GH_PORT"
wait_http "$GH/_auth/health" 600

SESSION=$(sign_in "$GH" bench "$PASSWORD" "$WORK/cookies.txt")


measure() { # case url [header]
  local c=$1 url=$2 args=(-k -q -n "$N" -c "$CONC")
  [ -n "${3:-}" ] && args+=(-H "$3")
  ab -k -q -n 2000 -c "$CONC" ${3:+-H "$3"} "$url" >/dev/null 2>&1 # warm-up, not counted
  drain_audit "$GH" >/dev/null
  callgrind_control -z "$GH_PID" >/dev/null 2>&1
  callgrind_control -i on "$GH_PID" >/dev/null 2>&1
  ab "${args[@]}" "$url" >"$OUT/ab-$c.txt" 2>&1
  drain_audit "$GH" >/dev/null
  callgrind_control -i off "$GH_PID" >/dev/null 2>&1
  callgrind_control -d "case-$c" "$GH_PID" >/dev/null 2>&1
  local failed
  failed=$(awk '/^Failed requests:/ { print $3 }' "$OUT/ab-$c.txt")
  [ "${failed:-1}" = 0 ] || { echo "instructions: ab reported failures for ($c), see $OUT/ab-$c.txt" >&2; exit 1; }
}

measure c "$GH/pub/hello"
measure d "$GH/app/hello" "Cookie: gatehouse_session=$SESSION"

echo "# instructions per request, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($GATEHOUSE), N=$N, ab -k -c$CONC" | tee "$OUT/summary.txt"
declare -A IR
dump=0
for c in c d; do
  # callgrind numbers its dumps in order: (c)'s is .1, (d)'s .2.
  dump=$((dump + 1))
  f="$OUT/callgrind.out.$GH_PID.$dump"
  total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 } END { print t + 0 }')
  IR[$c]=$total
  printf '(%s) %s instructions/request\n' "$c" "$(awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f", t / n }')" | tee -a "$OUT/summary.txt"
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n 1,60p >"$OUT/top-inclusive-$c.txt"
  callgrind_annotate "$f" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n 1,60p >"$OUT/top-self-$c.txt"
done
printf '(d) - (c): %s instructions/request\n' "$(awk -v a="${IR[d]}" -v b="${IR[c]}" -v n="$N" 'BEGIN { printf "%.0f", (a - b) / n }')" | tee -a "$OUT/summary.txt"
echo "call graphs: callgrind_annotate --inclusive=yes $OUT/callgrind.out.*" | tee -a "$OUT/summary.txt"
