/*
 * cmd_serve.c - `semdex serve`: run the search service.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"
#include "cli.h"

static const char *k_usage =
    "--data DIR [options]\n"
    "       semdex serve --cluster HOST:PORT[,HOST:PORT...] [options]\n"
    "\n"
    "Serves the collection in DIR over HTTP, or, as a gateway, the collection held\n"
    "by a Redis Cluster running the semdex module. DIR must hold a collection\n"
    "(`semdex ingest` creates one) unless --create is given.\n"
    "\n"
    "  --data DIR          collection directory (snapshots + write-ahead log)\n"
    "  --create            create an empty collection in DIR when it holds none\n"
    "  --accept-log-loss   open DIR even though its write-ahead log is missing,\n"
    "                      empty, foreign or damaged, losing the writes it held\n"
    "                      (see docs/operations.md, Recovery)\n"
    "  --cluster SEEDS     Redis Cluster nodes to start from (gateway mode)\n"
    "  --wait N            gateway: replicas a write must reach before it is\n"
    "                      acknowledged (1 when the cluster has replicas, else 0)\n"
    "  --wait-timeout MS   gateway: how long to wait for them (1000)\n"
    "  --no-replica-reads  gateway: search and read on masters only\n"
    "  --per-key-search    gateway: one SEMDEX.SEARCH per shard key, not one\n"
    "                      SEMDEX.MSEARCH per node (slower; for comparison)\n"
    "  --port N            TCP port (8000)\n"
    "  --host ADDR         IPv4 address to bind (127.0.0.1; 0.0.0.0 for all)\n"
    "  --model DIR         encoder model folder (models/all-MiniLM-L6-v2)\n"
    "  --threads N         encoder threads (all cores)\n"
    "  --int8              use the int8 encoder\n"
    "  --embed-workers N   encoder calls running at once (1)\n"
    "  --embed-batch N     most queries embedded in one encoder call (64)\n"
    "  --cache N           query vectors cached (10000; 0 disables)\n"
    "  --rate-limit R      requests per second per client (0 = unlimited)\n"
    "  --burst B           rate-limit bucket size (2 x rate)\n"
    "  --trusted-proxy A[,A...]  proxies (e.g. HAProxy's address) whose last\n"
    "                      X-Forwarded-For entry is the client for rate limits\n"
    "                      and logs (none: the peer is the client)\n"
    "  --api-key KEY       key required by write routes (or env SEMDEX_API_KEY);\n"
    "                      without one, writes are open on a loopback --host and\n"
    "                      refused (403) on any other\n"
    "  --auth-fail-rate R  failed API-key attempts per second per client, bucket\n"
    "                      of 10; past it 429 (1; 0 = unlimited)\n"
    "  --cors-origin O     allow cross-origin requests from origin O (or *)\n"
    "  --allowed-host H    accept Host H besides localhost, 127.0.0.1 and [::1]\n"
    "                      (repeatable or comma-separated; checks Host on any --host;\n"
    "                      * accepts any, for a proxy in front that checks it)\n"
    "  --max-body BYTES    largest request body (33554432)\n"
    "  --max-header-bytes N  buffer per connection for the request line and\n"
    "                      headers (32768; larger requests get 431)\n"
    "  --timeout S         idle connection timeout in seconds (30)\n"
    "  --header-timeout S  seconds for a request's headers to arrive (10; 0 = none)\n"
    "  --body-timeout S    seconds for a request's body to arrive (60; 0 = none)\n"
    "  --max-connections N open connections in all (16384)\n"
    "  --max-conns-per-ip N  open connections per client address (256; 0 = no cap)\n"
    "  --io-threads N      threads running the connections (2)\n"
    "  --workers N         threads running requests (64)\n"
    "  --shards S          shards of a new collection (1; gateway: shard keys of a new\n"
    "                      cluster collection, 16, and must match an existing one)\n"
    "  --storage sq8|fp32  vector storage of a new collection (sq8)\n"
    "  --ef N              default ef_search of a new collection (64)\n"
    "  --log-level L       debug, info, warn or error (info)\n"
    "  --slow-ms MS        log requests slower than MS at warn level as\n"
    "                      slow_request, with a search's query (500; 0: never)\n"
    "  --checkpoint-bytes N  log size that starts a background checkpoint\n"
    "                      (536870912)\n";

/* The signal thread: waits for SIGTERM or SIGINT and stops the server. */
typedef struct {
    sigset_t sigs;
    pthread_mutex_t mu;
    int done; /* under mu: the server no longer needs stopping */
    sx_server *srv;
} sig_ctx;

