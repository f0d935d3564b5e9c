#!/usr/bin/env python3
"""SQLite FTS5 as the peer of bench/keyword_bench.c: the same papers, the same
queries, side by side.

    build/bench/keyword_bench --data FILE --n 50000 --dump /tmp/kwbench
    python3 bench/keyword_fts5.py /tmp/kwbench

FTS5 runs contentless (content='': the index without a copy of the text) in
an in-memory database through Python's standard sqlite3 module
(no package to install), tokenizer unicode61 with remove_diacritics 2 (the
closest to semdex's analyser: case folding, accents removed; it has no LaTeX
handling and no joined hyphen terms), ranked by its built-in bm25() with the
same column weights as semdex (title 2, abstract 1, authors 1; FTS5 fixes
k1 = 1.2, b = 0.75). A query is the OR of its tokens, as semdex matches any
term. Times include Python's per-call overhead (a few microseconds), which is
small against the per-query times measured.
"""
import json
import re
import sqlite3
import sys
import time


def main():
    d = sys.argv[1]
    docs = [json.loads(line) for line in open(f"{d}/docs.jsonl", encoding="utf-8")]
    queries = []
    for line in open(f"{d}/queries.tsv", encoding="utf-8"):
        s, want, q = line.rstrip("\n").split("\t", 2)
        queries.append((s, int(want), q))
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA page_size=4096")
    # contentless: FTS5 keeps the index only, not a copy of the text, as
    # semdex's index does (the shard holds the text)
    db.execute("CREATE VIRTUAL TABLE p USING fts5(title, abstract, authors, content='', "
               "tokenize='unicode61 remove_diacritics 2')")
    t0 = time.perf_counter()
    with db:
        db.executemany("INSERT INTO p(rowid, title, abstract, authors) VALUES (?, ?, ?, ?)",
                       ((x["slot"] + 1, x["title"], x["abstract"], x["authors"]) for x in docs))
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    db.execute("INSERT INTO p(p) VALUES ('optimize')")
    t_opt = time.perf_counter() - t0
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    size = pages * 4096
    word = re.compile(r"\w+", re.UNICODE)
    stats = {}
    for s, want, q in queries:
        toks = word.findall(q)
        if s == "author":
            # the author's surname in the authors column, as semdex's
            # candidate step does (no name normalisation in FTS5)
            toks = toks[-1:] if toks else []
            match = " OR ".join(f'authors:"{t}"' for t in toks)
            sql = "SELECT rowid FROM p WHERE p MATCH ?"
        else:
            match = " OR ".join(f'"{t}"' for t in toks)
            sql = "SELECT rowid FROM p WHERE p MATCH ? ORDER BY bm25(p, 2.0, 1.0, 1.0) LIMIT 10"
        t = time.perf_counter()
        rows = [r[0] - 1 for r in db.execute(sql, (match,))] if match else []
        dt = time.perf_counter() - t
        st = stats.setdefault(s, {"lat": [], "rr": 0.0, "found": 0})
        st["lat"].append(dt)
        if want in rows:
            st["found"] += 1
            st["rr"] += 1.0 / (rows.index(want) + 1)
    n = len(docs)
    print(f"\n#### peer: SQLite {sqlite3.sqlite_version} FTS5 (`python3 bench/keyword_fts5.py`), same papers and queries\n")
    print("| measure | value |\n|---|---|")
    print(f"| add | {n / t_add:.0f} papers/s ({t_add:.2f} s, one transaction; 'optimize' after: {t_opt:.2f} s) |")
    print(f"| index size (database pages after optimize) | {size / 1e6:.1f} MB, **{size / n:.0f} bytes/paper** |")
    print("\n| query set | queries | mean ms | p50 ms | p99 ms | MRR@10 | found@10 |\n|---|---|---|---|---|---|---|")
    for s in ("title", "noisy", "two", "author"):
        st = stats.get(s)
        if not st:
            continue
        lat = sorted(st["lat"])
        c = len(lat)
        mrr = f"{st['rr'] / c:.3f}" if s != "author" else "-"
        print(f"| {s} | {c} | {sum(lat) / c * 1e3:.3f} | {lat[c // 2] * 1e3:.3f} | "
              f"{lat[c * 99 // 100] * 1e3:.3f} | {mrr} | {st['found'] / c:.3f} |")


if __name__ == "__main__":
    main()
