/*
 * json.c - reading a JSON object from a file (model folders are described by
 * several small JSON files; both the tokenizer and the encoder read them).
 */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "sx.h"

int sx_json_read_object(const char *path, int optional, cJSON **out, sx_err *err) {
    char *data;
    size_t size;
    *out = NULL;
    int rc = sx_read_file(path, &data, &size, err);
    if (rc == SX_ENOTFOUND && optional) return 0;
    if (rc < 0) return rc;
    *out = cJSON_ParseWithLength(data, size);
    free(data);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return sx_err_set(err, SX_ECORRUPT, "%s: not a JSON object", path);
    }
    return 0;
}
