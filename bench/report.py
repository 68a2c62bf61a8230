#!/usr/bin/env python3
"""
report.py — bench/results/<name>.json -> Markdown (the tables of bench/README.md).

Usage: report.py RESULTS.json OUT.md
Every memoryd row is printed next to its ceiling, measured in the same run at the
same concurrency with the same load generator:
  STM reads that reach Redis      -> minimal server + one hiredis GET (redis_get)
  STM writes on Redis             -> minimal server + jansson + SET EX (redis_set)
  uncached LTM reads on Neo4j     -> the same Cypher POSTed straight to Neo4j
  everything else (cached reads,
  the embedded backend, mixed)    -> the bare minimal server (bare)
and every row also shows its ratio to the bare HTTP ceiling.
"""
import json
import sys


def fmt_us(us):
    if us is None:
        return "—"
    if us >= 100000:
        return f"{us / 1000:.0f} ms"
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def fmt_rps(x):
    return "—" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")


def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"


def ceiling_for(run):
    op, backend = run["op"], run["backend"]
    if backend == "redis-neo4j":
        if op in ("stm_get (uncached)", "stm_list", "trace (uncached)"):
            return "redis_get"
        if op in ("stm_create", "stm_feedback"):
            return "redis_set"
        if op == "ltm_search (uncached)":
            return "neo4j_search"
        if op == "rule_get (uncached)":
            return "neo4j_rule_get"
    return "bare"


