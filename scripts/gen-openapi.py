#!/usr/bin/env python3
"""Generate src/api/openapi.json, the OpenAPI 3.0.3 document served by GET /openapi.json.

The document is written here as Python (shared schemas, one error response table,
one helper per operation shape) and rendered deterministically; the output is
committed and compiled into the daemon (cmake/MdEmbed.cmake).
tests/integration/test_openapi.py checks that the committed file equals this
script's output, that it describes exactly the routes of src/api/api.c, and
that live answers match its schemas.

Usage (from anywhere):
  scripts/gen-openapi.py            rewrite src/api/openapi.json
  scripts/gen-openapi.py --check    exit 1 when the committed file is out of date
  scripts/gen-openapi.py --stdout   print the document
"""
import copy
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "src", "api", "openapi.json")


def project_version():
    """PROJECT_VERSION from CMakeLists.txt (the daemon reports the same in /health)."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(memoryd\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else "0.0.0"


# --------------------------------------------------------------------------- small builders

def ref(name):
    return {"$ref": "#/components/schemas/" + name}


SCHEMAS = {}  # name -> schema, in definition order


def schema(name, s):
    SCHEMAS[name] = s
    return ref(name)


def inline_nullable(name):
    """A nullable copy of a component schema. OpenAPI 3.0 ignores siblings of $ref,
    so `nullable` cannot sit next to one: the schema is inlined instead. A nullable
    enum lists null among its values (OpenAPI 3.0.3 clarification)."""
    s = copy.deepcopy(SCHEMAS[name])
    s["nullable"] = True
    if "enum" in s and None not in s["enum"]:
        s["enum"] = s["enum"] + [None]
    return s


def obj(props, required=None, desc=None, extra=True):
    """An object schema; required defaults to every property; closed unless extra is False."""
    s = {"type": "object"}
    if desc:
        s["description"] = desc
    s["required"] = list(props) if required is None else list(required)
    if not s["required"]:
        del s["required"]
    s["properties"] = props
    s["additionalProperties"] = False
    return s


def arr(items, desc=None, **kw):
    s = {"type": "array"}
    if desc:
        s["description"] = desc
    s["items"] = items
    s.update(kw)
    return s


def string(desc=None, **kw):
    s = {"type": "string"}
    if desc:
        s["description"] = desc
    s.update(kw)
    return s


def integer(desc=None, **kw):
    s = {"type": "integer"}
    if desc:
        s["description"] = desc
    s.update(kw)
    return s


def number(desc=None, **kw):
    s = {"type": "number"}
    if desc:
        s["description"] = desc
    s.update(kw)
    return s


def boolean(desc=None):
    s = {"type": "boolean"}
    if desc:
        s["description"] = desc
    return s


def nullable(s):
    s = dict(s)
    s["nullable"] = True
    if "enum" in s and None not in s["enum"]:
        s["enum"] = s["enum"] + [None]
    return s


# --------------------------------------------------------------------------- vocabulary

SCENARIO_ID_RE = r"^[a-z][a-z0-9]{0,31}_r[0-9]{1,6}_[a-z0-9]+(_[a-z0-9]+)*$"
RULE_ID_RE = r"^[A-Z][A-Z0-9]{0,15}(_[A-Za-z0-9]+)+_[0-9]{2,4}$"
TIMESTAMP_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
STATUSES = ["Compliant", "Non-Compliant", "Partially Compliant", "Pending"]
METRICS = ["stm_response_time_ms", "ltm_response_time_ms", "api_response_time_ms",
           "cache_hit_rate_percent", "error_rate_percent", "connection_pool_utilization_percent"]
ERROR_TYPES = ["validation_error", "unauthorized", "not_found", "method_not_allowed", "conflict",
               "payload_too_large", "unsupported_media_type", "rate_limited", "internal_error",
               "storage_unavailable"]
TEXT_MAX = 10000

# Character classes of the server's checks (ECMA-262 and Python `re` read them alike).
# "Control characters" are C0, DEL and C1 (U+0000-U+001F, U+007F-U+009F) everywhere; a
# NUL (\u0000) is refused anywhere in a JSON body or a query string; "blank" means only
# ASCII whitespace; concept names are trimmed of space, tab, CR and LF.
CTL = r"\x00-\x1f\x7f-\x9f"
NO_NUL = r"^[^\x00]*$"
NO_CTL = "^[^" + CTL + "]*$"
TEXT_RE = r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$"
SHORT_RE = "^[^" + CTL + "]*[^" + CTL + " ][^" + CTL + "]*$"  # no controls, not blank
_CN_IN = "[^" + CTL + "]"       # inside a concept name (space included)
_CN_END = "[^" + CTL + " ]"     # first and last character of a concept name
CONCEPT_RE = r"^[ \t\n\r]*" + _CN_END + "(" + _CN_IN + "{0,98}" + _CN_END + r")?[ \t\n\r]*$"
_CN_LIST_IN = "[^" + CTL + ",]"
_CN_LIST_END = "[^" + CTL + " ,]"
_CN_ONE = r"[ \t\n\r]*" + _CN_LIST_END + "(" + _CN_LIST_IN + "{0,98}" + _CN_LIST_END + \
    r")?[ \t\n\r]*"
CONCEPTS_RE = "^" + _CN_ONE + "(," + _CN_ONE + "){0,19}$"  # comma-separated, at most 20
CURSOR_RE = r"^[A-Za-z0-9_-]{1,560}$"
# http(s)://[userinfo@]host..., host non-empty and not starting with ':', no spaces or controls
WEBHOOK_RE = ("^[Hh][Tt][Tt][Pp][Ss]?://([^/?# " + CTL + "]*@)?[^/?#@: " + CTL + "]"
              "[^/?#@ " + CTL + "]*([/?#][^ " + CTL + "]*)?$")


def cleaned_re(first, more, extra_excluded=CTL):
    """A raw value that, with every character outside [A-Za-z0-9] dropped, starts with a
    letter and keeps 1 + at most `more` letters and digits (domain, policy)."""
    other = "[^A-Za-z0-9" + extra_excluded + "]"
    return "^" + other + "*" + first + "(" + other + "*[A-Za-z0-9]){0," + str(more) + "}" + \
        other + "*$"


def ci_alternatives(words):
    """^(w1|w2|...)$ matching each word ASCII-case-insensitively (no inline flags in
    OpenAPI's regex dialect)."""
    def one(w):
        assert re.fullmatch(r"[A-Za-z -]+", w), w
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in w)
    return "^(" + "|".join(one(w) for w in words) + ")$"


STATUS_INPUTS = ["Compliant", "Non-Compliant", "NonCompliant", "Non Compliant",
                 "Partially Compliant", "PartiallyCompliant", "Partial", "Pending"]
STATUS_INPUT_RE = ci_alternatives(STATUS_INPUTS)
REQNUM_RE = ("^[^0-9" + CTL + "]*(0*[0-9]{1,6}([^0-9" + CTL + "][^" + CTL + "]*)?)?$")
TTL_MIN, TTL_MAX = 60, 31536000
MAX_SOURCES = 100
MAX_CONCEPTS = 20


def vocabulary():
    schema("Timestamp", string(
        "ISO-8601 UTC with milliseconds and `Z`.", format="date-time", pattern=TIMESTAMP_RE,
        example="2026-11-26T15:28:56.123Z"))
    schema("Status", string(
        "Assessment status, canonical spelling (always the form returned).",
        enum=list(STATUSES), example="Non-Compliant"))
    schema("StatusInput", string(
        "Assessment status as accepted on input: `Compliant`, `Non-Compliant`, "
        "`Partially Compliant` or `Pending`, compared case-insensitively, with the aliases "
        "`Partial` and `PartiallyCompliant` (-> `Partially Compliant`) and `NonCompliant` and "
        "`Non Compliant` (-> `Non-Compliant`). Surrounding whitespace is not accepted. Stored "
        "and returned canonical (see `Status`). Anything else is 400 naming the field.",
        pattern=STATUS_INPUT_RE, example="partial"))
    schema("ScenarioId", string(
        "`{domain}_r{N}_{concept}`: domain 1-32 lower-case letters and digits starting with a "
        "letter, requirement number 1-6 digits, concept one or more `_`-separated runs of "
        "lower-case letters and digits; at most 128 characters.",
        pattern=SCENARIO_ID_RE, minLength=1, maxLength=128, example="ecommerce_r1_consent"))
    schema("RuleId", string(
        "`{POLICY}_{Concept}[_{Qualifier}...]_{NN}`: the policy (1-16 upper-case letters and "
        "digits, starting with a letter) is the part before the first `_`; at most 128 "
        "characters.",
        pattern=RULE_ID_RE, minLength=1, maxLength=128, example="GDPR_Consent_Unbundled_01"))
    schema("Text", string(
        "Free text: a non-blank string (not only ASCII whitespace) of at most 10 000 "
        "characters, without NUL (`\\u0000`). Lengths count Unicode code points, not bytes.",
        minLength=1, maxLength=TEXT_MAX, pattern=TEXT_RE))
    schema("ConceptName", string(
        "A concept name: 1-100 characters (code points) after trimming surrounding spaces, "
        "tabs, CRs and LFs, with no control characters (C0, DEL and C1: U+0000-U+001F, "
        "U+007F-U+009F) left. Concepts are matched case-insensitively; the spelling first "
        "stored is kept (answers carry it trimmed).", minLength=1, maxLength=100,
        pattern=CONCEPT_RE, example="data retention"))
    schema("ConfidenceScore", number(
        "A JSON number in [0, 1].", minimum=0, maximum=1, example=0.9))
    schema("Cursor", string(
        "Opaque pagination cursor (unpadded URL-safe base64, at most 560 characters). Bound "
        "to the list and to the canonical filter set that issued it, not to `limit`; any "
        "other value - even one of this form - is 400 with `field: cursor`.",
        pattern=CURSOR_RE))


# --------------------------------------------------------------------------- envelopes

