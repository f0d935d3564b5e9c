/*
 * model.c - the BERT sentence encoder: config and weights in, embeddings out.
 *
 * What it computes. For each text: WordPiece ids (src/text), then a BERT
 * encoder read from config.json + model.safetensors: word + position +
 * token-type-0 embeddings and a LayerNorm, then per layer self-attention
 * (Q, K, V projections, softmax(QK^T / sqrt(d)) V per head, output projection,
 * residual + LayerNorm) and a feed-forward block (GELU, exact erf form;
 * residual + LayerNorm); then mean pooling over the tokens (or the [CLS] row
 * when the model's pooling config says so) and L2 normalisation. That is
 * sentence-transformers' pipeline for all-MiniLM-L6-v2, bge-small and the
 * other BERT-layout models, and nothing in the code is specific to one size.
 *
 * No padding. A batch is the concatenation of its sequences' tokens: the
 * linear layers see one matrix of T rows (T = total tokens), and attention
 * runs per (sequence, head) over that sequence's rows only. This is exactly
 * what a padded batch with an attention mask computes for the real tokens,
 * minus the wasted work on padding, so sorting by length only matters for how
 * texts are grouped into chunks, not for the arithmetic.
 *
 * Weights. Every linear layer is packed at load time into the panel layout of
 * kernels.c (Q, K and V fused into one 3H-wide layer), converted from F32,
 * F16 or BF16. Word embeddings in F32 are read in place from the mapped file
 * (only the rows used become resident); other tensors are converted into
 * our own memory, and the mapping's pages are released after loading.
 *
 * Threads. One forward pass is a sequence of parallel loops over a fork-join
 * pool (pool.c): the GEMMs split over row blocks and column panels (so a
 * single 12-token query uses every core), attention over (sequence, head),
 * LayerNorm over rows. Attention itself is two small GEMMs per head through
 * the same kernels: the head's K rows (pre-scaled by 1/sqrt(d)) and V rows are
 * packed into panels in per-thread scratch, then scores = Q K^T, a softmax
 * per row, and context = P V.
 *
 * Memory. Activations live in an arena sized for one chunk of at most
 * CHUNK_TOKENS tokens (longer batches run chunk by chunk), allocated before
 * anything is written to the caller's output so that a failure leaves it
 * untouched. Concurrency: the encoder's pool and arena belong to one call at
 * a time (a mutex, tried without waiting); a concurrent call runs on its own
 * thread with an arena of its own, so a query never queues behind an ingest
 * batch.
 *
 * The int8 path (opts.int8). Loading builds the fp32 model first, runs a few
 * built-in sentences through it to record each linear layer's largest input
 * per channel, then quantises every linear layer (SmoothQuant, alpha 0.5:
 * activation outliers are moved into the weights; weights per output
 * channel, symmetric int8) and frees the fp32 weights. At run time each
 * GEMM quantises its input rows to unsigned bytes with a zero point
 * (group-major, so the micro-kernel reads a group's rows from one pointer),
 * multiplies exactly in int32 (VNNI / widened AVX2 / sdot) and scales back;
 * attention, softmax, LayerNorm and GELU stay in float. Plain symmetric
 * per-token activations were tried first and lost too much on BERT's
 * outlier channels (docs/encoder.md has the figures).
 *
 * Rejected: a BLAS library for the GEMMs (measured in docs/encoder.md: our
 * packed kernels match or beat Debian's OpenBLAS at the shapes used here and
 * need no packing of activations for small queries; OpenBLAS' own thread pool
 * would also fight ours), padding batches to a rectangle (wasted work on
 * mixed lengths), and ONNX-style graph interpretation (one model family does
 * not need it).
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model_int.h"

/* Tokens per forward pass of a long batch. 512 keeps a chunk's activations
 * (~8 MB, int8 buffers included) in the L3 cache: the passes between the
 * GEMMs (quantisation, LayerNorm, softmax) read them back, and at 2,048
 * tokens (31 MB) they came from DRAM. Measured on 256 abstracts, 1 thread:
 * int8 89 -> 113 abstracts/s, fp32 unchanged at ~48 (bench/encoder). */
#define CHUNK_TOKENS 512

typedef struct {
    sx_linear qkv, ao, fi, fo;      /* fp32 path */
    sx_linear8 qkv8, ao8, fi8, fo8; /* int8 path */
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} layer_w;

struct sx_encoder {
    sx_tokenizer *tok;
    int H, L, NH, DH, I, V, P, max_len;
    float eps;
    int cls_pool;
    int int8;
    sx_st_file *st;                 /* kept open while word_f32 points into it */
    const unsigned char *word_f32;  /* F32 word embeddings in place, or NULL */
    float *word;                    /* converted word embeddings otherwise */
    float *pos, *type0, *emb_g, *emb_b;
    layer_w *layers;
    const sx_model_kernels *kern;
    sx_model_pool *pool;
    pthread_mutex_t run_mu;
    float *arena; /* the pool owner's scratch */
    size_t arena_floats;
    char desc[256];
};

/* ---- loading ------------------------------------------------------------ */

static int cfg_int(const cJSON *cfg, const char *key, int def, int lo, int hi, int *out,
                   const char *path, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) {
        if (def < 0) return sx_err_set(err, SX_ECORRUPT, "%s: missing \"%s\"", path, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        floor(v->valuedouble) != v->valuedouble)
        return sx_err_set(err, SX_ECORRUPT, "%s: \"%s\" must be an integer in [%d, %d]", path, key,
                          lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int load_config(sx_encoder *e, const char *dir, sx_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg;
    int rc = sx_json_read_object(path, 0, &cfg, err);
    if (rc < 0) return rc;
    if ((rc = cfg_int(cfg, "hidden_size", -1, 1, 16384, &e->H, path, err)) < 0 ||
        (rc = cfg_int(cfg, "num_hidden_layers", -1, 1, 256, &e->L, path, err)) < 0 ||
        (rc = cfg_int(cfg, "num_attention_heads", -1, 1, 1024, &e->NH, path, err)) < 0 ||
        (rc = cfg_int(cfg, "intermediate_size", -1, 1, 131072, &e->I, path, err)) < 0 ||
        (rc = cfg_int(cfg, "vocab_size", -1, 1, 10000000, &e->V, path, err)) < 0 ||
        (rc = cfg_int(cfg, "max_position_embeddings", 512, 2, 65536, &e->P, path, err)) < 0)
        goto done;
    if (e->H % e->NH != 0) {
        rc = sx_err_set(err, SX_ECORRUPT, "%s: hidden_size %d is not a multiple of "
                        "num_attention_heads %d", path, e->H, e->NH);
        goto done;
    }
    e->DH = e->H / e->NH;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu") != 0)) {
        rc = sx_err_set(err, SX_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only "
                        "\"gelu\")", path, cJSON_IsString(act) ? act->valuestring : "?");
        goto done;
    }
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(cfg, "position_embedding_type");
    if (pe && (!cJSON_IsString(pe) || strcmp(pe->valuestring, "absolute") != 0)) {
        rc = sx_err_set(err, SX_EUNSUPPORTED,
                        "%s: position_embedding_type must be \"absolute\"", path);
        goto done;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps");
    e->eps = 1e-12f;
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1) {
            rc = sx_err_set(err, SX_ECORRUPT, "%s: bad layer_norm_eps", path);
            goto done;
        }
        e->eps = (float)eps->valuedouble;
    }
done:
    cJSON_Delete(cfg);
    return rc;
}

