/*
 * cursor.h — opaque pagination cursors (spec §1 "Lists", §6 "Integers").
 *
 * A cursor carries a small payload (a position such as a sequence number)
 * plus a check value computed over the list kind, the payload and the
 * canonical filter string of the query that issued it. So a cursor the
 * server did not issue — garbage, an edited one, or one from a different
 * list or filter set — is rejected with 400 instead of silently listing
 * the wrong thing. The encoding is URL-safe (base64url, no padding).
 * The check value is an HMAC under a secret (CURSOR_SECRET), so a client
 * cannot mint a cursor the server never issued. Cursors are stateless: any
 * memoryd instance sharing the secret can continue a listing started on
 * another.
 */
#ifndef MD_CURSOR_H
#define MD_CURSOR_H

#include "memoryd/compat.h"

/*
 * The payload must hold every position a listing hands out: the concepts
 * listing continues after a concept's fold key, up to MD_CONCEPT_KEY_MAX
 * (400) bytes. Encoded: base64url of payload + '.' + 16 check digits.
 */
#define MD_CURSOR_PAYLOAD_MAX 400 /* payload length limit */
#define MD_CURSOR_MAX 560         /* encoded length limit (4 * ceil(417 / 3) = 556) */

/* Set the HMAC key (≤ 128 bytes used). Call once at start-up, before threads. */
void md_cursor_set_secret(const char *key);

/* Encode; returns false if the payload is too long. */
bool md_cursor_encode(const char *kind, const char *payload, const char *binding,
                      char out[MD_CURSOR_MAX + 1]);

/* Decode and verify; false for anything this server did not issue. */
bool md_cursor_decode(const char *kind, const char *cursor, const char *binding,
                      char payload[MD_CURSOR_PAYLOAD_MAX + 1]);

#endif /* MD_CURSOR_H */
