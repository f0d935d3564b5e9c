"""Peer (b) of bench/load: the strongest plain Python stack we know.
FastAPI + uvicorn (one worker process per core) + ONNX Runtime (the model
exported from PyTorch) + hnswlib (M=16, efConstruction=200). The index is
built once by `python peer_onnx_hnsw.py build`, then every worker loads it.
Benchmark code only.

  BENCH_PAPERS=... BENCH_VECTORS=... BENCH_INDEX=hnsw.bin BENCH_ONNX=model.onnx \
  BENCH_MODEL=models/all-MiniLM-L6-v2 uvicorn peer_onnx_hnsw:app --workers 2
"""
import os
import sys
import time

import numpy as np

import peer_common as pc

EF_SEARCH = int(os.environ.get("BENCH_EF", "64"))


def build():
    import hnswlib
    vectors = pc.load_vectors(pc.env("BENCH_VECTORS"))
    t0 = time.time()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=16, ef_construction=200)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=os.cpu_count())
    index.save_index(pc.env("BENCH_INDEX"))
    dt = time.time() - t0
    print(f"INGEST papers={len(vectors)} seconds={dt:.2f} papers_per_s={len(vectors) / dt:.0f}", flush=True)


def export_onnx(model_dir, out):
    """The model as ONNX: token ids + mask in, last hidden state out."""
    import torch
    from transformers import AutoModel
    m = AutoModel.from_pretrained(model_dir).eval()
    ids = torch.ones((1, 8), dtype=torch.long)
    torch.onnx.export(m, (ids, torch.ones_like(ids), torch.zeros_like(ids)), out,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"],
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                    ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
                      opset_version=17, dynamo=False)


if len(sys.argv) > 1 and sys.argv[1] == "build":
    build()
    sys.exit(0)
if len(sys.argv) > 1 and sys.argv[1] == "export":
    export_onnx(sys.argv[2], sys.argv[3])
    sys.exit(0)

import hnswlib  # noqa: E402
import onnxruntime as ort  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

app = FastAPI()
papers = pc.load_papers(pc.env("BENCH_PAPERS"))
tokenizer = AutoTokenizer.from_pretrained(pc.env("BENCH_MODEL"))
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1  # one worker process per core
session = ort.InferenceSession(pc.env("BENCH_ONNX"), opts, providers=["CPUExecutionProvider"])
index = hnswlib.Index(space="ip", dim=384)
index.load_index(pc.env("BENCH_INDEX"))
index.set_ef(EF_SEARCH)
index.set_num_threads(1)


def embed(text):
    t = tokenizer([text], truncation=True, max_length=256, return_tensors="np")
    out = session.run(None, {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"],
                             "token_type_ids": t["token_type_ids"]})[0]
    mask = t["attention_mask"][..., None].astype(np.float32)
    v = (out * mask).sum(1) / mask.sum(1)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/search")
def search(req: pc.SearchRequest):
    pc.check(req)
    t0 = time.time()
    q = embed(req.query)
    k = req.offset + req.top_k
    labels, dists = index.knn_query(q, k=k)
    results = [pc.result(papers[int(i)], 1.0 - d) for i, d in zip(labels[0][req.offset:], dists[0][req.offset:])]
    return {"results": results, "took_ms": (time.time() - t0) * 1e3, "offset": req.offset, "top_k": req.top_k}