static void *signal_main(void *arg) {
    sig_ctx *c = arg;
    int sig = 0;
    sigwait(&c->sigs, &sig);
    pthread_mutex_lock(&c->mu);
    if (!c->done) {
        sx_log(SX_LOG_INFO, "signal %d: stopping", sig);
        sx_server_stop(c->srv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Runs the server until SIGTERM or SIGINT. The signals are blocked in every
 * thread (the server's threads inherit the mask) and taken by sigwait on a
 * thread of the CLI's own, so the server library owns no signal handling. */
static int serve(const sx_server_opts *o) {
    sig_ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sigemptyset(&c.sigs);
    sigaddset(&c.sigs, SIGTERM);
    sigaddset(&c.sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &c.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sx_err err = {0};
    if (sx_server_start(o, &c.srv, &err) < 0) return cli_fail("serve", "%s", err.msg);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_main, &c) != 0) {
        sx_server_stop(c.srv);
        sx_server_wait(c.srv, NULL);
        sx_server_free(c.srv);
        return cli_fail("serve", "cannot start the signal thread");
    }
    int rc = sx_server_wait(c.srv, &err);
    pthread_mutex_lock(&c.mu);
    c.done = 1;
    pthread_mutex_unlock(&c.mu);
    pthread_kill(t, SIGTERM); /* wakes the signal thread when the load failed */
    pthread_join(t, NULL);
    sx_server_free(c.srv);
    if (rc < 0) return cli_fail("serve", "%s", err.msg);
    return 0;
}

int cli_cmd_serve(int argc, char **argv) {
    sx_server_opts o = sx_server_defaults();
    o.data_dir = NULL;
    o.api_key = getenv("SEMDEX_API_KEY");
    char hosts[1024] = ""; /* the --allowed-host names, comma-separated */
    long v;
    if (cli_wants_help(argc, argv)) {
        printf("usage: semdex serve %s", k_usage);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--int8") == 0) {
            o.int8 = 1;
            continue;
        } else if (strcmp(a, "--no-replica-reads") == 0) {
            o.gateway.replica_reads = 0;
            continue;
        } else if (strcmp(a, "--per-key-search") == 0) {
            o.gateway.per_key_search = 1;
            continue;
        } else if (strcmp(a, "--create") == 0) {
            o.store.create = 1;
            continue;
        } else if (strcmp(a, "--accept-log-loss") == 0) {
            o.store.accept_log_loss = 1;
            continue;
        }
        if (!val) return cli_bad_option("serve", a, k_usage);
        i++;
        if (strcmp(a, "--data") == 0) o.data_dir = val;
        else if (strcmp(a, "--cluster") == 0) o.cluster = val;
        else if (strcmp(a, "--wait") == 0) {
            if (cli_parse_int("serve", a, val, 0, 16, &v) < 0) return 2;
            o.gateway.wait_replicas = (int)v;
        } else if (strcmp(a, "--wait-timeout") == 0) {
            if (cli_parse_int("serve", a, val, 1, 60000, &v) < 0) return 2;
            o.gateway.wait_timeout_ms = (int)v;
        }
        else if (strcmp(a, "--model") == 0) o.model_dir = val;
        else if (strcmp(a, "--host") == 0) o.host = val;
        else if (strcmp(a, "--api-key") == 0) o.api_key = val;
        else if (strcmp(a, "--cors-origin") == 0) {
            if (!val[0]) return cli_fail("serve", "--cors-origin must not be empty"), 2;
            o.cors_origin = val;
        } else if (strcmp(a, "--allowed-host") == 0) {
            if (!val[0]) return cli_fail("serve", "--allowed-host must not be empty"), 2;
            size_t used = strlen(hosts);
            if (used + strlen(val) + 2 > sizeof hosts)
                return cli_fail("serve", "--allowed-host: the names add up to over %zu bytes", sizeof hosts - 1), 2;
            snprintf(hosts + used, sizeof hosts - used, "%s%s", used ? "," : "", val);
            o.allowed_hosts = hosts;
        } else if (strcmp(a, "--auth-fail-rate") == 0) {
            if (cli_parse_int("serve", a, val, 0, 1000000, &v) < 0) return 2;
            o.auth_fail_rate = (double)v;
        } else if (strcmp(a, "--max-header-bytes") == 0) {
            if (cli_parse_int("serve", a, val, 4096, 16L << 20, &v) < 0) return 2;
            o.max_header_bytes = (size_t)v;
        } else if (strcmp(a, "--header-timeout") == 0) {
            if (cli_parse_int("serve", a, val, 0, 86400, &v) < 0) return 2;
            o.header_timeout_s = (int)v;
        } else if (strcmp(a, "--body-timeout") == 0) {
            if (cli_parse_int("serve", a, val, 0, 86400, &v) < 0) return 2;
            o.body_timeout_s = (int)v;
        } else if (strcmp(a, "--max-connections") == 0) {
            if (cli_parse_int("serve", a, val, 16, 1000000, &v) < 0) return 2;
            o.max_connections = (int)v;
        } else if (strcmp(a, "--max-conns-per-ip") == 0) {
            if (cli_parse_int("serve", a, val, 0, 1000000, &v) < 0) return 2;
            o.max_conns_per_ip = (int)v;
        } else if (strcmp(a, "--io-threads") == 0) {
            if (cli_parse_int("serve", a, val, 1, 64, &v) < 0) return 2;
            o.io_threads = (int)v;
        } else if (strcmp(a, "--workers") == 0) {
            if (cli_parse_int("serve", a, val, 1, 4096, &v) < 0) return 2;
            o.workers = (int)v;
        }
        else if (strcmp(a, "--port") == 0) {
            if (cli_parse_int("serve", a, val, 1, 65535, &v) < 0) return 2;
            o.port = (int)v;
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_int("serve", a, val, 0, 1024, &v) < 0) return 2;
            o.threads = (int)v;
        } else if (strcmp(a, "--embed-workers") == 0) {
            if (cli_parse_int("serve", a, val, 1, 64, &v) < 0) return 2;
            o.embed_workers = (int)v;
        } else if (strcmp(a, "--embed-batch") == 0) {
            if (cli_parse_int("serve", a, val, 1, 4096, &v) < 0) return 2;
            o.embed_batch = (int)v;
        } else if (strcmp(a, "--cache") == 0) {
            if (cli_parse_int("serve", a, val, 0, 100000000, &v) < 0) return 2;
            o.cache_entries = (size_t)v;
        } else if (strcmp(a, "--rate-limit") == 0) {
            if (cli_parse_int("serve", a, val, 0, 1000000, &v) < 0) return 2;
            o.rate_limit = (double)v;
        } else if (strcmp(a, "--trusted-proxy") == 0) {
            /* comma-separated numeric addresses, each checked */
            char one[64];
            for (const char *p = val;; p += strcspn(p, ",") + 1) {
                size_t len = strcspn(p, ",");
                unsigned char bin[16];
                snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one ? len : sizeof one - 1), p);
                if (len == 0 || len >= sizeof one ||
                    (inet_pton(AF_INET, one, bin) != 1 && inet_pton(AF_INET6, one, bin) != 1))
                    return cli_fail("serve", "--trusted-proxy: '%.*s' is not a numeric IPv4 or IPv6 address",
                                    (int)len, p), 2;
                if (!p[len]) break;
            }
            o.trusted_proxies = val;
        } else if (strcmp(a, "--burst") == 0) {
            if (cli_parse_int("serve", a, val, 1, 1000000, &v) < 0) return 2;
            o.rate_burst = (double)v;
        } else if (strcmp(a, "--max-body") == 0) {
            if (cli_parse_int("serve", a, val, 1024, 1L << 34, &v) < 0) return 2;
            o.max_body = (size_t)v;
        } else if (strcmp(a, "--timeout") == 0) {
            if (cli_parse_int("serve", a, val, 1, 86400, &v) < 0) return 2;
            o.timeout_s = (int)v;
        } else if (strcmp(a, "--shards") == 0) {
            if (cli_parse_int("serve", a, val, 1, SX_GATEWAY_MAX_SHARDS, &v) < 0) return 2;
            o.store.n_shards = (int)v;
            o.gateway.n_shards = (int)v;
        } else if (strcmp(a, "--ef") == 0) {
            if (cli_parse_int("serve", a, val, 1, 4096, &v) < 0) return 2;
            o.store.params.ef_search = (int)v;
        } else if (strcmp(a, "--storage") == 0) {
            if (strcmp(val, "sq8") == 0) o.store.params.storage = SX_STORAGE_SQ8;
            else if (strcmp(val, "fp32") == 0) o.store.params.storage = SX_STORAGE_FP32;
            else return cli_fail("serve", "--storage must be sq8 or fp32"), 2;
        } else if (strcmp(a, "--slow-ms") == 0) {
            if (cli_parse_int("serve", a, val, 0, 3600000, &v) < 0) return 2;
            o.slow_ms = (int)v;
        } else if (strcmp(a, "--checkpoint-bytes") == 0) {
            if (cli_parse_int("serve", a, val, 1024, 1L << 40, &v) < 0) return 2;
            o.store.checkpoint_bytes = (uint64_t)v;
        } else if (strcmp(a, "--log-level") == 0) {
            sx_log_level lvl;
            if (sx_log_parse_level(val, &lvl) < 0)
                return cli_fail("serve", "--log-level must be debug, info, warn or error"), 2;
            sx_log_set_level(lvl);
        } else {
            return cli_bad_option("serve", a, k_usage);
        }
    }
    if (!o.data_dir == !o.cluster) {
        if (o.data_dir) cli_fail("serve", "--data and --cluster exclude each other");
        return cli_usage("serve", k_usage);
    }
    if (o.data_dir && o.store.n_shards > 256) return cli_fail("serve", "--shards must be 1..256 for --data"), 2;
    return serve(&o);
}
