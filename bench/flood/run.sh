#!/usr/bin/env bash
# Login flood: Gatehouse's memory and proxy latency while FLOOD concurrent bogus sign-ins
# (unknown usernames, so every one costs a full argon2 hash with the default OWASP
# parameters) arrive from 127.0.0.1. Prints idle RSS, peak RSS during the flood, RSS after
# it, and the proxied p99 (wrk on a public route) without and during the flood.
# Results go to bench/results/flood-<time>/. See bench/README.md.
#
# Settings (environment):
#   FLOOD=200            concurrent bogus sign-ins (threads of bench/flood/flood.py)
#   DURATION=20          seconds of flood (wrk runs for the middle WRK_DURATION of it)
#   WRK_DURATION=10s  CONNECTIONS=16  WRK_THREADS=1
#   SETTLE=8             seconds of quiet before "idle" and after the flood before "after" is
#                        read (more than the 5 s after which hashing threads free their memory)
#   PORT_BASE=18180      upstream on +1, Gatehouse on +3 (127.0.0.1)
#   SKIP_BUILD=1         use the existing release binaries
#   EXTRA_TOML='...'     appended to Gatehouse's [security] (e.g. 'hash_concurrency = 2')
#   DB_CONNECTIONS=8     database.max_connections (each SQLite connection the pool opens
#                        under the flood keeps its page cache until it idles out, 10 min)
set -euo pipefail

FLOOD=${FLOOD:-200}
DURATION=${DURATION:-20}
WRK_DURATION=${WRK_DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-1}
SETTLE=${SETTLE:-8}
PORT_BASE=${PORT_BASE:-18180}
UP_PORT=$((PORT_BASE + 1))
GH_PORT=$((PORT_BASE + 3))

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/flood-$STAMP"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
die() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}

command -v wrk >/dev/null || {
  echo "installing wrk (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
}
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin gatehouse --example bench_upstream)
fi
GATEHOUSE="$ROOT/target/release/gatehouse"
UPSTREAM="$ROOT/target/release/examples/bench_upstream"
[ -x "$GATEHOUSE" ] && [ -x "$UPSTREAM" ] || die "release binaries missing; run without SKIP_BUILD"

WORK=$(mktemp -d /tmp/gatehouse-flood.XXXXXX)
PIDS=()
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$UP_PORT" "$GH_PORT"; do
  port_free "$p" || die "127.0.0.1:$p is in use; set PORT_BASE to another value"
done
wait_http() {
  local i
  for i in $(seq 1 150); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "nothing answers at $1"
}

"$UPSTREAM" "127.0.0.1:$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$UP_PORT/"

# Default argon2 parameters (19 MiB, 2 passes) and hash_concurrency; the per-address sign-in
# throttle is opened wide, or the flood from one address would be answered 429 after ten
# failures and never reach the hasher (which is what this measures).
cat >"$WORK/gatehouse.toml" <<TOML
[server]
listen = "127.0.0.1:$GH_PORT"
data_dir = "$WORK/gh-data"
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[database]
url = "sqlite://$WORK/gh-data/gatehouse.db"
max_connections = ${DB_CONNECTIONS:-8}
[security]
login_attempts_per_ip = 1000000
${EXTRA_TOML:-}

[[routes]]
path = "/pub/**"
access = "public"
[[routes]]
path = "/app/**"
TOML
PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$PASSWORD" | "$GATEHOUSE" --config "$WORK/gatehouse.toml" --log warn \
  user create --username bench --email bench@example.com --password-stdin >"$WORK/user-create.log" 2>&1 ||
  die "user create failed: $(cat "$WORK/user-create.log")"
