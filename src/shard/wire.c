/*
 * wire.c - the checks of one upsert item as the Redis module receives it
 * (see shard.h): a vector argument's size, the document codec, the id
 * argument against the document's id, and the store's rules.
 *
 * They lived inside the module's command handler, entangled with the Redis
 * API (RedisModuleString, replies), where only a running redis-server could
 * reach them. Here they are plain functions over bytes, so the fuzz target
 * tests/fuzz/module.c and the unit tests call exactly what the module calls,
 * and the module keeps only the Redis glue (allocation, replies).
 */
#include "shard.h"

#include <stdio.h>

#include "../index/index.h"

int sx_wire_vector_len(size_t len, int dim, sx_err *err) {
    if (len == 0 || len % 4 != 0 || len / 4 > SX_INDEX_MAX_DIM)
        return sx_err_set(err, SX_EINVAL, "vector is %zu bytes, not a multiple of 4 in 4..%d", len,
                          4 * SX_INDEX_MAX_DIM);
    if (dim && len != (size_t)dim * 4)
        return sx_err_set(err, SX_EINVAL, "vector is %zu bytes, the shard's dim %d needs %d", len, dim,
                          dim * 4);
    return (int)(len / 4);
}

int sx_wire_item(const char *id, size_t idlen, const void *vec, size_t vlen, const void *doc,
                 size_t dlen, float *v_out, sx_doc *d_out, sx_err *err) {
    int dim = (int)(vlen / 4);
    sx_le32_copy(v_out, vec, (size_t)dim);
    int rc = sx_doc_decode(doc, dlen, d_out, err);
    if (rc < 0) return sx_err_prefix(err, "bad doc");
    if (strlen(d_out->id) != idlen || memcmp(d_out->id, id, idlen) != 0)
        return sx_err_set(err, SX_EINVAL, "the doc's id '%.63s' differs from the id argument", d_out->id);
    if ((rc = sx_doc_check(d_out, err)) < 0) return rc;
    return sx_vector_check(v_out, dim, err);
}
