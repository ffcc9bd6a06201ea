#!/usr/bin/env bash
# Change-feed lag: how long after a change is committed in another process a running server
# enforces it, over N changes, on SQLite and (when GATEHOUSE_TEST_POSTGRES_URL is set) on
# PostgreSQL. Prints p50/p95/max per backend. See bench/README.md.
#
#   bench/feed/run.sh                                   # SQLite only
#   GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/feed/run.sh
#   N=1000 bench/feed/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export GATEHOUSE_FEED_BENCH_N="${N:-200}"
# The dev profile, like the test suite: the lag is dominated by the poll interval and the
# NOTIFY round trip, not by code speed.
cargo test --test it feed::feed_lag_bench -- --ignored --nocapture --test-threads 1 2>&1 \
    | grep -oE 'feed lag.*|test result.*|panicked.*'