/* Pooling: modules.json names the Pooling module's folder; its config says
 * CLS or mean. Without them, mean pooling (sentence-transformers' default). */
static int load_pooling(sx_encoder *e, const char *dir, sx_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    cJSON *mods = NULL, *pcfg = NULL;
    char *data;
    size_t size;
    int rc = sx_read_file(path, &data, &size, err);
    if (rc == SX_ENOTFOUND) return 0;
    if (rc < 0) return rc;
    mods = cJSON_ParseWithLength(data, size);
    free(data);
    if (!cJSON_IsArray(mods)) {
        cJSON_Delete(mods);
        return sx_err_set(err, SX_ECORRUPT, "%s: not a JSON array", path);
    }
    const char *pdir = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, mods) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *mp = cJSON_GetObjectItemCaseSensitive(m, "path");
        if (cJSON_IsString(type) && strstr(type->valuestring, "Pooling") && cJSON_IsString(mp))
            pdir = mp->valuestring;
    }
    if (pdir) {
        if (strstr(pdir, "..")) {
            rc = sx_err_set(err, SX_ECORRUPT, "%s: bad module path \"%s\"", path, pdir);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s/config.json", dir, pdir);
        rc = sx_json_read_object(path, 0, &pcfg, err);
        if (rc < 0) goto done;
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(pcfg, "pooling_mode");
        int cls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pcfg, "pooling_mode_cls_token")) ||
                  (cJSON_IsString(mode) && strcmp(mode->valuestring, "cls") == 0);
        int mean =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pcfg, "pooling_mode_mean_tokens")) ||
            (cJSON_IsString(mode) && strcmp(mode->valuestring, "mean") == 0);
        if (cls == mean) {
            rc = sx_err_set(err, SX_EUNSUPPORTED,
                            "%s: only mean or CLS pooling (exactly one) is supported", path);
            goto done;
        }
        e->cls_pool = cls;
    }
done:
    cJSON_Delete(mods);
    cJSON_Delete(pcfg);
    return rc;
}

/* Reads tensor name (dims as given) into a new float array in *out. */
static int read_tensor(const sx_st_file *st, const char *name, int64_t d0, int64_t d1,
                       float **out, sx_err *err) {
    int64_t dims[2] = {d0, d1};
    int nd = d1 > 0 ? 2 : 1;
    size_t n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    *out = malloc(n * sizeof(float) + 64);
    if (!*out) return sx_err_set(err, SX_ENOMEM, "out of memory reading %s", name);
    return sx_st_read_f32(st, name, nd, dims, *out, err);
}

static int read_ln(const sx_st_file *st, const char *prefix, int H, float **g, float **b,
                   sx_err *err) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (!sx_st_find(st, name)) snprintf(name, sizeof name, "%s.gamma", prefix);
    int rc = read_tensor(st, name, H, 0, g, err);
    if (rc < 0) return rc;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (!sx_st_find(st, name)) snprintf(name, sizeof name, "%s.beta", prefix);
    return read_tensor(st, name, H, 0, b, err);
}

/* Reads prefix.weight [n, k] and prefix.bias [n] into a packed layer. */
static int read_linear(const sx_st_file *st, const char *prefix, int n, int k, sx_linear *lin,
                       sx_err *err) {
    char name[256];
    float *w = NULL, *b = NULL;
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = read_tensor(st, name, n, k, &w, err);
    if (rc == 0) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        rc = read_tensor(st, name, n, 0, &b, err);
    }
    if (rc == 0 && sx_linear_init(lin, w, b, n, k) < 0)
        rc = sx_err_set(err, SX_ENOMEM, "out of memory packing %s", prefix);
    free(w);
    free(b);
    return rc;
}

/* Q, K and V of one layer fused into one [3H, H] layer. */
static int read_qkv(const sx_st_file *st, const char *prefix, int H, sx_linear *lin,
                    sx_err *err) {
    static const char *parts[3] = {"query", "key", "value"};
    float *w = malloc(sizeof(float) * 3 * (size_t)H * (size_t)H);
    float *b = malloc(sizeof(float) * 3 * (size_t)H);
    int rc = w && b ? 0 : sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int i = 0; i < 3 && rc == 0; i++) {
        char name[256];
        float *t = NULL;
        snprintf(name, sizeof name, "%s.attention.self.%s.weight", prefix, parts[i]);
        rc = read_tensor(st, name, H, H, &t, err);
        if (rc == 0) memcpy(w + (size_t)i * H * H, t, sizeof(float) * (size_t)H * H);
        free(t);
        t = NULL;
        if (rc < 0) break;
        snprintf(name, sizeof name, "%s.attention.self.%s.bias", prefix, parts[i]);
        rc = read_tensor(st, name, H, 0, &t, err);
        if (rc == 0) memcpy(b + (size_t)i * H, t, sizeof(float) * (size_t)H);
        free(t);
    }
    if (rc == 0 && sx_linear_init(lin, w, b, 3 * H, H) < 0)
        rc = sx_err_set(err, SX_ENOMEM, "out of memory packing %s", prefix);
    free(w);
    free(b);
    return rc;
}