def envelopes():
    schema("ErrorType", string(
        "Machine-readable error class; the HTTP status follows from it (see the table in the "
        "API description).", enum=list(ERROR_TYPES)))
    schema("SuccessEnvelope", obj({
        "status": string(enum=["success"]),
        "message": string("Human-readable summary.", minLength=1),
        "data": {"description": "The operation's result (its schema is given per operation)."},
        "timestamp": ref("Timestamp"),
    }, desc="Envelope of every 2xx JSON answer (204 has no body)."))
    schema("ErrorEnvelope", obj({
        "status": string(enum=["error"]),
        "error_type": ref("ErrorType"),
        "message": string("Human-readable, client-safe explanation (never secrets or driver "
                          "text).", minLength=1),
        "field": string("The one field at fault, when there is one: a dotted path into the "
                        "body (`initial_assessment.status`, `related_concepts[2]`), a query "
                        "parameter (`limit`, `cursor`) or a path parameter (`scenario_id`, "
                        "`rule_id`, `name`).", minLength=1),
        "timestamp": ref("Timestamp"),
    }, required=["status", "error_type", "message", "timestamp"],
        desc="Envelope of every 4xx/5xx answer."))


# --------------------------------------------------------------------------- STM schemas

def stm_schemas():
    schema("InitialAssessment", obj({
        "status": ref("Status"),
        "rationale": ref("Text"),
        "recommendation": ref("Text"),
    }))
    schema("HumanFeedback", obj({
        "decision": ref("Text"),
        "rationale": ref("Text"),
        "suggestion": ref("Text"),
    }))
    schema("StmEntry", obj({
        "scenario_id": ref("ScenarioId"),
        "requirement_text": ref("Text"),
        "initial_assessment": ref("InitialAssessment"),
        "human_feedback": inline_nullable("HumanFeedback"),
        "final_status": inline_nullable("Status"),
        "created_at": ref("Timestamp"),
        "updated_at": ref("Timestamp"),
        "expires_at": ref("Timestamp"),
    }, desc="A short-term memory entry: the case file of one assessed requirement. "
            "`human_feedback` and `final_status` are null until set; `expires_at` = creation "
            "time + ttl_seconds, moved only by `PUT .../ttl`."))

    schema("InitialAssessmentInput", obj({
        "status": ref("StatusInput"),
        "rationale": ref("Text"),
        "recommendation": ref("Text"),
    }, desc="All three members are required; unknown members are rejected "
            "(`field: initial_assessment.<name>`)."))
    schema("InitialAssessmentPatch", obj({
        "status": ref("StatusInput"),
        "rationale": ref("Text"),
        "recommendation": ref("Text"),
    }, required=[], desc="Any of the three members; the others keep their values."))
    not_generated = {"anyOf": [{"required": ["domain"]}, {"required": ["requirement_number"]},
                               {"required": ["key_concept"]}]}
    create = obj({
        "scenario_id": ref("ScenarioId"),
        "domain": string(
            "Generate the id from this domain (e.g. `E-Commerce`): lower-cased, every "
            "character outside `[a-z0-9]` dropped (`E-Commerce` -> `ecommerce`); the result "
            "must start with a letter and have at most 32 characters. The raw value: at most "
            "256 bytes of UTF-8, no control characters (U+0000-U+001F, U+007F-U+009F).",
            minLength=1, maxLength=256, pattern=cleaned_re("[A-Za-z]", 31)),
        "requirement_number": {
            "description": "Requirement number for a generated id (e.g. `R1`): the first run "
                           "of digits, leading zeros dropped, as `r{n}` (`R1`, `req 1`, `1` -> "
                           "`r1`; `R007` -> `r7`; no digits -> `r1`; more than 6 digits -> "
                           "400). A string of at most 31 bytes without control characters, "
                           "or a JSON integer in 0 ... 999 999.",
            "oneOf": [string(maxLength=31, pattern=REQNUM_RE),
                      integer(minimum=0, maximum=999999)]},
        "key_concept": string(
            "Concept part of a generated id (e.g. `consent`): lower-cased, each run of "
            "characters outside `[a-z0-9]` becomes one `_`, trimmed, cut to 40 characters "
            "(then trailing `_` trimmed); empty -> `general`. At most 256 bytes.",
            maxLength=256, pattern=NO_NUL),
        "requirement_text": ref("Text"),
        "initial_assessment": ref("InitialAssessmentInput"),
        "ttl_seconds": integer(
            "Lifetime in seconds from creation: a JSON integer (60.0 is refused) in "
            "60 ... 31 536 000. The minimum is the setting MEMORY_STM_MIN_TTL_SECONDS (60 in "
            "every deployment; test set-ups may lower it). Default: MEMORY_STM_TTL_HOURS x "
            "3600 (24 h).", minimum=TTL_MIN, maximum=TTL_MAX, example=86400),
    }, required=["requirement_text", "initial_assessment"], desc=(
        "Give either `scenario_id`, or `domain` (with optional `requirement_number` and "
        "`key_concept`) to have the id generated as `{domain}_r{n}_{concept}`; giving "
        "`scenario_id` together with any of the three, or neither `scenario_id` nor "
        "`domain`, is 400 with `field: scenario_id`. A generated id that is taken gets the "
        "lowest free suffix `_2`, `_3`, ...; concurrent creates never get the same id. A "
        "given id that exists is 409 (never overwritten)."))
    create["oneOf"] = [
        {"required": ["scenario_id"], "not": not_generated},
        {"required": ["domain"], "not": {"required": ["scenario_id"]}},
    ]
    schema("StmCreateRequest", create)
    schema("StmPatchRequest", obj({
        "requirement_text": ref("Text"),
        "initial_assessment": ref("InitialAssessmentPatch"),
        "final_status": nullable(copy.deepcopy(SCHEMAS["StatusInput"])),
    }, required=[], desc=(
        "Partial update: members present are set, members absent keep their values (this "
        "is not JSON merge patch: `null` is accepted only for `final_status`, where it "
        "clears it). Any other member - `scenario_id`, `human_feedback`, `ttl_seconds`, "
        "`expires_at` ... - is 400 naming it. `{}` is valid and changes nothing.")))
    schema("StmFeedbackRequest", obj({
        "decision": ref("Text"),
        "rationale": ref("Text"),
        "suggestion": ref("Text"),
        "final_status": nullable(copy.deepcopy(SCHEMAS["StatusInput"])),
    }, required=["decision", "rationale", "suggestion"], desc=(
        "Replaces the human feedback as a whole. Without `final_status` the previous final "
        "status stays; `null` clears it.")))
    schema("StmTtlRequest", obj({
        "ttl_seconds": integer(
            "New lifetime counted from now: the new expiry is now + ttl_seconds (it may "
            "lengthen or shorten the entry's life). A JSON integer in 60 ... 31 536 000 "
            "(minimum: MEMORY_STM_MIN_TTL_SECONDS).", minimum=TTL_MIN, maximum=TTL_MAX),
    }))

    schema("StmTraceability", obj({
        "related_ltm_rules": arr(ref("RuleId"), "Rules derived from this entry."),
        "has_human_feedback": boolean(),
        "final_status": inline_nullable("Status"),
    }))
    schema("StmEntryData", obj({"stm_entry": ref("StmEntry")}))
    schema("StmEntryWithTraceData", obj({
        "stm_entry": ref("StmEntry"),
        "traceability": ref("StmTraceability"),
    }))
    schema("StmPatchData", obj({
        "stm_entry": ref("StmEntry"),
        "updated_fields": arr(string(enum=[
            "requirement_text", "initial_assessment.status", "initial_assessment.rationale",
            "initial_assessment.recommendation", "final_status"]),
            "Dotted paths of the fields whose value changed, in this order: "
            "requirement_text, initial_assessment.status, .rationale, .recommendation, "
            "final_status. Values equal after canonicalisation are not changes; an empty "
            "list means nothing changed (then `updated_at` is kept too).", uniqueItems=True),
    }))
    schema("StmTtlData", obj({
        "scenario_id": ref("ScenarioId"),
        "expires_at": ref("Timestamp"),
    }))
    schema("StmListFilters", obj({
        "status": ref("Status"),
        "final_status": ref("Status"),
        "has_feedback": boolean(),
        "domain": string("The domain after cleaning (as in id generation).",
                         pattern="^[a-z][a-z0-9]{0,31}$"),
    }, required=[], desc="The filters applied, in canonical form; only those given appear."))
    schema("StmListData", obj({
        "entries": arr(ref("StmEntry"), "Newest first (creation order)."),
        "count": integer("Number of entries on this page.", minimum=0),
        "next_cursor": nullable(string("Cursor of the next page; null on the last page. A "
                                       "page may be shorter than `limit` (even empty) while "
                                       "this is not null.", pattern=CURSOR_RE)),
        "filters": ref("StmListFilters"),
    }))
    breakdown = obj({s: integer(minimum=0) for s in STATUSES},
                    desc="Count per canonical status; all four are always present.")
    schema("StatusBreakdown", breakdown)
    schema("StmStats", obj({
        "total_entries": integer("Live (unexpired) entries.", minimum=0),
        "entries_with_feedback": integer(minimum=0),
        "entries_without_feedback": integer(minimum=0),
        "status_breakdown": ref("StatusBreakdown"),
        "final_status_breakdown": ref("StatusBreakdown"),
    }, desc="Counts over the live entries; an expired entry stops counting at once. "
            "Entries without a final status are not in `final_status_breakdown`."))


# --------------------------------------------------------------------------- LTM schemas

