/*
 * tests/fuzz/fuzz_admin_http.c — libFuzzer target: the admin HTTP endpoint's
 * routing and query handling (feat_http_answer(), admin/http.c) on a small
 * daemon (fuzz_daemon.h), without a socket.
 *
 * Input: byte 0 picks the method ('G' GET, 'H' HEAD, anything else another
 * method); the rest is the request-target ("/v1/drift?table=t&feature=x"),
 * parsed by libevent's URI parser with the flags its HTTP server uses, as
 * evhttp does before calling featd's callback.  Checks: a known status code
 * with a reason and content type; JSON bodies (status, drift report, errors)
 * are valid JSON (so valid UTF-8: the tokenizer is strict); 405 comes with an
 * Allow header; 400 (a query parameter that is not UTF-8) only on /v1/drift.
 */
#include "fuzz_daemon.h"

#include <event2/http.h>

#include "admin/http.h"

static featd_t *d;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    d = fuzz_daemon();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 8192) return 0; /* evhttp refuses request lines this long */
    int method = data[0] == 'G' ? FEAT_HTTP_GET : data[0] == 'H' ? FEAT_HTTP_HEAD : FEAT_HTTP_OTHER;
    char *target = malloc(size);
    FUZZ_CHECK(target != NULL, "malloc");
    memcpy(target, data + 1, size - 1);
    target[size - 1] = 0;
    if (strlen(target) != size - 1) { /* a NUL ends the request line's target */
        free(target);
        return 0;
    }
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    if (uri) {
        feat_http_reply_t r;
        feat_http_answer(&d->serve, method, evhttp_uri_get_path(uri), evhttp_uri_get_query(uri), &r);
        FUZZ_CHECK(r.code == 200 || r.code == 400 || r.code == 404 || r.code == 405 || r.code == 500 || r.code == 503,
                   "status %d", r.code);
        FUZZ_CHECK(r.reason && *r.reason && r.ctype && *r.ctype, "no reason or content type");
        FUZZ_CHECK(!r.body.oom, "body out of memory");
        if (r.code == 405) FUZZ_CHECK(r.allow && *r.allow, "405 without Allow");
        if (r.code == 400) FUZZ_CHECK(!strcmp(evhttp_uri_get_path(uri), "/v1/drift"), "400 outside /v1/drift");
        if (!strcmp(r.ctype, "application/json"))
            FUZZ_CHECK(fuzz_json_valid(r.body.data ? r.body.data : "", r.body.len), "%d body is not JSON: %.*s", r.code,
                       (int)r.body.len, r.body.data ? r.body.data : "");
        feat_buf_free(&r.body);
        evhttp_uri_free(uri);
    }
    free(target);
    return 0;
}