static int load_weights(sx_encoder *e, const char *dir, sx_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = sx_st_open(path, &e->st, err);
    if (rc < 0) return rc;
    const sx_st_file *st = e->st;
    const char *pre = sx_st_find(st, "embeddings.word_embeddings.weight") ? "" : "bert.";
    char name[256];
    snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", pre);
    const sx_st_tensor *wt = sx_st_find(st, name);
    if (!wt) return sx_err_set(err, SX_ECORRUPT, "%s: no tensor '%s'", path, name);
    if (wt->dtype == SX_DT_F32) {
        int64_t dims[2] = {e->V, e->H};
        /* shape and dtype check only: a zero-length read */
        if (wt->ndim != 2 || wt->shape[0] != e->V || wt->shape[1] != e->H)
            return sx_st_read_f32(st, name, 2, dims, NULL, err);
        e->word_f32 = sx_st_data(st, wt);
    } else if ((rc = read_tensor(st, name, e->V, e->H, &e->word, err)) < 0) {
        return rc;
    }
    snprintf(name, sizeof name, "%sembeddings.position_embeddings.weight", pre);
    if ((rc = read_tensor(st, name, e->P, e->H, &e->pos, err)) < 0) return rc;
    snprintf(name, sizeof name, "%sembeddings.token_type_embeddings.weight", pre);
    const sx_st_tensor *tt = sx_st_find(st, name);
    if (!tt || tt->ndim != 2 || tt->shape[0] < 1)
        return sx_err_set(err, SX_ECORRUPT, "%s: no usable tensor '%s'", path, name);
    float *types = NULL;
    if ((rc = read_tensor(st, name, tt->shape[0], e->H, &types, err)) < 0) {
        free(types);
        return rc;
    }
    e->type0 = types; /* row 0 is the only one used */
    snprintf(name, sizeof name, "%sembeddings.LayerNorm", pre);
    if ((rc = read_ln(st, name, e->H, &e->emb_g, &e->emb_b, err)) < 0) return rc;
    e->layers = calloc((size_t)e->L, sizeof *e->layers);
    if (!e->layers) return sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int l = 0; l < e->L; l++) {
        layer_w *lw = &e->layers[l];
        char p[200], q[256];
        snprintf(p, sizeof p, "%sencoder.layer.%d", pre, l);
        if ((rc = read_qkv(st, p, e->H, &lw->qkv, err)) < 0) return rc;
        snprintf(q, sizeof q, "%s.attention.output.dense", p);
        if ((rc = read_linear(st, q, e->H, e->H, &lw->ao, err)) < 0) return rc;
        snprintf(q, sizeof q, "%s.attention.output.LayerNorm", p);
        if ((rc = read_ln(st, q, e->H, &lw->ln1_g, &lw->ln1_b, err)) < 0) return rc;
        snprintf(q, sizeof q, "%s.intermediate.dense", p);
        if ((rc = read_linear(st, q, e->I, e->H, &lw->fi, err)) < 0) return rc;
        lw->fi.gelu = 1;
        snprintf(q, sizeof q, "%s.output.dense", p);
        if ((rc = read_linear(st, q, e->H, e->I, &lw->fo, err)) < 0) return rc;
        snprintf(q, sizeof q, "%s.output.LayerNorm", p);
        if ((rc = read_ln(st, q, e->H, &lw->ln2_g, &lw->ln2_b, err)) < 0) return rc;
    }
    if (!e->word_f32) {
        sx_st_close(e->st);
        e->st = NULL;
    } else {
        sx_st_drop_pages(e->st); /* what we copied need not stay resident */
    }
    return 0;
}

void sx_encoder_free(sx_encoder *enc) {
    if (!enc) return;
    sx_model_pool_free(enc->pool);
    sx_tokenizer_free(enc->tok);
    if (enc->layers) {
        for (int l = 0; l < enc->L; l++) {
            layer_w *lw = &enc->layers[l];
            sx_linear_free(&lw->qkv);
            sx_linear_free(&lw->ao);
            sx_linear_free(&lw->fi);
            sx_linear_free(&lw->fo);
            sx_linear8_free(&lw->qkv8);
            sx_linear8_free(&lw->ao8);
            sx_linear8_free(&lw->fi8);
            sx_linear8_free(&lw->fo8);
            free(lw->ln1_g);
            free(lw->ln1_b);
            free(lw->ln2_g);
            free(lw->ln2_b);
        }
        free(enc->layers);
    }
    free(enc->word);
    free(enc->pos);
    free(enc->type0);
    free(enc->emb_g);
    free(enc->emb_b);
    free(enc->arena);
    sx_st_close(enc->st);
    pthread_mutex_destroy(&enc->run_mu);
    free(enc);
}

/* Calibration text for the int8 path: a few sentences in the register of
 * the corpus. Their only use is to find each linear layer's input range per
 * channel (where a model's activation outliers are), which does not depend
 * much on the text; what matters is that they run through every layer. */
static const char *const CALIB[] = {
    "We propose a graph neural network for predicting molecular properties from atomic "
    "structure, and show that it outperforms previous methods on standard benchmarks.",
    "In this paper we study the asymptotic behaviour of solutions to a class of nonlinear "
    "parabolic equations and prove existence and uniqueness under mild assumptions.",
    "Dark matter halos grow through the hierarchical merging of smaller structures; we "
    "measure their density profiles in a suite of cosmological simulations.",
    "Quantum error correction with surface codes",
    "A large language model is fine-tuned with reinforcement learning from human feedback "
    "to follow instructions, and evaluated on reasoning, coding and translation tasks.",
    "The experimental results, obtained at 4.2 K in magnetic fields up to 9 T, reveal a "
    "superconducting transition and strong anisotropy of the critical current.",
    "efficient transformers for long documents",
    "We prove that every finitely generated group acting properly on a CAT(0) cube "
    "complex is residually finite, answering a question of Wise.",
};

/* Unpacks the fp32 panels of lin back into W [n, k]. */
static void linear_unpack(const sx_linear *lin, float *W) {
    for (int j = 0; j < lin->n; j++) {
        const float *panel = lin->w + (size_t)(j / SX_NR) * (size_t)lin->k * SX_NR;
        for (int c = 0; c < lin->k; c++)
            W[(size_t)j * lin->k + c] = panel[(size_t)c * SX_NR + j % SX_NR];
    }
}

/* Switches a loaded fp32 encoder to int8: runs the calibration text through
 * the fp32 model recording every linear layer's input ranges, then
 * quantises each layer with SmoothQuant and frees its fp32 weights. */