"$GATEHOUSE" --config "$WORK/gatehouse.toml" --log warn serve >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
GH="http://127.0.0.1:$GH_PORT"
wait_http "$GH/_auth/health"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$GH_PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
metric() { curl -s "$GH/_auth/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

# One real sign-in (timed) and a short proxied warm-up, so that "idle" includes what any
# running server has touched once; "warm" is read at once (the hashing buffer still held),
# "idle" after SETTLE seconds of quiet.
sign_in_seconds() {
  local jar csrf
  jar=$(mktemp "$WORK/jar.XXXXXX")
  csrf=$(curl -s -c "$jar" "$GH/_auth/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | sed -n 1p)
  curl -s -o /dev/null -w '%{http_code} %{time_total}' -b "$jar" -c "$jar" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "username=bench" \
    --data-urlencode "password=$PASSWORD" --data-urlencode "next=/app/" "$GH/_auth/login"
}
first=$(sign_in_seconds)
[ "${first%% *}" = 303 ] || die "sign-in answered ${first%% *}, not 303"
wrk -t1 -c4 -d2s "$GH/pub/hello" >/dev/null
WARM=$(rss_kib)
sleep "$SETTLE"
IDLE=$(rss_kib)

wrk_p99() { # → "p99_ms req_per_s" for one wrk run on the public route
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WRK_DURATION" --latency "$GH/pub/hello" >"$WORK/$1.wrk" 2>&1
  awk '/^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; p = v }
       /^Requests\/sec/ { r = $2 } END { printf "%.2f %d", p, r }' "$WORK/$1.wrk"
}
read -r BASE_P99 BASE_RPS <<<"$(wrk_p99 baseline)"

# The flood, with RSS sampled every 100 ms and wrk running in its middle.
VERIFIED0=$(metric gatehouse_password_verifications_total)
: >"$WORK/rss.samples"
( while kill -0 "$GH_PID" 2>/dev/null; do rss_kib >>"$WORK/rss.samples"; sleep 0.1; done ) &
SAMPLER=$!
PIDS+=("$SAMPLER")
python3 "$ROOT/bench/flood/flood.py" "$GH" "$FLOOD" "$DURATION" >"$WORK/flood.json" 2>"$WORK/flood.log" &
FLOOD_PID=$!
PIDS+=("$FLOOD_PID")
sleep 3
read -r FLOOD_P99 FLOOD_RPS <<<"$(wrk_p99 during)"
DURING_SIGN_IN=$(sign_in_seconds)
wait "$FLOOD_PID" || die "flood client failed: $(cat "$WORK/flood.log")"
PEAK=$(sort -n "$WORK/rss.samples" | tail -1)
sleep "$SETTLE"
AFTER=$(rss_kib)
kill "$SAMPLER" 2>/dev/null || true

say "login flood: $FLOOD concurrent bogus sign-ins for ${DURATION}s from 127.0.0.1; $(nproc) cores"
say "gatehouse: default argon2 (19 MiB, t=2, p=1), hash_concurrency default, database.max_connections ${DB_CONNECTIONS:-8}${EXTRA_TOML:+ + $EXTRA_TOML}"
say "flood client: $(cat "$WORK/flood.json")"
say "real sign-ins verified during the flood (metric): $(( $(metric gatehouse_password_verifications_total) - VERIFIED0 ))"
say ""
say "RSS warm (just used): $(mib "$WARM") MiB"
say "RSS idle:            $(mib "$IDLE") MiB"
say "RSS peak (flood):    $(mib "$PEAK") MiB   (+$(mib $((PEAK - IDLE))) MiB; target <= +64)"
say "RSS after (+${SETTLE}s):    $(mib "$AFTER") MiB   (+$(mib $((AFTER - IDLE))) MiB; target <= +10)"
say ""
say "proxied GET /pub/hello, wrk -t$WRK_THREADS -c$CONNECTIONS -d$WRK_DURATION:"
say "  without flood: p99 ${BASE_P99} ms, ${BASE_RPS} req/s"
say "  during flood:  p99 ${FLOOD_P99} ms, ${FLOOD_RPS} req/s"
say "a real sign-in: $(echo "$first" | awk '{ printf "%.3f s", $2 }') idle, $(echo "$DURING_SIGN_IN" | awk '{ printf "%.3f s (status %s)", $2, $1 }') during the flood"
