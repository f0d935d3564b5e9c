/* Tests for src/cluster/gateway.c that need no cluster: the names of the
 * shard keys (a fixed contract) and how evenly they fall over the slots. */
#include "test.h"

#include "../src/cluster/gateway.h"
#include "../src/cluster/rcluster.h"

void test_gateway_shard_key_names(void) {
    char k[64];
    /* The contract: these names must never change (they are where a
     * cluster's papers live). */
    sx_gateway_shard_key(0, 1, k, sizeof k);
    CHECK_STR(k, "semdex:{shard-00}");
    sx_gateway_shard_key(0, 8, k, sizeof k);
    CHECK_STR(k, "semdex:{shard-00-10}");
    sx_gateway_shard_key(3, 16, k, sizeof k);
    CHECK_STR(k, "semdex:{shard-03}");
    sx_gateway_shard_key(15, 16, k, sizeof k);
    CHECK_STR(k, "semdex:{shard-15-63}");
    for (int S = 1; S <= 256; S *= 4) {
        for (int i = 0; i < S; i++) {
            sx_gateway_shard_key(i, S, k, sizeof k);
            int slot = sx_rc_key_slot(k, strlen(k));
            CHECK_MSG(slot >= i * SX_RC_SLOTS / S && slot < (i + 1) * SX_RC_SLOTS / S,
                      "S=%d key %d '%s' slot %d outside its range", S, i, k, slot);
            char tag[32];
            snprintf(tag, sizeof tag, "{shard-%02d", i);
            CHECK(strstr(k, tag) == k + 7);
        }
    }
    /* Three masters with equal slot ranges get 5 or 6 of 16 keys each. */
    int per[3] = {0};
    for (int i = 0; i < 16; i++) {
        sx_gateway_shard_key(i, 16, k, sizeof k);
        int slot = sx_rc_key_slot(k, strlen(k));
        per[slot < 5461 ? 0 : slot < 10923 ? 1 : 2]++;
    }
    for (int m = 0; m < 3; m++) CHECK_MSG(per[m] == 5 || per[m] == 6, "master %d holds %d keys", m, per[m]);
}