static int quantize_model(sx_encoder *e, sx_err *err) {
    int n = (int)(sizeof CALIB / sizeof CALIB[0]);
    size_t lens[sizeof CALIB / sizeof CALIB[0]];
    for (int i = 0; i < n; i++) lens[i] = strlen(CALIB[i]);
    for (int l = 0; l < e->L; l++) {
        sx_linear *lins[4] = {&e->layers[l].qkv, &e->layers[l].ao, &e->layers[l].fi,
                              &e->layers[l].fo};
        for (int i = 0; i < 4; i++)
            if (!(lins[i]->amax = calloc((size_t)lins[i]->k, sizeof(float))))
                return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    float *tmp = malloc(sizeof(float) * (size_t)n * (size_t)e->H);
    float *W = malloc(sizeof(float) * (size_t)e->H * (size_t)(e->I > 3 * e->H ? e->I : 3 * e->H));
    int rc = tmp && W ? sx_encoder_embed(e, n, CALIB, lens, tmp, err)
                      : sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int l = 0; l < e->L && rc == 0; l++) {
        layer_w *lw = &e->layers[l];
        sx_linear *lins[4] = {&lw->qkv, &lw->ao, &lw->fi, &lw->fo};
        sx_linear8 *lins8[4] = {&lw->qkv8, &lw->ao8, &lw->fi8, &lw->fo8};
        for (int i = 0; i < 4 && rc == 0; i++) {
            linear_unpack(lins[i], W);
            if (sx_linear8_init(lins8[i], W, lins[i]->bias, lins[i]->n, lins[i]->k,
                                lins[i]->amax) < 0)
                rc = sx_err_set(err, SX_ENOMEM, "out of memory");
            lins8[i]->gelu = lins[i]->gelu;
            sx_linear_free(lins[i]);
        }
    }
    free(tmp);
    free(W);
    if (rc == 0) {
        e->int8 = 1;
        free(e->arena); /* sized for fp32; the int8 arena is larger */
        e->arena = NULL;
        e->arena_floats = 0;
    }
    return rc;
}

int sx_encoder_load(const char *model_dir, const sx_encoder_opts *opts, sx_encoder **out,
                    sx_err *err) {
    *out = NULL;
    sx_encoder_opts o = opts ? *opts : (sx_encoder_opts){0};
    sx_encoder *e = calloc(1, sizeof *e);
    if (!e) return sx_err_set(err, SX_ENOMEM, "out of memory");
    pthread_mutex_init(&e->run_mu, NULL);
    int rc = load_config(e, model_dir, err);
    if (rc == 0) rc = load_pooling(e, model_dir, err);
    if (rc == 0) rc = sx_tokenizer_load(model_dir, &e->tok, err);
    if (rc == 0 && sx_tokenizer_vocab_size(e->tok) > e->V)
        rc = sx_err_set(err, SX_ECORRUPT, "%s/vocab.txt: %d tokens but config.json says "
                        "vocab_size %d", model_dir, sx_tokenizer_vocab_size(e->tok), e->V);
    if (rc == 0) rc = load_weights(e, model_dir, err);
    int threads = o.n_threads > 0 ? o.n_threads : sx_cpu_count();
    if (rc == 0) rc = sx_model_pool_create(threads, &e->pool, err);
    if (rc < 0) {
        sx_encoder_free(e);
        return rc;
    }
    e->max_len = sx_tokenizer_max_len(e->tok);
    if (e->max_len > e->P) e->max_len = e->P;
    e->kern = sx_model_kernels_best();
    if (o.int8 && (rc = quantize_model(e, err)) < 0) {
        sx_encoder_free(e);
        return rc;
    }
    snprintf(e->desc, sizeof e->desc,
             "BERT %d layers, hidden %d, %d heads, ffn %d, vocab %d, max %d tokens, %s pooling, "
             "%s, %s kernels, %d threads",
             e->L, e->H, e->NH, e->I, e->V, e->max_len, e->cls_pool ? "CLS" : "mean",
             e->int8 ? "int8" : "fp32", e->kern->name, threads);
    *out = e;
    return 0;
}

int sx_encoder_dim(const sx_encoder *enc) { return enc->H; }
int sx_encoder_max_len(const sx_encoder *enc) { return enc->max_len; }
const sx_tokenizer *sx_encoder_tokenizer(const sx_encoder *enc) { return enc->tok; }
const char *sx_encoder_describe(const sx_encoder *enc) { return enc->desc; }

/* ---- forward pass ------------------------------------------------------- */

/* Per-thread attention scratch, in floats. */
static size_t att_scratch_floats(const sx_encoder *e, int lmax) {
    size_t lp = (size_t)(lmax + SX_NR - 1) / SX_NR * SX_NR;
    size_t dp = (size_t)(e->DH + SX_NR - 1) / SX_NR * SX_NR;
    return lp * (size_t)e->DH + dp * (size_t)lmax + (size_t)lmax * lp + lp + dp + 64;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Rows of one GEMM task (see gemm_run) and the most output panels of any
 * layer: they size the int8 path's per-thread int32 scratch. */
#define TASK_ROWS_MAX 64

static int max_panels(const sx_encoder *e) {
    int n = 3 * e->H > e->I ? 3 * e->H : e->I;
    return (n + SX_NR - 1) / SX_NR;
}

/* The widest input of any int8 layer, rounded up to whole 4-byte groups. */
static size_t kmax4(const sx_encoder *e) {
    return (size_t)((e->H > e->I ? e->H : e->I) + 3) / 4 * 4;
}

static size_t acc_stride(const sx_encoder *e) {
    size_t acc = round16((size_t)TASK_ROWS_MAX * (size_t)max_panels(e) * SX_NR);
    /* quant_task's 16-row block (16 k4 bytes) lives there too */
    size_t blk = round16(16 * kmax4(e) / 4);
    return acc > blk ? acc : blk;
}

static size_t arena_floats(const sx_encoder *e, int T, int lmax, int threads) {
    size_t t = (size_t)T;
    size_t n = round16(t * (size_t)e->H) * 3 + round16(t * 3 * (size_t)e->H) +
               round16(t * (size_t)e->I) + round16(att_scratch_floats(e, lmax)) * (size_t)threads +
               64;
    if (e->int8) {
        n += round16(t * kmax4(e) / 4 + 16) + 2 * round16(t) + acc_stride(e) * (size_t)threads;
    }
    return n;
}

typedef struct {
    const sx_encoder *e;
    const sx_model_kernels *k;
    int T, n_seq;
    const int *seq_start, *seq_len;
    float *x, *qkv, *ctx, *tmp, *inter, *att;
    size_t att_stride;
    int lmax;
    /* the GEMM being run */
    const sx_linear *lin;
    const float *A;
    float *C;
    int M, rows_per_task, panels_per_task, n_pblocks;
    /* the LayerNorm being run */
    const float *ln_r, *ln_g, *ln_b;
    const int32_t *ids; /* concatenated token ids */
    /* int8 path: quantised activations, their row scales, int32 scratch */
    const sx_linear8 *lin8;
    uint8_t *qa;
    float *qscale;
    int32_t *qzero;
    int32_t *acc;
    size_t acc_stride;
} fwd;

static void gemm_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    for (int t = begin; t < end; t++) {
        int rb = t / f->n_pblocks, pb = t % f->n_pblocks;
        int r0 = rb * f->rows_per_task;
        int m = f->M - r0 < f->rows_per_task ? f->M - r0 : f->rows_per_task;
        int p0 = pb * f->panels_per_task;
        int p1 = p0 + f->panels_per_task;
        if (p1 > f->lin->n_panels) p1 = f->lin->n_panels;
        const float *A = f->A + (size_t)r0 * (size_t)f->lin->k;
        float *C = f->C + (size_t)r0 * (size_t)f->lin->n;
        int mr = f->k->gemm_mr;
        for (int i = 0; i < m; i += mr) {
            int mm = m - i < mr ? m - i : mr;
            f->k->gemm_rows(f->lin, p0, p1, mm, A + (size_t)i * (size_t)f->lin->k, f->lin->k,
                            C + (size_t)i * (size_t)f->lin->n, f->lin->n);
        }
    }
}

