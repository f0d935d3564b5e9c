/*
 * model.h - the sentence encoder: text in, L2-normalised embedding out.
 *
 * Loads a BERT-family sentence-transformers model folder (config.json,
 * model.safetensors, vocab.txt, tokenizer and pooling configs) and embeds
 * texts with it, equal to sentence-transformers' output within float
 * rounding:
 *
 *     sx_encoder_opts opts = {.n_threads = 0, .int8 = 0};
 *     sx_encoder *enc;
 *     sx_err err = {0};
 *     if (sx_encoder_load("models/all-MiniLM-L6-v2", &opts, &enc, &err) < 0) ...
 *     const char *texts[] = {"graph neural networks for molecules"};
 *     size_t lens[] = {strlen(texts[0])};
 *     float *v = malloc(sizeof(float) * (size_t)sx_encoder_dim(enc));
 *     if (sx_encoder_embed(enc, 1, texts, lens, v, &err) < 0) ...
 *     sx_encoder_free(enc);
 *
 * sx_encoder_embed may be called from several threads at once: one call at a
 * time uses the encoder's thread pool; a call that finds it busy runs on its
 * own thread with its own scratch memory instead of waiting. See model.c for
 * the design and docs/encoder.md for the model formats accepted.
 */
#ifndef SX_MODEL_H
#define SX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"
#include "../text/text.h"

typedef struct sx_encoder sx_encoder;

typedef struct sx_encoder_opts {
    int n_threads; /* threads for one call; 0 = all cores */
    int int8;      /* 1 = int8 weights and activations (faster, cosine >= 0.995) */
} sx_encoder_opts;

/* Loads the model in model_dir. opts may be NULL (defaults). Errors name the
 * file and the problem: missing or corrupt files, unsupported dtypes or
 * activations, tensors whose shapes disagree with config.json. */
int sx_encoder_load(const char *model_dir, const sx_encoder_opts *opts, sx_encoder **out,
                    sx_err *err);

/* Frees the encoder (NULL is fine). No call may be running on it. */
void sx_encoder_free(sx_encoder *enc);

/* Embedding dimension (384 for all-MiniLM-L6-v2). */
int sx_encoder_dim(const sx_encoder *enc);

/* Embeds n texts (texts[i] of lens[i] bytes, UTF-8) into out[i * dim ..],
 * each L2-normalised. Texts longer than the model's max_seq_length tokens are
 * truncated as sentence-transformers does; an empty text gets a valid
 * embedding. Invalid UTF-8 gives SX_EINVAL naming the text index and byte
 * offset, and out is left untouched (so is it on any other error). */
int sx_encoder_embed(sx_encoder *enc, int n, const char *const *texts, const size_t *lens,
                     float *out, sx_err *err);

/* Like sx_encoder_embed for texts already tokenised: ids[i] holds n_ids[i]
 * token ids ([CLS] ... [SEP]), at most sx_encoder_max_len() each. Ids out of
 * the vocabulary give SX_EINVAL. */
int sx_encoder_embed_ids(sx_encoder *enc, int n, const int32_t *const *ids, const int *n_ids,
                         float *out, sx_err *err);

/* The last hidden state (before pooling) of one tokenised sequence:
 * n_ids * hidden_size floats into out. For tests and debugging. */
int sx_encoder_hidden(sx_encoder *enc, const int32_t *ids, int n_ids, float *out, sx_err *err);

/* Runs fn(ctx, i) for i in [0, n) on the encoder's threads (all of them,
 * the caller's included) and returns when every call is done; while the
 * threads are busy with an embedding (or another such run), runs them all
 * on the caller instead. For work that follows an embedding batch and
 * should not compete with it for the cores (the server's searches). */
void sx_encoder_parallel(sx_encoder *enc, int n, void (*fn)(void *ctx, int i), void *ctx);

/* The tokenizer the encoder uses (owned by the encoder). */
const sx_tokenizer *sx_encoder_tokenizer(const sx_encoder *enc);

/* The longest input in tokens, [CLS] and [SEP] included. */
int sx_encoder_max_len(const sx_encoder *enc);

/* One line describing the loaded model: layers, sizes, pooling, precision,
 * kernels and threads (for `semdex info` style output and logs). */
const char *sx_encoder_describe(const sx_encoder *enc);

#endif /* SX_MODEL_H */
