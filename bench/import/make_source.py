#!/usr/bin/env python3
"""Write a SQLite leads table of N generated rows for the import benchmark.

Usage: make_source.py PATH N

Only the standard library: the password hashes are copied from the Werkzeug fixture
(tests/fixtures/werkzeug/hashes.json), since the import copies hashes without checking them
and so their cost does not matter here. The rows are as messy as the fixture's: flags as
0/1/'t'/'true', tiers in any case or unknown, timestamps as text, missing usernames, and a
few duplicate and invalid emails, so every path of the import is exercised.
"""

import json
import os
import sqlite3
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HASHES = os.path.join(ROOT, "tests", "fixtures", "werkzeug", "hashes.json")
TIERS = ["free", "premium", "PREMIUM", "beta", "enterprise", "Gold", None]
FLAGS = [0, 1, "t", "f", "true", "false"]


def rows(n, hashes):
    for i in range(1, n + 1):
        if i % 200 == 0:
            email = f"LEAD{i - 1}@example.com"  # duplicate of the previous lead, any case
        elif i % 333 == 0:
            email = f"lead{i}-at-example.com"  # invalid
        else:
            email = f"lead{i}@example.com"
        yield (
            i,
            email,
            f"lead_{i}" if i % 2 else None,
            hashes[i % len(hashes)],
            f"First{i} Last{i}",
            f"+1 555 {i:07d}",
            f"Company {i % 97}",
            FLAGS[i % 2],
            FLAGS[i % len(FLAGS)],
            1,
            "active",
            TIERS[i % len(TIERS)],
            i % 50,
            FLAGS[(i + 1) % 2],
            0,
            "UTC",
            "en",
            f"2021-{i % 12 + 1:02d}-{i % 28 + 1:02d} 10:{i % 60:02d}:00",
            f"2023-01-01T00:00:{i % 60:02d}Z" if i % 3 else None,
        )


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    with open(HASHES, encoding="utf-8") as f:
        hashes = [h["hash"] for h in json.load(f) if h["hash"].startswith(("pbkdf2", "scrypt"))][:8]
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, username TEXT, password TEXT, "
        "name TEXT, phone TEXT, company TEXT, is_admin, is_verified, is_active, "
        "subscription_status TEXT, subscription_tier TEXT, credits INTEGER, "
        "email_notifications, sms_notifications, timezone TEXT, language TEXT, "
        "created_at TEXT, last_login TEXT)"
    )
    db.executemany("INSERT INTO leads VALUES (%s)" % ", ".join("?" * 19), rows(n, hashes))
    db.commit()
    db.close()


if __name__ == "__main__":
    main()