/* Quantises rows of f->A (16 per task) into f->qa / f->qscale / f->qzero.
 * The 16 rows go first to a block laid out like their part of qa (group g
 * of row i at 4 (16 g + i)) in this thread's int32 scratch (unused until
 * the GEMM task; acc_stride leaves room), which stays in L1,
 * then each group's 64 bytes are copied out at once. Quantising straight
 * into qa stored each row's groups 4 bytes at a time, 4 M bytes apart (see
 * sx_model_kernels.gemm_i8_rows): 12% of an int8 embedding run's time. */
static void quant_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    const sx_linear8 *lin = f->lin8;
    uint8_t *blk = (uint8_t *)(f->acc + f->acc_stride * (size_t)tid);
    int ng = lin->k4 / 4;
    for (int t = begin; t < end; t++) {
        int r0 = t * 16, nr = f->M - r0 < 16 ? f->M - r0 : 16;
        for (int i = 0; i < nr; i++)
            f->qscale[r0 + i] = f->k->quantize_u8(f->A + (size_t)(r0 + i) * lin->k, lin->in_mul,
                                                  lin->k, lin->k4, blk + 4 * i, 64,
                                                  &f->qzero[r0 + i]);
        /* A whole block's copies have a constant size, which the compiler
         * turns into one 64-byte move; a libc memmove call per group was 4%
         * of an int8 server's CPU (perf). */
        uint8_t *dst = f->qa + 4 * (size_t)r0;
        size_t stride = 4 * (size_t)f->M;
        if (nr == 16)
            for (int g = 0; g < ng; g++) memcpy(dst + (size_t)g * stride, blk + 64 * (size_t)g, 64);
        else
            for (int g = 0; g < ng; g++)
                memcpy(dst + (size_t)g * stride, blk + 64 * (size_t)g, 4 * (size_t)nr);
    }
}

/* Int8 GEMM task: exact int32 products, then scale by the row's and the
 * output channel's scales, add the bias (and GELU). */
static void gemm8_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    const sx_linear8 *lin = f->lin8;
    int32_t *acc = f->acc + f->acc_stride * (size_t)tid;
    for (int t = begin; t < end; t++) {
        int rb = t / f->n_pblocks, pb = t % f->n_pblocks;
        int r0 = rb * f->rows_per_task;
        int m = f->M - r0 < f->rows_per_task ? f->M - r0 : f->rows_per_task;
        int p0 = pb * f->panels_per_task;
        int p1 = p0 + f->panels_per_task < lin->n_panels ? p0 + f->panels_per_task : lin->n_panels;
        int w = (p1 - p0) * SX_NR;
        f->k->gemm_i8_rows(lin, p0, p1, m, f->qa + 4 * (size_t)r0, f->M, acc, w);
        int c0 = p0 * SX_NR, c1 = p1 * SX_NR < lin->n ? p1 * SX_NR : lin->n;
        float *C = f->C + (size_t)r0 * (size_t)lin->n + c0;
        /* GELU in the same pass, on values still in registers: as a second
         * pass over the stored rows it cost more than the dequantisation. */
        for (int i = 0; i < m; i++)
            f->k->dequant(acc + (size_t)i * w, c1 - c0, f->qzero[r0 + i], lin->colsum + c0,
                          f->qscale[r0 + i], lin->scale + c0, lin->bias + c0,
                          C + (size_t)i * (size_t)lin->n, lin->gelu);
    }
}

/* How a GEMM of M rows and n_panels output panels is cut into tasks: row
 * blocks of a few micro-tiles; column blocks so that there are enough tasks
 * to keep every thread busy when M is small (a query). */
static void gemm_split(fwd *f, int threads, int M, int n_panels) {
    int mr = f->k->gemm_mr;
    f->M = M;
    f->rows_per_task = M <= 4 * mr ? M : 4 * mr;
    if (f->rows_per_task > TASK_ROWS_MAX) f->rows_per_task = TASK_ROWS_MAX;
    int n_rb = (M + f->rows_per_task - 1) / f->rows_per_task;
    int want = 4 * threads;
    int ppt = n_panels;
    if (n_rb < want) {
        int split = (want + n_rb - 1) / n_rb;
        ppt = (n_panels + split - 1) / split;
        if (ppt < 2) ppt = 2;
        ppt += ppt & 1; /* whole panel pairs for the 32-wide kernels */
    } else if (ppt > 8) {
        ppt = 8;
    }
    f->panels_per_task = ppt;
    f->n_pblocks = (n_panels + ppt - 1) / ppt;
}

/* C[M, n] = A[M, k] W^T + b (then GELU for a layer marked so), in parallel, with the
 * fp32 layer lin or, on the int8 path, lin8 (A quantised per row first). */
