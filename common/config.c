/*
 * common/config.c — the option table and the code that applies it.
 *
 * Adding a key: add a field to feat_config_t (or the table/model struct) and
 * one row below.  Parsing, range checks, defaults and the generated reference
 * (docs/CONFIG.md, `featd --config-reference`) all come from that row.
 */
#include "common/config.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum opt_type {
    OPT_BOOL,      /* true/false/yes/no/on/off/1/0 → int */
    OPT_INT,       /* decimal integer → int64_t */
    OPT_SIZE,      /* bytes with optional KiB/MiB/GiB → int64_t */
    OPT_DURATION,  /* ms/s/m/h/d → int64_t milliseconds */
    OPT_STRING,    /* → char * */
    OPT_ADDR,      /* host:port → char * */
    OPT_LOGLEVEL,  /* debug/info/warn/error → int */
    OPT_ENUM,      /* one of opt->enums ("a|b|c") → char * */
    OPT_TOPIC,     /* Kafka topic name → char * */
    OPT_NAME,      /* identifier (table/feature names) → char * */
    OPT_DOUBLE     /* finite number in [dmin, dmax] → double */
} opt_type_t;

typedef struct opt {
    const char *section; /* "featd", ..., or "table" / "model" for named sections */
    const char *key;
    opt_type_t type;
    int64_t min, max;    /* inclusive, for INT/SIZE/DURATION; DOUBLE: [min/1e6, max/1e6] */
    const char *def;     /* default as text; NULL = required */
    const char *enums;   /* OPT_ENUM choices */
    size_t off;          /* into feat_config_t, feat_table_conf_t or feat_model_conf_t */
    const char *doc;
} opt_t;

#define C(f) offsetof(feat_config_t, f)
#define T(f) offsetof(feat_table_conf_t, f)
#define M(f) offsetof(feat_model_conf_t, f)
#define KiB 1024LL
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)
#define DAY_MS (86400000LL)