def ltm_schemas():
    rule_props = {
        "rule_id": ref("RuleId"),
        "policy": string("Policy part of the rule id.", pattern="^[A-Z][A-Z0-9]{0,15}$",
                         example="GDPR"),
        "rule_text": ref("Text"),
        "related_concepts": arr(ref("ConceptName")),
        "source_scenario_ids": arr(ref("ScenarioId"), "Scenarios the rule was derived from."),
        "confidence_score": ref("ConfidenceScore"),
        "version": integer("1 for a new rule, + 1 on every PATCH that changes it.", minimum=1),
        "created_at": ref("Timestamp"),
        "updated_at": ref("Timestamp"),
    }
    schema("LtmRule", obj(rule_props, desc="A long-term memory rule."))
    scored = dict(rule_props)
    scored["score"] = number("Full-text relevance (higher is better); only when `q` is given.",
                             minimum=0)
    schema("LtmRuleSearchHit", obj(scored, required=list(rule_props),
                                   desc="A rule in search results: with `score` when the "
                                        "search is full-text."))
    schema("RuleVersion", obj({
        "rule_id": ref("RuleId"),
        "version": integer(minimum=1),
        "rule_text": ref("Text"),
        "confidence_score": ref("ConfidenceScore"),
        "related_concepts": arr(ref("ConceptName")),
        "source_scenario_ids": arr(ref("ScenarioId")),
        "recorded_at": ref("Timestamp"),
    }, desc="One version of a rule as it was (the current version is the last one)."))

    identity_desc = (
        " Identify the rule with `rule_id`, or give `policy` (with optional `key_concept`; "
        "without it the first related concept is used) to have it generated: policy "
        "upper-cased with non-alphanumerics dropped (must start with a letter, at most 16 "
        "characters), the concept as CamelCase words of its alphanumeric runs (first letter "
        "of each upper-cased, the rest kept: `event based retention` -> "
        "`EventBasedRetention`), then `_NN`, the lowest free number from `01`. `rule_id` "
        "together with `policy` or `key_concept`, or neither `rule_id` nor `policy`, is 400 "
        "with `field: rule_id`.")
    common = {
        "rule_text": ref("Text"),
        "related_concepts": arr(ref("ConceptName"),
                                "At least one, at most MEMORY_MAX_RELATED_CONCEPTS (default "
                                "20); duplicates (compared case-insensitively, after trimming) "
                                "are 400 naming the element (`related_concepts[i]`).",
                                minItems=1, maxItems=MAX_CONCEPTS, uniqueItems=True),
        "rule_id": ref("RuleId"),
        "policy": string("Policy for a generated rule id (e.g. `GDPR`): upper-cased, every "
                         "character outside `[A-Za-z0-9]` dropped; the result must start "
                         "with a letter and have at most 16 characters. The raw value: at "
                         "most 256 bytes, no control characters (U+0000-U+001F, U+007F-U+009F).",
                         minLength=1, maxLength=256, pattern=cleaned_re("[A-Za-z]", 15)),
        "key_concept": string("Concept for a generated rule id (e.g. `event based "
                              "retention`): at most 256 bytes, no control characters, at "
                              "least one ASCII letter or digit. Without it, the first "
                              "related concept is used, which then needs an ASCII letter or "
                              "digit too (else 400 with `field: key_concept`).",
                              minLength=1, maxLength=256,
                              pattern="^[^" + CTL + "]*[A-Za-z0-9][^" + CTL + "]*$"),
        "confidence_score": {"allOf": [ref("ConfidenceScore")], "default": 0.5},
    }
    one_of = [
        {"required": ["rule_id"],
         "not": {"anyOf": [{"required": ["policy"]}, {"required": ["key_concept"]}]}},
        {"required": ["policy"], "not": {"required": ["rule_id"]}},
    ]
    create_props = dict(common)
    create_props["source_scenario_ids"] = arr(
        ref("ScenarioId"), "At least one, at most 100, distinct. Sources need not exist in "
        "STM; those that do are snapshotted (evidence outlives STM).", minItems=1,
        maxItems=MAX_SOURCES, uniqueItems=True)
    create = obj(create_props, required=["rule_text", "related_concepts", "source_scenario_ids"],
                 desc="A new rule." + identity_desc + " A `rule_id` that exists is 409.")
    create["oneOf"] = copy.deepcopy(one_of)
    schema("LtmRuleCreateRequest", create)
    promote = obj(dict(common), required=["rule_text", "related_concepts"],
                  desc="A rule derived from this STM entry (its only source)." + identity_desc)
    promote["oneOf"] = copy.deepcopy(one_of)
    schema("PromoteRequest", promote)
    schema("LtmRulePatchRequest", obj({
        "rule_text": ref("Text"),
        "confidence_score": ref("ConfidenceScore"),
        "related_concepts": arr(ref("ConceptName"),
                                "Replaces the set (at least one, at most "
                                "MEMORY_MAX_RELATED_CONCEPTS); concepts and policies left "
                                "without any rule are removed.", minItems=1,
                                maxItems=MAX_CONCEPTS, uniqueItems=True),
        "add_source_scenario_ids": arr(ref("ScenarioId"),
                                       "Sources to add (at most 100, distinct; already linked "
                                       "ones are kept). Each that is live in STM has its "
                                       "evidence snapshot taken or refreshed.",
                                       maxItems=MAX_SOURCES, uniqueItems=True),
    }, required=[], desc=(
        "Partial update: members present are applied, others keep their values. When "
        "anything changes, the previous state is kept as a version (see `/history`) and "
        "`version` goes up by one; otherwise `changed` is false and nothing is recorded. "
        "`{}` is valid.")))

    schema("LtmRuleData", obj({"ltm_rule": ref("LtmRule")}))
    schema("LtmRulePatchData", obj({
        "ltm_rule": ref("LtmRule"),
        "changed": boolean("False when the patch changed nothing (message `nothing "
                           "changed`)."),
    }))
    schema("SourceScenarioRef", obj({
        "scenario_id": ref("ScenarioId"),
        "in_stm": boolean("The STM entry is live now."),
        "has_snapshot": boolean("An evidence snapshot of the entry is kept in LTM."),
    }))
    schema("LtmRuleDetailData", obj({
        "ltm_rule": ref("LtmRule"),
        "traceability": obj({
            "related_concepts": arr(ref("ConceptName")),
            "source_scenarios": arr(ref("SourceScenarioRef")),
            "governing_policies": arr(string(pattern="^[A-Z][A-Z0-9]{0,15}$")),
        }),
    }))
    schema("LtmSearchData", obj({
        "rules": arr(ref("LtmRuleSearchHit"),
                     "Ordered by score (full-text only), then confidence, then updated_at, "
                     "all descending."),
        "count": integer("Number of rules on this page.", minimum=0),
        "next_cursor": nullable(string("Null on the last page.", pattern=CURSOR_RE)),
        "search_type": string("`fulltext` when `q` is given, else `structured`.",
                              enum=["fulltext", "structured"]),
    }))
    schema("ConceptListData", obj({
        "concepts": arr(obj({"name": ref("ConceptName"),
                             "rule_count": integer(minimum=0)}),
                        "Ordered by name (case-insensitively)."),
        "count": integer("Number of concepts on this page.", minimum=0),
        "next_cursor": nullable(string("Null on the last page.", pattern=CURSOR_RE)),
    }))
    schema("ConceptRulesData", obj({
        "concept": ref("ConceptName"),
        "rules": arr(ref("LtmRule"), "Confidence descending."),
        "count": integer(minimum=0),
    }))
    schema("RuleHistoryData", obj({
        "rule_id": ref("RuleId"),
        "total_versions": integer("Every version including the current one (a new rule "
                                  "has 1).", minimum=1),
        "versions": arr(ref("RuleVersion"), "Oldest first; the current version last."),
    }))
    schema("AuditSource", obj({
        "scenario_id": ref("ScenarioId"),
        "in_stm": boolean(),
        "has_snapshot": boolean(),
        "has_human_feedback": boolean("From the live entry, else from the snapshot."),
        "final_status": inline_nullable("Status"),
        "snapshot_sha256": string("SHA-256 (hex) of the snapshotted entry JSON; only when "
                                  "`has_snapshot`.", pattern="^[0-9a-f]{64}$"),
    }, required=["scenario_id", "in_stm", "has_snapshot", "has_human_feedback",
                 "final_status"]))
    schema("RuleAuditData", obj({
        "rule": ref("LtmRule"),
        "version_history": arr(ref("RuleVersion"), "Oldest first; the current one last."),
        "source_scenarios": arr(ref("AuditSource")),
        "concept_relationships": {
            "type": "object",
            "description": "For each concept of the rule (as this rule spells it), the ids of "
                           "the other rules related to the same concept, sorted.",
            "additionalProperties": arr(ref("RuleId"))},
        "audit_metadata": obj({
            "total_versions": integer(minimum=1),
            "source_count": integer(minimum=0),
            "concept_count": integer(minimum=0),
            "confidence_score": ref("ConfidenceScore"),
            "last_updated": ref("Timestamp"),
            "evidence_completeness": number(
                "0.4 x (sources whose STM entry or snapshot exists / sources) + 0.4 x "
                "(sources with human feedback / sources) + 0.2 x (1.0 when total_versions > 1, "
                "else 0.5), capped at 1, rounded to 4 decimals; 0 for a rule without sources.",
                minimum=0, maximum=1),
        }),
    }))


# --------------------------------------------------------------------------- trace / stats

