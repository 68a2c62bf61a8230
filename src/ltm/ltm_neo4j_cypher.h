/*
 * ltm_neo4j_cypher.h — the Cypher of the Neo4j LTM backend (ltm_neo4j.c).
 *
 * Every user value is a parameter; the texts are constants, so Neo4j plans
 * each one once and serves the rest from its query cache. Texts use Neo4j 5
 * syntax available since 5.3 (COUNT {}, EXISTS {}, importing WITH in CALL).
 *
 * Locking: Neo4j reads at read-committed. A statement that must decide on
 * current state (patch, delete, generated ids, orphan clean-up) first takes
 * the node's write lock with `SET n._lock = true REMOVE n._lock` (no net
 * change; the lock lives until commit) and only then reads.
 *
 * Lock order, to keep deadlocks rare (Neo4j detects them and the client
 * retries): the rule, then its Policy, then Concepts by key, then Scenarios.
 * Concept lists are sent sorted by key (each entry keeps its `pos`).
 *
 * Rule rows: RULE_PROJ(r) returns one list
 *   [rule_id, policy, rule_text, confidence_score, version, created_ms,
 *    updated_ms, [[pos, name, key]…] (unordered), [scenario_id…] (unordered)]
 * which ltm_neo4j.c parses (and sorts) in one place.
 */
#ifndef MD_LTM_NEO4J_CYPHER_H
#define MD_LTM_NEO4J_CYPHER_H

#define RULE_PROJ(r)                                                                             \
    "[" r ".rule_id, " r ".policy, " r ".rule_text, " r ".confidence_score, " r ".version, " r    \
    ".created_ms, " r ".updated_ms, "                                                            \
    "[(" r ")-[rp_e:RELATES_TO]->(rp_c:Concept) | [rp_e.pos, rp_e.name, rp_c.key]], "            \
    "[(" r ")-[:DERIVED_FROM]->(rp_s:Scenario) | rp_s.scenario_id]]"

/* Total order of every rule listing (score first in full-text searches). */
#define RULE_ORDER(r) r ".confidence_score DESC, " r ".updated_ms DESC, " r ".rule_id ASC"

/* ---- schema --------------------------------------------------------------------------- */

static const char *const CY_SCHEMA[] = {
    "CREATE CONSTRAINT rule_id_unique IF NOT EXISTS FOR (r:Rule) REQUIRE r.rule_id IS UNIQUE",
    "CREATE CONSTRAINT concept_name_unique IF NOT EXISTS FOR (c:Concept) REQUIRE c.name IS UNIQUE",
    "CREATE CONSTRAINT concept_key_unique IF NOT EXISTS FOR (c:Concept) REQUIRE c.key IS UNIQUE",
    ("CREATE CONSTRAINT scenario_id_unique IF NOT EXISTS FOR (s:Scenario) "
     "REQUIRE s.scenario_id IS UNIQUE"),
    "CREATE CONSTRAINT policy_name_unique IF NOT EXISTS FOR (p:Policy) REQUIRE p.name IS UNIQUE",
    "CREATE INDEX rule_confidence_index IF NOT EXISTS FOR (r:Rule) ON (r.confidence_score)",
    "CREATE INDEX rule_created_index IF NOT EXISTS FOR (r:Rule) ON (r.created_ms)",
    "CREATE INDEX rule_updated_index IF NOT EXISTS FOR (r:Rule) ON (r.updated_ms)",
    "CREATE INDEX rule_policy_index IF NOT EXISTS FOR (r:Rule) ON (r.policy)",
    "CREATE INDEX rule_version_rule_index IF NOT EXISTS FOR (v:RuleVersion) ON (v.rule_id)",
    "CREATE FULLTEXT INDEX ruleTextSearch IF NOT EXISTS FOR (r:Rule) ON EACH [r.rule_text]",
    "CREATE FULLTEXT INDEX conceptSearch IF NOT EXISTS FOR (c:Concept) ON EACH [c.name]",
};

/* Names ensure_schema checks; the first CY_N_CONSTRAINTS are constraints. */
static const char *const CY_SCHEMA_NAMES[] = {
    "rule_id_unique",       "concept_name_unique",   "concept_key_unique",
    "scenario_id_unique",   "policy_name_unique",    "rule_confidence_index",
    "rule_created_index",   "rule_updated_index",    "rule_policy_index",
    "rule_version_rule_index", "ruleTextSearch",     "conceptSearch",
};
#define CY_N_CONSTRAINTS 5

static const char CY_AWAIT_INDEXES[] = "CALL db.awaitIndexes($seconds)";

static const char CY_SHOW_INDEXES[] =
    "SHOW INDEXES YIELD name, state, owningConstraint "
    "RETURN name, state, owningConstraint IS NOT NULL";