static void gemm_run(fwd *f, sx_model_pool *pool, const sx_linear *lin, const sx_linear8 *lin8,
                     const float *A, int M, float *C) {
    int threads = sx_model_pool_threads(pool);
    f->A = A, f->C = C;
    if (f->e->int8) {
        f->lin8 = lin8;
        gemm_split(f, threads, M, lin8->n_panels);
        sx_model_pool_run(pool, (M + 15) / 16, quant_task, f);
        sx_model_pool_run(pool, ((M + f->rows_per_task - 1) / f->rows_per_task) * f->n_pblocks,
                    gemm8_task, f);
        return;
    }
    f->lin = lin;
    if (lin->amax) /* calibration run of the int8 path: record input ranges */
        for (int i = 0; i < M; i++)
            for (int c = 0; c < lin->k; c++) {
                float v = fabsf(A[(size_t)i * lin->k + c]);
                if (v > lin->amax[c]) lin->amax[c] = v;
            }
    gemm_split(f, threads, M, lin->n_panels);
    sx_model_pool_run(pool, ((M + f->rows_per_task - 1) / f->rows_per_task) * f->n_pblocks, gemm_task,
                f);
}

static void embed_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    const sx_encoder *e = f->e;
    int H = e->H;
    for (int s = begin; s < end; s++) {
        const int32_t *ids = f->ids + f->seq_start[s];
        for (int i = 0; i < f->seq_len[s]; i++) {
            float *x = f->x + (size_t)(f->seq_start[s] + i) * (size_t)H;
            size_t row = (size_t)ids[i] * (size_t)H;
            if (e->word_f32) memcpy(x, e->word_f32 + row * sizeof(float), sizeof(float) * (size_t)H);
            else memcpy(x, e->word + row, sizeof(float) * (size_t)H);
            const float *p = e->pos + (size_t)i * (size_t)H;
            for (int j = 0; j < H; j++) x[j] += p[j] + e->type0[j];
            f->k->layernorm(x, NULL, e->emb_g, e->emb_b, H, e->eps);
        }
    }
}

static void ln_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    int H = f->e->H;
    for (int t = begin; t < end; t++) {
        int r0 = t * 16, r1 = r0 + 16 < f->T ? r0 + 16 : f->T;
        for (int r = r0; r < r1; r++)
            f->k->layernorm(f->x + (size_t)r * H, f->ln_r + (size_t)r * H, f->ln_g, f->ln_b, H,
                            f->e->eps);
    }
}

/* x = LayerNorm(x + r) over every row. */
static void ln_run(fwd *f, sx_model_pool *pool, const float *r, const float *g, const float *b) {
    f->ln_r = r, f->ln_g = g, f->ln_b = b;
    sx_model_pool_run(pool, (f->T + 15) / 16, ln_task, f);
}

/* Self-attention of one (sequence, head): ctx rows of that head. */
static void attention_task(void *ctx, int begin, int end, int tid) {
    fwd *f = ctx;
    const sx_encoder *e = f->e;
    const sx_model_kernels *k = f->k;
    int H = e->H, DH = e->DH;
    float *scratch = f->att + f->att_stride * (size_t)tid;
    for (int t = begin; t < end; t++) {
        int s = t / e->NH, h = t % e->NH;
        int L = f->seq_len[s];
        int lp = (L + SX_NR - 1) / SX_NR, dp = (DH + SX_NR - 1) / SX_NR;
        float *kpack = scratch;                                /* lp panels of [DH][16] */
        float *vpack = kpack + (size_t)lp * SX_NR * (size_t)DH; /* dp panels of [L][16] */
        float *scores = vpack + (size_t)dp * SX_NR * (size_t)L; /* L x L, row stride L */
        float *zeros = scores + (size_t)L * (size_t)lp * SX_NR;
        memset(zeros, 0, sizeof(float) * (size_t)(lp > dp ? lp : dp) * SX_NR);
        const float *base = f->qkv + (size_t)f->seq_start[s] * 3 * (size_t)H;
        float scale = 1.0f / sqrtf((float)DH);
        /* K^T panels: panel p, row d holds K[16p + j][d] * scale. */
        for (int p = 0; p < lp; p++)
            k->pack_kt(base + (size_t)p * SX_NR * 3 * H + H + (size_t)h * DH, 3 * (size_t)H,
                       L - p * SX_NR < SX_NR ? L - p * SX_NR : SX_NR, DH, scale,
                       kpack + (size_t)p * (size_t)DH * SX_NR);
        /* V panels: panel p, row j holds V[j][16p .. 16p + 15]. */
        for (int p = 0; p < dp; p++) {
            float *dst = vpack + (size_t)p * (size_t)L * SX_NR;
            for (int j = 0; j < L; j++) {
                const float *vr = base + (size_t)j * 3 * H + 2 * H + (size_t)h * DH + p * SX_NR;
                int nd = DH - p * SX_NR < SX_NR ? DH - p * SX_NR : SX_NR;
                memcpy(dst + (size_t)j * SX_NR, vr, sizeof(float) * (size_t)nd);
                if (nd < SX_NR) memset(dst + (size_t)j * SX_NR + nd, 0, sizeof(float) * (size_t)(SX_NR - nd));
            }
        }
        sx_linear kl = {.n = L, .k = DH, .n_panels = lp, .w = kpack, .bias = zeros};
        sx_linear vl = {.n = DH, .k = L, .n_panels = dp, .w = vpack, .bias = zeros};
        const float *q = base + (size_t)h * DH;
        float *out = f->ctx + (size_t)f->seq_start[s] * (size_t)H + (size_t)h * DH;
        int mr = k->gemm_mr;
        for (int i = 0; i < L; i += mr) {
            int mm = L - i < mr ? L - i : mr;
            k->gemm_rows(&kl, 0, lp, mm, q + (size_t)i * 3 * H, 3 * H, scores + (size_t)i * L, L);
        }
        k->softmax(scores, L, L, (size_t)L);
        for (int i = 0; i < L; i += mr) {
            int mm = L - i < mr ? L - i : mr;
            k->gemm_rows(&vl, 0, dp, mm, scores + (size_t)i * L, L, out + (size_t)i * H, H);
        }
    }
}

/* Runs the encoder over n_seq sequences whose ids are concatenated in ids
 * (T in all); leaves the last hidden state in f->x. */
