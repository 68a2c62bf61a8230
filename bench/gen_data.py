#!/usr/bin/env python3
"""
gen_data.py — the benchmark's data set, from a seed (same seed, same bytes).

Shaped like tests/data (an RA agent's compliance assessment of GDPR-style
requirements, and a legal expert's feedback on it):

  stm_bodies.jsonl   N STM create bodies (explicit scenario_id, requirement
                     text, initial assessment), loaded through POST /v1/stm/entries
  stm_ids.txt        their scenario ids, in load order
  rule_bodies.jsonl  M LTM rule create bodies (explicit rule_id, policy prefix,
                     2–5 concepts out of a ~200-term vocabulary, 1–3 source
                     scenarios from the STM set, confidence), loaded through
                     POST /v1/ltm/rules
  rule_ids.txt       their rule ids
  feedback.jsonl     expert feedback bodies for PUT …/feedback
  stm_tails.txt      create bodies without their scenario_id (the measured
                     creates put a fresh id in front)
  rule_tails.txt     rule bodies without their rule_id (likewise)
  queries.txt        full-text queries of 1–3 words that match rules
  concepts.txt       the concept vocabulary
  src_ids.txt        scenario ids that are sources of rules (for /v1/trace)

Usage: gen_data.py OUTDIR [--stm N] [--rules M] [--seed S]
"""
import argparse
import json
import os
import random

POLICIES = ["GDPR", "CCPA", "HIPAA", "PCIDSS", "SOX", "LGPD", "PIPEDA", "ISO27001", "NIST",
            "COPPA", "FERPA", "GLBA"]
POLICY_WEIGHTS = [40, 14, 10, 8, 4, 5, 4, 5, 4, 2, 2, 2]

DOMAINS = ["ecommerce", "healthcare", "banking", "insurance", "telecom", "education", "travel",
           "adtech", "saas", "hr", "retail", "logistics", "gaming", "fintech", "pharma",
           "energy", "media", "government", "automotive", "realestate"]

TOPICS = [
    "consent", "data retention", "right of access", "right to erasure", "data portability",
    "rectification", "purpose limitation", "data minimisation", "storage limitation",
    "lawful basis", "legitimate interest", "privacy notice", "cookie banner", "marketing emails",
    "profiling", "automated decision", "children data", "special category data",
    "health records", "biometric data", "location data", "encryption at rest",
    "encryption in transit", "pseudonymisation", "anonymisation", "access control",
    "audit logging", "breach notification", "incident response", "data protection officer",
    "impact assessment", "processor agreement", "subprocessor", "international transfer",
    "standard contractual clauses", "vendor management", "opt out", "do not sell",
    "data subject request", "identity verification", "password policy",
    "multi factor authentication", "session timeout", "backup", "disaster recovery",
    "data deletion", "record keeping", "training", "third party sharing", "analytics",
    "tracking pixels", "payment card data", "tokenisation", "cardholder data",
    "financial reporting", "segregation of duties", "change management", "vulnerability scanning",
    "penetration testing", "key management", "log retention", "privacy by design",
    "default settings", "granular consent", "withdrawal of consent", "age verification",
    "parental consent", "student records", "minimum necessary", "business associate",
    "de identification", "safeguards rule", "retention schedule", "legal hold",
    "complaint handling", "transparency", "accountability", "data inventory",
    "records of processing", "joint controller",
]
QUALIFIERS = ["policy", "controls", "review", "requirements", "process", "monitoring",
              "documentation", "exceptions", "scope", "timelines"]

VERDICTS = ["Compliant", "Non-Compliant", "Partially Compliant", "Pending"]
VERDICT_WEIGHTS = [25, 40, 28, 7]

ACTORS = ["the user", "the customer", "each patient", "the account holder", "a visitor",
          "the employee", "the student", "every subscriber", "the merchant", "the applicant"]
SYSTEMS = ["the mobile app", "the web checkout", "the CRM", "the data warehouse",
           "the support portal", "the analytics pipeline", "the billing service",
           "the onboarding flow", "the partner API", "the admin console"]
DURATIONS = ["indefinitely", "for 10 years", "until the account is closed",
             "for 30 days after the last login", "for 5 years after the last interaction",
             "as long as needed for business purposes", "for 90 days"]
