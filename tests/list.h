/* Every unit test, in the order they run. One line per test:
 * TEST(name) declares `void test_name(void)` defined in tests/test-<module>.c.
 * Keep each module's tests under its own heading. */

/* common */
TEST(common_crc32c_known_values)
TEST(common_crc32c_hw_matches_portable)
TEST(common_err_messages)
TEST(common_read_file)

/* text, model (encoder) */
TEST(text_utf8_check)
TEST(text_tokenizer_matches_reference)
TEST(text_tokenizer_every_code_point)
TEST(text_tokenizer_edges)
TEST(text_tokenizer_bad_model)
TEST(model_kernels_match_scalar)
TEST(model_half_conversions)
TEST(model_pool_runs_every_task_once)
TEST(model_safetensors_parse)
TEST(model_embed_matches_reference)
TEST(model_int8_close_to_fp32)
TEST(model_random_berts_match_transformers)
TEST(model_embed_edges)
TEST(model_concurrent_embed)
TEST(model_bad_model_files)

/* index, shard */

/* storage */

/* server */