static void forward(fwd *f, sx_model_pool *pool, const int32_t *ids) {
    const sx_encoder *e = f->e;
    f->ids = ids;
    sx_model_pool_run(pool, f->n_seq, embed_task, f);
    for (int l = 0; l < e->L; l++) {
        const layer_w *lw = &e->layers[l];
        gemm_run(f, pool, &lw->qkv, &lw->qkv8, f->x, f->T, f->qkv);
        sx_model_pool_run(pool, f->n_seq * e->NH, attention_task, f);
        gemm_run(f, pool, &lw->ao, &lw->ao8, f->ctx, f->T, f->tmp);
        ln_run(f, pool, f->tmp, lw->ln1_g, lw->ln1_b);
        gemm_run(f, pool, &lw->fi, &lw->fi8, f->x, f->T, f->inter);
        gemm_run(f, pool, &lw->fo, &lw->fo8, f->inter, f->T, f->tmp);
        ln_run(f, pool, f->tmp, lw->ln2_g, lw->ln2_b);
    }
}

/* Carves the arena into f's buffers. */
static void fwd_init(fwd *f, const sx_encoder *e, float *arena, int T, int lmax, int threads) {
    memset(f, 0, sizeof *f);
    f->e = e;
    f->k = e->kern;
    f->T = T;
    f->lmax = lmax;
    float *p = (float *)(((uintptr_t)arena + 63) & ~(uintptr_t)63);
    f->x = p, p += round16((size_t)T * e->H);
    f->ctx = p, p += round16((size_t)T * e->H);
    f->tmp = p, p += round16((size_t)T * e->H);
    f->qkv = p, p += round16((size_t)T * 3 * e->H);
    f->inter = p, p += round16((size_t)T * e->I);
    f->att = p;
    f->att_stride = round16(att_scratch_floats(e, lmax));
    p += f->att_stride * (size_t)threads;
    if (e->int8) {
        f->qa = (uint8_t *)p, p += round16((size_t)T * kmax4(e) / 4 + 16);
        f->qscale = p, p += round16((size_t)T);
        f->qzero = (int32_t *)p, p += round16((size_t)T);
        f->acc = (int32_t *)p;
        f->acc_stride = acc_stride(e);
    }
}

/* Pools and normalises the hidden state of each sequence into out. */
static void pool_out(const fwd *f, float *out) {
    const sx_encoder *e = f->e;
    int H = e->H;
    for (int s = 0; s < f->n_seq; s++) {
        float *o = out + (size_t)s * H;
        const float *x = f->x + (size_t)f->seq_start[s] * H;
        if (e->cls_pool) {
            memcpy(o, x, sizeof(float) * (size_t)H);
        } else {
            double acc[H];
            for (int j = 0; j < H; j++) acc[j] = 0;
            for (int i = 0; i < f->seq_len[s]; i++)
                for (int j = 0; j < H; j++) acc[j] += x[(size_t)i * H + j];
            for (int j = 0; j < H; j++) o[j] = (float)(acc[j] / f->seq_len[s]);
        }
        sx_l2_normalize(o, H);
    }
}

/* Scratch for one call: the encoder's pool and arena when free, else a
 * private arena and no pool. */
typedef struct {
    sx_model_pool *pool;
    float *arena;
    size_t arena_each; /* floats of a single-thread arena (for a chunk per thread) */
    int owner;
    int threads;
} run_ctx;

static int run_begin(sx_encoder *e, run_ctx *r, int T, int lmax, sx_err *err) {
    r->owner = pthread_mutex_trylock(&e->run_mu) == 0;
    r->pool = r->owner ? e->pool : NULL;
    r->threads = sx_model_pool_threads(r->pool);
    size_t need = arena_floats(e, T, lmax, r->threads);
    /* room for one single-thread arena per thread too (embed_seqs) */
    size_t each = arena_floats(e, T, lmax, 1);
    if (r->owner && each * (size_t)r->threads > need) need = each * (size_t)r->threads;
    r->arena_each = each;
    if (r->owner) {
        if (e->arena_floats < need) {
            free(e->arena);
            e->arena = malloc(need * sizeof(float));
            e->arena_floats = e->arena ? need : 0;
        }
        r->arena = e->arena;
        sx_model_pool_hold(r->pool, 1);
    } else {
        r->arena = malloc(need * sizeof(float));
    }
    if (!r->arena) {
        if (r->owner) {
            sx_model_pool_hold(r->pool, 0);
            pthread_mutex_unlock(&e->run_mu);
        }
        return sx_err_set(err, SX_ENOMEM, "out of memory for %d tokens", T);
    }
    return 0;
}

static void run_end(sx_encoder *e, run_ctx *r) {
    if (r->owner) {
        sx_model_pool_hold(r->pool, 0);
        pthread_mutex_unlock(&e->run_mu);
    }
    else free(r->arena);
}

/* Runs sequences [s0, s1) (starts: offsets of every sequence in ids) as one
 * forward pass with the arena and pool given, and pools them into out. */
static void run_chunk(sx_encoder *e, sx_model_pool *pool, float *arena, int threads,
                      const int32_t *ids, const int *lens, const int *starts, int s0, int s1,
                      int lmax, float *out) {
    int local_start[s1 - s0];
    for (int i = s0; i < s1; i++) local_start[i - s0] = starts[i] - starts[s0];
    int toks = starts[s1 - 1] + lens[s1 - 1] - starts[s0];
    fwd f;
    fwd_init(&f, e, arena, toks, lmax, threads);
    f.n_seq = s1 - s0;
    f.seq_start = local_start;
    f.seq_len = lens + s0;
    forward(&f, pool, ids + starts[s0]);
    pool_out(&f, out + (size_t)s0 * e->H);
}

/* Many chunks: each thread runs whole chunks alone, in its own arena. */
typedef struct {
    sx_encoder *e;
    const int32_t *ids;
    const int *lens, *starts, *first; /* chunk c = sequences [first[c], first[c + 1]) */
    int lmax;
    float *arena, *out;
    size_t arena_each;
} chunks_job;

static void chunk_task(void *ctx, int begin, int end, int tid) {
    chunks_job *j = ctx;
    for (int c = begin; c < end; c++)
        run_chunk(j->e, NULL, j->arena + j->arena_each * (size_t)tid, 1, j->ids, j->lens,
                  j->starts, j->first[c], j->first[c + 1], j->lmax, j->out);
}

