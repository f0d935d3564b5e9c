"""Shared parts of the Python peers of bench/load: the papers, the request
validation and the response shape, so every peer answers POST /search with
the same JSON as semdex. Benchmark code only; never part of semdex."""
import json
import os

import numpy as np
from fastapi import HTTPException
from pydantic import BaseModel, Field


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1000)


def load_papers(path):
    """The papers of the benchmark, in file order (row i of the .npy)."""
    papers = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            papers.append({
                "paper_id": r["id"],
                "title": r.get("title", ""),
                "abstract": r.get("abstract", ""),
                "authors": r.get("authors", ""),
                "categories": (r.get("categories") or "").split(),
                "update_date": r.get("update_date"),
            })
    return papers


def load_vectors(path):
    v = np.load(path, mmap_mode="r")
    return np.ascontiguousarray(v, dtype=np.float32)


def result(paper, score):
    out = dict(paper)
    out["score"] = round(float(score), 6)
    return out


def env(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit(f"{name} must be set")
    return v


def check(req):
    if not req.query.strip():
        raise HTTPException(status_code=400, detail="empty query")
