#!/usr/bin/env python3
"""
ab.py — before/after: two memoryd binaries (or one binary with two settings) measured
side by side, interleaved (A, B, A, B, …), with the same load generator, on STM in a
private Redis and LTM embedded (no Neo4j start-up), medians of --repeat runs.

  bench/ab.py --a build-bench/memoryd --b /tmp/patched/memoryd
  bench/ab.py --a build-bench/memoryd --b build-bench/memoryd:LOG_ACCESS=false

Each side: PATH[:NAME=VALUE[,NAME=VALUE…]]. Needs build-bench/bench/loadgen (bench/run.sh
builds it). Prints a Markdown table (req/s, p50, p99, memoryd CPU µs/request per side and
the B/A ratios) and writes it to --out when given.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (helpers: free_port, http_get, wait_for)

ROOT = driver.ROOT
SPECS = driver.SPECS
OPS = {  # name -> (spec, needs the cache disabled)
    "stm_get": ("stm_get", False), "stm_get_uncached": ("stm_get", True),
    "stm_feedback": ("stm_feedback", False), "stm_create": ("stm_create", False),
    "ltm_search": ("ltm_search", False), "rule_get": ("rule_get", False),
    "mixed": ("mixed", False),
}


def parse_side(s):
    path, _, env = s.partition(":")
    extra = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    return os.path.abspath(path), extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--ops", default="stm_get,stm_get_uncached,stm_feedback,stm_create,"
                                      "ltm_search,rule_get")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--out")
    a = ap.parse_args()
    lg = os.path.join(ROOT, "build-bench/bench/loadgen")
    work = tempfile.mkdtemp(prefix="memoryd-ab-")
    data = os.path.join(work, "data")
    subprocess.run([sys.executable, os.path.join(driver.BENCH, "gen_data.py"), data,
                    "--stm", "3000", "--rules", "300"], check=True)
    with open(os.path.join(data, "bkeys.txt"), "w") as f:
        f.write("\n".join(map(str, range(3000))) + "\n")
    lists = {"stm_id": "stm_ids.txt", "rule_id": "rule_ids.txt", "src_id": "src_ids.txt",
             "q": "queries.txt", "fb": "feedback.jsonl", "stm_tail": "stm_tails.txt",
             "rule_tail": "rule_tails.txt", "stm_body": "stm_bodies.jsonl",
             "rule_body": "rule_bodies.jsonl", "bkey": "bkeys.txt"}
    largs = sum((["--list", f"{k}={os.path.join(data, v)}"] for k, v in lists.items()), [])
    rport = driver.free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--dir", work, "--save", "", "--appendonly", "yes",
                              "--appendfsync", "everysec", "--loglevel", "warning"],
                             stdout=subprocess.DEVNULL)
    procs = []
    n = [0]

    def run(url, spec, conns, pids, count=None):
        n[0] += 1
        argv = [lg, "--url", url, "--spec", os.path.join(SPECS, spec + ".spec"), "--conns",
                str(conns), "--tag", f"ab{n[0]}", "--seed", str(n[0]),
                "--out", os.path.join(work, "lg.json")] + largs
        argv += ["--count", str(count)] if count else ["--duration", str(a.duration),
                                                        "--warmup", "1"]
        for k, v in pids.items():
            argv += ["--pid", f"{k}={v}"]
        subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
        import json
        with open(os.path.join(work, "lg.json")) as f:
            return json.load(f)

    def start(side, db, nocache):
        path, extra = side
        port = driver.free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("API_", "STM_", "LTM_", "REDIS_", "CACHE_"))}
        env.update({"API_HOST": "127.0.0.1", "API_PORT": str(port), "STM_BACKEND": "redis",
                    "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport), "REDIS_DB": str(db),
                    "LTM_BACKEND": "embedded",
                    "DATA_DIR": os.path.join(work, f"db{db}")})
        if nocache:
            env["CACHE_MAX_ENTRIES"] = "0"
        env.update(extra)
        p = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, f"md{db}.log"), "ab"))
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        driver.wait_for(lambda: driver.http_get(url + "/ready")[0] == 200, 60, "memoryd")
        return p, url

    rows = []
    try:
        driver.wait_for(lambda: subprocess.run(["redis-cli", "-p", str(rport), "ping"],
                                               capture_output=True).returncode == 0, 10, "redis")
        sides = [parse_side(a.a), parse_side(a.b)]
        # one data set per side (own Redis db and data dir), loaded through the API
        inst = {}
        for i, side in enumerate(sides):
            p, url = start(side, i + 1, False)
            run(url, "load_stm", 16, {}, count=3000)
            run(url, "load_rules", 8, {}, count=300)
            inst[(i, False)] = (p, url)
        for i, side in enumerate(sides):
            inst[(i, True)] = start(side, i + 1, True)
        for op in a.ops.split(","):
            spec, nocache = OPS[op]
            res = {0: [], 1: []}
            for r in range(a.repeat):
                for i in (0, 1):
                    p, url = inst[(i, nocache)]
                    if not nocache and spec in ("stm_get", "rule_get", "ltm_search"):
                        warm = {"stm_get": ("warm_stm", 3000), "rule_get": ("warm_rules", 300),
                                "ltm_search": ("warm_queries", 50)}[spec]
                        run(url, warm[0], 8, {}, count=warm[1])
                    out = run(url, spec, a.conns, {"memoryd": p.pid, "redis": redis.pid})
                    res[i].append(out)
                    al = out["all"]
                    print(f"[ab] {op:18s} {'AB'[i]} #{r + 1}: {al['rps']:8.0f}/s p50 "
                          f"{al['p50_us']} µs p99 {al['p99_us']} µs err {al['errors']['total']} "
                          f"cpu {out['procs']['memoryd']['cpu_us_per_req']:.1f} µs/req",
                          file=sys.stderr, flush=True)
            med = lambda i, f: statistics.median(f(x) for x in res[i])
            row = {"op": op}
            for i in (0, 1):
                row[i] = {"rps": med(i, lambda x: x["all"]["rps"]),
                          "p50": med(i, lambda x: x["all"]["p50_us"]),
                          "p99": med(i, lambda x: x["all"]["p99_us"]),
                          "cpu": med(i, lambda x: x["procs"]["memoryd"]["cpu_us_per_req"]),
                          "rcpu": med(i, lambda x: x["procs"]["redis"]["cpu_us_per_req"])}
            rows.append(row)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)
    out = [f"A = `{a.a}`, B = `{a.b}`; c={a.conns}, {a.duration:g} s × {a.repeat} interleaved "
           f"runs, medians; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n",
           "| operation | A req/s | B req/s | B/A | A p50 | B p50 | A p99 | B p99 | "
           "A CPU/req | B CPU/req | A Redis CPU/req | B Redis CPU/req |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        x, y = r[0], r[1]
        out.append(f"| {r['op']} | {x['rps']:,.0f} | {y['rps']:,.0f} | "
                   f"{y['rps'] / x['rps'] if x['rps'] else 0:.2f} | {x['p50']:.0f} µs | "
                   f"{y['p50']:.0f} µs | {x['p99']:.0f} µs | {y['p99']:.0f} µs | "
                   f"{x['cpu']:.1f} µs | {y['cpu']:.1f} µs | {x['rcpu']:.1f} µs | "
                   f"{y['rcpu']:.1f} µs |")
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