ARTICLES = ["Art. 5(1)(e)", "Art. 6", "Art. 7", "Art. 12", "Art. 13", "Art. 15", "Art. 17",
            "Art. 20", "Art. 25", "Art. 28", "Art. 30", "Art. 32", "Art. 33", "Art. 35",
            "Art. 44", "§164.312", "§1798.100", "§1798.120", "Req. 3.4", "Req. 8.3"]


def concept_vocab(rng):
    vocab = list(TOPICS)
    seen = {v.lower() for v in vocab}
    while len(vocab) < 200:
        t = f"{rng.choice(TOPICS)} {rng.choice(QUALIFIERS)}"
        if t.lower() not in seen:
            seen.add(t.lower())
            vocab.append(t)
    return vocab


def slug(s):
    out, prev = [], False
    for ch in s.lower():
        if ch.isalnum():
            out.append(ch)
            prev = False
        elif not prev:
            out.append("_")
            prev = True
    return "".join(out).strip("_")[:40].rstrip("_") or "general"


def camel(s):
    return "".join(w[:1].upper() + w[1:] for w in "".join(c if c.isalnum() else " " for c in s).split())


def requirement_text(rng, concept):
    forms = [
        "During {sys_short} signup, {actor} must agree to the Terms of Service and {c} by ticking a "
        "single checkbox before the account is created.",
        "To improve our services, {actor}'s {c} information held in {sys} will be stored {dur} "
        "for trend analysis and product research.",
        "{Actor} can manage {c} settings through {sys}; changes take effect within {n} business days.",
        "{Sys} shares {c} details with selected partners to personalise offers for {actor}.",
        "Requests concerning {c} are handled by the support team by e-mail within {n} days, "
        "without a documented procedure.",
        "All {c} records processed by {sys} are kept {dur} and replicated to a secondary region.",
        "{Sys} applies {c} rules automatically; {actor} is informed only on request.",
    ]
    actor = rng.choice(ACTORS)
    sys_ = rng.choice(SYSTEMS)
    f = rng.choice(forms)
    return f.format(actor=actor, Actor=actor[:1].upper() + actor[1:], sys=sys_,
                    Sys=sys_[:1].upper() + sys_[1:], sys_short=sys_.replace("the ", ""),
                    c=concept, dur=rng.choice(DURATIONS), n=rng.randint(2, 45))


def assessment(rng, concept, policy):
    status = rng.choices(VERDICTS, VERDICT_WEIGHTS)[0]
    art = rng.choice(ARTICLES)
    rationales = {
        "Compliant": f"The handling of {concept} meets {policy} {art}: it is specific, documented "
                     f"and can be demonstrated to the supervisory authority.",
        "Non-Compliant": f"The described {concept} practice violates {policy} {art}. The processing "
                         f"is not limited to what is necessary and lacks a valid basis.",
        "Partially Compliant": f"Fulfils part of {policy} {art} for {concept}, but fails to "
                               f"address related obligations such as documentation and review.",
        "Pending": f"Not enough information to assess {concept} against {policy} {art}; the "
                   f"process owner must provide the records of processing.",
    }
    recs = [
        f"Implement separate, unticked opt-in controls for {concept} and record each choice.",
        f"Define a specific, event-based retention period for {concept} data and document it "
        f"in the privacy policy.",
        f"Add self-service functions for {concept} to the account dashboard, including "
        f"rectification and erasure.",
        f"Assign an owner for {concept}, review it every 12 months and keep evidence of the review.",
        f"Encrypt {concept} data at rest and in transit and restrict access on a need-to-know basis.",
    ]
    return {"status": status, "rationale": rationales[status], "recommendation": rng.choice(recs)}


def feedback(rng, concept):
    decisions = [
        f"The assessment of {concept} is correct, but the recommendation needs refinement.",
        f"Disagree with the initial verdict on {concept}; the control is adequate once documented.",
        f"Agree with the finding on {concept}; escalate to the data protection officer.",
        f"The analysis of {concept} is largely correct and provides a solid baseline.",
    ]
    sugg = [
        f"The {concept} policy should be event-based: retain data for 3 years after the user's "
        f"last login or transaction, then delete or anonymise it.",
        f"Provide a granular, unbundled choice for {concept} and log consent receipts.",
        f"Document the {concept} process in the records of processing and test it quarterly.",
        f"Replace the e-mail procedure for {concept} with a tracked request workflow with SLAs.",
    ]
    return {"decision": rng.choice(decisions),
            "rationale": f"A fixed period or an undocumented process for {concept} is arbitrary "
                         f"and hard to defend; deeper legal and technical best practice requires "
                         f"a justified, reviewable rule.",
            "suggestion": rng.choice(sugg),
            "final_status": rng.choices(VERDICTS[:3], [30, 35, 35])[0]}