def trace_schemas():
    schema("EvidenceSnapshot", obj({
        "entry": ref("StmEntry"),
        "sha256": string("SHA-256 (hex) of the entry's JSON as captured.",
                         pattern="^[0-9a-f]{64}$"),
        "captured_at": ref("Timestamp"),
    }, desc="The STM entry as it was when last linked to a rule, kept in LTM."))
    schema("TraceData", obj({
        "scenario_id": ref("ScenarioId"),
        "stm_entry": inline_nullable("StmEntry"),
        "snapshot": inline_nullable("EvidenceSnapshot"),
        "derived_ltm_rules": arr(ref("LtmRule")),
        "traceability_summary": obj({
            "has_stm_entry": boolean(),
            "has_snapshot": boolean(),
            "has_human_feedback": boolean("From the live entry; after its expiry from the "
                                          "snapshot."),
            "derived_rules_count": integer(minimum=0),
            "final_status": inline_nullable("Status"),
        }),
    }))
    schema("IntegrityData", obj({
        "integrity_status": string("`PASS` iff orphaned_ltm_rules and broken_links are 0.",
                                   enum=["PASS", "ISSUES_FOUND"]),
        "statistics": obj({
            "total_stm_entries": integer(minimum=0),
            "total_ltm_rules": integer(minimum=0),
            "orphaned_stm_entries": integer("Live entries with human feedback and no derived "
                                            "rule (reported, not a failure).", minimum=0),
            "orphaned_ltm_rules": integer("Rules without a source scenario.", minimum=0),
            "broken_links": integer("Link-set members naming a missing rule, plus sources "
                                    "with neither a live STM entry nor a snapshot.",
                                    minimum=0),
        }),
        "issues": arr(string(), "One sentence per issue (at most 200 listed).", maxItems=200),
        "issues_total": integer("Number of issues, also those not listed.", minimum=0),
        "checked_at": ref("Timestamp"),
    }))
    schema("SystemStatsData", obj({
        "stm_stats": ref("StmStats"),
        "ltm_stats": obj({
            "total_rules": integer(minimum=0),
            "average_confidence": number(minimum=0, maximum=1),
            "rules_by_policy": {"type": "object", "description": "Rule count per policy.",
                                "additionalProperties": integer(minimum=0)},
            "total_concepts": integer(minimum=0),
        }),
        "system_info": obj({
            "version": string(example="1.0.0"),
            "uptime_seconds": integer(minimum=0),
            "stm_backend": string(enum=["embedded", "redis"]),
            "ltm_backend": string(enum=["embedded", "neo4j"]),
        }),
    }))


# --------------------------------------------------------------------------- operations schemas

def ops_schemas():
    schema("HealthStatus", string(enum=["healthy", "degraded", "unhealthy"]))
    schema("ComponentHealth", obj({
        "backend": string("`embedded`, `redis`, `neo4j`; `memory` for the cache."),
        "status": ref("HealthStatus"),
        "latency_ms": number("Latency of the latest background probe.", minimum=0),
        "message": string(),
    }))
    schema("HealthReport", obj({
        "overall_status": string(
            "`healthy` when both stores are healthy; `unhealthy` when no store answers; "
            "else `degraded`.", enum=["healthy", "degraded", "unhealthy"]),
        "version": string(example="1.0.0"),
        "uptime_seconds": integer(minimum=0),
        "components": obj({"stm": ref("ComponentHealth"), "ltm": ref("ComponentHealth"),
                           "cache": ref("ComponentHealth")}),
    }))
    schema("ReadinessReport", obj({
        "ready": boolean(),
        "ltm_schema_ready": boolean("The LTM schema (constraints and indexes) is in place."),
        "components": obj({"stm": ref("ComponentHealth"), "ltm": ref("ComponentHealth")}),
    }))
    err = copy.deepcopy(SCHEMAS["ErrorEnvelope"])
    err["properties"]["data"] = ref("HealthReport")
    err["required"] = err["required"] + ["data"]
    err["description"] = "503 of `/health`: the error envelope with the full report in `data`."
    schema("HealthErrorEnvelope", err)
    err = copy.deepcopy(SCHEMAS["ErrorEnvelope"])
    err["properties"]["data"] = ref("ReadinessReport")
    err["required"] = err["required"] + ["data"]
    err["description"] = "503 of `/ready`: the error envelope with the full report in `data`."
    schema("ReadinessErrorEnvelope", err)

    schema("MetricName", string("One of the six windowed metrics (thresholds from "
                                "PERFORMANCE_THRESHOLDS).", enum=list(METRICS)))
    schema("Comparison", string("`gt`: value > threshold; `lt`: value < threshold; `eq`: "
                                "equal within 1e-9 relative.", enum=["gt", "lt", "eq"]))
    schema("AlertRule", obj({
        "name": string(minLength=1, maxLength=100),
        "metric_name": ref("MetricName"),
        "threshold": number(),
        "comparison": ref("Comparison"),
        "duration_seconds": integer(minimum=0, maximum=604800),
        "enabled": boolean(),
        "webhook_url": nullable(string("Only the origin (`scheme://host[:port]`) of the "
                                       "rule's own webhook, so tokens in its path or query "
                                       "never leak; null when the rule has none (the default "
                                       "ALERT_WEBHOOK_URL is then used).")),
        "state": string("`pending` while the condition holds for less than "
                        "duration_seconds, `firing` after; `inactive` otherwise (a firing "
                        "alert that stops holding is resolved and becomes inactive).",
                        enum=["inactive", "pending", "firing"]),
        "since": nullable(string("When the condition started holding; null when inactive.",
                                 format="date-time", pattern=TIMESTAMP_RE)),
    }, desc="An alert rule with its current state."))
    schema("ActiveAlert", obj({
        "name": string(minLength=1, maxLength=100),
        "metric": ref("MetricName"),
        "threshold": number(),
        "comparison": ref("Comparison"),
        "duration_seconds": integer(minimum=0),
        "state": string(enum=["pending", "firing"]),
        "since": ref("Timestamp"),
        "value": nullable(number("Metric value at the latest evaluation; null without "
                                 "samples.")),
        "severity": string("`critical` once firing for 10 minutes, else `warning`.",
                           enum=["warning", "critical"]),
    }))
    schema("AlertsData", obj({
        "active": arr(ref("ActiveAlert"), "Pending and firing alerts."),
        "rules": arr(ref("AlertRule"), "Every rule, in creation order."),
    }))
    schema("AlertRuleCreateRequest", obj({
        "name": string("1-100 characters (code points), UTF-8, no control characters "
                       "(U+0000-U+001F, U+007F-U+009F), not blank; unique.", minLength=1,
                       maxLength=100, pattern=SHORT_RE),
        "metric_name": ref("MetricName"),
        "threshold": number("A finite JSON number."),
        "comparison": ref("Comparison"),
        "duration_seconds": integer("How long the condition must hold before the alert "
                                    "fires (0: at once). A JSON integer.", minimum=0,
                                    maximum=604800, default=60),
        "enabled": {"type": "boolean", "default": True},
        "webhook_url": nullable(string("http(s) URL with a host (at most 2048 characters, "
                                       "no spaces or control characters) that receives "
                                       "the transitions "
                                       "of this rule as JSON; null or absent: "
                                       "ALERT_WEBHOOK_URL.", maxLength=2048,
                                       pattern=WEBHOOK_RE)),
    }, required=["name", "metric_name", "threshold", "comparison"], desc=(
        "A rule compares the metric's current value (mean of the last minute) with the "
        "threshold; it never holds on too little data (10 samples in the last minute, 100 "
        "lookups for the cache hit rate). Rules live in memory, per instance. A webhook "
        "receives `{alert, metric, state: firing|resolved, value, threshold, comparison, "
        "duration_seconds, since, timestamp}`.")))
    schema("AlertRuleData", obj({"rule": ref("AlertRule")}))

    schema("KeyMetric", obj({
        "current": nullable(number("Mean over the last minute; null without samples.")),
        "average": nullable(number("Mean over 15 minutes; null without samples.")),
        "p95": nullable(number("95th percentile over 15 minutes; null without samples.")),
        "threshold": number(),
        "status": string(
            "Lower is better for response times, error rate and pool utilisation: good <= "
            "0.7 x threshold, warning <= threshold, else critical. Higher is better for the "
            "cache hit rate: good >= threshold, warning >= 0.8 x threshold, else critical. "
            "Judges `current`, or `average` when the last minute had no samples; `unknown` "
            "with no samples in 15 minutes.", enum=["good", "warning", "critical", "unknown"]),
    }))
    schema("LatencyComponent", obj({
        "calls": integer(minimum=0),
        "errors": integer(minimum=0),
        "avg_ms": nullable(number()),
        "p95_ms": nullable(number()),
        "backend": string(enum=["embedded", "redis", "neo4j"]),
    }, required=["calls", "errors", "avg_ms", "p95_ms"],
        desc="Store or API calls over 15 minutes (`backend` for stm and ltm)."))
    pool = obj({"open": integer(minimum=0), "in_use": integer(minimum=0),
                "max": integer(minimum=1), "waits": integer(minimum=0),
                "timeouts": integer(minimum=0)})
    pool["nullable"] = True
    schema("BackendComponent", {
        "description": "A networked store: `{configured: false}` when its backend is not in "
                       "use.",
        "oneOf": [
            obj({"configured": {"type": "boolean", "enum": [False]}}),
            obj({
                "configured": {"type": "boolean", "enum": [True]},
                "backs": string(enum=["stm", "ltm"]),
                "pool": pool,
                "utilization_percent": nullable(number(minimum=0)),
                "calls": integer(minimum=0),
                "errors": integer(minimum=0),
                "avg_ms": nullable(number()),
                "p95_ms": nullable(number()),
            }),
        ]})
    schema("DashboardData", obj({
        "timestamp": ref("Timestamp"),
        "system_health": string(
            "`critical` when an alert fires with severity critical or a key metric is "
            "critical; else `warning` when an alert is pending or firing or a key metric is "
            "warning; else `healthy`.", enum=["healthy", "warning", "critical"]),
        "alerts": arr(obj({
            "name": string(),
            "metric": ref("MetricName"),
            "threshold": number(),
            "duration_seconds": integer(minimum=0),
            "state": string(enum=["pending", "firing"]),
            "since": ref("Timestamp"),
            "severity": string(enum=["warning", "critical"]),
        }), "Active (pending or firing) alerts."),
        "key_metrics": obj({m: ref("KeyMetric") for m in METRICS}),
        "component_performance": obj({
            "stm": ref("LatencyComponent"),
            "ltm": ref("LatencyComponent"),
            "api": ref("LatencyComponent"),
            "redis": ref("BackendComponent"),
            "neo4j": ref("BackendComponent"),
        }),
    }, desc="Monitoring data over a 15-minute window."))
    schema("CacheInvalidateRequest", obj({
        "prefix": string("Drop every cached answer whose key starts with this: keys are the "
                         "request path followed by its query (`/v1/ltm/rules/GDPR_Consent_01`, "
                         "`/v1/ltm/` for every LTM read). Absent or empty: everything. At most "
                         "512 bytes, no control characters (U+0000-U+001F, U+007F-U+009F).",
                         maxLength=512, pattern=NO_CTL, example="/v1/ltm/"),
    }, required=[]))
    schema("CacheInvalidateData", obj({
        "invalidated": integer("Number of cached answers dropped on this instance (peers "
                               "sharing Redis drop theirs too).", minimum=0),
    }))


