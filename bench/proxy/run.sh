#!/usr/bin/env bash
# Proxy benchmark: the same wrk load, in one run, against one upstream reached
#   (a) directly, (b) through nginx, (c) through Gatehouse on a public route and
#   (d) through Gatehouse on an authenticated route with a valid session cookie, and
#   (e) through nginx with `auth_request` to a free auth service (a second bench upstream
#       answering 204), the forward-auth pattern's upper bound.
# Prints req/s, p50 and p99 per case (median of REPEAT rounds) and the ratios the proxy issue
# sets targets for; writes everything to bench/results/proxy-<time>/. See bench/README.md.
#
# Settings (environment):
#   DURATION=10s  CONNECTIONS=64  WRK_THREADS=2   wrk load per measurement
#   REPEAT=3                                      rounds; each round runs a, b, c, d in turn
#   THREADS=<cores>                               Gatehouse tokio workers = nginx workers
#   UPSTREAM_THREADS=<cores>                      tokio workers of the bench upstream
#   PORT_BASE=18080                               ports PORT_BASE+1..+3 on 127.0.0.1
#   PROFILE=dist                                  Cargo profile built and measured (`dist`: what
#                                                 ships, whole-program LTO; `release` builds faster)
#   SKIP_BUILD=1                                  use the existing binaries of PROFILE
#   GATEHOUSE_BIN=..., UPSTREAM_BIN=...           other binaries (e.g. a saved build, to
#                                                 compare before and after; implies SKIP_BUILD)
#   RATES="5000 10000"  RATE_DURATION=8s          also, per case, fixed-rate runs with oha
#                                                 (-q RATE --latency-correction, CONNECTIONS
#                                                 connections): p99 below saturation; needs
#                                                 oha (cargo install oha); empty skips them
#   LAT_DURATION=5s                               per-case run at 1 connection, for latency
#                                                 without queueing (0 skips it)
#   GH_WORKERS=<THREADS>                          Gatehouse's server.workers (0: one shared
#                                                 multi-threaded runtime)
#   EXTRA_TOML='[audit]\non_full = "drop"'         appended to Gatehouse's config (experiments)
#   BASE_BIN=/path/to/old/gatehouse              also run that build (the one before a change),
#                                                 side by side as cases (C) and (D) in the same
#                                                 rounds: on a machine whose speed drifts between
#                                                 runs, before and after from one run
#   PERF=1                                        also profile Gatehouse with `perf` during one
#                                                 extra (c) and (d) run each
#   DB=postgres  PG_URL=postgres://postgres@127.0.0.1:5432/test
#                                                 Gatehouse on PostgreSQL (a fresh schema)
#                                                 instead of SQLite
#   ALLOCS=1                                      also count the proxies' heap allocations per
#                                                 request (perf uprobes on malloc & co.; root)
#   LAYOUT=shared|pinned                          shared (default): every process may run on
#                                                 every core. pinned: the proxy under test and
#                                                 all its threads on core PROXY_CPU (default the
#                                                 last), wrk, upstream and auth service on the
#                                                 others; THREADS=1 (nginx 1 worker, Gatehouse
#                                                 workers = 1), upstream 1 thread, wrk 1 thread
#   GH_LOG=warn                                   Gatehouse's log filter while serving (`info,sqlx=warn`
#                                                 is the product's default: it adds the request span)
set -euo pipefail

LAYOUT=${LAYOUT:-shared}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
REPEAT=${REPEAT:-3}
LAT_DURATION=${LAT_DURATION:-5s}
RATES=${RATES:-}
RATE_DURATION=${RATE_DURATION:-8s}
CORES=$(nproc)
# PIN_PROXY and PIN_LOAD prefix the commands that start the proxies and the load side.
PIN_PROXY=()
PIN_LOAD=()
case "$LAYOUT" in
  shared)
    WRK_THREADS=${WRK_THREADS:-2}
    THREADS=${THREADS:-$CORES}
    UPSTREAM_THREADS=${UPSTREAM_THREADS:-$CORES}
    ;;
  pinned)
    [ "$CORES" -ge 2 ] || { echo "bench: LAYOUT=pinned needs at least 2 cores" >&2; exit 1; }
    command -v taskset >/dev/null || { echo "bench: LAYOUT=pinned needs taskset (util-linux)" >&2; exit 1; }
    PROXY_CPU=${PROXY_CPU:-$((CORES - 1))}
    LOAD_CPUS=${LOAD_CPUS:-$(seq 0 $((CORES - 1)) | grep -vx "$PROXY_CPU" | paste -sd,)}
    PIN_PROXY=(taskset -c "$PROXY_CPU")
    PIN_LOAD=(taskset -c "$LOAD_CPUS")
    WRK_THREADS=${WRK_THREADS:-1}
    THREADS=${THREADS:-1}
    UPSTREAM_THREADS=${UPSTREAM_THREADS:-1}
    ;;
  *)
    echo "bench: LAYOUT must be shared or pinned, not '$LAYOUT'" >&2
    exit 1
    ;;
