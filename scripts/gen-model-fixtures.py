#!/usr/bin/env python3
"""Writes the encoder fixtures under tests/fixtures/model/ (run from the repo root
with .venv/bin/python scripts/gen-model-fixtures.py).

  embed.jsonl, embed.f32   texts (the shared queries, arXiv titles and full
                           abstracts, some over 256 tokens, and a few edge cases),
                           one JSON string per line, and their all-MiniLM-L6-v2
                           embeddings from sentence-transformers (float32, n x 384)
  bert-*/                  small randomly initialised BERTs of different shapes,
                           saved as safetensors (F32, F16, BF16; with and without
                           the "bert." prefix; mean and CLS pooling) with a tiny
                           vocabulary, plus cases.jsonl (texts and their ids from
                           BertTokenizerFast), hidden.f32 (transformers' last hidden
                           state of every case, concatenated) and pooled.f32 (the
                           pooled, L2-normalised embedding of every case)
"""
import glob
import json
import os
import random
import string

import numpy as np
import torch
import zstandard
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from transformers import BertConfig, BertModel, BertTokenizerFast

OUT = "tests/fixtures/model/"
MODEL = "models/all-MiniLM-L6-v2"

EDGE = [
    "",
    "a",
    "Café crème brûlée, naïve résumé",
    "深度学习与自然语言处理",
    "emoji 😀 👍🏽 and zero\u200bwidth",
    "$\\mathcal{O}(n \\log n)$ with \\alpha_{i}",
    "https://arxiv.org/abs/2101.00001",
    "x" * 300,
    " ".join(["token"] * 400),
    "   ",
]


def sample_papers(n_titles, n_abstracts, seed):
    rng = random.Random(seed)
    recs = []
    for path in sorted(glob.glob("../shared/datasets/arxiv/*.jsonl.zst")):
        with open(path, "rb") as f:
            lines = [l for l in zstandard.ZstdDecompressor().stream_reader(f).read().split(b"\n") if l]
        recs += [json.loads(lines[i]) for i in rng.sample(range(len(lines)), 100)]
    rng.shuffle(recs)
    return [r["title"] for r in recs[:n_titles]] + [r["abstract"] for r in recs[n_titles:n_titles + n_abstracts]]


def real_model():
    st = SentenceTransformer(MODEL, device="cpu")
    with open("../shared/datasets/queries/queries.txt") as f:
        queries = [l.strip() for l in f if l.strip()]
    texts = queries + EDGE + sample_papers(220, 220, 7)
    emb = st.encode(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
    with open(OUT + "embed.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    emb.astype("<f4").tofile(OUT + "embed.f32")
    n_long = sum(1 for t in texts if len(st.tokenizer(t)["input_ids"]) > 256)
    print("real model: %d texts, %d over 256 tokens" % (len(texts), n_long))


WORDS = ["the", "graph", "neural", "network", "quantum", "model", "learn", "data", "of", "for",
         "and", "with", "deep", "field", "energy", "molecule", "prediction", "large", "language"]


def make_vocab():
    v = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    v += list(string.ascii_lowercase) + list(string.digits) + list(".,;:!?()[]$\\-_^{}")
    v += ["##" + c for c in string.ascii_lowercase + string.digits]
    v += WORDS + ["##ing", "##s", "##ed", "##ly", "é"]
    return v


CASES = [
    "graph neural networks for molecule prediction",
    "The quantum field energy of large language models.",
    "deep learning with data",
    "",
    "x",
    "Zebra xylophone: 42 (alpha) $\\beta_{1}$ learned networks, quickly!",
    "énergie élevée",
    " ".join(["data"] * 70),
]

SPECS = [
    # name, hidden, layers, heads, inter, max_pos, dtype, prefix, pooling, eps, max_seq
    ("bert-tiny-f32", 32, 2, 4, 64, 64, torch.float32, "", "mean", 1e-12, None),
    ("bert-odd-f16", 48, 3, 3, 80, 40, torch.float16, "bert.", "cls", 1e-12, None),
    ("bert-head12-bf16", 36, 1, 3, 100, 48, torch.bfloat16, "", "mean", 1e-5, None),
    ("bert-wide-f32", 128, 2, 2, 256, 64, torch.float32, "", "mean", 1e-12, 20),
]


def random_bert(spec, seed):
    name, H, L, NH, I, P, dtype, prefix, pooling, eps, max_seq = spec
    torch.manual_seed(seed)
    d = OUT + name + "/"
    os.makedirs(d, exist_ok=True)
    vocab = make_vocab()
    with open(d + "vocab.txt", "w") as f:
        f.write("\n".join(vocab) + "\n")
    with open(d + "tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": P}, f)
    if max_seq:
        with open(d + "sentence_bert_config.json", "w") as f:
            json.dump({"max_seq_length": max_seq, "do_lower_case": False}, f)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=H, num_hidden_layers=L,
                     num_attention_heads=NH, intermediate_size=I, max_position_embeddings=P,
                     layer_norm_eps=eps, initializer_range=0.3, hidden_act="gelu",
                     attn_implementation="eager")
    model = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.2)
            elif n.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            # round to the stored dtype so the reference sees the saved weights
            p.copy_(p.to(dtype).to(torch.float32))
    cfg.save_pretrained(d)
    sd = {prefix + k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, d + "model.safetensors", metadata={"format": "pt"})
    os.makedirs(d + "1_Pooling", exist_ok=True)
    with open(d + "1_Pooling/config.json", "w") as f:
        json.dump({"word_embedding_dimension": H, "pooling_mode_cls_token": pooling == "cls",
                   "pooling_mode_mean_tokens": pooling == "mean"}, f)
    with open(d + "modules.json", "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], f)
    tok = BertTokenizerFast(d + "vocab.txt", do_lower_case=True)
    limit = max_seq or P
    hidden, pooled = [], []
    with open(d + "cases.jsonl", "w") as f:
        for t in CASES:
            ids = tok(t, truncation=True, max_length=limit)["input_ids"]
            with torch.no_grad():
                h = model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          token_type_ids=torch.zeros(1, len(ids), dtype=torch.long)).last_hidden_state[0]
            v = h[0] if pooling == "cls" else h.mean(0)
            v = torch.nn.functional.normalize(v, dim=0)
            hidden.append(h.numpy())
            pooled.append(v.numpy())
            f.write(json.dumps({"text": t, "ids": ids}) + "\n")
    np.concatenate(hidden).astype("<f4").tofile(d + "hidden.f32")
    np.stack(pooled).astype("<f4").tofile(d + "pooled.f32")
    print("%s: %d bytes of weights" % (name, os.path.getsize(d + "model.safetensors")))


def main():
    real_model()
    for i, spec in enumerate(SPECS):
        random_bert(spec, 100 + i)


if __name__ == "__main__":
    main()