static const opt_t opts[] = {
    {"featd", "data_dir", OPT_STRING, 0, 0, "./featd-data", NULL, C(data_dir),
     "Directory holding the RocksDB store and kafka.bootstrap; created 0700 if missing."},
    {"featd", "log_level", OPT_LOGLEVEL, 0, 0, "info", NULL, C(log_level),
     "Minimum level logged: debug, info, warn or error."},
    {"featd", "log_file", OPT_STRING, 0, 0, "", NULL, C(log_file),
     "Append log lines to this file instead of stderr (empty = stderr)."},
    {"featd", "progress_interval", OPT_DURATION, 0, DAY_MS, "10s", NULL, C(progress_ms),
     "How often a progress line (events/s, lag, store size estimates, freshness) is logged; 0 turns it off."},

    {"store", "sync", OPT_BOOL, 0, 0, "false", NULL, C(store_sync),
     "fsync the write-ahead log on every batch (the WAL is always on; without sync a machine "
     "crash may lose the newest batches, which Kafka then redelivers — a process crash loses nothing)."},
    {"store", "block_cache", OPT_SIZE, 1 * MiB, 1024 * GiB, "128MiB", NULL, C(store_block_cache),
     "RocksDB block cache shared by all column families."},
    {"store", "write_buffer", OPT_SIZE, 1 * MiB, 16 * GiB, "16MiB", NULL, C(store_write_buffer),
     "Size of one RocksDB memtable (see write_buffers)."},
    {"store", "write_buffers", OPT_INT, 2, 64, "8", NULL, C(store_write_buffers),
     "Memtables per column family: the one being written and those waiting to be flushed. When all "
     "are full RocksDB stops writes until a flush ends; memtable memory per family is at most "
     "write_buffer × write_buffers."},

    {"ingest", "batch_max", OPT_INT, 1, 1000000, "10000", NULL, C(ingest_batch_max),
     "Most Kafka messages applied in one RocksDB WriteBatch."},
    {"ingest", "max_value_bytes", OPT_SIZE, 64, 64 * MiB, "1MiB", NULL, C(ingest_max_value),
     "Largest accepted Kafka message value; larger ones become dead letters (oversize)."},
    {"ingest", "max_key_bytes", OPT_SIZE, 1, 64 * KiB, "512", NULL, C(ingest_max_key),
     "Largest accepted entity key; larger ones become dead letters (oversize)."},
    {"ingest", "max_string_bytes", OPT_SIZE, 1, 16 * MiB, "4KiB", NULL, C(ingest_max_string),
     "Largest accepted string feature value; larger ones become dead letters (oversize)."},
    {"ingest", "max_future", OPT_DURATION, 0, 3650 * DAY_MS, "1h", NULL, C(ingest_max_future_ms),
     "Event times further than this ahead of the wall clock are rejected (bad_timestamp)."},
    {"ingest", "max_age", OPT_DURATION, 1, 36500 * DAY_MS, "3650d", NULL, C(ingest_max_age_ms),
     "Event times older than this are rejected (bad_timestamp)."},
    {"ingest", "commit_interval", OPT_DURATION, 10, 3600000, "1s", NULL, C(ingest_commit_ms),
     "How often offsets are committed to the broker, asynchronously, for lag monitoring only "
     "(featd resumes from the offsets in its own store)."},

    {"kafka", "embedded", OPT_BOOL, 0, 0, "true", NULL, C(kafka_embedded),
     "Start an in-process Kafka-protocol broker (librdkafka's mock cluster) on loopback and "
     "write its bootstrap servers to <data_dir>/kafka.bootstrap. Must be false when "
     "kafka.bootstrap.servers is set."},
    {"kafka", "embedded_brokers", OPT_INT, 1, 5, "1", NULL, C(kafka_embedded_brokers),
     "Number of brokers in the embedded cluster."},
    {"kafka", "embedded_control_file", OPT_STRING, 0, 0, "", NULL, C(kafka_embedded_control_file),
     "Tests and fault drills only: open the embedded broker's fault-injection port (featd-broker's "
     "--control-file commands, ingest/broker.h) on loopback, without authentication, and write its "
     "address to this file. Empty: no port."},
    {"kafka", "partitions", OPT_INT, 1, 256, "4", NULL, C(kafka_partitions),
     "Partitions of each topic the embedded broker creates."},

    {"serve", "listen", OPT_ADDR, 0, 0, "127.0.0.1:7070", NULL, C(serve_listen),
     "gRPC listen address (host:port; port 0 picks a free one). Loopback by default."},
    {"serve", "threads", OPT_INT, 1, 64, "1", NULL, C(serve_threads),
     "gRPC completion-queue threads; each polls, handles and answers its own calls.  One is fastest on "
     "small machines (a second poller adds thread hand-offs to every call: tests/bench, BENCHMARKS.md); "
     "raise it when many cores serve many connections."},
    {"serve", "busy_poll_us", OPT_INT, 0, 100000, "200", NULL, C(serve_busy_poll_us),
     "After each call a gRPC thread keeps polling this many microseconds (yielding the CPU between polls) "
     "before it sleeps, so a request that follows soon needs no wake-up: across cores that halves lookup "
     "latency on the bench machine (BENCHMARKS.md). Costs CPU only while calls keep arriving; 0 turns it off."},
    {"serve", "calls_per_method", OPT_INT, 1, 1024, "16", NULL, C(serve_calls_per_method),
     "Calls armed per method per thread (requests accepted without waiting for a handler)."},
    {"serve", "max_keys", OPT_INT, 1, 1000000, "1000", NULL, C(serve_max_keys),
     "Most entity keys in one GetOnlineFeatures or Predict call; more is INVALID_ARGUMENT."},
    {"serve", "max_message", OPT_SIZE, 1024, 1024LL * MiB, "4MiB", NULL, C(serve_max_message),
     "Largest request or response message; larger requests get RESOURCE_EXHAUSTED."},
    {"serve", "max_history_rows", OPT_INT, 1, 100000000, "1000000", NULL, C(serve_max_history_rows),
     "Most (entity, timestamp) rows in one GetHistoricalFeatures call."},
    {"serve", "cache", OPT_SIZE, 0, 1024 * GiB, "64MiB", NULL, C(serve_cache_bytes),
     "Read-through cache of decoded online rows and of aggregated features (kept until the next "
     "tile edge or a write to the entity), in bytes; 0 turns it off."},
    {"serve", "shutdown_grace", OPT_DURATION, 0, 600000, "5s", NULL, C(serve_shutdown_grace_ms),
     "On SIGTERM, how long calls in flight may take to finish before they are cancelled."},
    {"serve", "tls_cert", OPT_STRING, 0, 0, "", NULL, C(serve_tls_cert),
     "PEM file: the certificate chain the gRPC server presents (leaf first). With serve.tls_key it turns "
     "TLS on; empty = plain text. Read and checked at start-up: unreadable, not PEM, or not matching the "
     "key stops featd (exit 2 naming the key); an expired certificate is logged as a warning."},
    {"serve", "tls_key", OPT_STRING, 0, 0, "", NULL, C(serve_tls_key),
     "PEM file: the private key of serve.tls_cert (unencrypted; keep it 0600, readable by featd's user only)."},
    {"serve", "tls_client_ca", OPT_STRING, 0, 0, "", NULL, C(serve_tls_client_ca),
     "PEM file of CA certificates. Set = mutual TLS: every client must present a certificate signed by "
     "one of them or the handshake fails. Needs serve.tls_cert."},
    {"serve", "plaintext", OPT_BOOL, 0, 0, "false", NULL, C(serve_plaintext),
     "Plain text only when configured explicitly: without serve.tls_cert featd refuses to start "
     "(exit 2) on a serve.listen that is not loopback (127.0.0.0/8, ::1, localhost) unless this is true. "
     "A loopback listener (the default 127.0.0.1:7070) may stay plain text without it."},

    {"cluster", "mode", OPT_ENUM, 0, 0, "single", "single|replica|partitioned", C(cluster_mode),
     "How several featd instances share the Kafka topics (docs/OPERATIONS.md, \"Running a cluster\"). "
     "single: one instance consumes every partition of kafka.group.id; another consumer in that group is "
     "refused (the newcomer exits 2) instead of silently splitting the data. replica: each instance consumes "
     "every partition under its own group (kafka.group.id.<instance_id>): full copies, reads scale out. "
     "partitioned: instances share kafka.group.id, each owns the partitions it is assigned, publishes them to "
     "cluster.topic, and forwards lookups of keys it does not own to their owner. Not single: kafka.embedded "
     "must be false."},
    {"cluster", "instance_id", OPT_STRING, 0, 0, "", NULL, C(cluster_instance_id),
     "This instance's name in the cluster (1-128 characters of A-Z a-z 0-9 . _ : - [ ]); empty = "
     "cluster.advertised_address (partitioned mode; replica mode requires it). Must differ between instances "
     "and stay the same across restarts."},
    {"cluster", "listen", OPT_STRING, 0, 0, "", NULL, C(cluster_listen),
     "Partitioned mode (required there): the gRPC listener for lookups other instances forward here. It "
     "answers every request from this instance's own partitions and never forwards again, so a forwarded "
     "call never waits for a server thread that itself waits on a peer. Same methods, tokens and TLS as "
     "serve.listen."},
    {"cluster", "advertised_address", OPT_STRING, 0, 0, "", NULL, C(cluster_advertised_address),
     "host:port other instances use to reach cluster.listen; empty = cluster.listen, which then must name a "
     "host (not 0.0.0.0) and a port (not 0)."},
    {"cluster", "partitioner", OPT_ENUM, 0, 0, "murmur2", "murmur2|crc32", C(cluster_partitioner),
     "The partitioner the producers use, which featd must repeat to find a key's partition: murmur2 (the "
     "Java client's default, librdkafka's partitioner=murmur2_random) or crc32 (librdkafka's default, "
     "consistent_random: also confluent-kafka-python, kcat). A record whose entity key hashes to another "
     "partition than the one it arrived on is counted (featd_cluster_misrouted_records_total) and logged: "
     "lookups of that key would go to the wrong instance."},
    {"cluster", "topic", OPT_TOPIC, 0, 0, "featd-cluster", NULL, C(cluster_topic),
     "Compacted topic where each instance publishes its membership (address, active and restoring "
     "partitions) and reads everyone's: the partition -> instance map. Its partition 0 is used."},
    {"cluster", "models_topic", OPT_TOPIC, 0, 0, "featd-models", NULL, C(cluster_models_topic),
     "Compacted topic that carries the model registry between instances: the trainer of a model (the "
     "instance that owns partition 0 of its label topic; in replica mode the live instance with the "
     "smallest instance_id) publishes each new version there, and every instance publishes its promotes "
     "and rollbacks; every instance loads them, so all serve the same versions. Its partition 0 is used; "
     "it must exist when models are configured, and the broker must accept records as large as a model "
     "(message.max.bytes)."},
    {"cluster", "forward_timeout", OPT_DURATION, 1, 600000, "2s", NULL, C(cluster_forward_timeout_ms),
     "Longest wait for a peer's answer to a forwarded lookup (the caller's deadline, when sooner, wins); "
     "keys of a peer that does not answer in time get the UNAVAILABLE status."},

    {"cluster", "standby_replicas", OPT_INT, 0, 8, "0", NULL, C(cluster_standby_replicas),
     "Partitioned mode: how many other instances also tail each partition (assigned without the group, "
     "as Kafka Streams' num.standby.replicas), so that a failover serves at once. The standbys of a "
     "partition are the next instances after its owner in instance_id order. While the owner cannot answer "
     "(it restores, or a forwarded call to it fails) a standby within cluster.standby_max_lag answers, and "
     "a standby assigned the partition by the group is caught up already. Each standby costs the disk, "
     "memory and ingest work of the partitions it tails."},
    {"cluster", "standby_max_lag", OPT_INT, 0, 1000000000, "1000", NULL, C(cluster_standby_max_lag),
     "The staleness bound of a standby read (KIP-535): a standby answers a partition's keys only while it "
     "is at most this many records behind the log end its last fetch saw; further behind, and after its "
     "instance lost its group session, the keys answer RESTORING or UNAVAILABLE instead."},

    {"http", "listen", OPT_STRING, 0, 0, "", NULL, C(http_listen),
     "HTTP/JSON API listen address (host:port): every gRPC method as POST /v1/FeatureService/METHOD or "
     "/v1/AdminService/METHOD with the request as JSON, the same tokens; empty = off. HTTPS when "
     "serve.tls_cert is set (the same certificate, key and serve.tls_client_ca as gRPC); plain HTTP "
     "otherwise, and featd warns when it is not loopback."},
    {"http", "threads", OPT_INT, 1, 64, "2", NULL, C(http_threads),
     "Event loops serving the HTTP/JSON API (a slow call holds only its own)."},
    {"http", "max_body", OPT_SIZE, 1024, 64LL * MiB, "4MiB", NULL, C(http_max_body),
     "Largest HTTP/JSON request body; a larger one gets 413."},
    {"redis", "listen", OPT_STRING, 0, 0, "", NULL, C(redis_listen),
     "Redis-protocol listen address (host:port): read-only RESP2/RESP3 reads of online features for any "
     "Redis client (HMGET TABLE:ENTITY F..., HGETALL, GET/MGET TABLE:ENTITY:FEATURE; see OPERATIONS.md), "
     "with AUTH taking featd's read or admin tokens; empty = off. Plain text: featd warns when it is not "
     "loopback."},
    {"redis", "threads", OPT_INT, 1, 64, "2", NULL, C(redis_threads),
     "Event loops serving Redis-protocol clients (a client stays on one)."},
    {"redis", "max_clients", OPT_INT, 1, 100000, "1024", NULL, C(redis_max_clients),
     "Redis-protocol clients connected at once; one more is answered \"-ERR max number of clients "
     "reached\" and closed, as Redis does."},
    {"redis", "max_request", OPT_SIZE, 1024, 512LL * MiB, "1MiB", NULL, C(redis_max_request),
     "Largest Redis-protocol command in bytes; a larger one is a protocol error that closes the connection."},
    {"redis", "timeout", OPT_INT, 0, 86400 * 365, "0", NULL, C(redis_timeout),
     "Seconds a Redis-protocol client may stay idle before featd closes it (Redis's timeout); 0 = never."},
    {"admin", "listen", OPT_ADDR, 0, 0, "127.0.0.1:7071", NULL, C(admin_listen),
     "Admin HTTP listen address: /metrics, /healthz, /readyz, /v1/status. Loopback by default. Plain "
     "HTTP always: featd logs a warning when it is not loopback (bearer tokens would cross the network "
     "in clear text; put a TLS proxy in front)."},

    {"auth", "read_tokens_file", OPT_STRING, 0, 0, "", NULL, C(auth_read_tokens_file),
     "File of bearer tokens allowed to read: one token per line (16-256 characters of A-Z a-z 0-9 - . _ ~ + / "
     "=), blank lines and lines starting with # ignored. Setting either tokens file turns authentication on: "
     "every gRPC call needs \"authorization: Bearer TOKEN\" (none or unknown: UNAUTHENTICATED), and so do "
     "the admin HTTP pages except /healthz and /readyz (401). A read token on an admin method gets "
     "PERMISSION_DENIED (HTTP 403). Read once at start-up; featd warns when the file is readable by others."},
    {"auth", "admin_tokens_file", OPT_STRING, 0, 0, "", NULL, C(auth_admin_tokens_file),
     "File of bearer tokens (same format) allowed everything, including Promote, Rollback, TriggerRetrain, "
     "PinDriftReference and any writing admin HTTP endpoint. With only read_tokens_file set, nobody may call "
     "admin methods."},

    {"featctl", "tls_ca", OPT_STRING, 0, 0, "", NULL, C(featctl_tls_ca),
     "featctl --config only (featd ignores this section): PEM CA file that verifies featd's certificate; "
     "set = TLS (same as --tls-ca). Without it featctl uses TLS with gRPC's default roots when "
     "serve.tls_cert is set."},
    {"featctl", "tls_cert", OPT_STRING, 0, 0, "", NULL, C(featctl_tls_cert),
     "featctl's client certificate (PEM) for mutual TLS (same as --tls-cert); needs featctl.tls_key."},
    {"featctl", "tls_key", OPT_STRING, 0, 0, "", NULL, C(featctl_tls_key),
     "Private key (PEM) of featctl.tls_cert (same as --tls-key)."},
    {"featctl", "tls_server_name", OPT_STRING, 0, 0, "", NULL, C(featctl_tls_server_name),
     "Name to check featd's certificate against instead of the host featctl connects to (same as "
     "--tls-server-name); e.g. when the certificate names featd.example.com and featctl dials 127.0.0.1."},
    {"featctl", "token_file", OPT_STRING, 0, 0, "", NULL, C(featctl_token_file),
     "File whose first token line featctl sends as its bearer token (same as --token-file)."},

    {"drift", "enabled", OPT_BOOL, 0, 0, "true", NULL, C(drift_enabled),
     "Watch every feature (and every model's predictions) for drift against a reference."},
    {"drift", "window_events", OPT_INT, 10, 100000000, "10000", NULL, C(drift_window_events),
     "A tumbling window of a table closes after this many of its events..."},
    {"drift", "window_time", OPT_DURATION, 0, 30 * DAY_MS, "0", NULL, C(drift_window_ms),
     "...or this long after it opened, whichever comes first (0 = by count only)."},
    {"drift", "min_window", OPT_INT, 1, 100000000, "200", NULL, C(drift_min_window),
     "A feature with fewer values than this in a window is not judged for that window."},
    {"drift", "reference_events", OPT_INT, 10, 100000000, "10000", NULL, C(drift_reference_events),
     "Without a model reference or a pinned window, a feature's first this-many values are its reference."},
    {"drift", "sketch_k", OPT_INT, 32, 4096, "200", NULL, C(drift_sketch_k),
     "KLL sketch size: memory per feature is constant (about 8.4 KB per sketch at 200); the rank error "
     "is about 2% at 200 and falls as 1/k."},
    {"drift", "bins", OPT_INT, 2, 100, "10", NULL, C(drift_bins),
     "Bins for KL and PSI, cut at the reference's quantiles."},
    {"drift", "ks", OPT_DOUBLE, 0, 1000000, "0.1", NULL, C(drift_ks),
     "Effect size: a window drifts when the KS test is significant AND the KS statistic is at least this "
     "(or KL reaches drift.kl) — or when PSI alone reaches drift.psi."},
    {"drift", "psi", OPT_DOUBLE, 0, 100000000, "0.25", NULL, C(drift_psi),
     "PSI at or above this is drift on its own (0.1-0.25 is the usual 'moderate' band)."},
    {"drift", "kl", OPT_DOUBLE, 0, 100000000, "0.1", NULL, C(drift_kl),
     "KL(live || reference) effect size, nats, over the reference-quantile bins."},
    {"drift", "js", OPT_DOUBLE, 0, 1000000, "0.1", NULL, C(drift_js),
     "Effect size for categorical features: Jensen-Shannon distance (base 2) with a significant chi-square."},
    {"drift", "p_value", OPT_DOUBLE, 0, 1000000, "0.01", NULL, C(drift_p_value),
     "Significance level of the KS and chi-square tests."},
    {"drift", "recovery_windows", OPT_INT, 1, 1000, "2", NULL, C(drift_recovery_windows),
     "Consecutive clean windows before a drifting feature is reported recovered."},
    {"drift", "history", OPT_INT, 1, 10000, "50", NULL, C(drift_history),
     "Closed windows kept per feature for the drift report and page."},
    {"drift", "alert_topic", OPT_STRING, 0, 0, "", NULL, C(drift_alert_topic),
     "Kafka topic that receives featd.v1.DriftAlert messages (protobuf); empty = none."},
    {"drift", "webhook", OPT_STRING, 0, 0, "", NULL, C(drift_webhook),
     "http:// URL that receives each alert as a JSON POST (queued, retried with backoff); empty = none."},
    {"drift", "webhook_queue", OPT_INT, 1, 1000000, "1000", NULL, C(drift_webhook_queue),
     "Alerts waiting for the webhook; beyond this the oldest are dropped (and counted)."},
    {"drift", "retrain_on_drift", OPT_BOOL, 0, 0, "false", NULL, C(drift_retrain_on_drift),
     "A drift alert also asks for a retrain of the models that use the feature."},

    {"demo", "enabled", OPT_BOOL, 0, 0, "false", NULL, C(demo_enabled),
     "Run the built-in demo producer (same as --demo): it writes feature events, labels and a "
     "few malformed events to the configured topics."},
    {"demo", "rate", OPT_INT, 1, 10000000, "2000", NULL, C(demo_rate),
     "Demo producer events per second."},
    {"demo", "entities", OPT_INT, 1, 100000000, "1000", NULL, C(demo_entities),
     "Number of distinct entity keys the demo producer uses."},
    {"demo", "shift_after", OPT_DURATION, 0, 30 * DAY_MS, "0", NULL, C(demo_shift_after_ms),
     "After this long the demo shifts one feature's distribution (to show drift alerts); 0 = never."},
    {"demo", "shift_feature", OPT_STRING, 0, 0, "", NULL, C(demo_shift_feature),
     "table.feature the demo shifts (default: the first numeric feature of the first table)."},

    {"table", "entity", OPT_NAME, 0, 0, "key", NULL, T(entity),
     "Name of the entity key (a JSON event may carry it under this name or \"key\")."},
    {"table", "topic", OPT_TOPIC, 0, 0, NULL, NULL, T(topic),
     "Kafka topic whose events feed this table (required)."},
    {"table", "ttl", OPT_DURATION, 0, 36500 * DAY_MS, "0", NULL, T(ttl_ms),
     "Values older than this read as EXPIRED online and are skipped by point-in-time reads; 0 = never."},
    {"table", "agg_tile", OPT_DURATION, 1000, DAY_MS, "1m", NULL, T(agg_tile_ms),
     "Tile size of the table's aggregations: every window is a multiple of it; a window as of t covers "
     "(floor(t - window, agg_tile), t], so at most this much extra at its old edge (docs/ARCHITECTURE.md)."},
    {"table", "agg_max_tiles", OPT_INT, 1, 1000000, "10080", NULL, T(agg_max_tiles),
     "Most tiles of agg_tile one aggregation window may span (window / agg_tile). A read covers a long window "
     "with coarser tiles in its middle (docs/ARCHITECTURE.md, \"Levels\"), so this bounds configurations, "
     "not reads."},
    {"table", "agg_lateness", OPT_DURATION, 0, 36500 * DAY_MS, "0", NULL, T(agg_lateness_ms),
     "An event whose Kafka timestamp is more than this after its event time is not aggregated (online or "
     "point in time), is counted in featd_agg_late_events_total and still lands in history; 0 = no limit."},

    {"model", "table", OPT_NAME, 0, 0, NULL, NULL, M(table),
     "The table whose features the model uses (required)."},
    {"model", "label_topic", OPT_TOPIC, 0, 0, NULL, NULL, M(label_topic),
     "Kafka topic of the model's label events (required)."},
    {"model", "task", OPT_ENUM, 0, 0, "logreg", "logreg|linreg|mlp|gbdt_classifier|gbdt_regressor", M(task),
     "logreg (binary classification), linreg (regression), mlp (one hidden layer; "
     "classification), or gradient-boosted trees trained with libxgboost: gbdt_classifier "
     "(binary) or gbdt_regressor."},
    {"model", "features", OPT_STRING, 0, 0, "", NULL, M(features_list),
     "Comma-separated feature names of the table; empty = all of them. TABLE.FEATURE names a feature "
     "of another table: one keyed by the same entity as `table` is read with the label's key, any "
     "other needs its entity in label_keys."},
    {"model", "label_keys", OPT_STRING, 0, 0, "", NULL, M(label_keys_list),
     "Comma-separated entity names (other tables' `entity`) whose keys each label carries besides "
     "its own key, in its \"keys\" map (JSON) or LabelEvent.keys (protobuf); a label without one is "
     "a dead letter (missing_label_key). Training sets read each table with its key; Predict and "
     "GetOnlineFeatures then take entity_rows."},
    {"model", "policy", OPT_ENUM, 0, 0, "manual", "manual|auto", M(policy),
     "manual: a new version becomes the challenger and an operator promotes it; auto: it is promoted "
     "when it beats the champion on the same validation window by promote_margin. Under either policy a "
     "model's first version becomes its champion."},
    {"model", "promote_margin", OPT_DOUBLE, 0, 1000000, "0.005", NULL, M(promote_margin),
     "auto policy: a challenger needs AUC >= champion's + this (classification) or RMSE <= champion's "
     "x (1 - this) (regression), measured on the challenger's validation rows."},
    {"model", "promote_on", OPT_ENUM, 0, 0, "validation", "validation|live|both", M(promote_on),
     "auto policy: what the challenger must beat the champion on: its validation rows (at registration), "
     "live labels (the two aliases' live quality, each over at least promote_min_labels labelled "
     "predictions of its own, checked every second), or both."},
    {"model", "promote_min_labels", OPT_INT, 10, 100000000, "200", NULL, M(promote_min_labels),
     "promote_on live/both: labelled predictions each alias needs before live quality decides; the "
     "comparison uses the last quality_window of them."},
    {"model", "retrain_every", OPT_DURATION, 0, 365 * DAY_MS, "0", NULL, M(retrain_every_ms),
     "Retrain on this schedule; 0 = no schedule."},
    {"model", "retrain_after_labels", OPT_INT, 0, 1000000000, "0", NULL, M(retrain_after_labels),
     "Retrain after this many new labels; 0 = off."},
    {"model", "train_window", OPT_DURATION, 0, 36500 * DAY_MS, "0", NULL, M(train_window_ms),
     "Train on labels from this long ago up to now; 0 = every label."},
    {"model", "min_rows", OPT_INT, 2, 1000000000, "100", NULL, M(min_rows),
     "A training run with fewer labelled rows fails instead of registering a weak model."},
    {"model", "learning_rate", OPT_STRING, 0, 0, "", NULL, M(lr_list),
     "Adam step size (default 0.01), or the trees' shrinkage eta (default 0.3); a comma list "
     "(e.g. 0.003,0.01,0.03) makes a grid chosen by validation metric."},
    {"model", "l2", OPT_STRING, 0, 0, "", NULL, M(l2_list),
     "L2 penalty on weights (default 0.0001), or on the trees' leaf values, XGBoost's lambda "
     "(default 1); a comma list makes a grid."},
    {"model", "trees", OPT_STRING, 0, 0, "100", NULL, M(trees_list),
     "gbdt: boosting rounds (at most; see early_stopping_rounds); a comma list makes a grid."},
    {"model", "max_depth", OPT_STRING, 0, 0, "6", NULL, M(max_depth_list),
     "gbdt: depth of each tree; a comma list makes a grid."},
    {"model", "subsample", OPT_DOUBLE, 1, 1000000, "1", NULL, M(subsample),
     "gbdt: fraction of the training rows each tree samples."},
    {"model", "min_child_weight", OPT_DOUBLE, 0, 1000000000000LL, "1", NULL, M(min_child_weight),
     "gbdt: hessian sum a leaf needs (XGBoost's min_child_weight)."},
    {"model", "early_stopping_rounds", OPT_INT, 0, 10000, "10", NULL, M(early_stopping),
     "gbdt: stop after this many rounds without a better validation AUC (RMSE) and keep the best "
     "rounds; 0 = off."},
    {"model", "epochs", OPT_STRING, 0, 0, "10", NULL, M(epochs_list), "Passes over the training split; a comma list makes a grid."},
    {"model", "hidden", OPT_STRING, 0, 0, "32", NULL, M(hidden_list), "MLP hidden units; a comma list makes a grid."},
    {"model", "batch_size", OPT_INT, 1, 65536, "256", NULL, M(batch_size), "Rows per Adam step."},
    {"model", "valid_fraction", OPT_DOUBLE, 0, 900000, "0.25", NULL, M(valid_fraction),
     "The newest fraction of the training set (by label time) validates."},
    {"model", "top_k", OPT_INT, 0, 4096, "16", NULL, M(top_k),
     "String features: one-hot columns for this many most frequent categories; the rest share hashed buckets."},
    {"model", "device", OPT_ENUM, 0, 0, "auto", "auto|cpu|gpu", M(device),
     "Where training runs: auto uses a GPU when CUDA finds one, else the CPU."},
    {"model", "prediction_topic", OPT_STRING, 0, 0, "", NULL, M(prediction_topic),
     "Also publish every prediction (JSON) to this Kafka topic; they are always logged in the store."},
    {"model", "quality_floor", OPT_DOUBLE, 0, 1000000000000LL, "0", NULL, M(quality_floor),
     "Live quality alert: rolling AUC below this (classification) or RMSE above it (regression); 0 = off."},
    {"model", "shadow", OPT_ENUM, 0, 0, "off", "off|challenger", M(shadow),
     "challenger: every live Predict by entity keys that the champion answers is also scored by the "
     "challenger, off the reply path (a thread of its own at a lower priority); its scores are logged apart "
     "(predictions of MODEL@shadow, and \"shadow\":true on prediction_topic) and feed the "
     "challenger's live quality."},
    {"model", "canary_percent", OPT_DOUBLE, 0, 100000000, "0", NULL, M(canary_percent),
     "Percent of entities (sticky: by a hash of the entity key) that Predict by entity keys answers "
     "with the challenger when the champion is asked for; each Prediction names its version. 0 = off."},
    {"model", "quality_window", OPT_INT, 10, 10000000, "1000", NULL, M(quality_window),
     "Prediction/label pairs in the rolling live-quality window."},
    {"model", "quality_horizon", OPT_DURATION, 1, 3650 * DAY_MS, "1d", NULL, M(quality_horizon_ms),
     "A label is joined with the entity's latest prediction made at most this long before it."},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* librdkafka properties a user may set under [kafka].  Everything featd must
 * control itself (auto commit, offset store, callbacks) is absent. */
static const char *const kafka_allowed[] = {
    "bootstrap.servers", "group.id", "client.id", "client.rack", "group.instance.id",
    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
    "partition.assignment.strategy", "auto.offset.reset", "isolation.level",
    "fetch.min.bytes", "fetch.wait.max.ms", "fetch.max.bytes", "max.partition.fetch.bytes",
    "fetch.error.backoff.ms", "queued.min.messages", "queued.max.messages.kbytes",
    "socket.timeout.ms", "socket.keepalive.enable", "socket.connection.setup.timeout.ms",
    "reconnect.backoff.ms", "reconnect.backoff.max.ms", "retry.backoff.ms",
    "topic.metadata.refresh.interval.ms", "metadata.max.age.ms", "broker.address.family",
    "api.version.request", "statistics.interval.ms", "debug", "check.crcs",
    "security.protocol", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
    "ssl.key.password", "ssl.crl.location", "ssl.cipher.suites", "ssl.curves.list",
    "ssl.endpoint.identification.algorithm", "enable.ssl.certificate.verification",
    "ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem", "ssl.sigalgs.list",
    "ssl.keystore.location", "ssl.keystore.password", "ssl.providers",
    "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
    "sasl.kerberos.service.name", "sasl.kerberos.principal", "sasl.kerberos.keytab",
    "sasl.kerberos.kinit.cmd", "sasl.kerberos.min.time.before.relogin",
    "sasl.oauthbearer.method", "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.token.endpoint.url", "sasl.oauthbearer.scope", "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.config",
    "message.max.bytes", "receive.message.max.bytes", "compression.type", "linger.ms",
    "acks", "enable.idempotence",
};

int feat_config_kafka_allowed(const char *key) {
    for (size_t i = 0; i < sizeof(kafka_allowed) / sizeof(kafka_allowed[0]); i++)
        if (strcmp(kafka_allowed[i], key) == 0) return 1;
    return 0;
}

static const char *const ftype_names[] = {"none", "double", "int64", "bool", "string"};

const char *feat_ftype_name(feat_ftype_t t) {
    return (unsigned)t <= FEAT_FT_STRING ? ftype_names[t] : "none";
}

/* Other spellings of the 64-bit types, accepted since the first commit and
 * listed in the generated reference.  No more are added: a spelling featd
 * does not know (str, boolean, Float32) is refused, naming the feature. */
static const struct { const char *alias; feat_ftype_t type; } ftype_aliases[] = {
    {"float", FEAT_FT_DOUBLE}, {"float64", FEAT_FT_DOUBLE}, {"int", FEAT_FT_INT64}, {"long", FEAT_FT_INT64},
};
#define NALIASES (sizeof(ftype_aliases) / sizeof(ftype_aliases[0]))

feat_ftype_t feat_ftype_parse(const char *s) {
    for (int i = 1; i <= FEAT_FT_STRING; i++)
        if (strcmp(s, ftype_names[i]) == 0) return (feat_ftype_t)i;
    for (size_t i = 0; i < NALIASES; i++)
        if (strcmp(s, ftype_aliases[i].alias) == 0) return ftype_aliases[i].type;
    return FEAT_FT_NONE;
}

/* "`float` and `float64` mean `double`; `int` and `long` mean `int64`", with
 * quote around each type name ("" for the example file). */
static void aliases_doc(feat_buf_t *b, const char *quote) {
    int groups = 0;
    for (int t = 1; t <= FEAT_FT_STRING; t++) {
        size_t n = 0, k = 0;
        for (size_t i = 0; i < NALIASES; i++) n += ftype_aliases[i].type == (feat_ftype_t)t;
        if (!n) continue;
        if (groups++) feat_buf_puts(b, "; ");
        for (size_t i = 0; i < NALIASES; i++) {
            if (ftype_aliases[i].type != (feat_ftype_t)t) continue;
            feat_buf_printf(b, "%s%s%s%s", k == 0 ? "" : k + 1 == n ? " and " : ", ", quote, ftype_aliases[i].alias,
                            quote);
            k++;
        }
        feat_buf_printf(b, " mean%s %s%s%s", n > 1 ? "" : "s", quote, ftype_names[t], quote);
    }
}

/* ---- value parsers ---------------------------------------------------- */

static feat_err_t parse_int(const char *s, int64_t *out) {
    if (!*s) return FEAT_ERR_INVALID;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return FEAT_ERR_INVALID;
    *out = v;
    return FEAT_OK;
}

feat_err_t feat_parse_duration_ms(const char *s, int64_t *out) {
    if (!s || !*s) return FEAT_ERR_INVALID;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v) return FEAT_ERR_INVALID;
    while (*end == ' ') end++;
    double mul;
    if (!*end) {
        if (v != 0) return FEAT_ERR_INVALID; /* a bare number is ambiguous */
        mul = 1;
    } else if (strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) mul = 60000;
    else if (strcmp(end, "h") == 0) mul = 3600000;
    else if (strcmp(end, "d") == 0) mul = 86400000;
    else return FEAT_ERR_INVALID;
    double ms = v * mul;
    if (ms > 9.2e18) return FEAT_ERR_INVALID;
    *out = (int64_t)(ms + 0.5);
    return FEAT_OK;
}