/* ---- create ----------------------------------------------------------------------------- */

/*
 * The tail shared by both kinds of create: policy edge, concepts, sources,
 * snapshots. Expects p (Policy) and r (the new Rule) in scope.
 */
#define CREATE_TAIL                                                                              \
    "CREATE (p)-[:GOVERNS]->(r) "                                                                \
    "WITH r "                                                                                    \
    "FOREACH (c IN $concepts | "                                                                 \
    "  MERGE (k:Concept {key: c.key}) ON CREATE SET k.name = c.name "                            \
    "  CREATE (r)-[:RELATES_TO {name: c.name, pos: c.pos}]->(k)) "                               \
    "FOREACH (sid IN $sources | "                                                                \
    "  MERGE (s:Scenario {scenario_id: sid}) MERGE (r)-[:DERIVED_FROM]->(s)) "                   \
    SNAPSHOTS_SET                                                                                \
    "RETURN r.rule_id AS rule_id"

/* Copy STM evidence onto Scenario nodes ($snapshots: [{id, json, sha256, at, ms, fb, fs}]). */
#define SNAPSHOTS_SET                                                                            \
    "FOREACH (sn IN $snapshots | "                                                               \
    "  MERGE (s:Scenario {scenario_id: sn.id}) "                                                 \
    "  SET s.snapshot_json = sn.json, s.snapshot_sha256 = sn.sha256, s.snapshot_at = sn.at, "    \
    "      s.snapshot_ms = sn.ms, s.has_feedback = sn.fb, s.final_status = sn.fs) "

#define RULE_PROPS(id)                                                                           \
    "{rule_id: " id ", policy: $policy, rule_text: $text, confidence_score: $conf, version: 1, " \
    "created_at: $now, updated_at: $now, created_ms: $now_ms, updated_ms: $now_ms}"

/* Explicit id: a duplicate fails on rule_id_unique (→ MD_E_CONFLICT). */
static const char CY_CREATE[] =
    "MERGE (p:Policy {name: $policy}) "
    "CREATE (r:Rule " RULE_PROPS("$rule_id") ") " CREATE_TAIL;

/*
 * Generated id, statement 1: serialise the creates of one policy on its
 * Policy node, so that "lowest free number" is computed from committed data.
 */
static const char CY_LOCK_POLICY[] =
    "MERGE (p:Policy {name: $policy}) SET p._lock = true REMOVE p._lock";

/*
 * Statement 2: prefix_NN with the lowest free NN (01…9999). Only suffixes
 * in canonical form count as taken (2 digits below 10, no leading zero from
 * 10 on): other ids under the prefix ("…_Unbundled_01", "…_001") do not.
 */
static const char CY_CREATE_GENERATED[] =
    "MATCH (p:Policy {name: $policy}) "
    "OPTIONAL MATCH (x:Rule) WHERE x.rule_id STARTS WITH $prefix + '_' "
    "WITH p, [t IN collect(substring(x.rule_id, size($prefix) + 1)) "
    "         WHERE t =~ '0[1-9]|[1-9][0-9]{1,3}' | toInteger(t)] AS used "
    "WITH p, [n IN range(1, size(used) + 1) WHERE NOT n IN used][0] AS nn "
    "WHERE nn <= 9999 "
    "WITH p, $prefix + '_' + CASE WHEN nn < 10 THEN '0' ELSE '' END + toString(nn) AS rid "
    "CREATE (r:Rule " RULE_PROPS("rid") ") " CREATE_TAIL;

/* ---- get ----------------------------------------------------------------------------------- */

static const char CY_GET[] =
    "MATCH (r:Rule {rule_id: $id}) "
    "RETURN " RULE_PROJ("r") " AS rule, "
    "[(r)-[:DERIVED_FROM]->(s:Scenario) | [s.scenario_id, s.snapshot_sha256, s.has_feedback, "
    "s.final_status, s.snapshot_ms]] AS sources, "
    "[(p:Policy)-[:GOVERNS]->(r) | p.name] AS policies";

/* ---- patch ----------------------------------------------------------------------------------- */

/*
 * One statement: lock the rule, compare, and only if something changes keep
 * the previous state as a RuleVersion, bump the version and rewrite what
 * changed. $names is null when the concepts are not being set; cur holds
 * [pos, name, concept node, edge] of the current RELATES_TO edges.
 */
