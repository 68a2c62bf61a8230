/*
 * fake_stores.h — in-memory STM and LTM stores for the API fuzz target.
 *
 * They implement the whole store interface (stm.h, ltm.h) without keeping
 * state: every read answers deterministic data derived from its arguments,
 * every write answers as if it succeeded. What they add is an oracle: the
 * interfaces promise that "inputs reaching a store are already validated and
 * canonical (the API layer validates)", so each operation FUZZ_CHECKs its
 * inputs against the spec §2 rules (id grammars, text limits, status range,
 * concept fold keys, bounds of limits and confidences …). A validator that
 * lets something through fails here, with the input saved by libFuzzer.
 *
 * fake_fault, when not MD_OK, is what every operation returns (after
 * checking its inputs), to drive the handlers' error paths.
 */
#ifndef MD_FUZZ_FAKE_STORES_H
#define MD_FUZZ_FAKE_STORES_H

#include "memoryd/compat.h"
#include "memoryd/ltm.h"
#include "memoryd/status.h"
#include "memoryd/stm.h"

extern enum md_status fake_fault;

/* The stores (static objects; destroy does nothing). min_ttl: the configured minimum. */
struct md_stm *fake_stm(int64_t min_ttl_seconds);
struct md_ltm *fake_ltm(size_t max_concepts);

#endif /* MD_FUZZ_FAKE_STORES_H */