/* Embeds sequences [0, n) given as concatenated ids, in chunks of at most
 * CHUNK_TOKENS tokens (whole sequences). Chunks run one after another with
 * every thread on each GEMM, except on the int8 path with at least two
 * chunks per thread: there each thread runs whole chunks alone, with no
 * hand-off between the ~70 short parallel loops of a pass (2 threads, 256
 * abstracts: 192 -> 199/s). fp32 stays on shared GEMMs: two threads
 * streaming their own pass through 42 MB of weights, more than the L3
 * cache, lost 7% (95 -> 88/s); int8's 11 MB fit. */
static int embed_seqs(sx_encoder *e, int n, const int32_t *ids, const int *lens, float *out,
                      sx_err *err) {
    if (n <= 0) return 0;
    int *starts = malloc(sizeof(int) * (size_t)n), *first = malloc(sizeof(int) * (size_t)(n + 1));
    if (!starts || !first) {
        free(starts);
        free(first);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    int T = 0, lmax = 1, chunk_max = 0, cur = 0, n_chunks = 0;
    for (int i = 0; i < n; i++) {
        starts[i] = T;
        T += lens[i];
        if (lens[i] > lmax) lmax = lens[i];
        if (i == 0 || cur + lens[i] > CHUNK_TOKENS) {
            first[n_chunks++] = i;
            cur = 0;
        }
        cur += lens[i];
        if (cur > chunk_max) chunk_max = cur;
    }
    first[n_chunks] = n;
    run_ctx r;
    int rc = run_begin(e, &r, chunk_max, lmax, err);
    if (rc < 0) {
        free(starts);
        free(first);
        return rc;
    }
    if (e->int8 && r.owner && r.threads > 1 && n_chunks >= 2 * r.threads) {
        chunks_job j = {e, ids, lens, starts, first, lmax, r.arena, out, r.arena_each};
        sx_model_pool_run(r.pool, n_chunks, chunk_task, &j);
    } else {
        for (int c = 0; c < n_chunks; c++)
            run_chunk(e, r.pool, r.arena, r.threads, ids, lens, starts, first[c], first[c + 1],
                      lmax, out);
    }
    run_end(e, &r);
    free(starts);
    free(first);
    return 0;
}

int sx_encoder_embed_ids(sx_encoder *enc, int n, const int32_t *const *ids, const int *n_ids,
                         float *out, sx_err *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (n_ids[i] < 1 || n_ids[i] > enc->max_len)
            return sx_err_set(err, SX_EINVAL, "sequence %d: %d tokens (allowed 1..%d)", i,
                              n_ids[i], enc->max_len);
        for (int j = 0; j < n_ids[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= enc->V)
                return sx_err_set(err, SX_EINVAL, "sequence %d: token id %d out of range [0, %d)",
                                  i, ids[i][j], enc->V);
        total += (size_t)n_ids[i];
    }
    int32_t *flat = malloc(sizeof(int32_t) * (total ? total : 1));
    float *tmp = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)enc->H);
    if (!flat || !tmp) {
        free(flat);
        free(tmp);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        memcpy(flat + pos, ids[i], sizeof(int32_t) * (size_t)n_ids[i]);
        pos += (size_t)n_ids[i];
    }
    int rc = embed_seqs(enc, n, flat, n_ids, tmp, err);
    if (rc == 0) memcpy(out, tmp, sizeof(float) * (size_t)n * (size_t)enc->H);
    free(flat);
    free(tmp);
    return rc;
}

int sx_encoder_embed(sx_encoder *enc, int n, const char *const *texts, const size_t *lens,
                     float *out, sx_err *err) {
    if (n < 0) return sx_err_set(err, SX_EINVAL, "negative text count");
    for (int i = 0; i < n; i++) {
        size_t off;
        if (!texts[i] && lens[i]) return sx_err_set(err, SX_EINVAL, "text %d is NULL", i);
        if (lens[i] && sx_utf8_check(texts[i], lens[i], &off) != 0)
            return sx_err_set(err, SX_EINVAL, "text %d: invalid UTF-8 at byte offset %zu", i, off);
    }
    int maxl = enc->max_len;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1) * (size_t)maxl);
    int *nids = malloc(sizeof(int) * (size_t)(n ? n : 1));
    float *tmp = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)enc->H);
    int rc = ids && nids && tmp ? 0 : sx_err_set(err, SX_ENOMEM, "out of memory");
    size_t pos = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = sx_tokenizer_encode(enc->tok, lens[i] ? texts[i] : "", lens[i], ids + pos, maxl,
                                 &nids[i], err);
        pos += (size_t)nids[i];
    }
    if (rc == 0) rc = embed_seqs(enc, n, ids, nids, tmp, err);
    if (rc == 0) memcpy(out, tmp, sizeof(float) * (size_t)n * (size_t)enc->H);
    free(ids);
    free(nids);
    free(tmp);
    return rc;
}

typedef struct {
    void (*fn)(void *ctx, int i);
    void *ctx;
} parallel_job;

static void parallel_task(void *ctx, int begin, int end, int tid) {
    parallel_job *j = ctx;
    for (int i = begin; i < end; i++) j->fn(j->ctx, i);
}

void sx_encoder_parallel(sx_encoder *enc, int n, void (*fn)(void *ctx, int i), void *ctx) {
    int owner = pthread_mutex_trylock(&enc->run_mu) == 0;
    parallel_job j = {fn, ctx};
    sx_model_pool_run(owner ? enc->pool : NULL, n, parallel_task, &j);
    if (owner) pthread_mutex_unlock(&enc->run_mu);
}

int sx_encoder_hidden(sx_encoder *enc, const int32_t *ids, int n_ids, float *out, sx_err *err) {
    if (n_ids < 1 || n_ids > enc->max_len)
        return sx_err_set(err, SX_EINVAL, "%d tokens (allowed 1..%d)", n_ids, enc->max_len);
    for (int j = 0; j < n_ids; j++)
        if (ids[j] < 0 || ids[j] >= enc->V)
            return sx_err_set(err, SX_EINVAL, "token id %d out of range [0, %d)", ids[j], enc->V);
    run_ctx r;
    int rc = run_begin(enc, &r, n_ids, n_ids, err);
    if (rc < 0) return rc;
    int start = 0;
    fwd f;
    fwd_init(&f, enc, r.arena, n_ids, n_ids, r.threads);
    f.n_seq = 1;
    f.seq_start = &start;
    f.seq_len = &n_ids;
    forward(&f, r.pool, ids);
    memcpy(out, f.x, sizeof(float) * (size_t)n_ids * (size_t)enc->H);
    run_end(enc, &r);
    return 0;
}
