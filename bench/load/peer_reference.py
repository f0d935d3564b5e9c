"""Peer (a) of bench/load: the reference architecture semdex replaces.
FastAPI + uvicorn + sentence-transformers (PyTorch CPU) + Milvus Lite with
its own default index. Benchmark code only.

  BENCH_PAPERS=papers.jsonl BENCH_VECTORS=vectors.npy BENCH_DB=milvus.db \
  BENCH_MODEL=models/all-MiniLM-L6-v2 uvicorn peer_reference:app

The collection is exactly what MilvusClient.create_collection(dimension=384)
makes (INT64 "id", FLOAT_VECTOR "vector", dynamic fields, an AUTOINDEX COSINE
index, loaded); only the order is the bulk-load one: insert, flush, then
create the index and load. Milvus Lite (3.x, pure Python, in this process)
builds AUTOINDEX as a FAISS HNSW per segment (M=16, efConstruction=200), but
only for flushed segments: rows still in its memtable are searched by a Python
scan that converts every stored vector to a list on every query (about 1 s per
query at 20,000 rows). Inserting into the quick-setup collection and never
flushing left all (20K) or the last ~80K (510K) rows there, with the other
segments indexed by a background thread after "ingest" had been timed; the
peer then answered nothing within wrk's window. The ingest time below covers
insert, flush and the index build.
"""
import time

import torch
from pymilvus import DataType, MilvusClient
from sentence_transformers import SentenceTransformer

import peer_common as pc

papers = pc.load_papers(pc.env("BENCH_PAPERS"))
model = SentenceTransformer(pc.env("BENCH_MODEL"), device="cpu")
client = MilvusClient(pc.env("BENCH_DB"))
COLLECTION = "papers"
BATCH = 2000


def ingest():
    vectors = pc.load_vectors(pc.env("BENCH_VECTORS"))
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    # The schema of MilvusClient's quick setup (_fast_create_collection).
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    client.create_collection(COLLECTION, schema=schema)
    t0 = time.time()
    for start in range(0, len(papers), BATCH):
        rows = [{"id": i, "vector": vectors[i].tolist()} for i in range(start, min(start + BATCH, len(papers)))]
        client.insert(COLLECTION, rows)
    client.flush(COLLECTION)  # every row into a segment, none left in the memtable
    index = client.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")  # the quick-setup default
    client.create_index(COLLECTION, index)  # builds each segment's index now (synchronously)
    client.load_collection(COLLECTION)
    dt = time.time() - t0
    stats = client.get_collection_stats(COLLECTION)
    if int(stats.get("row_count", 0)) != len(papers):
        raise SystemExit(f"milvus lite holds {stats} rows, expected {len(papers)}")
    print(f"INGEST papers={len(papers)} seconds={dt:.2f} papers_per_s={len(papers) / dt:.0f}", flush=True)


ingest()

# Requests run concurrently in FastAPI's thread pool (up to 40 at a time):
# one PyTorch thread per request. PyTorch's default (one OpenMP thread per
# core for each op) makes every op wait at a barrier for a thread another
# request or process holds: one query's encode took 0.5-0.7 s instead of 8 ms
# on the 2-core benchmark machine. Peer (b) likewise runs ONNX Runtime with
# one thread per worker.
torch.set_num_threads(1)


def knn(query, k):
    q = model.encode([query], normalize_embeddings=True)[0]
    hits = client.search(COLLECTION, data=[q.tolist()], limit=k, output_fields=["id"])[0]
    return [(h["id"], h["distance"]) for h in hits]


app = pc.make_app(papers, knn)
