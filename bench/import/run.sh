#!/usr/bin/env bash
# Import benchmark: 100,000 generated leads from a SQLite file into a fresh SQLite target,
# with the release build, timed end to end (start-up and migrations included).
#
#   bench/import/run.sh            # 100,000 rows
#   ROWS=20000 bench/import/run.sh
#
# The goal is under 10 s for 100,000 rows on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${ROWS:-100000}
BATCH=${BATCH:-1000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release --locked --quiet
python3 bench/import/make_source.py "$WORK/leads.db" "$ROWS"
: > "$WORK/gatehouse.toml"

start=$(date +%s.%N)
./target/release/gatehouse --config "$WORK/gatehouse.toml" \
  --database "sqlite://$WORK/gatehouse.db" \
  import-leads --from "sqlite://$WORK/leads.db" --batch "$BATCH" >"$WORK/out.txt" 2>"$WORK/err.txt"
end=$(date +%s.%N)

sed -n '/^summary/,$p' "$WORK/out.txt"
awk -v s="$start" -v e="$end" -v n="$ROWS" -v b="$BATCH" 'BEGIN {
  t = e - s
  printf "import-leads: %d rows in %.2f s = %.0f rows/s (release, SQLite -> SQLite, batch %s)\n", n, t, n / t, b
}'
