#!/usr/bin/env python3
"""Gatehouse's memory: idle RSS, RSS per idle keep-alive connection, RSS with many cached
sessions. See bench/README.md ("Memory").

Starts the bench upstream and `gatehouse serve` (the `dist` build, SQLite in a temp dir, the same
routes as bench/proxy/run.sh), then measures VmRSS of the gatehouse process:

1. idle, after start and one request of each kind;
2. after SESSIONS (100000) distinct sessions were each used once (so each is in the session
   cache); the sessions are written straight into the database, with tokens made here;
3. with CONNS (10000) client connections open, each having made one request and kept alive.

Settings (environment): CONNS, SESSIONS, PORT_BASE (18180), PROFILE (dist), GATEHOUSE_BIN, UPSTREAM_BIN,
WORKERS (server.workers, default 1), SMAPS (1: also print where the idle RSS lies, mapping by
mapping, from /proc/PID/smaps). Only 127.0.0.1 is used. Needs python3 (stdlib only).
"""

import asyncio
import base64
import datetime
import hashlib
import os
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = os.environ.get("PROFILE", "dist")
GATEHOUSE = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "target", PROFILE, "gatehouse"))
UPSTREAM = os.environ.get(
    "UPSTREAM_BIN", os.path.join(ROOT, "target", PROFILE, "examples/bench_upstream")
)
CONNS = int(os.environ.get("CONNS", "10000"))
SESSIONS = int(os.environ.get("SESSIONS", "100000"))
PORT_BASE = int(os.environ.get("PORT_BASE", "18180"))
WORKERS = int(os.environ.get("WORKERS", "1"))
UP_PORT, GH_PORT = PORT_BASE + 1, PORT_BASE + 3


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def smaps_report(pid, top=14):
    """The idle RSS by mapping: the binary's sections (by permissions), the heap, thread stacks
    and arenas (anonymous), shared libraries; the largest first."""
    rows, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                perms, name = head[1], (head[5] if len(head) > 5 else "[anon]")
                cur = (os.path.basename(name), perms)
                rows.setdefault(cur, [0, 0, 0])
                rows[cur][2] += 1
            elif head[0] == "Rss:":
                rows[cur][0] += int(head[1])
            elif head[0] == "Anonymous:":
                rows[cur][1] += int(head[1])
    print("  where the idle RSS lies (KiB: resident, of it anonymous; mappings):")
    for (name, perms), (rss, anon, n) in sorted(rows.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"    {rss:7d} {anon:7d} {n:5d}  {perms} {name}")


def wait_http(url):
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"memory: nothing answers at {url}")


async def request(reader, writer, path, cookie=None):
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{GH_PORT}\r\nUser-Agent: memory-bench\r\n"
    if cookie:
        head += f"Cookie: gatehouse_session={cookie}\r\n"
    writer.write((head + "\r\n").encode())
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def open_idle(n):
    conns = []
    for i in range(0, n, 500):
        batch = await asyncio.gather(
            *[asyncio.open_connection("127.0.0.1", GH_PORT) for _ in range(min(500, n - i))]
        )
        await asyncio.gather(*[request(r, w, "/pub/hello") for r, w in batch])
        conns.extend(batch)
    return conns


async def use_sessions(tokens, parallel=32):
    statuses = {}

    async def worker(part):
        r, w = await asyncio.open_connection("127.0.0.1", GH_PORT)
        for t in part:
            s = await request(r, w, "/app/hello", t)
            statuses[s] = statuses.get(s, 0) + 1
        w.close()

    await asyncio.gather(*[worker(tokens[i::parallel]) for i in range(parallel)])
    return statuses