feat_err_t feat_parse_size(const char *s, int64_t *out) {
    if (!s || !*s || *s == '-') return FEAT_ERR_INVALID;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v) return FEAT_ERR_INVALID;
    while (*end == ' ') end++;
    double mul = 1;
    if (!*end || strcasecmp(end, "b") == 0) mul = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib")) mul = 1024.0;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib")) mul = 1048576.0;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib")) mul = 1073741824.0;
    else if (!strcasecmp(end, "t") || !strcasecmp(end, "tb") || !strcasecmp(end, "tib")) mul = 1099511627776.0;
    else return FEAT_ERR_INVALID;
    double b = v * mul;
    if (b > 9.2e18 || b != (double)(int64_t)b) return FEAT_ERR_INVALID;
    *out = (int64_t)b;
    return FEAT_OK;
}

static feat_err_t parse_bool(const char *s, int *out) {
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) { *out = 1; return FEAT_OK; }
        if (strcasecmp(s, f[i]) == 0) { *out = 0; return FEAT_OK; }
    }
    return FEAT_ERR_INVALID;
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FEAT_MAX_NAME) return 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return 1;
}

static int topic_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-')) return 0;
    return 1;
}

static int addr_ok(const char *s) {
    const char *c = strrchr(s, ':');
    if (!c || c == s) return 0;
    if (s[0] == '[' && c[-1] != ']') return 0;
    int64_t port;
    if (parse_int(c + 1, &port) != FEAT_OK || port < 0 || port > 65535) return 0;
    return 1;
}

int feat_addr_is_loopback(const char *s) {
    const char *c = s ? strrchr(s, ':') : NULL;
    if (!c || c == s) return 0;
    char host[64];
    size_t n = (size_t)(c - s);
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n >= sizeof(host)) return 0;
    memcpy(host, s, n);
    host[n] = 0;
    if (strcasecmp(host, "localhost") == 0) return 1;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const unsigned char v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return memcmp(a, one, 16) == 0 || (memcmp(a, v4, 12) == 0 && a[12] == 127);
    }
    return 0;
}

/* ---- loader state ----------------------------------------------------- */

/* A set of strings (open addressing), for keys already set while reading. */
typedef struct strset {
    char **slot;
    int *line;           /* the line each was set on */
    size_t cap, n;       /* cap: 0 or a power of two */
} strset_t;

/* Adds s; returns 0 if added, the line it was first added on if present, -1
 * when out of memory. */
static int strset_add(strset_t *ss, const char *s, int line) {
    if ((ss->n + 1) * 2 > ss->cap) {
        size_t ncap = ss->cap ? ss->cap * 2 : 64;
        char **ns = calloc(ncap, sizeof(char *));
        int *nl = calloc(ncap, sizeof(int));
        if (!ns || !nl) {
            free(ns);
            free(nl);
            return -1;
        }
        for (size_t i = 0; i < ss->cap; i++) {
            if (!ss->slot[i]) continue;
            size_t h = (size_t)feat_hash64(ss->slot[i], strlen(ss->slot[i])) & (ncap - 1);
            while (ns[h]) h = (h + 1) & (ncap - 1);
            ns[h] = ss->slot[i];
            nl[h] = ss->line[i];
        }
        free(ss->slot);
        free(ss->line);
        ss->slot = ns;
        ss->line = nl;
        ss->cap = ncap;
    }
    size_t h = (size_t)feat_hash64(s, strlen(s)) & (ss->cap - 1);
    for (; ss->slot[h]; h = (h + 1) & (ss->cap - 1))
        if (strcmp(ss->slot[h], s) == 0) return ss->line[h];
    if (!(ss->slot[h] = strdup(s))) return -1;
    ss->line[h] = line;
    ss->n++;
    return 0;
}

static void strset_free(strset_t *ss) {
    for (size_t i = 0; i < ss->cap; i++) free(ss->slot[i]);
    free(ss->slot);
    free(ss->line);
}

/* While a file is read.  libinih reports keys but not [section] headers, so
 * the loader also reads the lines itself (read_line) and follows the headers
 * the way libinih does: a section declared twice, or one whose name libinih
 * would cut short, is refused there. */
typedef struct loader {
    feat_config_t *cfg;
    char *err;
    size_t errlen;
    int failed;
    int fail_line;       /* line of the failure, when failed */
    const char *where;   /* path or "config", for messages */
    FILE *file;          /* the input: a file, or text (ptr, left) */
    const char *ptr;
    size_t left;
    int lineno;          /* lines returned so far = the line libinih is on */
    int in_key;          /* a key = value line since the last header: an indented line continues it */
    int cont;            /* the current line is such a continuation */
    char section[256];   /* the current header, uncut; "" before the first */
    strset_t sections;   /* headers seen: "store", "table user" */
    strset_t keys;       /* keys set: "table user\nfeature.clicks" */
} loader_t;

/* "serve" + "listen" → "serve.listen"; "table user" + "ttl" → "table.user.ttl". */
static void full_key(char *out, size_t outlen, const char *section, const char *key) {
    const char *sp = strchr(section, ' ');
    if (!sp) {
        snprintf(out, outlen, "%s.%s", section, key);
        return;
    }
    const char *name = sp + 1;
    while (*name == ' ') name++;
    snprintf(out, outlen, "%.*s.%s.%s", (int)(sp - section), section, name, key);
}

static void fail_at(loader_t *l, int line) {
    l->failed = 1;
    l->fail_line = line;
}

/* What libinih will make of line (its rules: an optional BOM on line 1, then
 * comments, continuations, [headers] and key = value lines; an inline comment
 * is ';' after whitespace). */
