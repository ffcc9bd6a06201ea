-- wrk reporter for bench/proxy/run.sh: after wrk's own summary, prints one machine-readable
-- line. Latencies are in microseconds. wrk only counts statuses >= 400 as errors (http_err),
-- so run.sh checks each case's status with curl before measuring it, and for Gatehouse
-- compares the requests wrk completed with gatehouse_proxied_requests_total.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect_err=%d read_err=%d write_err=%d timeout_err=%d http_err=%d\n",
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
