#!/usr/bin/env python3
"""Bounded login flood: CONCURRENCY threads, each posting bogus sign-ins to Gatehouse in a
loop (one keep-alive connection per thread) until DURATION seconds have passed. Prints one
line of JSON: requests sent, answers by status, and the client-side latency p50/p99.

usage: flood.py BASE_URL CONCURRENCY DURATION_SECONDS
Only for 127.0.0.1; no retries, no more than CONCURRENCY requests in flight at any time.
"""
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse

base = urllib.parse.urlparse(sys.argv[1])
concurrency = int(sys.argv[2])
duration = float(sys.argv[3])
assert base.hostname in ("127.0.0.1", "localhost", "::1"), "flood only loopback"


def conn():
    return http.client.HTTPConnection(base.hostname, base.port, timeout=120)


# One CSRF token and cookie, shared by every request (the token is bound to the cookie).
c = conn()
c.request("GET", "/_auth/login")
r = c.getresponse()
page = r.read().decode()
cookie = "; ".join(v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie")
token = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
c.close()

lock = threading.Lock()
statuses = {}
latencies = []
deadline = time.monotonic() + duration
start = threading.Barrier(concurrency)


def worker(i):
    c = conn()
    n = 0
    start.wait()
    while time.monotonic() < deadline:
        body = urllib.parse.urlencode(
            {"csrf_token": token, "username": f"nobody-{i}-{n}", "password": "not a password at all"}
        )
        t = time.monotonic()
        try:
            c.request(
                "POST",
                "/_auth/login",
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
            )
            r = c.getresponse()
            r.read()
            key = str(r.status)
        except Exception as e:  # connection closed: count it and reconnect
            key = type(e).__name__
            c.close()
            c = conn()
        dt = time.monotonic() - t
        with lock:
            statuses[key] = statuses.get(key, 0) + 1
            latencies.append(dt)
        n += 1
    c.close()


threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
latencies.sort()


def pct(p):
    return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000) if latencies else None


print(json.dumps({"requests": len(latencies), "statuses": statuses, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}))
