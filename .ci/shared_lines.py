#!/usr/bin/env python3
# Usage: python3 .ci/shared_lines.py crates/steadfast-sqlite/src crates/steadfast-postgres/src
"""Lines shared between the two store crates' src: runs of >= 6 consecutive
code lines that are equal or same-shaped (trimmed; string and number literals,
`.await`, `async`, `mut` and the store-specific connection type names blanked;
blank, comment-only and punctuation-only lines skipped)."""
import re, sys, pathlib
RUN = 6
def norm(line):
    s = line.strip()
    if not s or s.startswith("//"): return None
    if re.fullmatch(r"[\s{}()\[\];,.]*", s): return None
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', s)
    s = re.sub(r"\b\d[\d_]*\b", "0", s)
    s = s.replace(".await", "").replace("async ", "").replace("mut ", "")
    s = re.sub(r"\b(PgConnection|Connection|Transaction<'_, Postgres>|PgPool|Pool)\b", "CONN", s)
    s = re.sub(r"\$\d+|\?\d*", "?", s)
    return s
def load(root):
    out = []
    for p in sorted(pathlib.Path(root).rglob("*.rs")):
        lines = [(p, i + 1, n) for i, l in enumerate(p.read_text().splitlines()) if (n := norm(l)) is not None]
        out.append(lines)
    return out
def windows(files):
    for lines in files:
        for k in range(len(lines) - RUN + 1):
            yield tuple(x[2] for x in lines[k:k + RUN]), lines[k:k + RUN]
def covered(a, b):
    keys = {w for w, _ in windows(b)}
    hit = set()
    for w, ls in windows(a):
        if w in keys: hit.update((str(p), i) for p, i, _ in ls)
    return hit
a, b = load(sys.argv[1]), load(sys.argv[2])
ca, cb = covered(a, b), covered(b, a)
print(f"{sys.argv[1]}: {len(ca)} lines in shared runs; {sys.argv[2]}: {len(cb)}")
