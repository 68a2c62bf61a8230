/*
 * fuzz_neo4j.c — parsing Neo4j's HTTP transactional answers
 * (md_neo4j_parse) and the row accessors the LTM backend reads them with.
 *
 * Input: bytes 0–1 pick the HTTP status (from a list of the interesting
 * ones, or raw), the rest is the response body.
 *
 * Invariants:
 *   - MD_OK exactly when the status is 2xx, the body is a JSON object (no
 *     NUL byte anywhere) with a "results" array and no "errors" entry; then
 *     root is that object,
 *     otherwise root is NULL and the error record is filled;
 *   - the client-facing message never carries Neo4j's text (it always is
 *     one of our fixed "ltm store …" messages); res->code is the first
 *     error's code, truncated and terminated;
 *   - 401/403 and Security errors are never "transient", Neo.TransientError
 *     codes (except the two terminations) always are;
 *   - md_neo4j_rows / md_neo4j_row never fail on any shape of "results",
 *     and md_neo4j_tx_id only extracts digits.
 */
#include "memoryd/compat.h"

#include "fuzz_common.h"
#include "memoryd/neo4j_client.h"
#include "memoryd/text.h"

static const long statuses[] = {200, 201, 200, 200, 202, 204, 301, 400, 401, 403,
                                404, 409, 429, 500, 502, 503, 504, 0,   -1,  99999};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 20)
        return 0;
    long http = data[0] < 200 ? statuses[data[0] % MD_ARRAY_LEN(statuses)]
                              : (long)data[1] * 4 - 100;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    struct md_neo4j_result res;
    memset(&res, 0x5A, sizeof(res));
    bool transient = true;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_neo4j_parse(http, body, len, &res, &transient, &err);

    /* jansson is the reference for "is JSON", except that it drops a NUL byte
     * that follows a number (2.14); md_json_load refuses every NUL byte */
    json_error_t jerr;
    json_t *ref = len && !memchr(body, '\0', len) ? json_loadb(body, len, 0, &jerr) : NULL;
    json_t *errors = json_object_get(ref, "errors");
    bool has_error = json_is_array(errors) && json_array_size(errors) > 0;
    bool want_ok = http >= 200 && http < 300 && !has_error && json_is_object(ref) &&
                   json_is_array(json_object_get(ref, "results"));
    FUZZ_CHECK((st == MD_OK) == want_ok, "HTTP %ld: status %d, reference %d", http, (int)st,
               want_ok);
    FUZZ_CHECK(res.http_status == http, "http_status not recorded");
    FUZZ_CHECK(strnlen(res.code, sizeof(res.code)) < sizeof(res.code), "code not terminated");
    if (has_error) {
        const char *code = json_string_value(json_object_get(json_array_get(errors, 0), "code"));
        FUZZ_CHECK(strncmp(res.code, code ? code : "", sizeof(res.code) - 1) == 0,
                   "code '%s', want '%s'", res.code, code ? code : "");
        if (code && strncmp(code, "Neo.ClientError.Security.", 25) == 0)
            FUZZ_CHECK(!transient, "a credentials error is transient");
        if (code && strncmp(code, "Neo.TransientError.", 19) == 0 && http != 401 &&
            http != 403 && strcmp(code, "Neo.TransientError.Transaction.Terminated") != 0 &&
            strcmp(code, "Neo.TransientError.Transaction.LockClientStopped") != 0)
            FUZZ_CHECK(transient, "transient error '%s' not retried", code);
    } else {
        FUZZ_CHECK(res.code[0] == '\0', "code '%s' without an error", res.code);
    }
    if (http == 401 || http == 403)
        FUZZ_CHECK(!transient && st == MD_E_UNAVAIL, "HTTP %ld is %d/%d", http, (int)st,
                   transient);
    if (st == MD_OK) {
        FUZZ_CHECK(res.root && json_is_object(res.root) && !transient, "root of a success");
        json_t *results = json_object_get(res.root, "results");
        for (size_t s = 0; s <= json_array_size(results); s++) {
            size_t rows = md_neo4j_rows(&res, s);
            for (size_t i = 0; i <= rows; i++) {
                json_t *row = md_neo4j_row(&res, s, i);
                FUZZ_CHECK(!row || json_is_array(row), "row is not an array");
                FUZZ_CHECK(i < rows || !row, "row past the end");
            }
        }
        const char *commit = json_string_value(json_object_get(res.root, "commit"));
        char id[32];
        if (md_neo4j_tx_id(commit, id, sizeof(id))) {
            FUZZ_CHECK(id[0] && strspn(id, "0123456789") == strlen(id), "tx id '%s'", id);
            FUZZ_CHECK(strstr(commit, id) != NULL, "tx id not from the URL");
        }
        md_neo4j_result_release(&res);
        FUZZ_CHECK(res.root == NULL, "release left root");
    } else {
        FUZZ_CHECK(res.root == NULL, "root kept on failure");
        FUZZ_CHECK(err.code == st && strncmp(err.msg, "ltm store ", 10) == 0,
                   "client message '%s' is not one of ours", err.msg);
        FUZZ_CHECK(md_utf8_valid(err.msg, strlen(err.msg)), "message not UTF-8");
    }
    md_neo4j_result_release(&res);
    md_neo4j_result_release(NULL);
    /* classification is total */
    if (has_error) {
        const char *code = json_string_value(json_object_get(json_array_get(errors, 0), "code"));
        enum md_neo4j_class c = md_neo4j_classify(code);
        FUZZ_CHECK(c >= MD_NEO4J_C_TRANSIENT && c <= MD_NEO4J_C_CLIENT, "class %d", (int)c);
    }
    json_decref(ref);
    return 0;
}