def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (CONNS + 1024, CONNS + 1024))
    work = tempfile.mkdtemp(prefix="gatehouse-mem.")
    procs = []
    try:
        procs.append(subprocess.Popen([UPSTREAM, f"127.0.0.1:{UP_PORT}"], stdout=subprocess.DEVNULL,
                                      env={**os.environ, "TOKIO_WORKER_THREADS": "1"}))
        wait_http(f"http://127.0.0.1:{UP_PORT}/")
        cfg = os.path.join(work, "gatehouse.toml")
        with open(cfg, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{GH_PORT}"
data_dir = "{work}/data"
workers = {WORKERS}
[upstream]
url = "http://127.0.0.1:{UP_PORT}"
[database]
url = "sqlite://{work}/data/gatehouse.db"
[[routes]]
path = "/pub/**"
access = "public"
[[routes]]
path = "/app/**"
""")
        pw = secrets.token_hex(12)
        subprocess.run([GATEHOUSE, "--config", cfg, "--log", "warn", "user", "create", "--username", "mem",
                        "--email", "mem@example.com", "--password-stdin"], input=pw.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        gh = subprocess.Popen([GATEHOUSE, "--config", cfg, "--log", "warn", "serve"],
                              env={**os.environ, "TOKIO_WORKER_THREADS": "1"},
                              stdout=open(os.path.join(work, "gh.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(gh)
        wait_http(f"http://127.0.0.1:{GH_PORT}/_auth/health")

        # Sessions written straight into the database, as sign-ins would have made them.
        tokens = [base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode() for _ in range(SESSIONS)]
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        db = sqlite3.connect(os.path.join(work, "data/gatehouse.db"), timeout=30)
        uid = db.execute("SELECT id FROM users WHERE username = 'mem'").fetchone()[0]
        db.executemany(
            "INSERT INTO user_sessions (user_id, session_token, ip_address, user_agent, created_at, "
            "last_activity, expires_at, is_active, twofa_verified, remember_me) VALUES (?, ?, '127.0.0.1', "
            "'memory-bench', ?, ?, ?, 1, 0, 0)",
            [(uid, hashlib.sha256(t.encode()).hexdigest(), fmt(now), fmt(now),
              fmt(now + datetime.timedelta(hours=12))) for t in tokens])
        db.commit()
        db.close()

        async def scenario():
            r, w = await asyncio.open_connection("127.0.0.1", GH_PORT)
            assert await request(r, w, "/pub/hello") == 200
            assert await request(r, w, "/app/hello", tokens[0]) == 200
            w.close()
            await asyncio.sleep(2)
            idle = rss_kib(gh.pid)
            print(f"idle RSS: {idle / 1024:.1f} MiB ({idle} KiB; heap and stacks "
                  f"{rss_kib(gh.pid, 'RssAnon') / 1024:.1f} MiB, the binary and other files "
                  f"{rss_kib(gh.pid, 'RssFile') / 1024:.1f} MiB)")
            if os.environ.get("SMAPS") == "1":
                smaps_report(gh.pid)
            before = idle
            t0 = time.time()
            statuses = await use_sessions(tokens)
            took = time.time() - t0
            await asyncio.sleep(1)
            after = rss_kib(gh.pid)
            print(f"{SESSIONS} sessions used once each ({statuses}, {took:.1f} s): RSS {after / 1024:.1f} MiB, "
                  f"+{(after - before) / 1024:.1f} MiB over idle, "
                  f"{(after - before) * 1024 / SESSIONS:.0f} bytes per cached session")
            base = after
            conns = await open_idle(CONNS)
            await asyncio.sleep(1)
            with_conns = rss_kib(gh.pid)
            print(f"with {len(conns)} idle keep-alive connections: {with_conns / 1024:.1f} MiB, "
                  f"{(with_conns - base) / len(conns):.1f} KiB per connection")
            for _, w in conns:
                w.close()
            with urllib.request.urlopen(f"http://127.0.0.1:{GH_PORT}/_auth/metrics") as m:
                for line in m.read().decode().splitlines():
                    if line.startswith(("gatehouse_session_cache", "gatehouse_activity_")):
                        print("  " + line)

        asyncio.run(scenario())
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