# --------------------------------------------------------------------------- responses, headers

HEADERS = {
    "X-Request-Id": {
        "description": "The client's X-Request-Id when it was 1-64 characters of "
                       "`[A-Za-z0-9._-]`, else a generated one (32 hex digits).",
        "required": True,
        "schema": string(pattern="^[A-Za-z0-9._-]{1,64}$")},
    "Cache-Control": {
        "description": "Always `no-store`: answers must not be kept by HTTP caches.",
        "required": True,
        "schema": string(enum=["no-store"])},
    "Location": {
        "description": "Path of the created resource.",
        "required": True,
        "schema": string(example="/v1/stm/entries/ecommerce_r1_consent")},
    "Allow": {
        "description": "The methods the path supports, e.g. `GET, HEAD, POST` (HEAD wherever "
                     "GET is).",
        "required": True,
        "schema": string(example="GET, HEAD, POST")},
    "WWW-Authenticate": {
        "description": "`Bearer realm=\"memoryd\"`.",
        "required": True,
        "schema": string(example="Bearer realm=\"memoryd\"")},
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": integer(minimum=1, example=1)},
}


def hdr(name):
    return {"$ref": "#/components/headers/" + name}


def std_headers(*extra):
    h = {"X-Request-Id": hdr("X-Request-Id"), "Cache-Control": hdr("Cache-Control")}
    for e in extra:
        h[e] = hdr(e)
    return h


def json_content(s):
    return {"application/json": {"schema": s}}


ERRORS = {
    # code: (component name, description, extra headers)
    400: ("BadRequest",
          "`validation_error`: malformed or non-object JSON body, a missing body where one is "
          "required, an unknown or missing field, a blank or over-long text, a bad format or "
          "range, a malformed id in the path, an unknown or repeated query parameter, a bad "
          "query value, a cursor this server did not issue, a query string over 8192 bytes or "
          "32 parameters. `field` names the culprit when there is one.", ()),
    401: ("Unauthorized",
          "`unauthorized`: API keys are configured (API_KEYS / API_KEYS_FILE) and the request "
          "has none, or a wrong one.", ("WWW-Authenticate",)),
    404: ("NotFound",
          "`not_found`: no such resource (the id is well-formed but unknown). An unknown "
          "path is 404 as well (message `no such route`).", ()),
    405: ("MethodNotAllowed",
          "`method_not_allowed`: the path exists but does not support the method (any method "
          "not listed under the path - OPTIONS and unknown methods included; HEAD is accepted "
          "wherever GET is). `Allow` lists those it supports.",
          ("Allow",)),
    409: ("Conflict", "`conflict`: the resource exists already, or its state forbids the "
                      "operation.", ()),
    413: ("PayloadTooLarge",
          "`payload_too_large`: the body is over API_MAX_REQUEST_SIZE (default 1 MiB). Refused "
          "as soon as `Content-Length` announces it (on any route) or a chunked body crosses "
          "the limit; the connection is then closed.", ()),
    415: ("UnsupportedMediaType",
          "`unsupported_media_type`: the request has a body but its Content-Type is not "
          "`application/json` (parameters such as `; charset=utf-8` are fine).", ()),
    429: ("RateLimited",
          "`rate_limited`: over RATE_LIMIT_RPS for this API key (this client address when no "
          "key is checked), beyond a burst of RATE_LIMIT_BURST. Only when RATE_LIMIT_RPS > 0.",
          ("Retry-After",)),
    500: ("InternalError", "`internal_error`: a bug; logged with the request id.", ()),
    503: ("StorageUnavailable",
          "`storage_unavailable`: a store (Redis, Neo4j or the embedded store) did not answer "
          "in time, or the server ran out of memory. Retry after `Retry-After`. On a write "
          "the outcome is unknown: the change may or may not have been applied.",
          ("Retry-After",)),
}


def components_responses():
    out = {}
    for code, (name, desc, extra) in ERRORS.items():
        out[name] = {"description": desc, "headers": std_headers(*extra),
                     "content": json_content(ref("ErrorEnvelope"))}
    return out


def err_resp(code, desc=None):
    name, generic, extra = ERRORS[code]
    if desc is None:
        return {"$ref": "#/components/responses/" + name}
    return {"description": desc, "headers": std_headers(*extra),
            "content": json_content(ref("ErrorEnvelope"))}


def success(data_schema):
    """SuccessEnvelope with `data` of the given schema."""
    return {"allOf": [ref("SuccessEnvelope"),
                      {"type": "object", "properties": {"data": data_schema}}]}


# --------------------------------------------------------------------------- parameters

PARAMS = {
    "ScenarioIdPath": {
        "name": "id", "in": "path", "required": True,
        "description": "Scenario id (percent-decoded). Malformed -> 400 `field: scenario_id`, "
                       "never 404.",
        "schema": ref("ScenarioId")},
    "RuleIdPath": {
        "name": "id", "in": "path", "required": True,
        "description": "Rule id (percent-decoded). Malformed -> 400 `field: rule_id`, never "
                       "404.",
        "schema": ref("RuleId")},
    "StmLimit": {
        "name": "limit", "in": "query", "required": False,
        "description": "Page size: decimal digits in 1 ... 1000.",
        "schema": integer(minimum=1, maximum=1000, default=50)},
    "Cursor": {
        "name": "cursor", "in": "query", "required": False,
        "description": "`next_cursor` of the previous page, with the same filters.",
        "schema": ref("Cursor")},
    "RequestId": {
        "name": "X-Request-Id", "in": "header", "required": False,
        "description": "Client request id, echoed when it is 1-64 characters of "
                       "`[A-Za-z0-9._-]` (any other value is replaced by a generated one).",
        "schema": string(maxLength=64, pattern="^[A-Za-z0-9._-]{1,64}$")},
}


def p(name):
    return {"$ref": "#/components/parameters/" + name}


# --------------------------------------------------------------------------- examples
# Whole request bodies (the members that exclude each other carry no examples of their own,
# so that no tool combines them into a body the server must refuse).

_ASSESSMENT = {"status": "Non-Compliant",
               "rationale": "The sign-up form bundles marketing consent with the terms.",
               "recommendation": "Add a separate, unticked consent checkbox."}
_REQUIREMENT = "Users must give explicit, unbundled consent before marketing e-mails are sent."
STM_CREATE_EXAMPLES = {
    "givenId": ("With a scenario id", {
        "scenario_id": "ecommerce_r1_consent", "requirement_text": _REQUIREMENT,
        "initial_assessment": _ASSESSMENT, "ttl_seconds": 86400}),
    "generatedId": ("With the id generated (`ecommerce_r1_consent`, or `_2`, `_3`, ...)", {
        "domain": "E-Commerce", "requirement_number": "R1", "key_concept": "consent",
        "requirement_text": _REQUIREMENT, "initial_assessment": _ASSESSMENT}),
}
_RULE = {"rule_text": "Marketing consent must be a separate, unticked opt-in.",
         "related_concepts": ["consent", "marketing"], "confidence_score": 0.9}
PROMOTE_EXAMPLES = {
    "givenId": ("With a rule id", dict(rule_id="GDPR_Consent_Unbundled_01", **_RULE)),
    "generatedId": ("With the id generated (`GDPR_ConsentUnbundled_01`, or the next free "
                    "number)", dict(policy="GDPR", key_concept="consent unbundled", **_RULE)),
}
LTM_CREATE_EXAMPLES = {
    name: (summ, dict(value, source_scenario_ids=["ecommerce_r1_consent"]))
    for name, (summ, value) in PROMOTE_EXAMPLES.items()
}


# --------------------------------------------------------------------------- links
# How the answer of one operation feeds the next (OpenAPI links; clients and test
# generators such as schemathesis follow them).

def link(op_id, desc, **params):
    return {"operationId": op_id, "description": desc, "parameters": params}


SID_FROM_ENTRY = "$response.body#/data/stm_entry/scenario_id"
RID_FROM_RULE = "$response.body#/data/ltm_rule/rule_id"


def entry_links(sid):
    """Operations on the STM entry whose id is `sid` (a runtime expression)."""
    return {
        "GetStmEntry": link("getStmEntry", "Read the entry.", id=sid),
        "PatchStmEntry": link("patchStmEntry", "Update fields of the entry.", id=sid),
        "PutStmFeedback": link("putStmFeedback", "Record human feedback on the entry.",
                               id=sid),
        "PutStmTtl": link("putStmTtl", "Change the entry's remaining lifetime.", id=sid),
        "GetTrace": link("getTrace", "Trace the scenario across the tiers.", scenario_id=sid),
        "DeleteStmEntry": link("deleteStmEntry", "Delete the entry.", id=sid),
    }


def rule_links(rid):
    """Operations on the LTM rule whose id is `rid` (a runtime expression)."""
    return {
        "GetLtmRule": link("getLtmRule", "Read the rule with its traceability.", id=rid),
        "PatchLtmRule": link("patchLtmRule", "Update the rule.", id=rid),
        "GetLtmRuleHistory": link("getLtmRuleHistory", "The rule's versions.", id=rid),
        "GetLtmRuleAudit": link("getLtmRuleAudit", "The rule's audit trail.", id=rid),
        "DeleteLtmRule": link("deleteLtmRule", "Delete the rule.", id=rid),
    }


def q(name, desc, s):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": s}


# --------------------------------------------------------------------------- operations

V1 = [{"bearerAuth": []}, {"apiKeyAuth": []}]
OPS = [{}, {"bearerAuth": []}, {"apiKeyAuth": []}]
OPEN = []


