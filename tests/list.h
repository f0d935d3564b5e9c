/* Every unit test, in the order they run. One line per test:
 * TEST(name) declares `void test_name(void)` defined in tests/test-<module>.c.
 * Keep each module's tests under its own heading. */

/* common */
TEST(common_crc32c_known_values)
TEST(common_crc32c_hw_matches_portable)
TEST(common_err_messages)
TEST(common_read_file)

/* text, model (encoder) */

/* index, shard */
TEST(index_kernels_match_scalar)
TEST(index_sq8_roundtrip)
TEST(index_bad_input)
TEST(index_recall_fp32)
TEST(index_recall_sq8)
TEST(index_delete_and_reuse)
TEST(index_filters)
TEST(index_save_load)
TEST(index_load_corrupt)
TEST(shard_crud)
TEST(shard_bad_input)
TEST(shard_filtered_recall)
TEST(shard_save_load)
TEST(shard_load_corrupt)
TEST(shard_concurrent)

/* storage */

/* server */
