#!/usr/bin/env python3
"""The peers of bench/encoder, one measurement per process (so peak RSS is the
peer's own): sentence-transformers (PyTorch CPU), ONNX Runtime fp32 (the
model exported with torch.onnx) and ONNX Runtime int8 (its dynamic
quantisation of that export).

  peers.py export MODEL OUTDIR                  writes OUTDIR/model.onnx, model-int8.onnx
  peers.py query PEER MODEL OUTDIR THREADS REPS TEXT
  peers.py bulk  PEER MODEL OUTDIR THREADS BATCH FILE

PEER is st, ort or ort-int8. Prints one line of key=value pairs, like
build/bench/encoder. Every peer tokenizes with the model's own fast tokenizer
inside the timed region, as semdex does, truncates at 256 tokens, mean-pools
over the attention mask and L2-normalises.
"""
import json
import os
import resource
import sys
import time

import numpy as np


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def export(model_dir, outdir):
    import torch
    from transformers import AutoModel
    from onnxruntime.quantization import QuantType, quantize_dynamic

    os.makedirs(outdir, exist_ok=True)
    bert = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    m = Wrap().eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    torch.onnx.export(
        m, (ids, torch.ones_like(ids), torch.zeros_like(ids)), outdir + "/model.onnx",
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                      ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
        opset_version=17, dynamo=False)
    quantize_dynamic(outdir + "/model.onnx", outdir + "/model-int8.onnx", weight_type=QuantType.QInt8)


class Peer:
    def __init__(self, peer, model_dir, outdir, threads):
        self.peer = peer
        if peer == "st":
            import torch
            from sentence_transformers import SentenceTransformer
            torch.set_num_threads(threads)
            self.st = SentenceTransformer(model_dir, device="cpu")
            self.st.max_seq_length = 256
        else:
            import onnxruntime as ort
            from transformers import AutoTokenizer
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            path = outdir + ("/model-int8.onnx" if peer == "ort-int8" else "/model.onnx")
            self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            self.tok = AutoTokenizer.from_pretrained(model_dir)

    def embed(self, texts):
        if self.peer == "st":
            return self.st.encode(texts, batch_size=len(texts), convert_to_numpy=True)
        enc = self.tok(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        h = self.sess.run(None, feeds)[0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        v = (h * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def main():
    mode = sys.argv[1]
    if mode == "export":
        export(sys.argv[2], sys.argv[3])
        return
    peer, model_dir, outdir, threads = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    rss0 = rss_mb()
    p = Peer(peer, model_dir, outdir, threads)
    if mode == "query":
        reps, text = int(sys.argv[6]), sys.argv[7]
        for _ in range(20):
            p.embed([text])
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            p.embed([text])
            t.append((time.perf_counter() - t0) * 1e3)
        t.sort()
        print("p50_ms=%.3f p99_ms=%.3f peak_rss_mb=%.1f start_rss_mb=%.1f" %
              (t[len(t) // 2], t[min(len(t) - 1, int(0.99 * (len(t) - 1) + 0.5))], rss_mb(), rss0))
    else:
        batch = int(sys.argv[6])
        with open(sys.argv[7]) as f:
            texts = [json.loads(l) for l in f if l.strip()]
        p.embed(texts[:batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            p.embed(texts[i:i + batch])
        dt = time.perf_counter() - t0
        print("texts=%d seconds=%.3f texts_per_s=%.2f peak_rss_mb=%.1f start_rss_mb=%.1f" %
              (len(texts), dt, len(texts) / dt, rss_mb(), rss0))


if __name__ == "__main__":
    main()