def operation(tag, op_id, summary, desc, ok, errors, *, params=(), body=None,
              body_required=True, security=V1, error_desc=None, body_examples=None, links=None):
    """ok: (status, description, content-or-None, headers tuple).
    body_examples: {name: (summary, value)}, whole request bodies (media-type `examples`).
    links: {name: link object} of the success response."""
    o = {"tags": [tag], "operationId": op_id, "summary": summary, "description": desc}
    o["parameters"] = list(params) + [p("RequestId")]
    if body is not None:
        o["requestBody"] = {"required": body_required, "content": json_content(body)}
        if body_examples:
            o["requestBody"]["content"]["application/json"]["examples"] = {
                name: {"summary": summ, "value": value}
                for name, (summ, value) in body_examples.items()}
    status, ok_desc, content, extra_headers = ok
    r = {"description": ok_desc, "headers": std_headers(*extra_headers)}
    if content is not None:
        r["content"] = content
    if links:
        r["links"] = links
    responses = {str(status): r}
    error_desc = error_desc or {}
    codes = set(errors) | {400, 413, 500, 503}
    if security is V1 or security is OPS:
        codes |= {401, 429}
    if body is not None:
        codes.add(415)
    for code in sorted(codes):
        responses[str(code)] = err_resp(code, error_desc.get(code))
    o["responses"] = responses
    o["security"] = security
    return o