def main():
    res = json.load(open(sys.argv[1]))
    out = []
    w = out.append
    m, st = res["machine"], res["settings"]
    runs = res["runs"]
    ceil = {(r["op"], r["conns"]): r for r in runs if r.get("kind") == "ceiling"}

    w(f"### Machine and settings\n")
    w(f"- {m['cpus']} × {m['cpu']} ({m['hypervisor']} guest), {m['mem_mib']} MiB RAM, "
      f"{m['kernel']}; libmicrohttpd {m['mhd']}, hiredis {m['hiredis']}, Redis {m['redis']}; "
      f"{m['date']}; memoryd at commit {m.get('commit', '?')} "
      f"({m.get('dirty_src', '?')} files in src/ and include/ modified in the work tree)")
    w(f"- load generator, memoryd, Redis, Neo4j and the baseline servers share the same cores; "
      f"load average before/after: {st['load_before']} / {st.get('load_after', '?')} "
      f"(other engineers' jobs run on this machine too)")
    w(f"- {st['duration_s']} s per measurement after {st['warmup_s']} s warm-up, closed loop, "
      f"keep-alive, concurrency {', '.join(map(str, st['concs']))}; data set "
      f"{st['stm_entries']} STM entries + {st['rules']} rules; wall time "
      f"{st.get('wall_s', '?')} s{' (SMOKE: tiny data set, numbers not meaningful)' if st['smoke'] else ''}\n")

    w("### Ceilings (same run, same load generator)\n")
    w("| ceiling | c | req/s | p50 | p99 | p99.9 | errors | server CPU/req |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if r.get("kind") != "ceiling":
            continue
        a = r["all"]
        srv = r["procs"].get("server") or r["procs"].get("neo4j") or {}
        w(f"| {r['op']} | {r['conns']} | {fmt_rps(a['rps'])} | {fmt_us(a['p50_us'])} | "
          f"{fmt_us(a['p99_us'])} | {fmt_us(a['p999_us'])} | {a['errors']['total']} | "
          f"{srv.get('cpu_us_per_req', 0):.1f} µs |")
    rb = res["baselines"].get("redis_benchmark", {})
    if rb:
        w("\nredis-benchmark (1.5 KB values, random keys):\n")
        w("| test | req/s | avg | p50 | p99 |")
        w("|---|---:|---:|---:|---:|")
        for k, v in rb.items():
            w(f"| {k} | {fmt_rps(v['rps'])} | {v['avg_ms']:.3f} ms | {v['p50_ms']:.3f} ms | "
              f"{v['p99_ms']:.3f} ms |")

    for backend in res["settings"]["backends"]:
        rows = [r for r in runs if r.get("kind") == "memoryd" and r["backend"] == backend]
        if not rows:
            continue
        w(f"\n### memoryd — {backend}\n")
        w("| operation | c | req/s | p50 | p90 | p99 | p99.9 | errors | memoryd CPU/req | "
          "ceiling | ceiling req/s | ratio | ceiling p99 | p99 ratio | × bare req/s |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in rows:
            a = r["all"]
            cname = ceiling_for(r)
            c = ceil.get((cname, r["conns"]))
            bare = ceil.get(("bare", r["conns"]))
            ca = c["all"] if c else None
            e = a["errors"]
            errs = str(e["total"]) if not e["total"] else \
                f"{e['total']} ({e['4xx']}×4xx {e['5xx']}×5xx {e['socket']} sock)"
            cpu = r["procs"].get("memoryd", {}).get("cpu_us_per_req")
            open_loop = r["mode"] == "open"
            label = r["op"] + (f" @ {r['rate']:.0f}/s" if open_loop else "")
            w(f"| {label} | {r['conns']} | {fmt_rps(a['rps'])} | {fmt_us(a['p50_us'])} | "
              f"{fmt_us(a['p90_us'])} | {fmt_us(a['p99_us'])} | {fmt_us(a['p999_us'])} | {errs} | "
              f"{'—' if cpu is None else f'{cpu:.0f} µs'} | {cname} | "
              f"{fmt_rps(ca['rps']) if ca else '—'} | "
              f"{'—' if open_loop else ratio(a['rps'], ca['rps'] if ca else None)} | "
              f"{fmt_us(ca['p99_us']) if ca else '—'} | "
              f"{ratio(a['p99_us'], ca['p99_us'] if ca else None)} | "
              f"{'—' if open_loop else ratio(a['rps'], bare['all']['rps'] if bare else None)} |")
        mc = {k: v for k, v in res["mixed_cache"].items() if k.startswith(backend + " ")}
        if mc:
            w("\nMixed workload (35 % STM get, 20 % LTM search, 15 % rule get, 20 % STM "
              "feedback, 10 % STM create; Zipf-skewed ids), cache with default settings:\n")
            w("| run | cache hits | misses | hit rate | memoryd peak RSS |")
            w("|---|---:|---:|---:|---:|")
            for k, v in mc.items():
                conns = int(k.split("c=")[1])
                rr = [r for r in rows if r["op"] == "mixed" and r["conns"] == conns]
                hwm = rr[-1]["procs"].get("memoryd", {}).get("rss_peak_kb") if rr else None
                hr = "—" if v["hit_rate"] is None else f"{100 * v['hit_rate']:.1f} %"
                w(f"| {k} | {v['hits']:.0f} | {v['misses']:.0f} | {hr} | "
                  f"{'—' if hwm is None else f'{hwm / 1024:.1f} MiB'} |")
        ld = res["loads"].get(backend)
        if ld:
            w(f"\nData load through the API: {st['stm_entries']} STM creates at c=16: "
              f"{fmt_rps(ld['stm']['rps'])}/s (p50 {fmt_us(ld['stm']['p50_us'])}); "
              f"{st['rules']} rule creates: {fmt_rps(ld['rules']['rps'])}/s "
              f"(p50 {fmt_us(ld['rules']['p50_us'])}).")

    w("\n### Targets (issue 6)\n")
    w("| target | memoryd | ceiling | value | limit | status |")
    w("|---|---|---|---:|---:|---|")
    for t in res["targets"]:
        mm, cc = t.get("memoryd"), t.get("ceiling")
        desc = lambda d: "—" if not d else ", ".join(
            f"{k.replace('_us', '')} {fmt_us(v) if k.endswith('_us') else fmt_rps(v)}"
            for k, v in d.items() if k in ("rps", "p50_us", "p99_us", "mean_us"))
        v = t.get("value")
        if v is None:
            vs = "—"
        elif t.get("unit") == "MiB":
            vs = f"{v:.1f} MiB"
        elif (t["kind"].startswith("min") or t["kind"] == "info") and t["limit"] < 1:
            vs = f"{100 * v:.1f} %"
        else:
            vs = f"{v:.2f}"
        lim = t["limit"]
        ls = f"{lim:.0f} MiB" if t.get("unit") == "MiB" else (
            f"{100 * lim:.0f} %" if (t["kind"].startswith("min") or t["kind"] == "info") and
            lim < 1 else f"{lim:.2f}")
        w(f"| {t['name']} | {desc(mm)} | {desc(cc)} | {vs} | {ls} | **{t['status']}** |")
    if res.get("long"):
        L = res["long"]
        w(f"\nLong run: {L['seconds']:.0f} s mixed at c=64, {fmt_rps(L['rps'])}/s, "
          f"{L['errors']} errors; RSS first sixth {L['rss_first_kb'] / 1024:.1f} MiB, last sixth "
          f"{L['rss_last_kb'] / 1024:.1f} MiB ({100 * L['growth']:+.1f} %).")

    # the seed's table
    def find(backend, op, conns):
        rr = [r for r in runs if r.get("kind") == "memoryd" and r["backend"] == backend and
              r["op"] == op and r["conns"] == conns]
        return rr[-1]["all"] if rr else None

    w("\n### The seed's performance table, with memoryd's measured numbers\n")
    w("Seed: \"Expected performance benchmarks after optimization\" (average response times). "
      "memoryd: mean latency at concurrency 1 (p99 at concurrency 16 in brackets).\n")
    bks = res["settings"]["backends"]
    w("| operation | seed target | seed \"optimized\" | " +
      " | ".join(f"memoryd {b}" for b in bks) + " |")
    w("|---|---:|---:|" + "---:|" * len(bks))

    def cell(b, op):
        a, a16 = find(b, op, 1), find(b, op, 16)
        if not a:
            return "—"
        return f"{fmt_us(a['mean_us'])} ({fmt_us(a16['p99_us']) if a16 else '—'})"

    rows = [("STM create", "< 100 ms", "~45 ms", "stm_create"),
            ("STM retrieve (uncached)", "< 50 ms", "~25 ms", "stm_get (uncached)"),
            ("STM retrieve (cached)", "", "", "stm_get"),
            ("LTM search (uncached)", "< 500 ms", "~250 ms", "ltm_search (uncached)"),
            ("LTM search (cached)", "", "", "ltm_search"),
            ("API end-to-end (mixed workload)", "< 1000 ms", "~300 ms", "mixed")]
    for name, tgt, opt, op in rows:
        w(f"| {name} | {tgt} | {opt} | " + " | ".join(cell(b, op) for b in bks) + " |")
    hrs = []
    for b in bks:
        v = res["mixed_cache"].get(f"{b} c={max(st['concs'])}", {}).get("hit_rate")
        hrs.append("—" if v is None else f"{100 * v:.1f} % (mixed, c={max(st['concs'])})")
    w("| Cache hit rate | > 70 % | ~85 % | " + " | ".join(hrs) + " |")
    if res.get("notes"):
        w("\nNotes: " + "; ".join(res["notes"]))
    open(sys.argv[2], "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