static void note_line(loader_t *l, const char *line) {
    const char *p = line;
    if (l->lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3;
    int indented = p != line || isspace((unsigned char)*p);
    while (*p && isspace((unsigned char)*p)) p++;
    l->cont = 0;
    if (!*p || *p == ';' || *p == '#') return;
    if (l->in_key && indented) {
        l->cont = 1;
        return;
    }
    const char *e = *p == '[' ? p + 1 : p;
    int was_space = 0;
    while (*e && !(*p == '[' ? *e == ']' : (*e == '=' || *e == ':')) && !(was_space && *e == ';')) {
        was_space = isspace((unsigned char)*e);
        e++;
    }
    if (*p != '[') {
        if (*e == '=' || *e == ':') l->in_key = 1;
        return;
    }
    if (*e != ']') return; /* libinih reports the syntax error */
    l->in_key = 0;
    snprintf(l->section, sizeof(l->section), "%.*s", (int)(e - p - 1), p + 1);
    /* "table  user" is the same table as "table user" (set_one skips the spaces) */
    char id[sizeof(l->section)];
    const char *sp = strchr(l->section, ' '), *name = sp;
    while (name && *name == ' ') name++;
    if (sp) snprintf(id, sizeof(id), "%.*s %s", (int)(sp - l->section), l->section, name);
    else snprintf(id, sizeof(id), "%s", l->section);
    int first = strset_add(&l->sections, id, l->lineno);
    if (first < 0) {
        feat_errf(l->err, l->errlen, "out of memory");
        fail_at(l, l->lineno);
    } else if (first > 0) {
        feat_errf(l->err, l->errlen, "[%s]: section declared twice, first at line %d", l->section, first);
        fail_at(l, l->lineno);
    }
}

/* libinih's reader (fgets() semantics) over l's file or text.  Stops the
 * parse (NULL) after a failure, and refuses a line longer than libinih's
 * buffer, whose rest it would read as another line. */
static char *read_line(char *str, int num, void *stream) {
    loader_t *l = stream;
    if (l->failed || num < 2) return NULL;
    size_t n = 0;
    int more;
    if (l->file) {
        if (!fgets(str, num, l->file)) return NULL;
        n = strlen(str);
        int c = getc(l->file);
        more = c != EOF;
        if (more) ungetc(c, l->file);
    } else {
        if (!l->left) return NULL;
        while (n + 1 < (size_t)num && l->left) {
            l->left--;
            if ((str[n++] = *l->ptr++) == '\n') break;
        }
        str[n] = 0;
        more = l->left != 0;
    }
    l->lineno++;
    if (n == (size_t)num - 1 && str[n - 1] != '\n' && more) {
        const char *p = str;
        while (isspace((unsigned char)*p)) p++;
        size_t kl = strcspn(p, "=:");
        while (kl && isspace((unsigned char)p[kl - 1])) kl--;
        char key[128], full[sizeof(l->section) + sizeof(key) + 1];
        snprintf(key, sizeof(key), "%.*s", (int)(kl < 64 ? kl : 64), p);
        if (*l->section && p[kl] && *key) full_key(full, sizeof(full), l->section, key);
        else snprintf(full, sizeof(full), "%s", key);
        feat_errf(l->err, l->errlen, "%s: line longer than %d bytes, the most featd reads", full, num - 2);
        fail_at(l, l->lineno);
        return NULL;
    }
    note_line(l, str);
    return l->failed ? NULL : str;
}

/* Stores text into the field of row o at base.  full = the key's full name. */
static feat_err_t apply_opt(const opt_t *o, void *base, const char *full, const char *val, char *err, size_t errlen) {
    char *field = (char *)base + o->off;
    int64_t iv;
    int bv;
    switch (o->type) {
    case OPT_BOOL:
        if (parse_bool(val, &bv)) {
            feat_errf(err, errlen, "%s: \"%s\" is not a boolean (use true or false)", full, val);
            return FEAT_ERR_CONFIG;
        }
        *(int *)field = bv;
        return FEAT_OK;
    case OPT_LOGLEVEL:
        bv = feat_log_level_parse(val);
        if (bv < 0 || bv > FEAT_LOG_ERROR) {
            feat_errf(err, errlen, "%s: \"%s\" is not a log level (debug, info, warn, error)", full, val);
            return FEAT_ERR_CONFIG;
        }
        *(int *)field = bv;
        return FEAT_OK;
    case OPT_INT:
    case OPT_SIZE:
    case OPT_DURATION: {
        feat_err_t rc = o->type == OPT_INT ? parse_int(val, &iv)
               : o->type == OPT_SIZE ? feat_parse_size(val, &iv)
               : feat_parse_duration_ms(val, &iv);
        if (rc) {
            feat_errf(err, errlen, "%s: \"%s\" is not %s", full, val,
                    o->type == OPT_INT ? "an integer"
                    : o->type == OPT_SIZE ? "a size (e.g. 4096, 64KiB, 128MiB)"
                    : "a duration with a unit (e.g. 500ms, 30s, 5m, 24h, 7d)");
            return FEAT_ERR_CONFIG;
        }
        if (iv < o->min || iv > o->max) {
            feat_errf(err, errlen, "%s: %s is out of range [%lld, %lld]%s", full, val,
                    (long long)o->min, (long long)o->max,
                    o->type == OPT_DURATION ? " milliseconds" : o->type == OPT_SIZE ? " bytes" : "");
            return FEAT_ERR_CONFIG;
        }
        *(int64_t *)field = iv;
        return FEAT_OK;
    }
    case OPT_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(val, &end);
        if (errno || end == val || *end || !(d == d) || d > 1e300 || d < -1e300) {
            feat_errf(err, errlen, "%s: \"%s\" is not a number", full, val);
            return FEAT_ERR_CONFIG;
        }
        if (d < (double)o->min / 1e6 || d > (double)o->max / 1e6) {
            feat_errf(err, errlen, "%s: %s is out of range [%g, %g]", full, val, (double)o->min / 1e6, (double)o->max / 1e6);
            return FEAT_ERR_CONFIG;
        }
        *(double *)field = d;
        return FEAT_OK;
    }
    case OPT_ADDR:
        if (!addr_ok(val)) {
            feat_errf(err, errlen, "%s: \"%s\" is not host:port", full, val);
            return FEAT_ERR_CONFIG;
        }
        break;
    case OPT_ENUM: {
        size_t vl = strlen(val);
        const char *p = o->enums;
        int ok = 0;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == vl && memcmp(p, val, l) == 0) ok = 1;
            p = bar ? bar + 1 : NULL;
        }
        if (!ok) {
            feat_errf(err, errlen, "%s: \"%s\" is not one of %s", full, val, o->enums);
            return FEAT_ERR_CONFIG;
        }
        break;
    }
    case OPT_TOPIC:
        if (!topic_ok(val)) {
            feat_errf(err, errlen, "%s: \"%s\" is not a valid Kafka topic name", full, val);
            return FEAT_ERR_CONFIG;
        }
        break;
    case OPT_NAME:
        if (!name_ok(val)) {
            feat_errf(err, errlen, "%s: \"%s\" is not a name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                    full, val, FEAT_MAX_NAME);
            return FEAT_ERR_CONFIG;
        }
        break;
    case OPT_STRING:
        break;
    }
    char *dup = strdup(val);
    if (!dup) {
        feat_errf(err, errlen, "%s: out of memory", full);
        return FEAT_ERR_NOMEM;
    }
    free(*(char **)field);
    *(char **)field = dup;
    return FEAT_OK;
}

static const opt_t *find_opt(const char *section, const char *key) {
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].section, section) == 0 && strcmp(opts[i].key, key) == 0) return &opts[i];
    return NULL;
}

static feat_err_t apply_defaults(const char *section, void *base, char *err, size_t errlen) {
    for (size_t i = 0; i < NOPTS; i++) {
        if (strcmp(opts[i].section, section) != 0 || !opts[i].def) continue;
        char full[128];
        snprintf(full, sizeof(full), "%s.%s", section, opts[i].key);
        feat_err_t rc = apply_opt(&opts[i], base, full, opts[i].def, err, errlen);
        if (rc) return rc;
    }
    return FEAT_OK;
}

static feat_table_conf_t *get_table(feat_config_t *c, const char *name, int create, char *err, size_t errlen) {
    for (size_t i = 0; i < c->ntables; i++)
        if (strcmp(c->tables[i].name, name) == 0) return &c->tables[i];
    if (!create) return NULL;
    feat_table_conf_t *nt = realloc(c->tables, (c->ntables + 1) * sizeof(*nt));
    if (!nt) return NULL;
    c->tables = nt;
    feat_table_conf_t *t = &c->tables[c->ntables++];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name || apply_defaults("table", t, err, errlen)) return NULL;
    return t;
}

static feat_model_conf_t *get_model(feat_config_t *c, const char *name, int create, char *err, size_t errlen) {
    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
    if (!create) return NULL;
    feat_model_conf_t *nm = realloc(c->models, (c->nmodels + 1) * sizeof(*nm));
    if (!nm) return NULL;
    c->models = nm;
    feat_model_conf_t *m = &c->models[c->nmodels++];
    memset(m, 0, sizeof(*m));
    m->name = strdup(name);
    if (!m->name || apply_defaults("model", m, err, errlen)) return NULL;
    return m;
}

static feat_err_t set_kafka(feat_config_t *c, const char *key, const char *val, char *err, size_t errlen) {
    if (!feat_config_kafka_allowed(key)) {
        if (!strcmp(key, "enable.auto.commit") || !strcmp(key, "enable.auto.offset.store") ||
            !strcmp(key, "auto.commit.interval.ms"))
            feat_errf(err, errlen, "kafka.%s: not allowed: featd stores offsets with the data and commits them itself", key);
        else
            feat_errf(err, errlen, "kafka.%s: unknown key (not a featd key nor an allowed librdkafka property)", key);
        return FEAT_ERR_CONFIG;
    }
    for (size_t i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].key, key) == 0) {
            char *v = strdup(val);
            if (!v) return FEAT_ERR_NOMEM;
            free(c->kafka[i].value);
            c->kafka[i].value = v;
            return FEAT_OK;
        }
    }
    feat_kv_t *nk = realloc(c->kafka, (c->nkafka + 1) * sizeof(*nk));
    if (!nk) return FEAT_ERR_NOMEM;
    c->kafka = nk;
    nk[c->nkafka].key = strdup(key);
    nk[c->nkafka].value = strdup(val);
    if (!nk[c->nkafka].key || !nk[c->nkafka].value) {
        free(nk[c->nkafka].key);
        free(nk[c->nkafka].value);
        return FEAT_ERR_NOMEM;
    }
    c->nkafka++;
    return FEAT_OK;
}

/* "agg.NAME = FN(FIELD[, PARAM]) over WINDOW[, WINDOW...]" inside [table
 * NAME]: kept as written; validation expands it into features (expand_aggs). */
static feat_err_t set_agg_decl(feat_table_conf_t *t, const char *name, const char *val, const char *full,
                               char *err, size_t errlen) {
    if (!name_ok(name)) {
        feat_errf(err, errlen, "%s: \"%s\" is not an aggregation name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                  full, name, FEAT_MAX_NAME);
        return FEAT_ERR_CONFIG;
    }
    for (size_t i = 0; i < t->ndecls; i++) {
        if (strcmp(t->decls[i].name, name) == 0) { /* --set over the file's line */
            char *v = strdup(val);
            if (!v) return FEAT_ERR_NOMEM;
            free(t->decls[i].text);
            t->decls[i].text = v;
            return FEAT_OK;
        }
    }
    feat_agg_decl_t *nd = realloc(t->decls, (t->ndecls + 1) * sizeof(*nd));
    if (!nd) return FEAT_ERR_NOMEM;
    t->decls = nd;
    nd[t->ndecls].name = strdup(name);
    nd[t->ndecls].text = strdup(val);
    if (!nd[t->ndecls].name || !nd[t->ndecls].text) {
        free(nd[t->ndecls].name);
        free(nd[t->ndecls].text);
        return FEAT_ERR_NOMEM;
    }
    t->ndecls++;
    return FEAT_OK;
}

/* "FEATURE.STAT = value" inside [table NAME]: a per-feature drift override.
 * The feature must be declared before it (file order). */
static feat_err_t set_feature_drift(feat_table_conf_t *t, const char *spec, const char *val, const char *full,
                                    char *err, size_t errlen) {
    const char *dot = strrchr(spec, '.');
    if (!dot || dot == spec) {
        feat_errf(err, errlen, "%s: expected drift.FEATURE.STAT (STAT: enabled, ks, psi, kl, js, p_value)", full);
        return FEAT_ERR_CONFIG;
    }
    int f = feat_table_feature_index(t, spec, (size_t)(dot - spec));
    if (f < 0) {
        feat_errf(err, errlen, "%s: no feature \"%.*s\" declared above in table %s", full, (int)(dot - spec), spec, t->name);
        return FEAT_ERR_CONFIG;
    }
    feat_drift_thresh_t *d = &t->features[f].drift;
    const char *stat = dot + 1;
    if (strcmp(stat, "enabled") == 0) {
        if (parse_bool(val, &d->enabled)) {
            feat_errf(err, errlen, "%s: \"%s\" is not a boolean", full, val);
            return FEAT_ERR_CONFIG;
        }
        return FEAT_OK;
    }
    double *slot = !strcmp(stat, "ks") ? &d->ks : !strcmp(stat, "psi") ? &d->psi : !strcmp(stat, "kl") ? &d->kl
                 : !strcmp(stat, "js") ? &d->js : !strcmp(stat, "p_value") ? &d->p_value : NULL;
    if (!slot) {
        feat_errf(err, errlen, "%s: unknown statistic \"%s\" (enabled, ks, psi, kl, js, p_value)", full, stat);
        return FEAT_ERR_CONFIG;
    }
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !(v >= 0) || v > 1e9) {
        feat_errf(err, errlen, "%s: \"%s\" is not a non-negative number", full, val);
        return FEAT_ERR_CONFIG;
    }
    *slot = v;
    return FEAT_OK;
}