def paths():
    P = {}
    stm, ltm, trace, mon, ops = ("Short-term memory", "Long-term memory", "Traceability",
                                 "Monitoring", "Operations")
    sid, rid = p("ScenarioIdPath"), p("RuleIdPath")
    write_note = (" A 503 means the outcome is unknown: read the entry back before "
                  "retrying.")

    P["/v1/stm/entries"] = {
        "post": operation(
            stm, "createStmEntry", "Create an STM entry",
            "Stores a new case file. Its lifetime starts now: `expires_at` = `created_at` + "
            "`ttl_seconds` (to the millisecond); `created_at` = `updated_at`. The write is "
            "atomic: an existing id is never overwritten (409)." + write_note +
            " A create retried after a 503 may get 409 (given id) or a new `_N` id "
            "(generated id).",
            (201, "Created. `Location` is `/v1/stm/entries/{scenario_id}`.",
             json_content(success(ref("StmEntryData"))), ("Location",)),
            [409], body=ref("StmCreateRequest"),
            error_desc={409: "`conflict` with `field: scenario_id`: the given scenario_id "
                             "exists (the entry is not changed)."},
            body_examples=STM_CREATE_EXAMPLES, links=entry_links(SID_FROM_ENTRY)),
        "get": operation(
            stm, "listStmEntries", "List STM entries",
            "Live entries, newest first, filtered and paged. Filters are ANDed. The answer "
            "is never cached. A page may hold fewer than `limit` entries - even none - while "
            "`next_cursor` is not null (entries that expired meanwhile are skipped): keep "
            "paging until `next_cursor` is null. Paging through a list nobody writes to "
            "returns every entry exactly once.",
            (200, "A page of entries.", json_content(success(ref("StmListData"))), ()),
            [],
            params=[
                q("status", "Initial assessment status (a `StatusInput`: case-insensitive, "
                            "aliases accepted).", ref("StatusInput")),
                q("final_status", "Final status (a `StatusInput`).", ref("StatusInput")),
                q("has_feedback", "Exactly `true` or `false`.",
                  string(enum=["true", "false"])),
                q("domain", "The id's domain part, after the same cleaning as id generation "
                            "(`E-Commerce` matches `ecommerce_r1_...`): the value must keep 1 "
                            "to 32 letters and digits, starting with a letter, once every "
                            "character outside `[A-Za-z0-9]` is dropped.",
                  string(minLength=1, pattern=cleaned_re("[A-Za-z]", 31, r"\x00"))),
                p("StmLimit"), p("Cursor")]),
    }
    P["/v1/stm/entries/{id}"] = {
        "get": operation(
            stm, "getStmEntry", "Get an STM entry",
            "The entry with the rules derived from it. An expired entry is 404. May be "
            "served from the cache (see Caching and freshness).",
            (200, "The entry.", json_content(success(ref("StmEntryWithTraceData"))), ()),
            [404], params=[sid]),
        "patch": operation(
            stm, "patchStmEntry", "Update fields of an STM entry",
            "Partial update of `requirement_text`, `initial_assessment` (any of its three "
            "members) and `final_status` (a status, or null to clear it). Atomic. Keeps the "
            "remaining TTL (`expires_at` never moves). `updated_at` changes only when a "
            "value changes." + write_note,
            (200, "Updated (or nothing changed: `updated_fields` empty, message `nothing "
                  "changed`).", json_content(success(ref("StmPatchData"))), ()),
            [404], params=[sid], body=ref("StmPatchRequest")),
        "delete": operation(
            stm, "deleteStmEntry", "Delete an STM entry",
            "Removes the entry at once. Rules derived from it keep their evidence "
            "snapshots." + write_note,
            (204, "Deleted (no body).", None, ()),
            [404], params=[sid]),
    }
    P["/v1/stm/entries/{id}/feedback"] = {
        "put": operation(
            stm, "putStmFeedback", "Record human feedback",
            "Sets `human_feedback` (all three members) and optionally `final_status`. "
            "Atomic: concurrent feedback updates never lose one (the last applied wins "
            "whole). Always bumps `updated_at`; keeps the remaining TTL." + write_note,
            (200, "Recorded.", json_content(success(ref("StmEntryData"))), ()),
            [404], params=[sid], body=ref("StmFeedbackRequest"),
            links={"PromoteStmEntry": link("promoteStmEntry", "With feedback recorded, the "
                                                              "entry can be promoted.",
                                           id="$request.path.id")}),
    }
    P["/v1/stm/entries/{id}/ttl"] = {
        "put": operation(
            stm, "putStmTtl", "Set the remaining lifetime of an STM entry",
            "The only way to change an entry's lifetime: the new expiry is now + "
            "`ttl_seconds` (this may shorten it). `updated_at` is not changed." + write_note,
            (200, "New expiry.", json_content(success(ref("StmTtlData"))), ()),
            [404], params=[sid], body=ref("StmTtlRequest")),
    }
    P["/v1/stm/stats"] = {
        "get": operation(
            stm, "getStmStats", "STM statistics",
            "Counts over the live entries (never cached; O(1) through index structures).",
            (200, "Counts.", json_content(success(ref("StmStats"))), ()), []),
    }
    P["/v1/stm/entries/{id}/promote"] = {
        "post": operation(
            stm, "promoteStmEntry", "Promote an STM entry to an LTM rule",
            "Creates a rule whose only source is this entry, snapshotting the entry as "
            "evidence and adding the rule to the entry's `related_ltm_rules`. The entry must "
            "exist and carry human feedback. The body is validated before the entry is "
            "looked up." + write_note.replace("the entry", "the rule"),
            (201, "Created. `Location` is `/v1/ltm/rules/{rule_id}`.",
             json_content(success(ref("LtmRuleData"))), ("Location",)),
            [404, 409], params=[sid], body=ref("PromoteRequest"),
            body_examples=PROMOTE_EXAMPLES, links=rule_links(RID_FROM_RULE),
            error_desc={404: "`not_found`: no live STM entry with this id.",
                        409: "`conflict`: the entry has no human feedback (`field: "
                             "human_feedback`), or the rule id exists (`field: rule_id`), or "
                             "no free number is left for a generated id."}),
    }

    P["/v1/ltm/rules"] = {
        "post": operation(
            ltm, "createLtmRule", "Create an LTM rule",
            "One transaction: the rule, its concepts, its policy and its source scenarios. "
            "Every source whose STM entry is live has the entry's content and SHA-256 copied "
            "onto its scenario node (evidence outlives STM), and the rule id is added to the "
            "entry's `related_ltm_rules`." + write_note.replace("the entry", "the rule"),
            (201, "Created. `Location` is `/v1/ltm/rules/{rule_id}`.",
             json_content(success(ref("LtmRuleData"))), ("Location",)),
            [409], body=ref("LtmRuleCreateRequest"),
            error_desc={409: "`conflict` with `field: rule_id`: the rule id exists, or no "
                             "free number is left for a generated id."},
            body_examples=LTM_CREATE_EXAMPLES, links=rule_links(RID_FROM_RULE)),
        "get": operation(
            ltm, "searchLtmRules", "Search LTM rules",
            "Full-text search (`q`) and/or structured filters (ANDed). Ordered by score "
            "(full-text only), then confidence, then `updated_at`, all descending. May be "
            "served from the cache.",
            (200, "A page of rules.", json_content(success(ref("LtmSearchData"))), ()),
            [],
            params=[
                q("q", "Full-text query over rule text and concept names: at most 1000 "
                       "characters. Split into words (runs of ASCII letters, ASCII digits and "
                       "non-ASCII characters, case-insensitive; the first 32 distinct words, "
                       "each cut to 64 bytes); a rule matching any word matches, best matches "
                       "first. Words are never operators. No word at all -> 400.",
                  string(minLength=1, maxLength=1000,
                         pattern=r"^[^\x00]*[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f][^\x00]*$")),
                q("concepts", "Comma-separated concept names (at most 20; each, trimmed of "
                              "spaces, tabs, CRs and LFs, has 1-100 characters and no control "
                              "characters, as `ConceptName`): rules related to any of them, "
                              "whole names compared case-insensitively.",
                  string(minLength=1, pattern=CONCEPTS_RE)),
                q("policy", "Policy, case-insensitive: 1-16 letters and digits starting with "
                            "a letter.", string(pattern="^[A-Za-z][A-Za-z0-9]{0,15}$")),
                q("min_confidence", "Minimum confidence: a decimal number in [0, 1] written "
                                    "with digits and at most one `.` only (`0.5`, `.5`, `1`; "
                                    "no sign, no exponent).",
                  string(pattern=r"^(0+(\.[0-9]*)?|0*\.[0-9]+|0*1(\.0*)?)$", example="0.5")),
                q("limit", "Page size: decimal digits in 1 ... 100.",
                  integer(minimum=1, maximum=100, default=10)),
                p("Cursor")]),
    }
    P["/v1/ltm/rules/{id}"] = {
        "get": operation(
            ltm, "getLtmRule", "Get an LTM rule",
            "The rule with its traceability: concepts, source scenarios (whether each is "
            "live in STM and whether its snapshot is kept) and governing policies.",
            (200, "The rule.", json_content(success(ref("LtmRuleDetailData"))), ()),
            [404], params=[rid]),
        "patch": operation(
            ltm, "patchLtmRule", "Update an LTM rule",
            "Partial update in one transaction. When anything changes, the previous state is "
            "kept as a version and `version` goes up by one. Replacing `related_concepts` "
            "removes stale relations, and concepts and policies left without any rule. "
            "Linking a scenario again refreshes its snapshot from the live STM entry." +
            write_note.replace("the entry", "the rule"),
            (200, "Updated, or nothing changed (`changed: false`).",
             json_content(success(ref("LtmRulePatchData"))), ()),
            [404], params=[rid], body=ref("LtmRulePatchRequest"),
            links={"GetLtmRuleHistory": link("getLtmRuleHistory", "The versions, the new one "
                                                                  "last.",
                                             id="$request.path.id")}),
        "delete": operation(
            ltm, "deleteLtmRule", "Delete an LTM rule",
            "Deletes the rule and its versions; concepts and policies left without any rule "
            "go too, scenario nodes (evidence) stay. The rule id is removed from every STM "
            "entry's `related_ltm_rules`." + write_note.replace("the entry", "the rule"),
            (204, "Deleted (no body).", None, ()),
            [404], params=[rid]),
    }
    P["/v1/ltm/rules/{id}/history"] = {
        "get": operation(
            ltm, "getLtmRuleHistory", "Version history of a rule",
            "Every version, oldest first, the current one last.",
            (200, "The versions.", json_content(success(ref("RuleHistoryData"))), ()),
            [404], params=[rid]),
    }
    P["/v1/ltm/rules/{id}/audit"] = {
        "get": operation(
            ltm, "getLtmRuleAudit", "Audit trail of a rule",
            "The rule, its versions, its sources with their evidence (live STM entry or "
            "snapshot), the rules sharing its concepts, and the evidence completeness.",
            (200, "The audit trail.", json_content(success(ref("RuleAuditData"))), ()),
            [404], params=[rid]),
    }
    P["/v1/ltm/concepts"] = {
        "get": operation(
            ltm, "listLtmConcepts", "List concepts",
            "Every concept with the number of rules related to it, by name.",
            (200, "A page of concepts.", json_content(success(ref("ConceptListData"))), ()),
            [],
            params=[q("limit", "Page size: decimal digits in 1 ... 1000.",
                      integer(minimum=1, maximum=1000, default=100)),
                    p("Cursor")]),
    }
    P["/v1/ltm/concepts/{name}/rules"] = {
        "get": operation(
            ltm, "getLtmConceptRules", "Rules of a concept",
            "The rules related to the concept (exact name, compared case-insensitively), "
            "confidence descending.",
            (200, "The rules.", json_content(success(ref("ConceptRulesData"))), ()),
            [404],
            params=[{"name": "name", "in": "path", "required": True,
                     "description": "Concept name (percent-decoded, trimmed): 1-100 "
                                    "characters, no control characters; else 400 `field: "
                                    "name`.",
                     "schema": ref("ConceptName")}],
            error_desc={404: "`not_found`: no such concept."}),
    }

    P["/v1/trace/{scenario_id}"] = {
        "get": operation(
            trace, "getTrace", "Trace a scenario across the tiers",
            "The live STM entry (when there is one), the evidence snapshot kept in LTM, and "
            "the rules derived from it. After the entry expires, the summary's "
            "`has_human_feedback` and `final_status` come from the snapshot.",
            (200, "The traceability chain.", json_content(success(ref("TraceData"))), ()),
            [404],
            params=[{"name": "scenario_id", "in": "path", "required": True,
                     "description": "Scenario id; malformed -> 400 `field: scenario_id`.",
                     "schema": ref("ScenarioId")}],
            error_desc={404: "`not_found`: neither STM nor LTM knows the scenario."}),
    }
    P["/v1/integrity"] = {
        "get": operation(
            trace, "checkIntegrity", "Check cross-tier integrity",
            "Walks the live STM entries and the LTM links (never cached).",
            (200, "The report (also when issues are found).",
             json_content(success(ref("IntegrityData"))), ()), []),
    }
    P["/v1/stats"] = {
        "get": operation(
            trace, "getSystemStats", "System statistics",
            "STM counts, LTM counts and system information (never cached).",
            (200, "Statistics.", json_content(success(ref("SystemStatsData"))), ()), []),
    }

    P["/v1/dashboard"] = {
        "get": operation(
            mon, "getDashboardData", "Monitoring dashboard data",
            "Health, key metrics against their thresholds, active alerts and per-component "
            "performance over a 15-minute window. Reads no store.",
            (200, "Dashboard data.", json_content(success(ref("DashboardData"))), ()), []),
    }
    P["/v1/alerts"] = {
        "get": operation(
            mon, "listAlerts", "Alerts and alert rules",
            "Active alerts and every rule with its state (this instance).",
            (200, "Alerts.", json_content(success(ref("AlertsData"))), ()), []),
    }
    P["/v1/alerts/rules"] = {
        "post": operation(
            mon, "createAlertRule", "Add an alert rule",
            "Adds a rule to this instance (rules are kept in memory; the six defaults are "
            "re-created at start-up). No `Location`: a rule is read through `GET "
            "/v1/alerts`.",
            (201, "Created.", json_content(success(ref("AlertRuleData"))), ()),
            [409], body=ref("AlertRuleCreateRequest"),
            error_desc={409: "`conflict`: a rule with this name exists (`field: name`), or "
                             "the instance already has 100 rules."},
            links={"DeleteAlertRule": link("deleteAlertRule", "Delete the rule.",
                                           name="$response.body#/data/rule/name")}),
    }
    P["/v1/alerts/rules/{name}"] = {
        "delete": operation(
            mon, "deleteAlertRule", "Delete an alert rule",
            "Deletes the rule with exactly this name.",
            (204, "Deleted (no body).", None, ()),
            [404],
            params=[{"name": "name", "in": "path", "required": True,
                     "description": "Rule name (percent-decoded): 1-100 characters, no "
                                    "control characters, not blank; else 400 `field: name`.",
                     "schema": string(minLength=1, maxLength=100, pattern=SHORT_RE)}],
            error_desc={404: "`not_found`: no alert rule with this name."}),
    }
    P["/v1/cache/invalidate"] = {
        "post": operation(
            ops, "invalidateCache", "Drop cached answers",
            "Drops cached answers on this instance and, with the Redis STM backend, on every "
            "instance sharing it. The body is optional (without one, everything is dropped); "
            "when sent it must be a JSON object with `Content-Type: application/json`.",
            (200, "Dropped.", json_content(success(ref("CacheInvalidateData"))), ()),
            [], body=ref("CacheInvalidateRequest"), body_required=False),
    }

    P["/health"] = {
        "get": operation(
            ops, "getHealth", "Liveness and component health",
            "Always open, never rate-limited. Answers at once from the background probes "
            "(HEALTH_PROBE_INTERVAL), even while a store hangs. 200 when healthy or "
            "degraded, 503 when no store is reachable.",
            (200, "Healthy or degraded (`message` is the overall status).",
             json_content(success(ref("HealthReport"))), ()),
            [], security=OPEN,
            error_desc={503: "Unhealthy: the error envelope (`storage_unavailable`) with the "
                             "full report in `data` - or, when memory ran out, the plain "
                             "error envelope."}),
    }
    P["/ready"] = {
        "get": operation(
            ops, "getReady", "Readiness",
            "Always open, never rate-limited. 200 when every configured store answers and "
            "the LTM schema is in place, else 503.",
            (200, "Ready.", json_content(success(ref("ReadinessReport"))), ()),
            [], security=OPEN,
            error_desc={503: "Not ready: the error envelope (`storage_unavailable`) with the "
                             "report in `data` - or, when memory ran out, the plain error "
                             "envelope."}),
    }
    # 503s of /health and /ready carry the report
    for path, env in (("/health", "HealthErrorEnvelope"), ("/ready", "ReadinessErrorEnvelope")):
        P[path]["get"]["responses"]["503"]["content"] = json_content(
            {"oneOf": [ref(env), ref("ErrorEnvelope")]})

    ops_note = (" Open unless METRICS_REQUIRE_AUTH=true (then an API key is needed when keys "
                "are configured).")
    P["/metrics"] = {
        "get": operation(
            mon, "getMetrics", "Prometheus metrics",
            "Prometheus text exposition format 0.0.4: `memoryd_http_requests_total{route,"
            "method,status}`, `memoryd_http_request_duration_seconds` (histogram, "
            "`{route,method}`; `route` is the route pattern, never the raw path), "
            "`memoryd_store_call_duration_seconds` (histogram, `{store,op}`), "
            "`memoryd_store_errors_total{store,op}`, `memoryd_cache_hits_total`, "
            "`memoryd_cache_misses_total`, `memoryd_cache_evictions_total`, "
            "`memoryd_cache_entries`, `memoryd_pool_connections{store,state}`, "
            "`memoryd_alert_firing{alert}`, `memoryd_build_info{version}` and more. Served "
            "raw (no envelope)." + ops_note,
            (200, "The metrics.",
             {"text/plain; version=0.0.4; charset=utf-8": {"schema": string()}}, ()),
            [], security=OPS),
    }
    P["/dashboard"] = {
        "get": operation(
            mon, "getDashboardPage", "Monitoring dashboard page",
            "A self-contained HTML page (no external resources) that polls `/v1/dashboard` "
            "and draws health, key metrics against thresholds, latency over time and alerts. "
            "Served raw." + ops_note,
            (200, "The page.", {"text/html; charset=utf-8": {"schema": string()}}, ()),
            [], security=OPS,
            params=[q("key", "API key for the page's own calls to `/v1/dashboard` (read by "
                             "the page's script, ignored by the server; it does not "
                             "authenticate this request).", string())]),
    }
    P["/openapi.json"] = {
        "get": operation(
            ops, "getOpenApi", "This document",
            "The OpenAPI 3.0.3 document of this API, served raw (byte for byte as built "
            "into the daemon)." + ops_note,
            (200, "The document.", json_content({"type": "object"}), ()),
            [], security=OPS),
    }
    return P


