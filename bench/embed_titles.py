#!/usr/bin/env python3
"""Reference embeddings for bench/ann: all-MiniLM-L6-v2 vectors of arXiv titles.

Peer/benchmark tooling only (never on the product's path). Reads the shared arXiv
records in place, embeds the titles of the first N records with
sentence-transformers (mean pooling, L2-normalised, exactly the reference
deployment's vectors), and writes float32 .npy files into the cache directory:

  arxiv-titles-<N>.npy          N x 384, the indexed corpus
  arxiv-titles-<N>-queries.npy  Q x 384, titles of the Q records after the corpus
                                (held out: realistic queries not in the index)
  queries-txt.npy               the shared realistic queries (queries.txt)
  parts/titles-<a>-<b>.npy      the corpus in parts of 25,600 rows, written as they
                                are done: an interrupted run resumes, and
                                bench/ann --quick can start once the first parts exist

Usage: .venv/bin/python bench/embed_titles.py [--n 510203] [--queries 2000]
                                                  [--threads 1] [--cache DIR]
"""
import argparse, glob, io, json, os, sys, time

import numpy as np
import zstandard

PART = 25600  # rows per resumable part file


def records(root):
    for path in sorted(glob.glob(os.path.join(root, "*.jsonl.zst"))):
        with open(path, "rb") as f:
            stream = zstandard.ZstdDecompressor().stream_reader(f)
            for line in io.TextIOWrapper(stream, encoding="utf-8"):
                yield json.loads(line)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=510203)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "semdex"))
    ap.add_argument("--data", default=os.path.join(repo, "..", "shared", "datasets", "arxiv"))
    ap.add_argument("--model", default=os.path.join(repo, "models", "all-MiniLM-L6-v2"))
    a = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(a.threads)
    os.makedirs(a.cache, exist_ok=True)
    model = SentenceTransformer(a.model, device="cpu")
    titles = []
    for r in records(a.data):
        titles.append(" ".join(r["title"].split()))
        if len(titles) >= a.n + a.queries:
            break
    if len(titles) < a.n + a.queries:
        sys.exit("not enough records: %d" % len(titles))
    parts = os.path.join(a.cache, "parts")
    os.makedirs(parts, exist_ok=True)

    def embed(texts):
        return model.encode(texts, batch_size=128, normalize_embeddings=True).astype(np.float32)

    def save(path, arr):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)

    qtxt = [l.strip() for l in open(os.path.join(a.data, "..", "queries", "queries.txt")) if l.strip()]
    save(os.path.join(a.cache, "queries-txt.npy"), embed(qtxt))
    # held-out queries first, then the corpus in resumable parts
    qpath = os.path.join(a.cache, "arxiv-titles-%d-queries.npy" % a.n)
    if not os.path.exists(qpath):
        save(qpath, embed(titles[a.n:]))
    t0, done = time.time(), 0
    for start in range(0, a.n, PART):
        end = min(start + PART, a.n)
        path = os.path.join(parts, "titles-%07d-%07d.npy" % (start, end))
        if not os.path.exists(path):
            save(path, embed(titles[start:end]))
            done += end - start
        rate = done / max(time.time() - t0, 1e-9)
        print("%d/%d %.0f/s eta %.0fs" % (end, a.n, rate, (a.n - end) / rate if rate else 0),
              file=sys.stderr, flush=True)
    full = np.concatenate([np.load(os.path.join(parts, "titles-%07d-%07d.npy" % (s, min(s + PART, a.n))))
                           for s in range(0, a.n, PART)])
    save(os.path.join(a.cache, "arxiv-titles-%d.npy" % a.n), full)
    print("wrote %s in %.0fs" % (a.cache, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