/* section: "serve" or "table user"; key; value. */
static feat_err_t set_one(feat_config_t *c, const char *section, const char *key, const char *val,
                          char *err, size_t errlen) {
    char full[256];
    const char *sp = strchr(section, ' ');
    if (sp) {
        char kind[16];
        size_t kl = (size_t)(sp - section);
        const char *name = sp + 1;
        while (*name == ' ') name++;
        if (kl >= sizeof(kind)) kl = sizeof(kind) - 1;
        memcpy(kind, section, kl);
        kind[kl] = 0;
        snprintf(full, sizeof(full), "%s.%s.%s", kind, name, key);
        if (strcmp(kind, "table") && strcmp(kind, "model")) {
            feat_errf(err, errlen, "[%s]: unknown section (expected [table NAME] or [model NAME])", section);
            return FEAT_ERR_CONFIG;
        }
        if (!name_ok(name)) {
            feat_errf(err, errlen, "[%s]: \"%s\" is not a name ([A-Za-z_][A-Za-z0-9_]*)", section, name);
            return FEAT_ERR_CONFIG;
        }
        if (strcmp(kind, "table") == 0) {
            feat_table_conf_t *t = get_table(c, name, 1, err, errlen);
            if (!t) return FEAT_ERR_CONFIG;
            if (strncmp(key, "feature.", 8) == 0) {
                const char *fname = key + 8;
                if (!name_ok(fname)) {
                    feat_errf(err, errlen, "%s: \"%s\" is not a feature name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                            full, fname, FEAT_MAX_NAME);
                    return FEAT_ERR_CONFIG;
                }
                feat_ftype_t ft = feat_ftype_parse(val);
                if (ft == FEAT_FT_NONE) {
                    feat_errf(err, errlen, "%s: \"%s\" is not a feature type (double, int64, bool, string)", full, val);
                    return FEAT_ERR_CONFIG;
                }
                int idx = feat_table_feature_index(t, fname, strlen(fname));
                if (idx >= 0) {
                    t->features[idx].type = ft;
                    return FEAT_OK;
                }
                if (t->nfeatures >= FEAT_MAX_FEATURES) {
                    feat_errf(err, errlen, "%s: more than %d features in one table", full, FEAT_MAX_FEATURES);
                    return FEAT_ERR_CONFIG;
                }
                feat_feature_conf_t *nf = realloc(t->features, (t->nfeatures + 1) * sizeof(*nf));
                if (!nf) return FEAT_ERR_NOMEM;
                t->features = nf;
                memset(&nf[t->nfeatures], 0, sizeof(nf[t->nfeatures]));
                nf[t->nfeatures].name = strdup(fname);
                nf[t->nfeatures].type = ft;
                nf[t->nfeatures].drift = (feat_drift_thresh_t){NAN, NAN, NAN, NAN, NAN, -1};
                nf[t->nfeatures].agg = -1;
                if (!nf[t->nfeatures].name) return FEAT_ERR_NOMEM;
                t->nfeatures++;
                return FEAT_OK;
            }
            if (strncmp(key, "drift.", 6) == 0) return set_feature_drift(t, key + 6, val, full, err, errlen);
            if (strncmp(key, "agg.", 4) == 0) return set_agg_decl(t, key + 4, val, full, err, errlen);
            const opt_t *o = find_opt("table", key);
            if (!o) {
                feat_errf(err, errlen, "%s: unknown key (table keys: entity, topic, ttl, agg_tile, agg_max_tiles, "
                          "agg_lateness, feature.NAME, agg.NAME, drift.FEATURE.STAT)", full);
                return FEAT_ERR_CONFIG;
            }
            return apply_opt(o, t, full, val, err, errlen);
        }
        feat_model_conf_t *m = get_model(c, name, 1, err, errlen);
        if (!m) return FEAT_ERR_CONFIG;
        const opt_t *o = find_opt("model", key);
        if (!o) {
            feat_errf(err, errlen, "%s: unknown key", full);
            return FEAT_ERR_CONFIG;
        }
        return apply_opt(o, m, full, val, err, errlen);
    }
    snprintf(full, sizeof(full), "%s.%s", section, key);
    const opt_t *o = find_opt(section, key);
    if (!o && strcmp(section, "kafka") == 0) return set_kafka(c, key, val, err, errlen);
    if (!o || !strcmp(section, "table") || !strcmp(section, "model")) {
        int known = 0;
        for (size_t i = 0; i < NOPTS; i++) known |= strcmp(opts[i].section, section) == 0;
        if (!known || !strcmp(section, "table") || !strcmp(section, "model"))
            feat_errf(err, errlen, "[%s]: unknown section (at key %s)", section, key);
        else
            feat_errf(err, errlen, "%s: unknown key", full);
        return FEAT_ERR_CONFIG;
    }
    return apply_opt(o, c, full, val, err, errlen);
}

feat_err_t feat_config_set(feat_config_t *c, const char *name, const char *value, char *err, size_t errlen) {
    /* "table.user.ttl" → section "table user", key "ttl"; "kafka.bootstrap.servers" →
     * section "kafka", key "bootstrap.servers". */
    char sec[160];
    const char *dot = strchr(name, '.');
    if (!dot) {
        feat_errf(err, errlen, "%s: expected section.key", name);
        return FEAT_ERR_CONFIG;
    }
    size_t sl = (size_t)(dot - name);
    if (sl >= sizeof(sec)) sl = sizeof(sec) - 1;
    memcpy(sec, name, sl);
    sec[sl] = 0;
    if (strcmp(sec, "table") == 0 || strcmp(sec, "model") == 0) {
        const char *dot2 = strchr(dot + 1, '.');
        if (!dot2) {
            feat_errf(err, errlen, "%s: expected %s.NAME.key", name, sec);
            return FEAT_ERR_CONFIG;
        }
        snprintf(sec, sizeof(sec), "%.*s %.*s", (int)sl, name, (int)(dot2 - dot - 1), dot + 1);
        return set_one(c, sec, dot2 + 1, value, err, errlen);
    }
    return set_one(c, sec, dot + 1, value, err, errlen);
}

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
    loader_t *l = user;
    if (l->failed) return 0;
    if (!*section) {
        feat_errf(l->err, l->errlen, "%s: key outside any section", name);
        fail_at(l, l->lineno);
        return 0;
    }
    char full[300];
    full_key(full, sizeof(full), section, name);
    if (strcmp(section, l->section) != 0) { /* libinih keeps 49 bytes of a header */
        feat_errf(l->err, l->errlen, "[%s]: section name too long (libinih keeps %zu bytes of it)", l->section,
                  strlen(section));
        fail_at(l, l->lineno);
        return 0;
    }
    if (l->cont) {
        feat_errf(l->err, l->errlen, "%s: an indented line continues the value above; featd does not join lines, "
                  "write the value on one line", full);
        fail_at(l, l->lineno);
        return 0;
    }
    /* a second setting of a key, or a second declaration of a feature, is a
     * mistake: one of the two values would be silently lost */
    char id[300];
    snprintf(id, sizeof(id), "%s\n%s", section, name);
    int first = strset_add(&l->keys, id, l->lineno);
    if (first < 0) {
        feat_errf(l->err, l->errlen, "%s: out of memory", full);
        fail_at(l, l->lineno);
        return 0;
    }
    if (first > 0) {
        const feat_table_conf_t *t = NULL;
        const char *tname = section + 6;
        while (*tname == ' ') tname++;
        int f = -1;
        if (strncmp(section, "table ", 6) == 0 && strncmp(name, "feature.", 8) == 0 &&
            (t = feat_config_table(l->cfg, tname)) != NULL)
            f = feat_table_feature_index(t, name + 8, strlen(name + 8));
        if (f >= 0)
            feat_errf(l->err, l->errlen, "%s: declared twice: %s at line %d, then %s", full,
                      feat_ftype_name(t->features[f].type), first, value);
        else
            feat_errf(l->err, l->errlen, "%s: set twice, first at line %d", full, first);
        fail_at(l, l->lineno);
        return 0;
    }
    if (set_one(l->cfg, section, name, value, l->err, l->errlen) != FEAT_OK) {
        fail_at(l, l->lineno);
        return 0;
    }
    return 1;
}

static feat_config_t *config_new(char *err, size_t errlen) {
    feat_config_t *c = calloc(1, sizeof(*c));
    if (!c) {
        feat_errf(err, errlen, "out of memory");
        return NULL;
    }
    static const char *const fixed[] = {"featd", "store", "ingest", "serve", "cluster", "admin", "http",
                                         "redis", "auth", "featctl", "kafka", "drift", "demo"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (apply_defaults(fixed[i], c, err, errlen)) {
            feat_config_free(c);
            return NULL;
        }
    }
    return c;
}

static feat_err_t split_list(const char *s, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
        char **na = realloc(*out, (*n + 1) * sizeof(char *));
        if (!na) return FEAT_ERR_NOMEM;
        *out = na;
        na[*n] = strndup(p, (size_t)(e - p));
        if (!na[*n]) return FEAT_ERR_NOMEM;
        (*n)++;
        p = e;
    }
    return FEAT_OK;
}

static void free_list(char **l, size_t n) {
    for (size_t k = 0; k < n; k++) free(l[k]);
    free(l);
}

/* Resolves m's label_keys and features (a list of FEATURE or TABLE.FEATURE)
 * into m->label_keys, m->features (canonical names: the primary table's
 * unqualified, others' qualified) and m->feats.  An empty features list
 * leaves m->nfeatures 0 (the caller takes every feature of t). */
static feat_err_t resolve_model_features(feat_config_t *c, feat_model_conf_t *m, const feat_table_conf_t *t,
                                         char *err, size_t errlen) {
    free_list(m->features, m->nfeatures);
    free(m->feats);
    free_list(m->label_keys, m->nlabel_keys);
    m->features = m->label_keys = NULL;
    m->feats = NULL;
    m->nfeatures = m->nlabel_keys = 0;
    m->multi = 0;
    if (m->label_keys_list && *m->label_keys_list) {
        if (split_list(m->label_keys_list, &m->label_keys, &m->nlabel_keys)) return FEAT_ERR_NOMEM;
        if (m->nlabel_keys > FEAT_MAX_LABEL_KEYS) {
            feat_errf(err, errlen, "model.%s.label_keys: at most %d entity names", m->name, FEAT_MAX_LABEL_KEYS);
            return FEAT_ERR_CONFIG;
        }
        for (size_t k = 0; k < m->nlabel_keys; k++) {
            const char *e = m->label_keys[k];
            if (!name_ok(e)) {
                feat_errf(err, errlen, "model.%s.label_keys: \"%s\" is not a name ([A-Za-z_][A-Za-z0-9_]*)", m->name, e);
                return FEAT_ERR_CONFIG;
            }
            if (!strcmp(e, t->entity)) {
                feat_errf(err, errlen, "model.%s.label_keys: \"%s\" is the entity of table %s, the label's own key",
                        m->name, e, t->name);
                return FEAT_ERR_CONFIG;
            }
            for (size_t j = 0; j < k; j++)
                if (!strcmp(m->label_keys[j], e)) {
                    feat_errf(err, errlen, "model.%s.label_keys: \"%s\" listed twice", m->name, e);
                    return FEAT_ERR_CONFIG;
                }
            size_t ti;
            for (ti = 0; ti < c->ntables && strcmp(c->tables[ti].entity, e); ti++) {}
            if (ti == c->ntables) {
                feat_errf(err, errlen, "model.%s.label_keys: no table has entity \"%s\"", m->name, e);
                return FEAT_ERR_CONFIG;
            }
        }
    }
    if (!m->features_list || !*m->features_list) return FEAT_OK;
    char **names;
    size_t n;
    if (split_list(m->features_list, &names, &n)) return FEAT_ERR_NOMEM;
    m->features = calloc(n ? n : 1, sizeof(char *));
    m->feats = calloc(n ? n : 1, sizeof(feat_model_feat_t));
    if (!m->features || !m->feats) {
        free_list(names, n);
        return FEAT_ERR_NOMEM;
    }
    feat_err_t rc = FEAT_OK;
    for (size_t k = 0; k < n && !rc; k++) {
        const char *name = names[k], *dot = strchr(name, '.');
        const feat_table_conf_t *ft = t;
        const char *fname = name;
        if (dot) {
            char tname[FEAT_MAX_NAME + 1];
            size_t tl = (size_t)(dot - name);
            snprintf(tname, sizeof(tname), "%.*s", (int)(tl > FEAT_MAX_NAME ? FEAT_MAX_NAME : tl), name);
            ft = tl <= FEAT_MAX_NAME ? feat_config_table(c, tname) : NULL;
            if (!ft) {
                feat_errf(err, errlen, "model.%s.features: \"%s\": no table named \"%.*s\"", m->name, name,
                        (int)(tl > 64 ? 64 : tl), name);
                rc = FEAT_ERR_CONFIG;
                break;
            }
            fname = dot + 1;
        }
        int f = feat_table_feature_index(ft, fname, strlen(fname));
        if (f < 0) {
            feat_errf(err, errlen, "model.%s.features: table %s has no feature \"%s\"", m->name, ft->name, fname);
            rc = FEAT_ERR_CONFIG;
            break;
        }
        int32_t key = -1;
        if (strcmp(ft->entity, t->entity) != 0) {
            size_t j;
            for (j = 0; j < m->nlabel_keys && strcmp(m->label_keys[j], ft->entity); j++) {}
            if (j == m->nlabel_keys) {
                feat_errf(err, errlen,
                        "model.%s.features: \"%s\" is keyed by %s, which labels do not carry (add it to "
                        "model.%s.label_keys)", m->name, name, ft->entity, m->name);
                rc = FEAT_ERR_CONFIG;
                break;
            }
            key = (int32_t)j;
        }
        char *canon;
        if (ft == t) canon = strdup(fname);
        else if ((canon = malloc(strlen(ft->name) + strlen(fname) + 2)))
            sprintf(canon, "%s.%s", ft->name, fname);
        if (!canon) {
            rc = FEAT_ERR_NOMEM;
            break;
        }
        for (size_t j = 0; j < m->nfeatures; j++) {
            if (strcmp(m->features[j], canon) == 0) {
                feat_errf(err, errlen, "model.%s.features: \"%s\" listed twice", m->name, canon);
                rc = FEAT_ERR_CONFIG;
            }
        }
        if (rc) {
            free(canon);
            break;
        }
        m->features[m->nfeatures] = canon;
        m->feats[m->nfeatures++] = (feat_model_feat_t){(uint32_t)(ft - c->tables), (uint32_t)f, key};
        if (ft != t) m->multi = 1;
    }
    free_list(names, n);
    return rc;
}

/* TLS keys come in pairs; plain text off loopback only when asked for.  The
 * files themselves are read by featd at start-up (serve/tls.c), not here:
 * featctl loads the same file and may not be allowed to read featd's key. */