# --------------------------------------------------------------------------- document

DESCRIPTION = """\
memoryd gives AI assessment agents a two-tier memory: **short-term memory** (STM), one case \
file per assessed requirement with a time to live, and **long-term memory** (LTM), rules in a \
knowledge graph linked to the scenarios they were derived from.

## Conventions

**Bodies.** JSON in UTF-8. A request that carries a body must say `Content-Type: \
application/json` (parameters such as `; charset=utf-8` allowed), otherwise **415**. A body over \
`API_MAX_REQUEST_SIZE` (default 1 MiB) gets **413** without being buffered: at once when \
`Content-Length` announces it (on any route), or as soon as a chunked body crosses the limit. \
A body that is empty where one is required, not valid UTF-8, contains a NUL byte, is not valid \
JSON, repeats a member name, nests deeper than 32 levels, or is not an object at the top is \
**400**. `POST /v1/cache/invalidate` is the only route whose body is optional; routes without \
a request body ignore one.

**Envelopes.** Every 2xx JSON answer is `{status: "success", message, data, timestamp}` \
(`SuccessEnvelope`); 204 has no body. Every 4xx/5xx answer is `{status: "error", error_type, \
message, field?, timestamp}` (`ErrorEnvelope`); `field` is present only when one field is at \
fault. Messages never carry secrets or raw driver text. `/openapi.json`, `/metrics` and \
`/dashboard` are served raw. `/health` and `/ready` answer 503 with the error envelope plus \
`data` holding the full report.

| error_type | HTTP | when |
|---|---|---|
| validation_error | 400 | malformed JSON, unknown field, missing/blank field, bad format, bad \
path id, bad or unknown query parameter |
| unauthorized | 401 | API keys are configured and the request has none or a wrong one \
(`WWW-Authenticate`) |
| not_found | 404 | unknown id, or unknown route |
| method_not_allowed | 405 | known path, wrong method (`Allow` lists the right ones) |
| conflict | 409 | id already exists; promotion of an entry without feedback |
| payload_too_large | 413 | body over the limit |
| unsupported_media_type | 415 | body without a JSON content type |
| rate_limited | 429 | over the rate limit (`Retry-After`) |
| internal_error | 500 | a bug; logged with the request id |
| storage_unavailable | 503 | a store cannot be reached in time, or out of memory \
(`Retry-After`; when even this answer cannot be allocated, a body prebuilt at start-up \
without `timestamp`, and no `X-Request-Id`) |

**Validation.** Unknown members of a request body are rejected (400; `field` names the first \
one in document order, nested ones by dotted path such as `initial_assessment.foo`). Unknown \
query parameters are rejected the same way (400, `field` = the parameter), as are repeated \
parameters, a query string over 8192 bytes or 32 parameters, bad percent-escapes and invalid \
UTF-8. `ttl_seconds`, `limit` and `duration_seconds` are JSON integers (`60.0` is refused), or \
decimal digits in a query string. `maxLength` of texts counts Unicode code points; limits \
stated in bytes are bytes of UTF-8. "Control characters" are C0, DEL and C1 \
(U+0000-U+001F, U+007F-U+009F); where a field refuses them, its `pattern` says so. Input \
statuses are matched case-insensitively with aliases (`StatusInput`); output statuses are \
canonical (`Status`). Every input is validated \
before any store is touched.

**Routing.** An unknown path is 404. A known path with a method it does not list here \
(including `OPTIONS`) is 405 with `Allow`. `HEAD` is accepted wherever `GET` is (same status \
and headers, no body). Path parameters are percent-decoded after routing, so `%2F` in an id \
never changes the route. A malformed id in a path is 400 `validation_error`, never 404; 404 \
means a well-formed id that is unknown. Checks run in this order: route (404/405), query \
string (400), API key (401), rate limit (429), content type (415), declared size (413), body \
(400), the operation's own validation (400), then the stores (404/409/503).

**Timestamps** are ISO-8601 UTC with milliseconds and `Z` (`2026-11-26T15:28:56.123Z`).

**X-Request-Id.** Every response carries it: the client's value when it is 1-64 characters \
of `[A-Za-z0-9._-]`, else a generated one. Server errors are logged with it.

**Lists** take `limit` and an opaque `cursor` and return `next_cursor` (null on the last \
page); `count` is the number of items on the page. A cursor is bound to its list and to the \
canonical filter set that issued it (not to `limit`): use it with the same filters; a cursor \
the server did not issue, an edited one, or one from another filter set is 400 (`field: \
cursor`). Cursors are signed (CURSOR_SECRET) and stateless: any instance sharing the secret \
continues a listing. Paging through a list nobody writes to meanwhile returns every item \
exactly once. **An STM page may be shorter than `limit` (even empty) while `next_cursor` is \
not null** (entries that expired meanwhile are skipped): only a null `next_cursor` ends the \
listing.

**Authentication.** When API keys are configured (`API_KEYS`, comma-separated, or \
`API_KEYS_FILE`), every `/v1/*` route needs `Authorization: Bearer <key>` or `X-API-Key: \
<key>` (compared in constant time); otherwise 401 with `WWW-Authenticate: Bearer \
realm="memoryd"`. Without configured keys every route is open. `/health` and `/ready` are \
always open; `/metrics`, `/dashboard` and `/openapi.json` are open unless \
`METRICS_REQUIRE_AUTH=true`.

**Rate limiting.** With `RATE_LIMIT_RPS` > 0 each API key (each client address when no key \
is checked) gets a token bucket of `RATE_LIMIT_BURST` requests refilled at `RATE_LIMIT_RPS` \
per second; beyond it, 429 `rate_limited` with `Retry-After`. `/health` and `/ready` are never \
limited.

**503 on a write means the outcome is unknown.** A store that does not answer in time may \
still apply a write it was sent. Read back before retrying: a retried create may get 409 \
(given id) or a new `_N` suffix (generated id).

**Writes are atomic.** Two concurrent feedback updates never lose one; a create with an \
existing id never overwrites; every LTM write is one transaction.

**PATCH** sets the members present and keeps the others (not JSON merge patch: `null` is \
accepted only for STM `final_status`, where it clears it). STM PATCH reports \
`updated_fields` (dotted paths of the values that changed); LTM PATCH reports `changed` and \
bumps `version` only when something changed. A PATCH that changes nothing is 200.

**TTL.** An STM entry lives `ttl_seconds` from its creation (default `MEMORY_STM_TTL_HOURS` x \
3600). Updates (PATCH, feedback) keep the remaining lifetime - they never shorten or reset \
it; only `PUT /v1/stm/entries/{id}/ttl` changes it, to now + `ttl_seconds`. An expired entry \
is gone from every read, list and count at once.

**Evidence snapshots.** When a rule gets a source scenario whose STM entry is live (create, \
promote, PATCH `add_source_scenario_ids`), the entry's content and its SHA-256 are copied \
into LTM; linking it again refreshes the copy. Traceability, trace and audit keep working \
after the entry expires.

**Caching and freshness.** Some reads (GET of an STM entry, every LTM read, `/v1/trace`) may \
be answered from an in-process cache. A write invalidates every cached answer it affects \
before it is acknowledged, so a read after an acknowledged write on the same instance never \
sees older data. With `STM_BACKEND=redis`, invalidations reach the other instances over Redis \
pub/sub within a network round trip (an instance that may have missed one clears its cache). \
A cached answer never outlives `CACHE_TTL_SECONDS` (default 300) nor the expiry of an STM \
entry it shows. STM lists, stats and `/v1/integrity` are never cached. \
`POST /v1/cache/invalidate` drops cached answers. Every response says `Cache-Control: \
no-store` to HTTP caches.
"""

TAGS = [
    {"name": "Short-term memory",
     "description": "Case files with a TTL: one per assessed requirement."},
    {"name": "Long-term memory",
     "description": "Rules, concepts and policies in a knowledge graph, with versions and "
                    "evidence."},
    {"name": "Traceability", "description": "Views across both tiers."},
    {"name": "Monitoring", "description": "Metrics, dashboard and alerts."},
    {"name": "Operations", "description": "Probes, cache control and this document."},
]


def build():
    SCHEMAS.clear()
    vocabulary()
    envelopes()
    stm_schemas()
    ltm_schemas()
    trace_schemas()
    ops_schemas()
    path_items = paths()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "memoryd REST API",
            "version": project_version(),
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/", "description": "The memoryd instance serving this "
                                                 "document."}],
        "tags": TAGS,
        "paths": path_items,
        "components": {
            "schemas": dict(SCHEMAS),
            "responses": components_responses(),
            "parameters": PARAMS,
            "headers": HEADERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "`Authorization: Bearer <key>`, one of the configured API "
                                   "keys. Enforced only when keys are configured "
                                   "(API_KEYS / API_KEYS_FILE)."},
                "apiKeyAuth": {
                    "type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "`X-API-Key: <key>`, one of the configured API keys "
                                   "(used when there is no `Authorization: Bearer`). "
                                   "Enforced only when keys are configured."},
            },
        },
    }


def render(doc=None):
    return json.dumps(doc if doc is not None else build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if "--stdout" in argv:
        sys.stdout.write(text)
        return 0
    if "--check" in argv:
        try:
            with open(OUT, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            sys.stderr.write(f"{OUT} is out of date: run scripts/gen-openapi.py\n")
            return 1
        return 0
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
