"""
The sample corpus end to end (tests/data): the RA agent's five assessed
requirements R1–R5 become STM case files with GENERATED ids, the legal
expert's feedback (human_feedback.txt, parsed here, not copied) is applied to
R2 and R4, and listing filters and stats are checked against exact values.

Choice for R2: the expert confirms the agent's finding ("correctly identified
the issue") and only refines the suggestion, so R2's final_status is set
explicitly to its confirmed initial status, Non-Compliant. R4's final status
comes from the expert's decision ("Change status from … to "Partially
Compliant"").
"""
import json
import os
import re
from urllib.parse import urlencode

from conftest import STATUSES, check_entry, create, ids, list_all, ok, stats

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
BASE = "/v1/stm/entries"

# The key concepts chosen for the requirements the expert did not name.
CHOSEN_CONCEPTS = {"R1": "consent", "R3": "data access", "R5": "third party sharing"}


def load_requirements():
    with open(os.path.join(DATA, "parsed_compliance_results.json"), encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["parsing_success"] is True
    reqs = doc["requirements"]
    assert [r["requirement_number"] for r in reqs] == ["R1", "R2", "R3", "R4", "R5"]
    return reqs


def parse_feedback():
    """{"R2": {"concept", "decision", "rationale", "suggestion", "final_status"}, ...}.

    The file has one section per requirement, "**Feedback on R4 (Password Hashing):**",
    with a narrative paragraph and labelled bullets ("Decision on R4", "Expert
    Rationale for R4", "Refined Suggestion for R4"). Where no decision/rationale
    bullet exists, the narrative's first sentence is the decision and the rest of
    it the rationale."""
    with open(os.path.join(DATA, "human_feedback.txt"), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^\*\*Feedback on (R\d+) \(([^)]*)\):\*\*[ \t]*$", text, flags=re.M)
    out = {}
    for i in range(1, len(parts), 3):
        req, concept, body = parts[i], parts[i + 1], parts[i + 2]
        narrative, bullets = [], {}
        for line in body.strip().splitlines():
            line = line.strip()
            m = re.match(r"^\*\s+\*\*(.+?):\*\*\s*(.+)$", line)
            if m:
                bullets[m.group(1)] = m.group(2).strip()
            elif line:
                narrative.append(line)
        story = " ".join(narrative)

        def bullet(prefix):
            for label, value in bullets.items():
                if label.startswith(prefix):
                    return value
            return None

        first, _, rest = story.partition(". ")
        decision = bullet("Decision") or first + "."
        rationale = bullet("Expert Rationale") or rest
        suggestion = bullet("Refined Suggestion")
        assert suggestion, f"no suggestion for {req}"
        if len(suggestion) > 1 and suggestion[0] == suggestion[-1] == '"':
            suggestion = suggestion[1:-1]
        m = re.search(r'to "([^"]+)"', decision)
        out[req] = {"concept": concept, "decision": decision, "rationale": rationale,
                    "suggestion": suggestion, "final_status": m.group(1) if m else None}
    return out


def test_feedback_file_parses_as_expected():
    fb = parse_feedback()
    assert sorted(fb) == ["R2", "R4"]
    assert fb["R4"]["final_status"] == "Partially Compliant"
    assert fb["R2"]["final_status"] is None
    for f in fb.values():
        for k in ("decision", "rationale", "suggestion"):
            assert f[k].strip() and "**" not in f[k], (k, f[k])
    assert "salt" in fb["R4"]["suggestion"]
    assert "event-based" in fb["R2"]["suggestion"]


def test_corpus_end_to_end(stm_daemon):
    d = stm_daemon
    reqs = load_requirements()
    feedback = parse_feedback()
    concepts = dict(CHOSEN_CONCEPTS, **{k: v["concept"] for k, v in feedback.items()})
    assert sorted(concepts) == ["R1", "R2", "R3", "R4", "R5"]

    made = {}
    for i, r in enumerate(reqs):
        body = {"domain": "E-Commerce" if i % 2 == 0 else "ecommerce",
                "requirement_number": r["requirement_number"],
                "key_concept": concepts[r["requirement_number"]],
                "requirement_text": r["requirement_text"],
                "initial_assessment": {"status": r["status"], "rationale": r["rationale"],
                                       "recommendation": r["recommendation"]}}
        e = create(d, body)
        check_entry(e, ttl=86400)
        assert e["requirement_text"] == r["requirement_text"]
        assert e["initial_assessment"] == body["initial_assessment"]
        made[r["requirement_number"]] = e["scenario_id"]
    assert made == {"R1": "ecommerce_r1_consent", "R2": "ecommerce_r2_data_retention",
                    "R3": "ecommerce_r3_data_access", "R4": "ecommerce_r4_password_hashing",
                    "R5": "ecommerce_r5_third_party_sharing"}

    # The expert feedback.
    initial = {r["requirement_number"]: r["status"] for r in reqs}
    final = {}
    for req, f in feedback.items():
        final[req] = f["final_status"] or initial[req]  # R2: confirmed (see module doc)
        body = {"decision": f["decision"], "rationale": f["rationale"],
                "suggestion": f["suggestion"], "final_status": final[req]}
        e = ok(d.put(f"{BASE}/{made[req]}/feedback", body))["stm_entry"]
        assert e["human_feedback"] == {k: f[k] for k in ("decision", "rationale", "suggestion")}
        assert e["final_status"] == final[req]
        assert e["initial_assessment"]["status"] == initial[req]
    assert final == {"R2": "Non-Compliant", "R4": "Partially Compliant"}

    r4 = ok(d.get(f"{BASE}/{made['R4']}"))
    assert r4["traceability"] == {"related_ltm_rules": [], "has_human_feedback": True,
                                  "final_status": "Partially Compliant"}
    assert r4["stm_entry"]["initial_assessment"]["status"] == "Compliant"
    r1 = ok(d.get(f"{BASE}/{made['R1']}"))
    assert r1["traceability"] == {"related_ltm_rules": [], "has_human_feedback": False,
                                  "final_status": None}

    def listing(**q):
        data = ok(d.get(BASE + ("?" + urlencode(q) if q else "")))
        assert data["next_cursor"] is None and data["count"] == len(data["entries"])
        return ids(data["entries"]), data["filters"]

    R = made
    assert listing() == ([R["R5"], R["R4"], R["R3"], R["R2"], R["R1"]], {})
    assert listing(status="Non-Compliant") == ([R["R2"], R["R1"]], {"status": "Non-Compliant"})
    assert listing(status="Partially Compliant") == ([R["R5"], R["R3"]],
                                                     {"status": "Partially Compliant"})
    assert listing(status="partial") == ([R["R5"], R["R3"]], {"status": "Partially Compliant"})
    assert listing(status="Compliant") == ([R["R4"]], {"status": "Compliant"})
    assert listing(status="Pending") == ([], {"status": "Pending"})
    assert listing(final_status="Partially Compliant") == (
        [R["R4"]], {"final_status": "Partially Compliant"})
    assert listing(final_status="Non-Compliant") == ([R["R2"]], {"final_status": "Non-Compliant"})
    assert listing(final_status="Compliant") == ([], {"final_status": "Compliant"})
    assert listing(has_feedback="true") == ([R["R4"], R["R2"]], {"has_feedback": True})
    assert listing(has_feedback="false") == ([R["R5"], R["R3"], R["R1"]],
                                             {"has_feedback": False})
    every = [R["R5"], R["R4"], R["R3"], R["R2"], R["R1"]]
    assert listing(domain="E-Commerce") == (every, {"domain": "ecommerce"})
    assert listing(domain="ecommerce") == (every, {"domain": "ecommerce"})
    assert listing(domain="healthcare") == ([], {"domain": "healthcare"})
    assert listing(status="Compliant", has_feedback="true") == (
        [R["R4"]], {"status": "Compliant", "has_feedback": True})
    assert listing(status="Non-Compliant", has_feedback="false", domain="E-Commerce") == (
        [R["R1"]], {"status": "Non-Compliant", "has_feedback": False, "domain": "ecommerce"})
    assert listing(status="Partially Compliant", has_feedback="true") == (
        [], {"status": "Partially Compliant", "has_feedback": True})
    assert listing(final_status="Partial", status="Compliant") == (
        [R["R4"]], {"status": "Compliant", "final_status": "Partially Compliant"})

    assert stats(d) == {
        "total_entries": 5, "entries_with_feedback": 2, "entries_without_feedback": 3,
        "status_breakdown": {"Compliant": 1, "Non-Compliant": 2, "Partially Compliant": 2,
                             "Pending": 0},
        "final_status_breakdown": {"Compliant": 0, "Non-Compliant": 1,
                                   "Partially Compliant": 1, "Pending": 0}}
    assert set(stats(d)["status_breakdown"]) == set(STATUSES)

    # Paging over the corpus gives the same order.
    assert ids(list_all(d, limit=2)) == every

    # A second agent run on the same requirement gets the next free id.
    again = create(d, {"domain": "E-Commerce", "requirement_number": "R2",
                       "key_concept": "Data Retention", "requirement_text": reqs[1][
                           "requirement_text"],
                       "initial_assessment": {"status": reqs[1]["status"],
                                              "rationale": reqs[1]["rationale"],
                                              "recommendation": reqs[1]["recommendation"]}})
    assert again["scenario_id"] == "ecommerce_r2_data_retention_2"