static feat_err_t validate_tls(const feat_config_t *c, char *err, size_t errlen) {
    if (c->http_listen && *c->http_listen && !addr_ok(c->http_listen)) {
        feat_errf(err, errlen, "http.listen: \"%s\" is not host:port", c->http_listen);
        return FEAT_ERR_CONFIG;
    }
    if (c->redis_listen && *c->redis_listen && !addr_ok(c->redis_listen)) {
        feat_errf(err, errlen, "redis.listen: \"%s\" is not host:port", c->redis_listen);
        return FEAT_ERR_CONFIG;
    }
    const struct { const char *a, *an, *b, *bn; } pairs[] = {
        {c->serve_tls_cert, "serve.tls_cert", c->serve_tls_key, "serve.tls_key"},
        {c->featctl_tls_cert, "featctl.tls_cert", c->featctl_tls_key, "featctl.tls_key"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        int ha = pairs[i].a && *pairs[i].a, hb = pairs[i].b && *pairs[i].b;
        if (ha != hb) {
            feat_errf(err, errlen, "%s: required when %s is set", ha ? pairs[i].bn : pairs[i].an,
                    ha ? pairs[i].an : pairs[i].bn);
            return FEAT_ERR_CONFIG;
        }
    }
    int tls = c->serve_tls_cert && *c->serve_tls_cert;
    if (!tls && c->serve_tls_client_ca && *c->serve_tls_client_ca) {
        feat_errf(err, errlen, "serve.tls_client_ca: mutual TLS needs serve.tls_cert and serve.tls_key");
        return FEAT_ERR_CONFIG;
    }
    if (!tls && !c->serve_plaintext && !feat_addr_is_loopback(c->serve_listen)) {
        feat_errf(err, errlen, "serve.listen: %s is not a loopback address and TLS is off; set serve.tls_cert and "
                "serve.tls_key, or serve.plaintext = true to serve plain text on it on purpose", c->serve_listen);
        return FEAT_ERR_CONFIG;
    }
    return FEAT_OK;
}

/* ---- aggregations ------------------------------------------------------- */

static const char *const agg_fn_names[] = {"none", "count", "sum", "mean", "min", "max", "stddev", "last",
                                           "first", "last_n", "approx_distinct", "approx_quantile"};
#define NAGGFN (sizeof(agg_fn_names) / sizeof(agg_fn_names[0]))

const char *feat_agg_fn_name(feat_agg_fn_t f) { return (unsigned)f < NAGGFN ? agg_fn_names[f] : "none"; }

/* A window written back with the largest unit that divides it: 24h -> "1d". */
static void window_suffix(int64_t ms, char *out, size_t n) {
    static const struct { int64_t ms; const char *u; } units[] = {
        {DAY_MS, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    if (ms == 0) {
        snprintf(out, n, "lifetime");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(out, n, "%lld%s", (long long)(ms / units[i].ms), units[i].u);
            return;
        }
    }
}

static const char *skip_sp(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Drops the aggregated features a previous validation appended (a --set may
 * have added plain features after them) and the accumulators. */
static void strip_aggs(feat_table_conf_t *t) {
    size_t w = 0;
    for (size_t i = 0; i < t->nfeatures; i++) {
        if (t->features[i].agg >= 0) {
            free(t->features[i].name);
            continue;
        }
        t->features[w++] = t->features[i];
    }
    t->nfeatures = w;
    t->nplain = w;
    free(t->aggs);
    t->aggs = NULL;
    t->naggs = 0;
    t->agg_max_window_ms = 0;
    t->agg_lifetime = 0;
}

/* Parses one agg.NAME line and appends its features (one per window). */
static feat_err_t expand_agg(feat_table_conf_t *t, const feat_agg_decl_t *d, char *err, size_t errlen) {
    char full[FEAT_MAX_NAME * 2 + 32];
    snprintf(full, sizeof(full), "table.%s.agg.%s", t->name, d->name);
    const char *p = skip_sp(d->text);
    const char *fn_end = p;
    while (isalnum((unsigned char)*fn_end) || *fn_end == '_') fn_end++;
    feat_agg_fn_t fn = FEAT_AGG_NONE;
    for (size_t i = 1; i < NAGGFN; i++)
        if (strlen(agg_fn_names[i]) == (size_t)(fn_end - p) && strncmp(agg_fn_names[i], p, (size_t)(fn_end - p)) == 0)
            fn = (feat_agg_fn_t)i;
    const char *q = skip_sp(fn_end);
    if (fn_end == p || *q != '(') {
        feat_errf(err, errlen, "%s: \"%s\" is not FUNCTION(FIELD) over WINDOW[, WINDOW...]", full, d->text);
        return FEAT_ERR_CONFIG;
    }
    if (fn == FEAT_AGG_NONE) {
        feat_errf(err, errlen, "%s: unknown function \"%.*s\" (count, sum, mean, min, max, stddev, last, first, "
                  "last_n, approx_distinct, approx_quantile)", full, (int)(fn_end - p), p);
        return FEAT_ERR_CONFIG;
    }
    q = skip_sp(q + 1);
    const char *f_end = q;
    while (isalnum((unsigned char)*f_end) || *f_end == '_') f_end++;
    char field[FEAT_MAX_NAME + 1];
    if (f_end == q || (size_t)(f_end - q) > FEAT_MAX_NAME) {
        feat_errf(err, errlen, "%s: \"%s\": expected a field name after \"%s(\"", full, d->text,
                  agg_fn_names[fn]);
        return FEAT_ERR_CONFIG;
    }
    memcpy(field, q, (size_t)(f_end - q));
    field[f_end - q] = 0;
    int input = -1;
    for (size_t i = 0; i < t->nplain; i++)
        if (strcmp(t->features[i].name, field) == 0) input = (int)i;
    if (input < 0) {
        feat_errf(err, errlen, "%s: unknown field \"%s\" (aggregations read the table's plain features, declared "
                  "as feature.%s = TYPE)", full, field, field);
        return FEAT_ERR_CONFIG;
    }
    feat_ftype_t in = t->features[input].type;
    int numeric = in == FEAT_FT_DOUBLE || in == FEAT_FT_INT64;
    feat_agg_spec_t spec = {.fn = fn, .input = (uint32_t)input, .n = 0, .q = 0};
    q = skip_sp(f_end);
    int wants_param = fn == FEAT_AGG_LAST_N || fn == FEAT_AGG_APPROX_QUANTILE;
    if (wants_param) {
        if (*q != ',') {
            feat_errf(err, errlen, "%s: %s needs a parameter: %s", full, agg_fn_names[fn],
                      fn == FEAT_AGG_LAST_N ? "last_n(FIELD, N), N in 1..100" : "approx_quantile(FIELD, Q), Q in [0, 1]");
            return FEAT_ERR_CONFIG;
        }
        char *end;
        errno = 0;
        double v = strtod(skip_sp(q + 1), &end);
        if (end == skip_sp(q + 1) || errno ||
            (fn == FEAT_AGG_LAST_N ? !(v >= 1 && v <= 100 && v == floor(v)) : !(v >= 0 && v <= 1))) {
            feat_errf(err, errlen, "%s: %s's parameter must be %s", full, agg_fn_names[fn],
                      fn == FEAT_AGG_LAST_N ? "an integer N in 1..100" : "a quantile Q in [0, 1]");
            return FEAT_ERR_CONFIG;
        }
        if (fn == FEAT_AGG_LAST_N) spec.n = (uint32_t)v;
        else spec.q = v;
        q = skip_sp(end);
    }
    if (*q != ')') {
        feat_errf(err, errlen, "%s: \"%s\": expected \")\" after %s", full, d->text,
                  wants_param ? "the parameter" : "the field (only last_n and approx_quantile take a parameter)");
        return FEAT_ERR_CONFIG;
    }
    q = skip_sp(q + 1);
    int needs_numeric = fn == FEAT_AGG_SUM || fn == FEAT_AGG_MEAN || fn == FEAT_AGG_MIN || fn == FEAT_AGG_MAX ||
                        fn == FEAT_AGG_STDDEV || fn == FEAT_AGG_APPROX_QUANTILE;
    if (needs_numeric && !numeric) {
        feat_errf(err, errlen, "%s: %s of %s, a %s feature: %s needs a double or int64 field", full, agg_fn_names[fn],
                  field, feat_ftype_name(in), agg_fn_names[fn]);
        return FEAT_ERR_CONFIG;
    }
    if (strncmp(q, "over", 4) != 0 || (q[4] != ' ' && q[4] != '\t')) {
        feat_errf(err, errlen, "%s: \"%s\": expected \"over WINDOW[, WINDOW...]\" after the function "
                  "(windows like 10m, 1h, 7d, or lifetime)", full, d->text);
        return FEAT_ERR_CONFIG;
    }
    /* the accumulator: shared by every line with the same function, field and parameter */
    char sig[FEAT_MAX_NAME + 64];
    snprintf(sig, sizeof(sig), "%s(%s,%u,%.17g)", agg_fn_names[fn], field, spec.n, spec.q);
    spec.id = (uint32_t)feat_hash64(sig, strlen(sig));
    int32_t ai = -1;
    for (size_t i = 0; i < t->naggs; i++) {
        const feat_agg_spec_t *a = &t->aggs[i];
        if (a->id == spec.id) {
            if (a->fn != spec.fn || a->input != spec.input || a->n != spec.n || a->q != spec.q) {
                feat_errf(err, errlen, "%s: accumulator id collides with another aggregation (rename the field)", full);
                return FEAT_ERR_CONFIG;
            }
            ai = (int32_t)i;
        }
    }
    if (ai < 0) {
        feat_agg_spec_t *na = realloc(t->aggs, (t->naggs + 1) * sizeof(*na));
        if (!na) return FEAT_ERR_NOMEM;
        t->aggs = na;
        na[t->naggs] = spec;
        ai = (int32_t)t->naggs++;
    }
    feat_ftype_t out = FEAT_FT_DOUBLE;
    switch (fn) {
    case FEAT_AGG_COUNT: case FEAT_AGG_APPROX_DISTINCT: out = FEAT_FT_INT64; break;
    case FEAT_AGG_SUM: case FEAT_AGG_MIN: case FEAT_AGG_MAX: case FEAT_AGG_LAST: case FEAT_AGG_FIRST: out = in; break;
    case FEAT_AGG_LAST_N: out = FEAT_FT_STRING; break;
    default: out = FEAT_FT_DOUBLE; break;
    }
    p = q + 4;
    size_t nwin = 0;
    int64_t wins[64];
    for (;;) {
        p = skip_sp(p);
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
        char w[32];
        if (e == p || (size_t)(e - p) >= sizeof(w)) {
            feat_errf(err, errlen, "%s: \"%s\": expected a window (like 10m, 1h, 7d, or lifetime)", full, d->text);
            return FEAT_ERR_CONFIG;
        }
        memcpy(w, p, (size_t)(e - p));
        w[e - p] = 0;
        int64_t ms = 0;
        if (strcmp(w, "lifetime") != 0) {
            if (feat_parse_duration_ms(w, &ms) != FEAT_OK || ms <= 0) {
                feat_errf(err, errlen, "%s: window \"%s\" is not a duration (like 10m, 1h, 7d) or lifetime", full, w);
                return FEAT_ERR_CONFIG;
            }
            if (ms % t->agg_tile_ms != 0) {
                char ts[32];
                window_suffix(t->agg_tile_ms, ts, sizeof(ts));
                feat_errf(err, errlen, "%s: window %s is not a multiple of table.%s.agg_tile (%s)", full, w, t->name,
                          ts);
                return FEAT_ERR_CONFIG;
            }
            if (ms / t->agg_tile_ms > t->agg_max_tiles) {
                feat_errf(err, errlen, "%s: window %s spans %lld tiles, more than table.%s.agg_max_tiles (%lld); "
                          "use a larger agg_tile", full, w, (long long)(ms / t->agg_tile_ms), t->name,
                          (long long)t->agg_max_tiles);
                return FEAT_ERR_CONFIG;
            }
        }
        for (size_t i = 0; i < nwin; i++) {
            if (wins[i] == ms) {
                feat_errf(err, errlen, "%s: window %s listed twice", full, w);
                return FEAT_ERR_CONFIG;
            }
        }
        if (nwin == sizeof(wins) / sizeof(wins[0])) {
            feat_errf(err, errlen, "%s: more than 64 windows", full);
            return FEAT_ERR_CONFIG;
        }
        wins[nwin++] = ms;
        p = skip_sp(e);
        if (!*p) break;
        if (*p != ',') {
            feat_errf(err, errlen, "%s: \"%s\": windows are separated by commas", full, d->text);
            return FEAT_ERR_CONFIG;
        }
        p++;
    }
    for (size_t i = 0; i < nwin; i++) {
        char suf[32], fname[FEAT_MAX_NAME + 40];
        window_suffix(wins[i], suf, sizeof(suf));
        snprintf(fname, sizeof(fname), "%s_%s", d->name, suf);
        if (strlen(fname) > FEAT_MAX_NAME) {
            feat_errf(err, errlen, "%s: feature name %s is longer than %d bytes", full, fname, FEAT_MAX_NAME);
            return FEAT_ERR_CONFIG;
        }
        if (feat_table_feature_index(t, fname, strlen(fname)) >= 0) {
            feat_errf(err, errlen, "%s: generates feature %s, which the table already has", full, fname);
            return FEAT_ERR_CONFIG;
        }
        if (t->nfeatures >= FEAT_MAX_FEATURES) {
            feat_errf(err, errlen, "%s: more than %d features in one table", full, FEAT_MAX_FEATURES);
            return FEAT_ERR_CONFIG;
        }
        feat_feature_conf_t *nf = realloc(t->features, (t->nfeatures + 1) * sizeof(*nf));
        if (!nf) return FEAT_ERR_NOMEM;
        t->features = nf;
        memset(&nf[t->nfeatures], 0, sizeof(nf[0]));
        nf[t->nfeatures].name = strdup(fname);
        if (!nf[t->nfeatures].name) return FEAT_ERR_NOMEM;
        nf[t->nfeatures].type = out;
        nf[t->nfeatures].drift = (feat_drift_thresh_t){NAN, NAN, NAN, NAN, NAN, 0}; /* computed, not observed */
        nf[t->nfeatures].agg = ai;
        nf[t->nfeatures].window_ms = wins[i];
        t->nfeatures++;
        if (wins[i] == 0) t->agg_lifetime = 1;
        else if (wins[i] > t->agg_max_window_ms) t->agg_max_window_ms = wins[i];
    }
    return FEAT_OK;
}

void feat_agg_describe(const feat_table_conf_t *t, size_t f, char *out, size_t n) {
    if (!n) return;
    *out = 0;
    if (!feat_feature_is_agg(t, f)) return;
    const feat_agg_spec_t *a = &t->aggs[t->features[f].agg];
    char w[32], p[40] = "";
    window_suffix(t->features[f].window_ms, w, sizeof(w));
    if (a->fn == FEAT_AGG_LAST_N) snprintf(p, sizeof(p), ", %u", a->n);
    else if (a->fn == FEAT_AGG_APPROX_QUANTILE) snprintf(p, sizeof(p), ", %g", a->q);
    snprintf(out, n, "%s(%s%s) over %s", agg_fn_names[a->fn], t->features[a->input].name, p, w);
}

/* Tile levels: agg_tile, and for windows of 16 tiles or more, r and r^2
 * times it with r the cube root of (longest window / agg_tile): a window of
 * N tiles then reads at most about 5 N^(1/3) tiles (105 for 7d of 1m tiles,
 * not 10080). */
static void tile_levels(feat_table_conf_t *t) {
    int64_t T = t->agg_tile_ms, n = T > 0 ? t->agg_max_window_ms / T : 0;
    t->agg_level_ms[0] = T;
    t->agg_level_ms[1] = t->agg_level_ms[2] = 0;
    if (n < 16) return;
    int64_t r = (int64_t)llround(cbrt((double)n));
    if (r < 2) r = 2;
    t->agg_level_ms[1] = T * r;
    if (r * r <= n) t->agg_level_ms[2] = T * r * r;
}

static feat_err_t expand_aggs(feat_table_conf_t *t, char *err, size_t errlen) {
    strip_aggs(t);
    for (size_t i = 0; i < t->ndecls; i++) {
        feat_err_t rc = expand_agg(t, &t->decls[i], err, errlen);
        if (rc) return rc;
    }
    tile_levels(t);
    return FEAT_OK;
}

static feat_err_t validate_cluster(feat_config_t *c, char *err, size_t errlen) {
    if (c->cluster_standby_replicas && strcmp(c->cluster_mode, "partitioned") != 0) {
        feat_errf(err, errlen, "cluster.standby_replicas: standbys need cluster.mode = partitioned (mode %s holds "
                  "%s)", c->cluster_mode, strcmp(c->cluster_mode, "replica") == 0 ? "every partition on every instance"
                                                                                : "every partition on one instance");
        return FEAT_ERR_CONFIG;
    }
    if (strcmp(c->cluster_mode, "single") == 0) return FEAT_OK;
    if (c->kafka_embedded) {
        feat_errf(err, errlen, "cluster.mode: %s needs a shared Kafka cluster (kafka.embedded = false and "
                  "kafka.bootstrap.servers); each instance's embedded broker is its own", c->cluster_mode);
        return FEAT_ERR_CONFIG;
    }
    int partitioned = strcmp(c->cluster_mode, "partitioned") == 0;
    if (partitioned && !*c->cluster_listen) {
        feat_errf(err, errlen, "cluster.listen: required when cluster.mode = partitioned (the listener for "
                  "lookups forwarded by other instances, host:port)");
        return FEAT_ERR_CONFIG;
    }
    const char *adv = *c->cluster_advertised_address ? c->cluster_advertised_address : c->cluster_listen;
    const char *colon = strrchr(adv, ':');
    if (partitioned && (!colon || colon == adv || !colon[1] || strcmp(colon + 1, "0") == 0 || strncmp(adv, "0.0.0.0:", 8) == 0 ||
        strncmp(adv, "[::]:", 5) == 0 || strlen(adv) > 255)) {
        feat_errf(err, errlen, "cluster.advertised_address: \"%s\" is not an address peers can reach (give "
                  "host:port; 0.0.0.0, :: and port 0 are not)", adv);
        return FEAT_ERR_CONFIG;
    }
    if (!partitioned && !*c->cluster_instance_id) {
        /* a replica's group is named after it: two with one id would split the partitions silently */
        feat_errf(err, errlen, "cluster.instance_id: required when cluster.mode = %s (unique per instance)",
                  c->cluster_mode);
        return FEAT_ERR_CONFIG;
    }
    const char *id = *c->cluster_instance_id ? c->cluster_instance_id : adv;
    size_t n = strlen(id);
    if (n > 128 || strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-[]") != n) {
        feat_errf(err, errlen, "cluster.instance_id: \"%.64s\" must be 1-128 characters of A-Z a-z 0-9 . _ : - [ ]",
                  id);
        return FEAT_ERR_CONFIG;
    }
    return FEAT_OK;
}

feat_err_t feat_config_validate(feat_config_t *c, char *err, size_t errlen) {
    const char *bootstrap = NULL;
    for (size_t i = 0; i < c->nkafka; i++)
        if (strcmp(c->kafka[i].key, "bootstrap.servers") == 0) bootstrap = c->kafka[i].value;
    if (c->kafka_embedded && bootstrap) {
        feat_errf(err, errlen, "kafka.embedded: true conflicts with kafka.bootstrap.servers (set embedded = false to use a real cluster)");
        return FEAT_ERR_CONFIG;
    }
    if (!c->kafka_embedded && !bootstrap) {
        feat_errf(err, errlen, "kafka.bootstrap.servers: required when kafka.embedded = false");
        return FEAT_ERR_CONFIG;
    }
    if (c->drift_alert_topic && *c->drift_alert_topic && !topic_ok(c->drift_alert_topic)) {
        feat_errf(err, errlen, "drift.alert_topic: \"%s\" is not a valid Kafka topic name", c->drift_alert_topic);
        return FEAT_ERR_CONFIG;
    }
    if (c->drift_webhook && *c->drift_webhook && strncmp(c->drift_webhook, "http://", 7) != 0) {
        feat_errf(err, errlen, "drift.webhook: \"%s\" must be an http:// URL", c->drift_webhook);
        return FEAT_ERR_CONFIG;
    }
    if (!c->data_dir || !*c->data_dir) {
        feat_errf(err, errlen, "featd.data_dir: must not be empty");
        return FEAT_ERR_CONFIG;
    }
    if (validate_tls(c, err, errlen)) return FEAT_ERR_CONFIG;
    if (validate_cluster(c, err, errlen)) return FEAT_ERR_CONFIG;
    if (c->ntables == 0) {
        feat_errf(err, errlen, "table: no [table NAME] section; declare at least one feature table");
        return FEAT_ERR_CONFIG;
    }
    for (size_t i = 0; i < c->ntables; i++) {
        feat_table_conf_t *t = &c->tables[i];
        if (!t->topic) {
            feat_errf(err, errlen, "table.%s.topic: required", t->name);
            return FEAT_ERR_CONFIG;
        }
        if (t->nfeatures == 0) {
            feat_errf(err, errlen, "table.%s.feature: no features (add lines like feature.clicks = int64)", t->name);
            return FEAT_ERR_CONFIG;
        }
        feat_err_t arc = expand_aggs(t, err, errlen);
        if (arc) return arc;
        if (t->nplain == 0) {
            feat_errf(err, errlen, "table.%s.feature: no plain features (aggregations read them)", t->name);
            return FEAT_ERR_CONFIG;
        }
    }
    for (size_t i = 0; i < c->nmodels; i++) {
        feat_model_conf_t *m = &c->models[i];
        if (!m->table) {
            feat_errf(err, errlen, "model.%s.table: required", m->name);
            return FEAT_ERR_CONFIG;
        }
        if (!m->label_topic) {
            feat_errf(err, errlen, "model.%s.label_topic: required", m->name);
            return FEAT_ERR_CONFIG;
        }
        const feat_table_conf_t *t = feat_config_table(c, m->table);
        if (!t) {
            feat_errf(err, errlen, "model.%s.table: no table named \"%s\"", m->name, m->table);
            return FEAT_ERR_CONFIG;
        }
        for (size_t k = 0; k < c->ntables; k++) {
            if (strcmp(c->tables[k].topic, m->label_topic) == 0) {
                feat_errf(err, errlen, "model.%s.label_topic: \"%s\" is also the source topic of table %s",
                        m->name, m->label_topic, c->tables[k].name);
                return FEAT_ERR_CONFIG;
            }
        }
        int trees = feat_model_conf_trees(m);
        struct { const char *key, *text, *dflt; double *d; uint32_t *u; size_t *n; double lo, hi; } lists[] = {
            {"learning_rate", m->lr_list, trees ? "0.3" : "0.01", m->lr, NULL, &m->nlr, 1e-9, 10},
            {"l2", m->l2_list, trees ? "1" : "0.0001", m->l2, NULL, &m->nl2, 0, 1e4},
            {"epochs", m->epochs_list, "", NULL, m->epochs, &m->nepochs, 1, 100000},
            {"hidden", m->hidden_list, "", NULL, m->hidden, &m->nhidden, 1, 4096},
            {"trees", m->trees_list, "", NULL, m->trees, &m->ntrees, 1, 10000},
            {"max_depth", m->max_depth_list, "", NULL, m->max_depth, &m->nmax_depth, 1, 16},
        };
        for (size_t li = 0; li < sizeof(lists) / sizeof(lists[0]); li++) {
            *lists[li].n = 0;
            const char *p = lists[li].text && *lists[li].text ? lists[li].text : lists[li].dflt;
            while (*p) {
                while (*p == ' ' || *p == ',') p++;
                if (!*p) break;
                char *end;
                errno = 0;
                double v = strtod(p, &end);
                if (end == p || errno || !(v >= lists[li].lo && v <= lists[li].hi) || (lists[li].u && v != floor(v))) {
                    feat_errf(err, errlen, "model.%s.%s: \"%s\" is not a list of numbers in [%g, %g]%s", m->name,
                            lists[li].key, lists[li].text, lists[li].lo, lists[li].hi, lists[li].u ? " (integers)" : "");
                    return FEAT_ERR_CONFIG;
                }
                if (*lists[li].n >= 16) {
                    feat_errf(err, errlen, "model.%s.%s: at most 16 values", m->name, lists[li].key);
                    return FEAT_ERR_CONFIG;
                }
                if (lists[li].d) lists[li].d[*lists[li].n] = v;
                else lists[li].u[*lists[li].n] = (uint32_t)v;
                (*lists[li].n)++;
                p = end;
                while (*p == ' ') p++;
                if (*p && *p != ',') {
                    feat_errf(err, errlen, "model.%s.%s: \"%s\" is not a comma-separated list", m->name, lists[li].key,
                            lists[li].text);
                    return FEAT_ERR_CONFIG;
                }
            }
            if (*lists[li].n == 0) {
                feat_errf(err, errlen, "model.%s.%s: needs at least one value", m->name, lists[li].key);
                return FEAT_ERR_CONFIG;
            }
        }
        if (m->prediction_topic && *m->prediction_topic && !topic_ok(m->prediction_topic)) {
            feat_errf(err, errlen, "model.%s.prediction_topic: \"%s\" is not a valid Kafka topic name", m->name,
                    m->prediction_topic);
            return FEAT_ERR_CONFIG;
        }
        if (trees && !strcmp(m->device, "gpu")) {
            feat_errf(err, errlen, "model.%s.device: gpu, but task %s trains on the CPU (libxgboost); use auto or cpu",
                      m->name, m->task);
            return FEAT_ERR_CONFIG;
        }
        if (feat_model_conf_binary(m)) {
            if (m->quality_floor > 1) {
                feat_errf(err, errlen, "model.%s.quality_floor: %g is not an AUC in [0, 1] (task %s)", m->name,
                        m->quality_floor, m->task);
                return FEAT_ERR_CONFIG;
            }
        }
        feat_err_t mrc = resolve_model_features(c, m, t, err, errlen);
        if (mrc) return mrc;
        if (m->nfeatures) continue;
        {
            m->features = calloc(t->nfeatures, sizeof(char *));
            m->feats = calloc(t->nfeatures, sizeof(feat_model_feat_t));
            if (!m->features || !m->feats) return FEAT_ERR_NOMEM;
            for (size_t k = 0; k < t->nfeatures; k++) {
                m->features[k] = strdup(t->features[k].name);
                if (!m->features[k]) return FEAT_ERR_NOMEM;
                m->feats[k] = (feat_model_feat_t){(uint32_t)(t - c->tables), (uint32_t)k, -1};
                m->nfeatures++;
            }
        }
    }
    return FEAT_OK;
}

/* Applies "section.key=value" overrides in order (each name at most once). */
static feat_err_t apply_sets(feat_config_t *c, const char *const *sets, size_t nsets, char *err, size_t errlen) {
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i]) {
            feat_errf(err, errlen, "%s: expected section.key=value (from --set)", sets[i]);
            return FEAT_ERR_CONFIG;
        }
        size_t kl = (size_t)(eq - sets[i]);
        for (size_t j = 0; j < i; j++) {
            if (strncmp(sets[j], sets[i], kl) == 0 && sets[j][kl] == '=') {
                feat_errf(err, errlen, "%.*s: set twice by --set", (int)kl, sets[i]);
                return FEAT_ERR_CONFIG;
            }
        }
        char *name = strndup(sets[i], kl);
        if (!name) {
            feat_errf(err, errlen, "out of memory");
            return FEAT_ERR_NOMEM;
        }
        feat_err_t rc = feat_config_set(c, name, eq + 1, err, errlen);
        free(name);
        if (rc) {
            size_t n = strlen(err);
            snprintf(err + n, errlen > n ? errlen - n : 0, " (from --set)");
            return rc;
        }
    }
    return FEAT_OK;
}

