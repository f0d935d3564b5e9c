"""bench/quality driver: known-item and author queries against a running
semdex for each search mode, then latency under wrk; prints a Markdown table.
Standard library only (the queries go over HTTP like any client's)."""
import argparse, collections, json, os, random, re, statistics, subprocess, sys, time, urllib.request

MODES = ["semantic", "keyword", "hybrid"]


def search(url, body):
    req = urllib.request.Request(url + "/search", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.load(r)
    return out, time.perf_counter() - t0


def noisy(title):
    words = title.split()
    kept = [w for i, w in enumerate(words) if i % 3 != 2]
    return " ".join(reversed(kept))


def names_of(authors):
    for n in re.split(r",| and ", authors or ""):
        n = " ".join(n.split())
        if n:
            yield n


def main():
    ap = argparse.ArgumentParser()
    for a in ["papers", "url", "work", "cpu", "vectors"]:
        ap.add_argument("--" + a, required=True)
    for a in ["known", "authors", "duration", "clients", "rounds"]:
        ap.add_argument("--" + a, type=int, required=True)
    o = ap.parse_args()
    papers = [json.loads(l) for l in open(o.papers)]
    rng = random.Random(15)
    cands = [p for p in papers if len((p.get("title") or "").split()) >= 4]
    items = rng.sample(cands, min(o.known, len(cands)))
    sets = {"title": [(" ".join(p["title"].split()), p["id"]) for p in items],
            "noisy title": [(noisy(" ".join(p["title"].split())), p["id"]) for p in items]}
    res = {}
    lat = collections.defaultdict(list)
    for qs, queries in sets.items():
        for mode in MODES:
            rr, found = 0.0, 0
            for q, want in queries:
                out, dt = search(o.url, {"query": q, "mode": mode, "top_k": 10})
                lat[mode].append(dt)
                ids = [r["paper_id"] for r in out["results"]]
                if want in ids:
                    rr += 1.0 / (ids.index(want) + 1)
                    found += 1
            res[(qs, mode)] = (rr / len(queries), found / len(queries))
            print(f"quality: {qs} {mode}: MRR@10 {res[(qs, mode)][0]:.3f}", file=sys.stderr)
    # authors written the same way on 3..10 papers
    by_name = collections.defaultdict(list)
    for p in papers:
        for n in set(names_of(p.get("authors"))):
            by_name[n].append(p["id"])
    named = sorted(n for n, ids in by_name.items() if 3 <= len(ids) <= 10 and len(n.split()) >= 2
                   and re.fullmatch(r"[A-Za-z.\- ]+", n))
    sample = rng.sample(named, min(o.authors, len(named)))
    arec = {}
    for mode in ["authors", "keyword"]:
        tot = 0.0
        for n in sample:
            out, dt = search(o.url, {"query": n, "mode": mode, "top_k": 10})
            ids = {r["paper_id"] for r in out["results"]}
            theirs = set(by_name[n])
            tot += len(ids & theirs) / min(len(theirs), 10)
        arec[mode] = tot / max(len(sample), 1)
        print(f"quality: authors via {mode}: recall@10 {arec[mode]:.3f}", file=sys.stderr)
    # latency at C clients: noisy titles of other papers plus the realistic queries
    others = rng.sample(cands, min(5000, len(cands)))
    texts = [noisy(" ".join(p["title"].split())) for p in others]
    qf = "../shared/datasets/queries/queries.txt"
    if os.path.exists(qf):
        texts += [l.strip() for l in open(qf) if l.strip()]
    rng.shuffle(texts)
    load = collections.defaultdict(list)
    for mode in MODES + ["authors"]:
        body_file = os.path.join(o.work, f"bodies-{mode}.jsonl")
        with open(body_file, "w") as f:
            src = [n for n in named[:5000]] if mode == "authors" else texts
            for t in src:
                f.write(json.dumps({"query": t[:300], "mode": mode, "top_k": 10}) + "\n")
    for rnd in range(o.rounds):
        for mode in MODES + ["authors"]:
            env = dict(os.environ, BENCH_BODIES=os.path.join(o.work, f"bodies-{mode}.jsonl"))
            cmd = ["wrk", "-t2", f"-c{o.clients}", f"-d{o.duration}s", "--timeout", "10s", "-s",
                   "bench/load/search.lua", o.url]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True).stdout
            m = re.search(r"RESULT (.*)", out)
            if not m:
                print(f"wrk gave no result for {mode}: {out[-300:]}", file=sys.stderr)
                continue
            kv = dict(x.split("=", 1) for x in m.group(1).split())
            load[mode].append(kv)
            print(f"load round {rnd + 1} {mode}: {m.group(1)}", file=sys.stderr)

    def med(mode, key):
        v = [float(k[key]) for k in load[mode]]
        return statistics.median(v) if v else float("nan")

    n = len(papers)
    print(f"## Search quality by mode (bench/quality), {time.strftime('%Y-%m-%d')}")
    print()
    print(f"{n:,} papers (the first {n:,} records of ../shared/datasets/arxiv; vectors: {o.vectors});"
          f" `semdex serve --cache 0`, one process. CPU: {o.cpu}, 2 cores, shared.")
    print(f"Command: `bench/quality/run --papers {n} --known {o.known} --authors {o.authors}"
          f" --duration {o.duration} --clients {o.clients} --rounds {o.rounds}`.")
    print()
    print(f"Known items ({len(items)} indexed papers, fixed seed): MRR@10 / recall@10 of the paper.")
    print()
    print("| query | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for qs in sets:
        print(f"| {qs} | " + " | ".join(f"{res[(qs, m)][0]:.3f} / {res[(qs, m)][1]:.3f}" for m in MODES) + " |")
    print()
    print(f"Authors ({len(sample)} names written identically on 3 to 10 papers): recall@10 of their papers:"
          f" mode authors {arec['authors']:.3f}, mode keyword (the name as a query) {arec['keyword']:.3f}.")
    print()
    print(f"Latency at {o.clients} connections (wrk, distinct queries; medians of {o.rounds} rounds of"
          f" {o.duration} s, modes interleaved):")
    print()
    print("| mode | requests/s | p50 ms | p95 ms | p99 ms | errors | p99 / semantic's |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES + ["authors"]:
        rounds = ", ".join(k["rps"] for k in load[mode])
        print(f"| {mode} | {med(mode, 'rps'):.1f} ({rounds}) | {med(mode, 'p50_ms'):.1f} | {med(mode, 'p95_ms'):.1f} |"
              f" {med(mode, 'p99_ms'):.1f} | {sum(int(k['errors']) for k in load[mode])} |"
              f" {med(mode, 'p99_ms') / med('semantic', 'p99_ms'):.2f} |")
    sem_noisy = res[("noisy title", "semantic")][0]
    hyb_noisy = res[("noisy title", "hybrid")][0]
    p99r = med("hybrid", "p99_ms") / med("semantic", "p99_ms")
    print()
    print("Targets (issue 15): hybrid known-item MRR on noisy titles >= semantic's + 0.05:"
          f" {hyb_noisy:.3f} vs {sem_noisy:.3f} + 0.05 -> {'met' if hyb_noisy >= sem_noisy + 0.05 else 'NOT met'};"
          f" author recall@10 >= 0.9: {arec['authors']:.3f} -> {'met' if arec['authors'] >= 0.9 else 'NOT met'};"
          f" hybrid p99 <= 1.3 x semantic's: {p99r:.2f} -> {'met' if p99r <= 1.3 else 'NOT met'}.")


if __name__ == "__main__":
    main()