static const char CY_PATCH[] =
    "MATCH (r:Rule {rule_id: $id}) "
    "SET r._lock = true REMOVE r._lock "
    "WITH r "
    "CALL { "
    "  WITH r "
    "  MATCH (r)-[e:RELATES_TO]->(c:Concept) "
    "  WITH e, c ORDER BY c.key "
    "  RETURN collect([e.pos, e.name, c, e]) AS cur "
    "} "
    "WITH r, cur, [(r)-[:DERIVED_FROM]->(s:Scenario) | s.scenario_id] AS cur_src "
    "WITH r, cur, cur_src, "
    "     coalesce($text, r.rule_text) AS new_text, "
    "     coalesce($conf, r.confidence_score) AS new_conf, "
    "     $names IS NOT NULL AND (size(cur) <> size($names) OR "
    "       any(x IN cur WHERE x[0] IS NULL OR x[0] >= size($names) OR $names[x[0]] <> x[1])) "
    "       AS concepts_changed, "
    "     [s IN $add_sources WHERE NOT s IN cur_src] AS added "
    "WITH r, cur, cur_src, new_text, new_conf, concepts_changed, added, "
    "     (new_text <> r.rule_text OR new_conf <> r.confidence_score OR concepts_changed "
    "      OR size(added) > 0) AS changed "
    "FOREACH (_ IN CASE WHEN changed THEN [1] ELSE [] END | "
    "  CREATE (r)-[:HAS_VERSION]->(:RuleVersion {rule_id: r.rule_id, version: r.version, "
    "    rule_text: r.rule_text, confidence_score: r.confidence_score, "
    "    related_concepts: [i IN range(0, size(cur) - 1) | "
    "                       head([x IN cur WHERE x[0] = i | x[1]])], "
    "    source_scenario_ids: cur_src, recorded_at: r.updated_at, recorded_ms: r.updated_ms}) "
    "  SET r.rule_text = new_text, r.confidence_score = new_conf, r.version = r.version + 1, "
    "      r.updated_at = $now, r.updated_ms = $now_ms) "
    "FOREACH (e IN CASE WHEN concepts_changed THEN [x IN cur | x[3]] ELSE [] END | DELETE e) "
    "FOREACH (c IN CASE WHEN concepts_changed THEN $concepts ELSE [] END | "
    "  MERGE (k:Concept {key: c.key}) ON CREATE SET k.name = c.name "
    "  CREATE (r)-[:RELATES_TO {name: c.name, pos: c.pos}]->(k)) "
    "FOREACH (sid IN added | "
    "  MERGE (s:Scenario {scenario_id: sid}) MERGE (r)-[:DERIVED_FROM]->(s)) "
    SNAPSHOTS_SET
    "WITH r, changed, CASE WHEN concepts_changed THEN [x IN cur | x[2]] ELSE [] END AS olds "
    "CALL { "
    "  WITH olds "
    "  UNWIND olds AS oc "
    "  SET oc._lock = true REMOVE oc._lock "
    "  WITH oc WHERE NOT EXISTS { (oc)<-[:RELATES_TO]-() } "
    "  DELETE oc "
    "} "
    "RETURN changed, " RULE_PROJ("r") " AS rule";

/* ---- delete ---------------------------------------------------------------------------------- */

static const char CY_DELETE[] =
    "MATCH (r:Rule {rule_id: $id}) "
    "SET r._lock = true "
    "WITH r "
    "CALL { "
    "  WITH r "
    "  MATCH (p:Policy)-[:GOVERNS]->(r) "
    "  WITH p ORDER BY p.name "
    "  SET p._lock = true REMOVE p._lock "
    "  RETURN collect(p) AS ps "
    "} "
    "CALL { "
    "  WITH r "
    "  MATCH (r)-[:RELATES_TO]->(c:Concept) "
    "  WITH c ORDER BY c.key "
    "  SET c._lock = true REMOVE c._lock "
    "  RETURN collect(c) AS cs "
    "} "
    "WITH r, ps, cs, [(r)-[:DERIVED_FROM]->(s:Scenario) | s.scenario_id] AS srcs, "
    "     [(r)-[:HAS_VERSION]->(v:RuleVersion) | v] AS vs "
    "FOREACH (v IN vs | DETACH DELETE v) "
    "DETACH DELETE r "
    "WITH ps, cs, srcs "
    "CALL { "
    "  WITH cs "
    "  UNWIND cs AS c "
    "  WITH c WHERE NOT EXISTS { (c)<-[:RELATES_TO]-() } "
    "  DELETE c "
    "} "
    "CALL { "
    "  WITH ps "
    "  UNWIND ps AS p "
    "  WITH p WHERE NOT EXISTS { (p)-[:GOVERNS]->() } "
    "  DELETE p "
    "} "
    "RETURN srcs";

/* ---- search (assembled from these parts in ltm_neo4j.c) ---------------------------------- */

/* Full-text: rule-text hits plus, for each matching concept, its rules; scores add up. */
static const char CY_SEARCH_FULLTEXT[] =
    "CALL { "
    "  CALL db.index.fulltext.queryNodes('ruleTextSearch', $q) YIELD node, score "
    "  RETURN node AS r, score "
    "  UNION ALL "
    "  CALL db.index.fulltext.queryNodes('conceptSearch', $q) YIELD node, score "
    "  MATCH (node)<-[:RELATES_TO]-(r:Rule) "
    "  RETURN r, score "
    "} "
    "WITH r, sum(score) AS score ";