esac
GH_WORKERS=${GH_WORKERS:-$THREADS}
PORT_BASE=${PORT_BASE:-18080}
UP_PORT=$((PORT_BASE + 1))
NGINX_PORT=$((PORT_BASE + 2))
GH_PORT=$((PORT_BASE + 3))
AUTH_PORT=$((PORT_BASE + 4))
NGINX_AUTH_PORT=$((PORT_BASE + 5))
# Same length, same upstream answer; only Gatehouse's route rules tell them apart.
PUBLIC_PATH=/pub/hello
PRIVATE_PATH=/app/hello

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-dist}
HERE="$ROOT/bench/proxy"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/proxy-$LAYOUT-$STAMP"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
die() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null
  }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${GATEHOUSE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --profile "$PROFILE" --quiet --bin gatehouse --example bench_upstream)
fi
GATEHOUSE=${GATEHOUSE_BIN:-$ROOT/target/$PROFILE/gatehouse}
UPSTREAM=${UPSTREAM_BIN:-$ROOT/target/$PROFILE/examples/bench_upstream}
[ -x "$GATEHOUSE" ] && [ -x "$UPSTREAM" ] || die "binaries of profile $PROFILE missing; run without SKIP_BUILD"

# --- processes, cleaned up on any exit ------------------------------------------------------
# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  # Keep the logs next to the results, then drop the temp dir (database included).
  stop_started
  [ -z "${PG_DROP:-}" ] || psql -q "$PG_URL" -c "DROP SCHEMA $PG_DROP CASCADE" >/dev/null 2>&1 || true
  cp "$WORK"/nginx/*.log "$OUT"/ 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$UP_PORT" "$NGINX_PORT" "$GH_PORT" "$AUTH_PORT" "$NGINX_AUTH_PORT"; do
  port_free "$p" || die "127.0.0.1:$p is in use; set PORT_BASE to another value"
done

# (a) the upstream
TOKIO_WORKER_THREADS=$UPSTREAM_THREADS "${PIN_LOAD[@]}" "$UPSTREAM" "127.0.0.1:$UP_PORT" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_http "http://127.0.0.1:$UP_PORT/"
# (e)'s auth service: the same server answering every request with an empty 204, i.e. an
# authorisation that costs nothing; it runs beside the upstream, off the proxy's core.
TOKIO_WORKER_THREADS=$UPSTREAM_THREADS "${PIN_LOAD[@]}" "$UPSTREAM" "127.0.0.1:$AUTH_PORT" 204 >"$WORK/auth-service.log" 2>&1 &
AUTH_PID=$!
PIDS+=("$AUTH_PID")
wait_http "http://127.0.0.1:$AUTH_PORT/"

# (b) nginx: plain reverse proxy, keepalive pool to the upstream, as many workers as
# Gatehouse has threads. As root it is run as `nobody` so that it is an unprivileged process.
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    upstream bench_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
    # (e) forward auth as Authelia / oauth2-proxy setups do it: every request first asks the
    # auth service (here a free one that always answers 204), then goes to the upstream.
    upstream bench_auth {
        server 127.0.0.1:$AUTH_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_AUTH_PORT;
        location / {
            auth_request /_forward_auth;
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
        location = /_forward_auth {
            internal;
            proxy_pass http://bench_auth;
            proxy_pass_request_body off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
        }
    }
}
EOF
AS_USER=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
  chown -R nobody "$WORK/nginx"
  AS_USER=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
"${PIN_PROXY[@]}" "${AS_USER[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/nginx-error.log" \
  -g 'daemon off;' &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/"

# (c, d) Gatehouse: one public and one authenticated route; SQLite in the temp dir (or, with
# DB=postgres, a fresh schema in PG_URL's database, dropped at the end); [audit] left at its
# defaults.
DB_URL="sqlite://$WORK/gh-data/gatehouse.db"
if [ "${DB:-sqlite}" = postgres ]; then
  command -v psql >/dev/null || die "DB=postgres needs psql"
  PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
  PG_SCHEMA="bench_$(date +%s)_$$"
  psql -q "$PG_URL" -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null || die "cannot create schema $PG_SCHEMA in $PG_URL"
  PG_DROP="$PG_SCHEMA"
  case "$PG_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  DB_URL="$PG_URL${sep}options=-csearch_path%3D$PG_SCHEMA"
fi
write_gatehouse_toml "$WORK/gatehouse.toml" "$GH_PORT" "$GH_WORKERS" "$UP_PORT" "$DB_URL" "$WORK/gh-data"
[ -z "${EXTRA_TOML:-}" ] || printf '\n%b\n' "$EXTRA_TOML" >>"$WORK/gatehouse.toml"
PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$PASSWORD" | "$GATEHOUSE" --config "$WORK/gatehouse.toml" --log warn \
  user create --username bench --email bench@example.com --password-stdin >"$WORK/user-create.log" 2>&1 ||
  die "user create failed: $(cat "$WORK/user-create.log")"
TOKIO_WORKER_THREADS=$THREADS "${PIN_PROXY[@]}" "$GATEHOUSE" --config "$WORK/gatehouse.toml" --log "${GH_LOG:-warn}" serve \
  >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
GH="http://127.0.0.1:$GH_PORT"
wait_http "$GH/_auth/health"

SESSION=$(sign_in "$GH" bench "$PASSWORD" "$WORK/cookies.txt")
COOKIE="Cookie: gatehouse_session=$SESSION"

# (C, D) with BASE_BIN: the base build, the same way, on its own port and database (PostgreSQL:
# its own schema in the same server, since the two builds may not know the same migrations).
if [ -n "${BASE_BIN:-}" ]; then
  [ -x "$BASE_BIN" ] || die "BASE_BIN $BASE_BIN is not an executable"
  GHB_PORT=$((PORT_BASE + 6))
  DB_URL_B="sqlite://$WORK/ghb-data/gatehouse.db"
  if [ "${DB:-sqlite}" = postgres ]; then
    psql -q "$PG_URL" -c "CREATE SCHEMA ${PG_SCHEMA}_base" >/dev/null || die "cannot create schema ${PG_SCHEMA}_base"
    PG_DROP="$PG_DROP, ${PG_SCHEMA}_base"
    DB_URL_B="$PG_URL${sep}options=-csearch_path%3D${PG_SCHEMA}_base"
  fi
  write_gatehouse_toml "$WORK/gatehouse-base.toml" "$GHB_PORT" "$GH_WORKERS" "$UP_PORT" "$DB_URL_B" "$WORK/ghb-data"
  [ -z "${EXTRA_TOML:-}" ] || printf '\n%b\n' "$EXTRA_TOML" >>"$WORK/gatehouse-base.toml"
  printf '%s' "$PASSWORD" | "$BASE_BIN" --config "$WORK/gatehouse-base.toml" --log warn \
    user create --username bench --email bench@example.com --password-stdin >"$WORK/user-create-base.log" 2>&1 ||
    die "user create (base) failed: $(cat "$WORK/user-create-base.log")"
  TOKIO_WORKER_THREADS=$THREADS "${PIN_PROXY[@]}" "$BASE_BIN" --config "$WORK/gatehouse-base.toml" --log "${GH_LOG:-warn}" serve \
    >"$WORK/gatehouse-base.log" 2>&1 &
  GHB_PID=$!
  PIDS+=("$GHB_PID")
  GHB="http://127.0.0.1:$GHB_PORT"
  wait_http "$GHB/_auth/health"
  SESSION_B=$(sign_in "$GHB" bench "$PASSWORD" "$WORK/cookies-base.txt")
fi

# --- the cases ----------------------------------------------------------------------------
CASES=(a b e c d)
declare -A NAME URL HDR PROXY_PID
NAME[e]="nginx auth_request (204)"
URL[e]="http://127.0.0.1:$NGINX_AUTH_PORT$PUBLIC_PATH"
PROXY_PID[e]=$NGINX_PID
NAME[a]="direct to upstream"
URL[a]="http://127.0.0.1:$UP_PORT$PUBLIC_PATH"
NAME[b]="nginx, reverse proxy"
URL[b]="http://127.0.0.1:$NGINX_PORT$PUBLIC_PATH"
NAME[c]="gatehouse, public route"
URL[c]="$GH$PUBLIC_PATH"
NAME[d]="gatehouse, signed in"
URL[d]="$GH$PRIVATE_PATH"
HDR[d]="$COOKIE"
PROXY_PID[b]=$NGINX_PID
PROXY_PID[c]=$GH_PID
PROXY_PID[d]=$GH_PID
if [ -n "${BASE_BIN:-}" ]; then
  CASES+=(C D)
  NAME[C]="base build, public route"
  URL[C]="$GHB$PUBLIC_PATH"
  NAME[D]="base build, signed in"
  URL[D]="$GHB$PRIVATE_PATH"
  HDR[D]="Cookie: gatehouse_session=$SESSION_B"
  PROXY_PID[C]=$GHB_PID
  PROXY_PID[D]=$GHB_PID
fi

curl_case() { # case → "status body"
  local c=$1
  local args=(-s -w ' %{http_code}')
  [ -n "${HDR[$c]:-}" ] && args+=(-H "${HDR[$c]}")
  curl "${args[@]}" "${URL[$c]}"
}
expected=$(curl_case a)
for c in "${CASES[@]}"; do
  got=$(curl_case "$c")
  [ "$got" = "$expected" ] || die "case $c (${URL[$c]}) answered '$got', expected '$expected'"
done
denied=$(curl -s -o /dev/null -w '%{http_code}' "$GH$PRIVATE_PATH")
[ "$denied" != 200 ] || die "$PRIVATE_PATH answered 200 without a session: the route is not protected"

metric() { # name → value from /_auth/metrics (0 when this version has no such counter)
  curl -s "$GH/_auth/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}

# After every (d) run the script waits for the activity writer (`drain_audit`), so that no other
# case is measured while Gatehouse is still writing (d)'s rows; the time it takes is (d)'s
# deferred cost: reported, and inside (d)'s CPU per request.

# CPU time (ms, user + system; with CPU_FIELD=sys system only) used so far by a process and its
# children (nginx's workers).
HZ=$(getconf CLK_TCK)
cpu_ms() {
  local pids pid total=0 t expr='$12 + $13'
  [ "${CPU_FIELD:-}" = sys ] && expr='$13'
  pids="$1 $( (pgrep -P "$1" || true) | tr '\n' ' ')"
  for pid in $pids; do
    # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk "{ print $expr }") || t=0
    total=$((total + ${t:-0}))
  done
  echo $((total * 1000 / HZ))
}

run_wrk() { # case duration logfile [threads connections]
  local c=$1 d=$2 log=$3 t=${4:-$WRK_THREADS} n=${5:-$CONNECTIONS}
  local args=(-t"$t" -c"$n" -d"$d" --latency -s "$HERE/report.lua")
  [ -n "${HDR[$c]:-}" ] && args+=(-H "${HDR[$c]}")
  "${PIN_LOAD[@]}" wrk "${args[@]}" "${URL[$c]}" >"$log" 2>&1 || die "wrk failed for case $c: $(cat "$log")"
}

say "# Gatehouse proxy benchmark, $STAMP"
say "machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "gatehouse $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $($NGINX -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | sed -n 1p | cut -d' ' -f1-2)"
say "load: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency, $REPEAT rounds of ${CASES[*]}; gatehouse threads = nginx workers = $THREADS, gatehouse server.workers = $GH_WORKERS; upstream threads $UPSTREAM_THREADS"
say "database: ${DB:-sqlite}$([ -n "${PG_DROP:-}" ] && echo " (schema $PG_DROP; the PostgreSQL server itself is not pinned)")"
if [ "$LAYOUT" = pinned ]; then
  say "layout: pinned; proxies (all threads) on CPU $PROXY_CPU; wrk, upstream and auth service on CPU $LOAD_CPUS"
else
  say "layout: shared; every process on every core"
fi
[ -z "${EXTRA_TOML:-}" ] || say "extra gatehouse config: $(printf '%b' "$EXTRA_TOML" | tr '\n' ' ')"
say ""

# Warm-up: connection pools, session cache, allocator.
for c in "${CASES[@]}"; do
  run_wrk "$c" 2s "$OUT/warmup-$c.txt"
done
drain_audit "$GH" >/dev/null
sleep 1

q_before_all=$(metric gatehouse_db_queries_total)
d_queries=0 d_background=0 d_requests=0 d_proxied=0 d_misses=0
declare -A RPS P50 P99 ERRS UPCPU PXCPU PXSYS
BACKLOG=""
DRAIN=""
for r in $(seq 1 "$REPEAT"); do
  for c in "${CASES[@]}"; do
    log="$OUT/run$r-$c.txt"
    if [ "$c" = d ]; then
      q0=$(metric gatehouse_db_queries_total)
      g0=$(metric gatehouse_db_background_queries_total)
      p0=$(metric gatehouse_proxied_requests_total)
      m0=$(metric gatehouse_session_cache_misses_total)
    fi
    up0=$(cpu_ms "$UP_PID")
    px0=0
    [ -n "${PROXY_PID[$c]:-}" ] && px0=$(cpu_ms "${PROXY_PID[$c]}")
    sy0=0
    [ -n "${PROXY_PID[$c]:-}" ] && sy0=$(CPU_FIELD=sys cpu_ms "${PROXY_PID[$c]}")
    run_wrk "$c" "$DURATION" "$log"
    up1=$(cpu_ms "$UP_PID")
    # Rows still queued when the load stops are part of the signed-in case's cost: its CPU is
    # read once they are written.
    if [ "$c" = d ]; then
      backlog=$(($(metric gatehouse_activity_queued_total) - $(metric gatehouse_activity_written_total)))
      drain=$(drain_audit "$GH")
    elif [ "$c" = D ]; then
      drain_audit "$GHB" >/dev/null
    fi
    px1=0
    [ -n "${PROXY_PID[$c]:-}" ] && px1=$(cpu_ms "${PROXY_PID[$c]}")
    sy1=0
    [ -n "${PROXY_PID[$c]:-}" ] && sy1=$(CPU_FIELD=sys cpu_ms "${PROXY_PID[$c]}")
    line=$(grep '^BENCH ' "$log") || die "no result line in $log"
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    RPS[$c]+="$(get rps) "
    P50[$c]+="$(get p50_us) "
    P99[$c]+="$(get p99_us) "
    n=$(get requests)
    UPCPU[$c]+="$(awk -v t="$((up1 - up0))" -v n="$n" 'BEGIN { printf "%.1f", t * 1000 / n }') "
    PXCPU[$c]+="$(awk -v t="$((px1 - px0))" -v n="$n" 'BEGIN { printf "%.1f", t * 1000 / n }') "
    PXSYS[$c]+="$(awk -v t="$((sy1 - sy0))" -v n="$n" 'BEGIN { printf "%.1f", t * 1000 / n }') "
    errs=$(($(get connect_err) + $(get read_err) + $(get write_err) + $(get timeout_err) + $(get http_err)))
    ERRS[$c]=$((${ERRS[$c]:-0} + errs))
    if [ "$c" = d ]; then
      q1=$(metric gatehouse_db_queries_total)
      g1=$(metric gatehouse_db_background_queries_total)
      d_background=$((d_background + g1 - g0))
      p1=$(metric gatehouse_proxied_requests_total)
      m1=$(metric gatehouse_session_cache_misses_total)
      d_queries=$((d_queries + q1 - q0))
      d_proxied=$((d_proxied + p1 - p0))
      d_misses=$((d_misses + m1 - m0))
      d_requests=$((d_requests + $(get requests)))
      BACKLOG+="$backlog "
      DRAIN+="$drain "
    fi
    printf '  round %s  %s  %-24s %9s req/s  p50 %6s us  p99 %6s us  proxy CPU %5s us/req  errors %s\n' \
      "$r" "$c" "${NAME[$c]}" "$(get rps)" "$(get p50_us)" "$(get p99_us)" \
      "$(awk -v t="$((px1 - px0))" -v n="$n" 'BEGIN { printf "%.1f", t * 1000 / n }')" "$errs" | tee -a "$SUMMARY"
  done
done

# Latency without queueing: one connection, one request at a time.
declare -A L50 L99
if [ "$LAT_DURATION" != 0 ]; then
  for r in $(seq 1 "$REPEAT"); do
    for c in "${CASES[@]}"; do
      log="$OUT/lat$r-$c.txt"
      run_wrk "$c" "$LAT_DURATION" "$log" 1 1
      line=$(grep '^BENCH ' "$log") || die "no result line in $log"
      L50[$c]+="$(sed -n 's/.* p50_us=\([^ ]*\).*/\1/p' <<<"$line") "
      L99[$c]+="$(sed -n 's/.* p99_us=\([^ ]*\).*/\1/p' <<<"$line") "
    done
  done