/* After libinih's rc: the first mistake in file order wins, with its line. */
static feat_config_t *finish(feat_config_t *c, loader_t *l, int rc, const char *const *sets, size_t nsets,
                             char *err, size_t errlen) {
    strset_free(&l->sections);
    strset_free(&l->keys);
    if (rc > 0 && (!l->failed || rc < l->fail_line)) {
        feat_errf(err, errlen, "%s line %d: syntax error (expected [section] or key = value)", l->where, rc);
        feat_config_free(c);
        return NULL;
    }
    if (l->failed) {
        size_t n = strlen(err);
        snprintf(err + n, errlen > n ? errlen - n : 0, " (%s line %d)", l->where, l->fail_line);
        feat_config_free(c);
        return NULL;
    }
    if (rc < 0) {
        feat_errf(err, errlen, "%s: cannot read", l->where);
        feat_config_free(c);
        return NULL;
    }
    if (apply_sets(c, sets, nsets, err, errlen) || feat_config_validate(c, err, errlen)) {
        feat_config_free(c);
        return NULL;
    }
    return c;
}

feat_config_t *feat_config_load_set(const char *path, const char *const *sets, size_t nsets, char *err,
                                    size_t errlen) {
    feat_config_t *c = config_new(err, errlen);
    if (!c) return NULL;
    loader_t l = {.cfg = c, .err = err, .errlen = errlen, .where = path ? path : "--set"};
    int rc = 0;
    if (path) {
        if (!(c->path = strdup(path))) {
            feat_errf(err, errlen, "out of memory");
            feat_config_free(c);
            return NULL;
        }
        l.file = fopen(path, "r");
        if (!l.file) {
            feat_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            feat_config_free(c);
            return NULL;
        }
        rc = ini_parse_stream(read_line, &l, ini_cb, &l);
        if (ferror(l.file) && !l.failed && rc == 0) rc = -1;
        fclose(l.file);
    }
    return finish(c, &l, rc, sets, nsets, err, errlen);
}

