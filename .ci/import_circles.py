#!/usr/bin/env python3
# Usage: python3 .ci/import_circles.py crates/steadfast-sqlite/src
"""Import circles between a crate's top-level modules (edges: `crate::m` uses
and `use crate::{m, ...}` in src/m.rs or src/m/**; lib.rs excluded)."""
import re, sys, pathlib
root = pathlib.Path(sys.argv[1])
mods = {p.stem if p.parent == root else p.relative_to(root).parts[0] for p in root.rglob("*.rs")} - {"lib"}
edges = {m: set() for m in mods}
for p in root.rglob("*.rs"):
    src = p.stem if p.parent == root else p.relative_to(root).parts[0]
    if src == "lib": continue
    text = re.sub(r"(?s)#\[cfg\(test\)\](?:\s*#\[[^\]]*\])*\s*mod \w+ \{.*", "", p.read_text())
    for m in re.findall(r"crate::(\w+)", text): 
        if m in mods and m != src: edges[src].add(m)
    for grp in re.findall(r"use crate::\{([^}]*)\}", text):
        for m in re.findall(r"\b(\w+)\b", grp):
            if m in mods and m != src: edges[src].add(m)
# strongly connected components (Tarjan)
idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: out.append(sorted(c))
for v in sorted(mods):
    if v not in idx: sc(v)
print(f"{root}: {len(out)} import circle(s) {out}")
