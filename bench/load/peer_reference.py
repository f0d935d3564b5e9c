"""Peer (a) of bench/load: the reference architecture semdex replaces.
FastAPI + uvicorn + sentence-transformers (PyTorch CPU) + Milvus Lite with
its own default index. Benchmark code only.

  BENCH_PAPERS=papers.jsonl BENCH_VECTORS=vectors.npy BENCH_DB=milvus.db \
  BENCH_MODEL=models/all-MiniLM-L6-v2 uvicorn peer_reference:app
"""
import time

from fastapi import FastAPI
from pymilvus import MilvusClient
from sentence_transformers import SentenceTransformer

import peer_common as pc

app = FastAPI()
papers = pc.load_papers(pc.env("BENCH_PAPERS"))
model = SentenceTransformer(pc.env("BENCH_MODEL"), device="cpu")
client = MilvusClient(pc.env("BENCH_DB"))
COLLECTION = "papers"


def ingest():
    vectors = pc.load_vectors(pc.env("BENCH_VECTORS"))
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    client.create_collection(COLLECTION, dimension=vectors.shape[1], metric_type="COSINE",
                             auto_id=False, id_type="int")
    t0 = time.time()
    for start in range(0, len(papers), 2000):
        rows = [{"id": i, "vector": vectors[i].tolist()} for i in range(start, min(start + 2000, len(papers)))]
        client.insert(COLLECTION, rows)
    client.load_collection(COLLECTION)
    dt = time.time() - t0
    print(f"INGEST papers={len(papers)} seconds={dt:.2f} papers_per_s={len(papers) / dt:.0f}", flush=True)


ingest()


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/search")
def search(req: pc.SearchRequest):
    pc.check(req)
    t0 = time.time()
    q = model.encode([req.query], normalize_embeddings=True)[0]
    hits = client.search(COLLECTION, data=[q.tolist()], limit=req.offset + req.top_k)[0]
    results = [pc.result(papers[h["id"]], h["distance"]) for h in hits[req.offset:]]
    return {"results": results, "took_ms": (time.time() - t0) * 1e3, "offset": req.offset, "top_k": req.top_k}