def rule_text(rng, policy, concepts):
    c0 = concepts[0]
    others = ", ".join(concepts[1:]) or c0
    forms = [
        f"{policy}: {c0} must be obtained or applied per purpose; relate it to {others} and keep "
        f"evidence that can be shown to an auditor.",
        f"Under {policy}, data collected for {c0} may be retained only for a defined, "
        f"event-based period; {others} must be documented.",
        f"{policy} requires that {c0} is granular, specific and freely given; bundled choices "
        f"covering {others} are not valid.",
        f"Organisations subject to {policy} must honour {c0} requests within the statutory "
        f"deadline and record {others}.",
    ]
    return rng.choice(forms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--stm", type=int, default=10000)
    ap.add_argument("--rules", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261126)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.outdir, exist_ok=True)
    vocab = concept_vocab(rng)

    ids, bodies = [], []
    per_domain = {}
    used = set()
    while len(ids) < a.stm:
        dom = rng.choice(DOMAINS)
        concept = rng.choice(vocab)
        n = per_domain.get(dom, 0) + 1
        per_domain[dom] = n
        sid = f"{dom}_r{n}_{slug(concept)}"
        if sid in used:
            continue
        used.add(sid)
        policy = rng.choices(POLICIES, POLICY_WEIGHTS)[0]
        body = {"scenario_id": sid, "requirement_text": requirement_text(rng, concept),
                "initial_assessment": assessment(rng, concept, policy)}
        ids.append(sid)
        bodies.append(body)

    rules, rule_ids = [], []
    taken = set()
    while len(rules) < a.rules:
        policy = rng.choices(POLICIES, POLICY_WEIGHTS)[0]
        k = rng.randint(2, 5)
        concepts = rng.sample(vocab, k)
        qual = camel(rng.choice(QUALIFIERS))
        base = f"{policy}_{camel(concepts[0])[:24]}_{qual}"
        nn = 1
        while f"{base}_{nn:02d}" in taken:
            nn += 1
        rid = f"{base}_{nn:02d}"
        taken.add(rid)
        srcs = rng.sample(ids, rng.randint(1, 3))
        rules.append({"rule_id": rid, "rule_text": rule_text(rng, policy, concepts),
                      "related_concepts": concepts, "source_scenario_ids": srcs,
                      "confidence_score": round(rng.uniform(0.5, 0.99), 2)})
        rule_ids.append(rid)

    def dump(name, lines):
        with open(os.path.join(a.outdir, name), "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")

    compact = lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False)
    dump("stm_bodies.jsonl", [compact(b) for b in bodies])
    dump("stm_ids.txt", ids)
    dump("rule_bodies.jsonl", [compact(r) for r in rules])
    dump("rule_ids.txt", rule_ids)
    dump("concepts.txt", vocab)
    srcs = []
    for r in rules:
        for sid in r["source_scenario_ids"]:
            if sid not in srcs:
                srcs.append(sid)
    dump("src_ids.txt", srcs)
    # Bodies without their leading id member: '{"scenario_id":"…",' + tail.
    dump("stm_tails.txt", [compact({k: v for k, v in b.items() if k != "scenario_id"})[1:]
                           for b in bodies[:1000]])
    dump("rule_tails.txt", [compact({k: v for k, v in r.items() if k != "rule_id"})[1:]
                            for r in rules[:1000]])
    dump("feedback.jsonl", [compact(feedback(rng, rng.choice(vocab))) for _ in range(500)])
    # Queries: 1–3 words from the concept vocabulary (each matches rules).
    queries = []
    while len(queries) < 50:
        c = rng.choice(vocab).split()
        q = " ".join(c[:rng.randint(1, min(3, len(c)))])
        if q not in queries and any(ch.isalpha() for ch in q):
            queries.append(q)
    dump("queries.txt", queries)


if __name__ == "__main__":
    main()
