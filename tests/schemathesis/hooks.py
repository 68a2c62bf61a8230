"""schemathesis hooks for scripts/ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Path parameters: besides the values generated from the document's schemas (well-formed
ids that almost never exist, so 404), each operation on an existing resource also draws
ids seeded by tests/schemathesis/seed.py (written to MEMORYD_SCHEMATHESIS_SEEDS). So
every GET/PATCH/PUT/POST on an `{id}` is exercised on live data, not only on 404s.
DELETEs draw from their own disposable ids, so they never remove what other operations
read. The hooks only choose among valid values: they never change what is checked, and
no operation is skipped.
"""
import json
import os

import hypothesis.strategies as st
import schemathesis

_SEEDS = None


def seeds():
    global _SEEDS
    if _SEEDS is None:
        path = os.environ.get("MEMORYD_SCHEMATHESIS_SEEDS")
        _SEEDS = {}
        if path:
            with open(path) as f:
                _SEEDS = json.load(f)
    return _SEEDS


def pool(method, path):
    """(parameter name, seeded values) for an operation with a path parameter."""
    s = seeds()
    delete = method.upper() == "DELETE"
    if path.startswith("/v1/stm/entries/{id}"):
        return "id", s.get("disposable_scenario_ids" if delete else "scenario_ids", [])
    if path == "/v1/trace/{scenario_id}":
        return "scenario_id", s.get("scenario_ids", []) + s.get("disposable_scenario_ids", [])
    if path.startswith("/v1/ltm/rules/{id}"):
        return "id", s.get("disposable_rule_ids" if delete else "rule_ids", [])
    if path == "/v1/ltm/concepts/{name}/rules":
        return "name", s.get("concepts", [])
    if path == "/v1/alerts/rules/{name}":
        return "name", s.get("disposable_alert_names", [])
    return None, []


@schemathesis.hook
def before_generate_path_parameters(context, strategy):
    op = context.operation
    if op is None:
        return strategy
    name, values = pool(op.method, op.path)
    if not values:
        return strategy
    seeded = st.sampled_from(sorted(values)).map(lambda v: {name: v})
    return st.one_of(seeded, strategy)


_LOG = None


@schemathesis.hook
def after_call(context, case, response):
    """One JSON line per call in MEMORYD_SCHEMATHESIS_LOG (kept as an artifact): what was
    sent and answered, for reading failures and the 4xx answers to generated data."""
    global _LOG
    path = os.environ.get("MEMORYD_SCHEMATHESIS_LOG")
    if not path:
        return
    if _LOG is None:
        _LOG = open(path, "a", encoding="utf-8")
    req = response.request
    body = req.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    _LOG.write(json.dumps({
        "operation": case.operation.verbose_name,
        "method": req.method, "url": req.url,
        "body": (body or "")[:2000],
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type"),
        "response": response.text[:2000],
    }, ensure_ascii=False) + "\n")
    _LOG.flush()
