/*
 * text.h - UTF-8 validation and the BERT WordPiece tokenizer.
 *
 * The tokenizer reproduces Hugging Face's BertTokenizerFast (BertNormalizer +
 * BertPreTokenizer + WordPiece + [CLS]/[SEP] template) for the model folder it
 * is loaded from, id for id:
 *
 *     sx_err err = {0};
 *     sx_tokenizer *tok;
 *     if (sx_tokenizer_load("models/all-MiniLM-L6-v2", &tok, &err) < 0) ...
 *     int32_t ids[256];
 *     int n;
 *     if (sx_tokenizer_encode(tok, text, strlen(text), ids, 256, &n, &err) < 0) ...
 *     sx_tokenizer_free(tok);
 *
 * A loaded tokenizer is immutable: any number of threads may encode with it at
 * once. See text.c for the design and docs/encoder.md for the exact rules.
 */
#ifndef SX_TEXT_H
#define SX_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

typedef struct sx_tokenizer sx_tokenizer;

/* Checks that s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). Returns 0 when valid; otherwise SX_EINVAL with
 * the offset of the first bad byte in *bad_offset (OUT, may be NULL). */
int sx_utf8_check(const char *s, size_t len, size_t *bad_offset);

/* Loads the tokenizer of a BERT model folder: vocab.txt (one token per line,
 * id = line number), tokenizer_config.json (do_lower_case, strip_accents,
 * tokenize_chinese_chars, the special token names; optional) and
 * sentence_bert_config.json (max_seq_length; optional, else the config's
 * model_max_length, else 512). On success *out (OUT) owns the tokenizer;
 * errors name the file and the problem. */
int sx_tokenizer_load(const char *model_dir, /* folder holding vocab.txt */
                      sx_tokenizer **out,    /* OUT: the tokenizer */
                      sx_err *err);

/* Frees a tokenizer (NULL is fine). */
void sx_tokenizer_free(sx_tokenizer *tok);

/* Tokenizes text[0..len) into ids: [CLS], the WordPiece ids, [SEP], truncated
 * to min(max_ids, max_seq_length) ids in all (the tail is cut, [SEP] kept), as
 * sentence-transformers feeds the model. Returns 0 with the count in *n_ids
 * (OUT); SX_EINVAL when text is not valid UTF-8 (the message gives the byte
 * offset) or max_ids < 2. ids is written only on success. */
int sx_tokenizer_encode(const sx_tokenizer *tok, const char *text, size_t len,
                        int32_t *ids, /* OUT: room for max_ids ids */
                        int max_ids, int *n_ids /* OUT */, sx_err *err);

/* Like sx_tokenizer_encode but ignores max_seq_length: truncates to max_ids
 * only (for callers that chunk long documents themselves, and for tests). */
int sx_tokenizer_encode_all(const sx_tokenizer *tok, const char *text, size_t len,
                            int32_t *ids, int max_ids, int *n_ids, sx_err *err);

/* Called once per word by sx_tokenizer_words: the normalised bytes of one
 * word (not NUL-terminated). */
typedef void (*sx_word_fn)(void *ctx, const char *word, size_t len);

/* Runs normalisation and pre-tokenisation only, calling fn for every word in
 * order (a special token found in the text, such as "[MASK]", is one word).
 * Returns 0, or SX_EINVAL for invalid UTF-8. For tests and debugging. */
int sx_tokenizer_words(const sx_tokenizer *tok, const char *text, size_t len, sx_word_fn fn,
                       void *ctx, sx_err *err);

/* The longest sequence, in tokens, the model takes (256 for all-MiniLM-L6-v2). */
int sx_tokenizer_max_len(const sx_tokenizer *tok);

/* Number of tokens in the vocabulary. */
int sx_tokenizer_vocab_size(const sx_tokenizer *tok);

/* Id of the padding token ([PAD]). */
int32_t sx_tokenizer_pad_id(const sx_tokenizer *tok);

/* The text of token id (NUL-terminated, owned by tok), or NULL when id is out
 * of range. */
const char *sx_tokenizer_token(const sx_tokenizer *tok, int32_t id);

#endif /* SX_TEXT_H */