fi

# Latency below saturation: the same fixed rate for every case, latency-corrected (a request
# is timed from when it was due, so a stall counts for every request it delayed).
declare -A R99
if [ -n "$RATES" ]; then
  OHA=$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")
  [ -x "$OHA" ] || die "RATES needs oha (cargo install oha)"
  for r in $(seq 1 "$REPEAT"); do
    for q in $RATES; do
      for c in "${CASES[@]}"; do
        log="$OUT/rate$q-$r-$c.json"
        args=(-z "$RATE_DURATION" -q "$q" -c "$CONNECTIONS" --latency-correction --no-tui --output-format json)
        [ -n "${HDR[$c]:-}" ] && args+=(-H "${HDR[$c]}")
        "${PIN_LOAD[@]}" "$OHA" "${args[@]}" "${URL[$c]}" >"$log" 2>"$log.err" || die "oha failed for case $c: $(cat "$log.err")"
        p99=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["latencyPercentiles"]["p99"]*1e6))' "$log")
        R99[$q,$c]+="$p99 "
        [ "$c" = d ] && drain_audit "$GH" >/dev/null
        [ "$c" = D ] && drain_audit "$GHB" >/dev/null
      done
    done
  done
fi

# Heap allocations per request: uprobes on the C library's allocation functions (Rust's
# system allocator calls them), counted by `perf stat` on the proxy process only, over one more
# run per case. Needs perf and root (it defines the probes once; they stay defined).
if [ "${ALLOCS:-0}" = 1 ] && command -v perf >/dev/null; then
  LIBC=$(ldd "$GATEHOUSE" | awk '/libc\.so/ { print $3 }')
  events=()
  for fn in malloc calloc realloc posix_memalign aligned_alloc; do
    perf probe -q -x "$LIBC" "$fn" 2>/dev/null || true
    # (grep without -q: an early exit would fail the pipe under pipefail)
    if perf list 2>/dev/null | grep "probe_libc:$fn " >/dev/null; then events+=(-e "probe_libc:$fn"); fi
  done
  [ ${#events[@]} -gt 0 ] || die "ALLOCS=1: could not define uprobes on $LIBC"
  say "heap allocations per request (malloc, calloc, realloc, posix_memalign, aligned_alloc; proxy process only):"
  for c in b e c d; do
    pids=$(echo "${PROXY_PID[$c]} $(pgrep -P "${PROXY_PID[$c]}" || true)" | xargs | tr ' ' ',')
    perf stat -x, "${events[@]}" -p "$pids" -o "$OUT/allocs-$c.txt" &
    perf_pid=$!
    sleep 0.2
    run_wrk "$c" 5s "$OUT/allocs-run-$c.txt"
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    # (d)'s rows are written after the run: the writer's allocations belong to (d) too.
    if [ "$c" = d ]; then
      perf stat -x, "${events[@]}" -p "$pids" -o "$OUT/allocs-d-drain.txt" &
      perf_pid=$!
      sleep 0.2
      drain_audit "$GH" >/dev/null
      sleep 0.5
      kill -INT "$perf_pid" 2>/dev/null || true
      wait "$perf_pid" 2>/dev/null || true
    fi
    n=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$OUT/allocs-run-$c.txt")
    total=$(cat "$OUT/allocs-$c.txt" $([ "$c" = d ] && echo "$OUT/allocs-d-drain.txt") |
      awk -F, '$3 ~ /probe_libc/ { s += $1 } END { print s + 0 }')
    say "  ($c) ${NAME[$c]}: $(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.1f", t / n }') per request ($total in $n requests)"
  done
fi

if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  # System calls, futex calls (thread wake-ups and sleeps) and context switches per request,
  # for each proxy, over one more 10 s run each.
  say "perf stat, per request (proxy process and its threads/workers only):"
  for c in b c d; do
    pids=$(echo "${PROXY_PID[$c]} $(pgrep -P "${PROXY_PID[$c]}" || true)" | xargs | tr ' ' ',')
    perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_futex,context-switches \
      -p "$pids" -o "$OUT/perf-stat-$c.txt" &
    perf_pid=$!
    sleep 0.2
    run_wrk "$c" 10s "$OUT/perf-stat-run-$c.txt"
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    drain_audit "$GH" >/dev/null
    n=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$OUT/perf-stat-run-$c.txt")
    say "  ($c) $(awk -F, -v n="$n" '$3 ~ /sys_enter$|futex|context/ { name = $3; sub(/.*:/, "", name); printf "%s %.2f  ", name, $1 / n }' "$OUT/perf-stat-$c.txt")"
  done
  # One more 10 s run each of (c) and (d) with perf sampling Gatehouse: where its CPU goes,
  # by thread and by function (flat, self time).
  for c in c d; do
    perf record -F 999 ${PERF_RECORD_ARGS:-} -p "$GH_PID" -o "$OUT/perf-$c.data" -- sleep 8 >/dev/null 2>&1 &
    perf_pid=$!
    run_wrk "$c" 10s "$OUT/perf-run-$c.txt"
    wait "$perf_pid" || true
    drain_audit "$GH" >/dev/null
    perf report -i "$OUT/perf-$c.data" --no-children --sort comm --stdio \
      >"$OUT/perf-$c-threads.txt" 2>/dev/null || true
    perf report -i "$OUT/perf-$c.data" --no-children --sort dso,symbol --percent-limit 0.3 --stdio \
      >"$OUT/perf-$c-symbols.txt" 2>/dev/null || true
    say "perf ($c): CPU by thread, then the top functions (self time); full reports in $OUT"
    grep -v '^#' "$OUT/perf-$c-threads.txt" | awk 'NF' | sed -n 1,6p | tee -a "$SUMMARY"
    grep -v '^#' "$OUT/perf-$c-symbols.txt" | awk 'NF { $1 = $1; print "    " $0 }' | sed -n 1,30p | tee -a "$SUMMARY"
  done
fi

drain_audit "$GH" >/dev/null
metrics_end=$(curl -s "$GH/_auth/metrics")
printf '%s\n' "$metrics_end" >"$OUT/metrics-end.txt"
mend() { awk -v k="$1" '$1 == k { print $2 }' <<<"$metrics_end"; }

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | awk 'NF' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f..%.0f", lo, hi }'; }
declare -A MRPS MP50 MP99
for c in "${CASES[@]}"; do
  MRPS[$c]=$(median <<<"${RPS[$c]}")
  MP50[$c]=$(median <<<"${P50[$c]}")
  MP99[$c]=$(median <<<"${P99[$c]}")
done
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", x / y }'; }

say ""
say "## Results (median of $REPEAT; range of req/s in brackets)"
say ""
say "| case | req/s | p50 ms | p99 ms | req/s range | proxy CPU µs/req | of which system | upstream CPU µs/req | errors |"
say "|---|---:|---:|---:|---|---:|---:|---:|---:|"
for c in "${CASES[@]}"; do
  px="-"
  sy="-"
  [ -n "${PROXY_PID[$c]:-}" ] && px=$(median <<<"${PXCPU[$c]}") && sy=$(median <<<"${PXSYS[$c]}")
  say "| ($c) ${NAME[$c]} | $(printf '%.0f' "${MRPS[$c]}") | $(ms "${MP50[$c]}") | $(ms "${MP99[$c]}") | $(spread <<<"${RPS[$c]}") | $px | $sy | $(median <<<"${UPCPU[$c]}") | ${ERRS[$c]} |"
done
d_over_b=$(ratio "${MRPS[d]}" "${MRPS[b]}")
d_over_a=$(ratio "${MRPS[d]}" "${MRPS[a]}")
added_p99=$(awk -v d="${MP99[d]}" -v a="${MP99[a]}" 'BEGIN { printf "%.2f", (d - a) / 1000 }')
say ""
say "ratios (req/s): d/b = $d_over_b   d/a = $d_over_a   c/b = $(ratio "${MRPS[c]}" "${MRPS[b]}")   c/a = $(ratio "${MRPS[c]}" "${MRPS[a]}")"
say "p99 added by gatehouse over direct: (d) $added_p99 ms   (c) $(awk -v c="${MP99[c]}" -v a="${MP99[a]}" 'BEGIN { printf "%.2f", (c - a) / 1000 }') ms   (nginx: $(awk -v b="${MP99[b]}" -v a="${MP99[a]}" 'BEGIN { printf "%.2f", (b - a) / 1000 }') ms)"
say "targets: (d) >= (b) req/s: $(awk -v r="$d_over_b" 'BEGIN { print (r >= 1) ? "met" : "MISSED" }');  p99 added < 1 ms: $(awk -v p="$added_p99" 'BEGIN { print (p < 1) ? "met" : "MISSED" }')"
# Issue 17's figures: CPU per request against nginx's, and (d) against forward auth.
cpu_b=$(median <<<"${PXCPU[b]}")
cpu_c=$(median <<<"${PXCPU[c]}")
cpu_d=$(median <<<"${PXCPU[d]}")
cpu_e=$(median <<<"${PXCPU[e]}")
cpu_db=$(ratio "$cpu_d" "$cpu_b")
cpu_cb=$(ratio "$cpu_c" "$cpu_b")
d_over_e=$(ratio "${MRPS[d]}" "${MRPS[e]}")
verdict() { awk -v x="$1" -v op="$2" -v y="$3" 'BEGIN { ok = (op == "<=") ? (x <= y) : (x >= y); print ok ? "met" : "MISSED" }'; }
say "proxy CPU µs/req: (b) $cpu_b  (e) $cpu_e  (c) $cpu_c  (d) $cpu_d   activity row and session, (d) - (c): $(awk -v d="$cpu_d" -v c="$cpu_c" 'BEGIN { printf "%.1f", d - c }') µs"
say "CPU ratios: (d)/(b) = $cpu_db (target <= 1.5: $(verdict "$cpu_db" '<=' 1.5))   (c)/(b) = $cpu_cb (target <= 1.2: $(verdict "$cpu_cb" '<=' 1.2))   (e)/(b) = $(ratio "$cpu_e" "$cpu_b")"
say "req/s: (d)/(e) auth_request = $d_over_e (target >= 1: $(verdict "$d_over_e" '>=' 1))"
if [ -n "${BASE_BIN:-}" ]; then
  cpu_C=$(median <<<"${PXCPU[C]}")
  cpu_D=$(median <<<"${PXCPU[D]}")
  say "against the base build ($BASE_BIN), same rounds: (c) $cpu_C -> $cpu_c µs ($(ratio "$cpu_c" "$cpu_C")x), (d) $cpu_D -> $cpu_d µs ($(ratio "$cpu_d" "$cpu_D")x); req/s (c) $(ratio "${MRPS[c]}" "${MRPS[C]}")x, (d) $(ratio "${MRPS[d]}" "${MRPS[D]}")x"
fi
if [ "$LAT_DURATION" != 0 ]; then
  say ""
  say "## Latency at 1 connection (wrk -t1 -c1 -d$LAT_DURATION, median of $REPEAT)"
  say ""
  say "| case | p50 ms | p99 ms | p99 added over (a) ms |"
  say "|---|---:|---:|---:|"
  a99=$(median <<<"${L99[a]}")
  for c in "${CASES[@]}"; do
    l99=$(median <<<"${L99[$c]}")
    say "| ($c) ${NAME[$c]} | $(ms "$(median <<<"${L50[$c]}")") | $(ms "$l99") | $(awk -v x="$l99" -v a="$a99" 'BEGIN { printf "%.2f", (x - a) / 1000 }') |"
  done
fi
if [ -n "$RATES" ]; then
  say ""
  say "## Fixed rate (oha -q RATE -c $CONNECTIONS --latency-correction -z $RATE_DURATION, median p99 of $REPEAT)"
  say ""
  say "| rate | $(for c in "${CASES[@]}"; do printf '(%s) p99 ms | ' "$c"; done)(b) added | (e) added | (c) added | (d) added |"
  say "|---|$(for c in "${CASES[@]}"; do printf -- '---:|'; done)---:|---:|---:|---:|"
  for q in $RATES; do
    row="| $q/s |"
    for c in "${CASES[@]}"; do row+=" $(ms "$(median <<<"${R99[$q,$c]}")") |"; done
    a99=$(median <<<"${R99[$q,a]}")
    for c in b e c d; do
      row+=" +$(awk -v x="$(median <<<"${R99[$q,$c]}")" -v a="$a99" 'BEGIN { printf "%.2f", (x - a) / 1000 }') |"
    done
    say "$row"
  done
fi
say ""
say "## Gatehouse counters"
say "during the (d) runs: $d_requests requests completed by wrk, $d_proxied proxied, session cache misses $d_misses, db queries $d_queries ($(awk -v q="$d_queries" -v n="$d_requests" 'BEGIN { printf "%.5f", (n ? q / n : 0) }') per request), background-writer queries $d_background (batched activity rows and session touches; counted apart only by versions that have gatehouse_db_background_queries_total)"
say "db queries: $q_before_all before the measured rounds, $(mend gatehouse_db_queries_total) at the end; background $(mend gatehouse_db_background_queries_total) at the end"
say "activity: queued $(mend gatehouse_activity_queued_total), written $(mend gatehouse_activity_written_total), dropped $(mend gatehouse_activity_dropped_total); rows still queued at the end of each (d) run: ${BACKLOG% } (queue_capacity 65536), written in ${DRAIN% } s after it (inside (d)'s CPU; the next case waited)"
say "upstream errors: $(mend gatehouse_upstream_errors_total)"
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
say ""
say "results: $OUT"
