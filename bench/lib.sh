# Shell helpers shared by the benchmark scripts (sourced, not run). Each script defines `die`.

# Stops the processes the script started (PIDS) and keeps their logs (WORK/*.log) in OUT.
stop_started() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
}

# The EXIT trap of a script with nothing else to undo: stop_started, then drop WORK.
bench_cleanup() {
  stop_started
  rm -rf "$WORK"
}

# Writes the proxy benchmarks' Gatehouse configuration: the public route /pub/** and the
# signed-in route /app/**, in front of the bench upstream.
write_gatehouse_toml() { # FILE PORT WORKERS UPSTREAM_PORT DATABASE_URL DATA_DIR
  cat >"$1" <<EOF
[server]
listen = "127.0.0.1:$2"
data_dir = "$6"
workers = $3
[upstream]
url = "http://127.0.0.1:$4"
[database]
url = "$5"

[[routes]]
path = "/pub/**"
access = "public"
[[routes]]
path = "/app/**"
EOF
}

# Waits until URL answers at all, for up to TRIES tenths of a second (default 150).
wait_http() { # URL [TRIES]
  local i
  for i in $(seq 1 "${2:-150}"); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "nothing answers at $1"
}

# Signs in like a browser (the form gives a CSRF token and cookie, the POST a session cookie)
# and prints the session cookie's value.
sign_in() { # BASE_URL USERNAME PASSWORD JAR
  local csrf code session
  csrf=$(curl -s -c "$4" "$1/_auth/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | sed -n 1p)
  [ -n "$csrf" ] || die "no csrf_token on $1/_auth/login"
  code=$(curl -s -o /dev/null -w '%{http_code}' -b "$4" -c "$4" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "username=$2" \
    --data-urlencode "password=$3" "$1/_auth/login")
  [ "$code" = 303 ] || die "sign-in answered $code, not 303"
  session=$(awk '$6 == "gatehouse_session" { print $7 }' "$4")
  [ -n "$session" ] || die "sign-in set no gatehouse_session cookie"
  printf '%s' "$session"
}

# Waits until Gatehouse at BASE_URL has written (or dropped) every queued activity row, for at
# most 60 s; prints the seconds it took.
drain_audit() { # BASE_URL
  local start m q w
  start=$(date +%s.%N)
  for _ in $(seq 1 600); do
    m=$(curl -s "$1/_auth/metrics")
    q=$(awk '$1 == "gatehouse_activity_queued_total" { print $2 }' <<<"$m")
    w=$(awk '$1 == "gatehouse_activity_written_total" || $1 == "gatehouse_activity_dropped_total" { s += $2 } END { print s + 0 }' <<<"$m")
    [ "${q:-0}" -le "$w" ] && break
    sleep 0.1
  done
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