feat_config_t *feat_config_load(const char *path, char *err, size_t errlen) {
    if (!path) return config_new(err, errlen);
    return feat_config_load_set(path, NULL, 0, err, errlen);
}

feat_config_t *feat_config_parse(const char *text, size_t len, char *err, size_t errlen) {
    feat_config_t *c = config_new(err, errlen);
    if (!c) return NULL;
    if (len && memchr(text, 0, len)) { /* NUL inside: not a text file */
        feat_config_free(c);
        feat_errf(err, errlen, "config: contains a NUL byte");
        return NULL;
    }
    loader_t l = {.cfg = c, .err = err, .errlen = errlen, .where = "config", .ptr = text, .left = len};
    int rc = ini_parse_stream(read_line, &l, ini_cb, &l);
    return finish(c, &l, rc, NULL, 0, err, errlen);
}

void feat_config_free(feat_config_t *c) {
    if (!c) return;
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        int is_str = o->type == OPT_STRING || o->type == OPT_ADDR || o->type == OPT_ENUM ||
                     o->type == OPT_TOPIC || o->type == OPT_NAME;
        if (!is_str) continue;
        if (strcmp(o->section, "table") == 0) {
            for (size_t k = 0; k < c->ntables; k++) free(*(char **)((char *)&c->tables[k] + o->off));
        } else if (strcmp(o->section, "model") == 0) {
            for (size_t k = 0; k < c->nmodels; k++) free(*(char **)((char *)&c->models[k] + o->off));
        } else {
            free(*(char **)((char *)c + o->off));
        }
    }
    for (size_t k = 0; k < c->ntables; k++) {
        free(c->tables[k].name);
        for (size_t f = 0; f < c->tables[k].nfeatures; f++) free(c->tables[k].features[f].name);
        free(c->tables[k].features);
        for (size_t d = 0; d < c->tables[k].ndecls; d++) {
            free(c->tables[k].decls[d].name);
            free(c->tables[k].decls[d].text);
        }
        free(c->tables[k].decls);
        free(c->tables[k].aggs);
    }
    for (size_t k = 0; k < c->nmodels; k++) {
        free(c->models[k].name);
        for (size_t f = 0; f < c->models[k].nfeatures; f++) free(c->models[k].features[f]);
        free(c->models[k].features);
        free(c->models[k].feats);
        for (size_t f = 0; f < c->models[k].nlabel_keys; f++) free(c->models[k].label_keys[f]);
        free(c->models[k].label_keys);
    }
    for (size_t k = 0; k < c->nkafka; k++) {
        free(c->kafka[k].key);
        free(c->kafka[k].value);
    }
    free(c->kafka);
    free(c->tables);
    free(c->models);
    free(c->path);
    free(c);
}

const feat_table_conf_t *feat_config_table(const feat_config_t *c, const char *name) {
    for (size_t i = 0; i < c->ntables; i++)
        if (strcmp(c->tables[i].name, name) == 0) return &c->tables[i];
    return NULL;
}

const feat_model_conf_t *feat_config_model(const feat_config_t *c, const char *name) {
    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
    return NULL;
}

int feat_table_feature_index(const feat_table_conf_t *t, const char *name, size_t len) {
    for (size_t i = 0; i < t->nfeatures; i++)
        if (strlen(t->features[i].name) == len && memcmp(t->features[i].name, name, len) == 0) return (int)i;
    return -1;
}

static const char *type_doc(const opt_t *o) {
    switch (o->type) {
    case OPT_BOOL: return "bool";
    case OPT_INT: return "integer";
    case OPT_SIZE: return "size";
    case OPT_DURATION: return "duration";
    case OPT_ADDR: return "host:port";
    case OPT_LOGLEVEL: return "log level";
    case OPT_ENUM: return "enum";
    case OPT_TOPIC: return "topic";
    case OPT_NAME: return "name";
    case OPT_DOUBLE: return "number";
    default: return "string";
    }
}

void feat_config_reference(feat_buf_t *b) {
    feat_buf_puts(b, "# featd configuration reference\n\n"
                     "Generated from the option table in common/config.c by `featd --config-reference`;\n"
                     "do not edit by hand. The file is INI: `[section]` headers and `key = value` lines;\n"
                     "`;` or `#` start a comment. Sizes take KiB/MiB/GiB; durations need a unit\n"
                     "(ms, s, m, h, d) except 0. A bad value stops start-up with exit status 2 and one\n"
                     "line naming the key; so does a key set twice in one section, a section declared\n"
                     "twice or a feature declared twice. `featd --set section.key=value` (also\n"
                     "`table.NAME.key`) overrides or supplies a key of the file before the whole is\n"
                     "validated.\n");
    const char *cur = "";
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        if (strcmp(o->section, cur) != 0) {
            cur = o->section;
            if (!strcmp(cur, "table")) {
                feat_buf_puts(b, "\n## [table NAME]\n\nOne section per feature table. Features are declared as\n"
                                 "`feature.NAME = double | int64 | bool | string` (at most 1024 per table, in\n"
                                 "file order; names match `[A-Za-z_][A-Za-z0-9_]*`). Other spellings accepted:\n");
                aliases_doc(b, "`");
                feat_buf_puts(b, "\n(featd has no 32-bit types: a `float` feature holds a 64-bit double).\n\n"
                                 "Aggregations are declared as\n"
                                 "`agg.NAME = FUNCTION(FIELD[, PARAM]) over WINDOW[, WINDOW...]`: FIELD is a\n"
                                 "plain feature of the table, WINDOW a duration that `agg_tile` divides (at most\n"
                                 "`agg_max_tiles` tiles) or `lifetime`. Each window becomes one feature,\n"
                                 "`NAME_WINDOW` with the window in its largest whole unit (`24h` gives\n"
                                 "`NAME_1d`; `lifetime` gives `NAME_lifetime`), that reads like any other but\n"
                                 "that no event may carry. Functions (result type; value of an empty window):\n"
                                 "`count` (int64; 0), `sum` of int64 or double (the same type; 0), `mean`\n"
                                 "(double; not found), `min`, `max` (the field's type; not found), `stddev`\n"
                                 "(double, sample; not found below 2 values), `last`, `first` (the field's\n"
                                 "type, by event time then offset; not found), `last_n(FIELD, N)` (string: a\n"
                                 "JSON array of the N newest values, newest first, N 1..100; `[]`),\n"
                                 "`approx_distinct` (int64, HyperLogLog, about 1.6% standard error; 0),\n"
                                 "`approx_quantile(FIELD, Q)` (double, KLL sketch, Q in [0, 1]; not found).\n"
                                 "Window semantics, lateness and state bounds: docs/ARCHITECTURE.md,\n"
                                 "\"Aggregations\".\n\n");
            } else if (!strcmp(cur, "model"))
                feat_buf_puts(b, "\n## [model NAME]\n\nOne section per model.\n\n");
            else
                feat_buf_printf(b, "\n## [%s]\n\n", cur);
            feat_buf_puts(b, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
        }
        char range[96] = "";
        if (o->type == OPT_DOUBLE)
            snprintf(range, sizeof(range), "%g … %g", (double)o->min / 1e6, (double)o->max / 1e6);
        else if (o->type == OPT_INT || o->type == OPT_SIZE || o->type == OPT_DURATION)
            snprintf(range, sizeof(range), "%lld … %lld%s", (long long)o->min, (long long)o->max,
                     o->type == OPT_DURATION ? " ms" : o->type == OPT_SIZE ? " B" : "");
        else if (o->type == OPT_ENUM)
            snprintf(range, sizeof(range), "%s", o->enums);
        feat_buf_printf(b, "| `%s` | %s | %s%s%s | %s | %s |\n", o->key, type_doc(o),
                        o->def ? "`" : "", o->def ? (*o->def ? o->def : "\"\"") : "required",
                        o->def ? "`" : "", range, o->doc);
        if (!strcmp(cur, "kafka") && (i + 1 == NOPTS || strcmp(opts[i + 1].section, "kafka"))) {
            feat_buf_puts(b, "\nAny other `[kafka]` key is a librdkafka property passed through after an\n"
                             "allow-list check. Allowed: ");
            for (size_t k = 0; k < sizeof(kafka_allowed) / sizeof(kafka_allowed[0]); k++)
                feat_buf_printf(b, "%s`%s`", k ? ", " : "", kafka_allowed[k]);
            feat_buf_puts(b, ". `enable.auto.commit` and the offset-store keys are refused: featd keeps\n"
                             "offsets in its own store, in the same write as the data.\n");
        }
    }
}

/* ---- example file ------------------------------------------------------------ */

/* text as "; " comment lines of at most about 80 columns. */
static void comment_wrapped(feat_buf_t *b, const char *text) {
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t n = strlen(p), cut = n;
        if (n > 76) {
            cut = 76;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0)
                for (cut = 76; p[cut] && p[cut] != ' '; cut++) {}
        }
        if (cut == 0) break;
        feat_buf_puts(b, "; ");
        feat_buf_append(b, p, cut);
        feat_buf_putc(b, '\n');
        p += cut;
    }
}

/* "; (integer, 1..64)" and the key, commented out with its default unless
 * value (an example) is given. */
static void example_key(feat_buf_t *b, const opt_t *o, const char *value) {
    comment_wrapped(b, o->doc);
    feat_buf_printf(b, "; (%s", type_doc(o));
    if (o->type == OPT_DOUBLE)
        feat_buf_printf(b, ", %g..%g", (double)o->min / 1e6, (double)o->max / 1e6);
    else if (o->type == OPT_INT || o->type == OPT_SIZE || o->type == OPT_DURATION)
        feat_buf_printf(b, ", %lld..%lld%s", (long long)o->min, (long long)o->max,
                        o->type == OPT_DURATION ? " ms" : o->type == OPT_SIZE ? " bytes" : "");
    else if (o->type == OPT_ENUM)
        feat_buf_printf(b, ": %s", o->enums);
    if (!o->def) feat_buf_puts(b, "; required");
    else if (value && strcmp(value, o->def) != 0) feat_buf_printf(b, "; default %s", *o->def ? o->def : "empty");
    feat_buf_puts(b, ")\n");
    if (value) feat_buf_printf(b, "%s = %s\n\n", o->key, value);
    else feat_buf_printf(b, ";%s =%s%s\n\n", o->key, *o->def ? " " : "", o->def);
}

/* Example values for the named sections' keys; others stay commented out. */
static const struct { const char *section, *key, *value; } example_values[] = {
    {"table", "entity", "user_id"}, {"table", "topic", "user_features"}, {"table", "ttl", "7d"},
    {"model", "table", "user"}, {"model", "label_topic", "churn_labels"},
};

void feat_config_example(feat_buf_t *b) {
    feat_buf_puts(b, "; featd example configuration: every key, with its help text and default.\n"
                     "; Generated from the option table in common/config.c by `featd --config-example`\n"
                     "; (checked in as deploy/featd.example.ini; do not edit by hand; the reference\n"
                     "; with ranges is docs/CONFIG.md).  A commented-out key shows its default: remove\n"
                     "; the leading ';' to change it.  The [table user] and [model churn] sections at\n"
                     "; the end are a working example: this file starts featd as it is (an embedded\n"
                     "; Kafka broker on loopback, data in ./featd-data).  Sizes take KiB/MiB/GiB;\n"
                     "; durations need a unit (ms, s, m, h, d) except 0.\n");
    const char *cur = "";
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        if (strcmp(o->section, cur) != 0) {
            if (!strcmp(cur, "kafka"))
                feat_buf_puts(b, "; Any other key here is a librdkafka property, passed through after an\n"
                                 "; allow-list check (docs/CONFIG.md lists the allowed ones).  For a real\n"
                                 "; Kafka cluster set kafka.embedded = false and, for example:\n"
                                 ";bootstrap.servers = kafka1:9092,kafka2:9092\n"
                                 ";group.id = featd\n"
                                 ";security.protocol = SASL_SSL\n\n");
            cur = o->section;
            if (!strcmp(cur, "table"))
                feat_buf_puts(b, "; ---- one [table NAME] section per feature table ----\n"
                                 "[table user]\n\n");
            else if (!strcmp(cur, "model"))
                feat_buf_puts(b, "; ---- one [model NAME] section per model ----\n"
                                 "[model churn]\n\n");
            else
                feat_buf_printf(b, "%s[%s]\n\n", i ? "" : "\n", cur);
        }
        const char *value = NULL;
        for (size_t k = 0; k < sizeof(example_values) / sizeof(example_values[0]); k++)
            if (!strcmp(example_values[k].section, cur) && !strcmp(example_values[k].key, o->key))
                value = example_values[k].value;
        example_key(b, o, value);
        if (!strcmp(cur, "table") && (i + 1 == NOPTS || strcmp(opts[i + 1].section, "table"))) {
            feat_buf_puts(b, "; Features: feature.NAME = double | int64 | bool | string (at most 1024 per\n"
                             "; table, in file order; names match [A-Za-z_][A-Za-z0-9_]*), each declared\n"
                             "; once.\n; Other spellings: ");
            aliases_doc(b, "");
            feat_buf_puts(b, ".\n"
                             "feature.clicks_1h = int64\n"
                             "feature.ctr_7d = double\n"
                             "feature.country = string\n"
                             "feature.is_premium = bool\n\n"
                             "; Per-feature drift overrides, after the feature's declaration:\n"
                             "; drift.FEATURE.STAT = value, STAT one of enabled, ks, psi, kl, js, p_value.\n"
                             ";drift.ctr_7d.psi = 0.2\n"
                             ";drift.country.enabled = false\n\n");
        }
    }
}

