/* Every unit test, in the order they run. One line per test:
 * TEST(name) declares `void test_name(void)` defined in tests/test-<module>.c.
 * Keep each module's tests under its own heading. */

/* common */
TEST(common_crc32c_known_values)
TEST(common_crc32c_hw_matches_portable)
TEST(common_err_messages)
TEST(common_read_file)
TEST(common_buf)
TEST(common_pool)

/* text, model (encoder) */
TEST(text_utf8_check)
TEST(text_tokenizer_matches_reference)
TEST(text_tokenizer_every_code_point)
TEST(text_tokenizer_edges)
TEST(text_tokenizer_bad_model)
TEST(model_kernels_match_scalar)
TEST(model_half_conversions)
TEST(model_pool_concurrent_runs_every_task_once)
TEST(model_safetensors_parse)
TEST(model_embed_matches_reference)
TEST(model_int8_close_to_fp32)
TEST(model_random_berts_match_transformers)
TEST(model_embed_edges)
TEST(model_concurrent_embed)
TEST(model_bad_model_files)

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
TEST(shard_refill_small)
TEST(shard_filtered_recall)
TEST(shard_save_load)
TEST(shard_load_corrupt)
TEST(shard_concurrent)
TEST(shard_fixture_loads)
TEST(shard_allocator)

/* corpus */
TEST(corpus_lines_plain_gzip_zstd)
TEST(corpus_lines_truncated_compressed)
TEST(corpus_lines_overlong_skipped)
TEST(corpus_lines_shared_sample)
TEST(corpus_record_kaggle_line)
TEST(corpus_record_errors)
TEST(corpus_record_shared_sample)
TEST(corpus_npy)

/* storage */
TEST(wal_append_replay)
TEST(wal_torn_tail_truncated)
TEST(wal_midfile_corruption_refused)
TEST(wal_bad_header)
TEST(wal_apply_error_stops_open)
TEST(wal_concurrent_group_commit)
TEST(store_upsert_search_reopen)
TEST(store_filter_and_delete)
TEST(store_invalid_batch_changes_nothing)
TEST(store_corruption_refused)
TEST(store_torn_log_tail)
TEST(store_locked_directory)
TEST(store_concurrent_writes_checkpoints)

/* server */
TEST(lru_get_put_evict)
TEST(lru_many_keys)
TEST(ratelimit_token_bucket)
TEST(metrics_render)