static const char CY_SEARCH_BY_CONCEPT[] =
    "MATCH (fc:Concept)<-[:RELATES_TO]-(r:Rule) WHERE fc.key IN $keys "
    "WITH DISTINCT r, 0.0 AS score ";

static const char CY_SEARCH_ALL[] = "MATCH (r:Rule) WITH r, 0.0 AS score ";

static const char CY_FILTER_CONCEPTS[] =
    "EXISTS { MATCH (r)-[:RELATES_TO]->(fc:Concept) WHERE fc.key IN $keys }";
static const char CY_FILTER_POLICY[] = "r.policy = $policy";
static const char CY_FILTER_MIN_CONF[] = "r.confidence_score >= $min_conf";

static const char CY_SEARCH_PAGE[] =
    "WITH r, score ORDER BY score DESC, " RULE_ORDER("r") " SKIP $skip LIMIT $limit "
    "RETURN score, " RULE_PROJ("r") " AS rule";

/* ---- reads ------------------------------------------------------------------------------- */

static const char CY_CONCEPTS[] =
    "MATCH (c:Concept) WHERE c.key > $after "
    "WITH c ORDER BY c.key ASC LIMIT $limit "
    "RETURN c.name AS name, c.key AS key, COUNT { (c)<-[:RELATES_TO]-(:Rule) } AS rules";

static const char CY_CONCEPT[] = "MATCH (c:Concept {key: $key}) RETURN c.name AS name";

static const char CY_CONCEPT_RULES[] =
    "MATCH (:Concept {key: $key})<-[:RELATES_TO]-(r:Rule) "
    "WITH DISTINCT r ORDER BY " RULE_ORDER("r") " "
    "RETURN " RULE_PROJ("r") " AS rule";

static const char CY_HISTORY[] =
    "MATCH (r:Rule {rule_id: $id}) "
    "RETURN " RULE_PROJ("r") " AS rule, "
    "[(r)-[:HAS_VERSION]->(v:RuleVersion) | [v.version, v.rule_text, v.confidence_score, "
    "v.related_concepts, v.source_scenario_ids, v.recorded_ms]] AS versions";

static const char CY_CONCEPT_LINKS[] =
    "MATCH (r:Rule {rule_id: $id}) "
    "OPTIONAL MATCH (r)-[e:RELATES_TO]->(c:Concept) "
    "RETURN e.pos AS pos, e.name AS name, "
    "CASE WHEN c IS NULL THEN [] ELSE COLLECT { MATCH (c)<-[:RELATES_TO]-(o:Rule) WHERE o <> r "
    "RETURN o.rule_id ORDER BY o.rule_id } END AS others ORDER BY pos";

static const char CY_SCENARIO[] =
    "MATCH (s:Scenario {scenario_id: $id}) "
    "RETURN s.snapshot_json AS json, s.snapshot_sha256 AS sha256, s.snapshot_ms AS ms, "
    "s.has_feedback AS fb, s.final_status AS fs";

static const char CY_SCENARIO_RULES[] =
    "MATCH (:Scenario {scenario_id: $id})<-[:DERIVED_FROM]-(r:Rule) "
    "WITH DISTINCT r ORDER BY " RULE_ORDER("r") " "
    "RETURN " RULE_PROJ("r") " AS rule";

static const char CY_RULES_EXIST[] =
    "UNWIND range(0, size($ids) - 1) AS i "
    "MATCH (r:Rule {rule_id: $ids[i]}) "
    "RETURN i";

static const char CY_SOURCES_WITHOUT_SNAPSHOT[] =
    "MATCH (r:Rule)-[:DERIVED_FROM]->(s:Scenario) WHERE s.snapshot_sha256 IS NULL "
    "RETURN r.rule_id AS rule_id, s.scenario_id AS scenario_id ORDER BY rule_id, scenario_id";

static const char CY_STATS_RULES[] =
    "MATCH (r:Rule) "
    "RETURN count(r) AS rules, coalesce(avg(r.confidence_score), 0.0) AS avg, "
    "count(CASE WHEN NOT EXISTS { (r)-[:DERIVED_FROM]->() } THEN 1 END) AS unsourced";
static const char CY_STATS_CONCEPTS[] = "MATCH (c:Concept) RETURN count(c) AS concepts";
static const char CY_STATS_POLICIES[] =
    "MATCH (r:Rule) RETURN r.policy AS policy, count(*) AS rules ORDER BY policy";

static const char CY_PING[] = "RETURN 1 AS ok";

#endif /* MD_LTM_NEO4J_CYPHER_H */
