#!/usr/bin/env python3
"""Checks for tests/e2e/redis-module.sh: a tiny RESP client (the standard
library only, since vectors travel as raw float32 bytes) and the test steps.

    e2e-redis.py basic PORT                 every command, every error case
    e2e-redis.py ingest PORT KEY N SEED     N random unit vectors, batches, deletes
    e2e-redis.py results PORT KEY [SELF]    digest + search answers, one per line
    e2e-redis.py inflight PORT              DEL / FLUSHALL while searches run
    e2e-redis.py stall PORT N               one N-paper UPSERT; prints its ms
"""
import math
import random
import socket
import struct
import sys
import time

DIM = 384


class Err(Exception):
    pass


class Client:
    """A blocking RESP2 client; replies: bytes, int, list, None or Err."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=120)
        self.f = self.s.makefile("rb")

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            return Err(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad reply %r" % line)

    def __call__(self, *args):
        self.send(*args)
        return self.read()


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def expect_err(reply, fragment, what):
    expect(isinstance(reply, Err), "%s: expected an error, got %r" % (what, reply))
    expect(fragment in str(reply), "%s: expected '%s' in error '%s'" % (what, fragment, reply))


def unit(rng, dim=DIM):
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def f32(v):
    return struct.pack("<%df" % len(v), *v)


def encode_doc(id, title="", abstract="", authors="", update_date="", categories=""):
    """The record format of sx_doc_encode (src/shard/shard.h)."""
    return encode_raw([f.encode() for f in (id, title, abstract, authors, update_date, categories)])


def encode_raw(fields):
    body = b""
    for b in fields:
        body += struct.pack("<I", len(b)) + b + b"\0"
    return struct.pack("<I", 4 + len(body)) + body


def decode_doc(buf):
    (total,) = struct.unpack_from("<I", buf, 0)
    expect(total == len(buf), "doc length header %d != %d" % (total, len(buf)))
    pos, out = 4, []
    for _ in range(6):
        (n,) = struct.unpack_from("<I", buf, pos)
        out.append(buf[pos + 4:pos + 4 + n].decode())
        pos += 5 + n
    return out


def paper(i, rng):
    cats = "cs.LG" if i % 3 else "cs.CL"
    if i % 5 == 0:
        cats += " math.ST"
    id = "2101.%05d" % i
    return id, unit(rng), encode_doc(id, "Paper %d" % i, "Abstract of %d" % i, "A. Author",
                                      "2021-01-05", cats)


def info_map(reply):
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}


def basic(port):
    c = Client(port)
    c("FLUSHALL")
    rng = random.Random(1)
    items = [paper(i, rng) for i in range(50)]
    args = []
    for id, v, d in items:
        args += [id, f32(v), d]
    # arity
    expect_err(c("SEMDEX.UPSERT", "k", "id", f32(items[0][1])), "wrong number of arguments", "upsert arity")
    expect_err(c("SEMDEX.UPSERT", "k", *args, "extra"), "wrong number of arguments", "upsert arity +1")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[0][1]), 10), "wrong number of arguments", "search arity")
    expect_err(c("SEMDEX.DEL", "k"), "wrong number of arguments", "del arity")
    expect_err(c("SEMDEX.GET", "k", "a", "b"), "wrong number of arguments", "get arity")
    expect_err(c("SEMDEX.INFO"), "wrong number of arguments", "info arity")
    # missing key
    # A missing key is an error, not an empty shard: a replica that lost the
    # key in a slot move must not pass for an empty shard (the gateway then
    # asks the master).
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[0][1]), 10, 0), "no such key", "search of a missing key")
    expect_err(c("SEMDEX.GET", "k", "2101.00001"), "no such key", "get of a missing key")
    expect(c("SEMDEX.DEL", "k", "2101.00001") == 0, "del of a missing key is 0")
    expect_err(c("SEMDEX.INFO", "k"), "no such key", "info of a missing key")
    # the batch
    expect(c("SEMDEX.UPSERT", "k", *args) == 50, "upsert of 50")
    expect(c("EXISTS", "k") == 1 and c("TYPE", "k") == b"semdex-sh", "key type semdex-sh")
    # get: the same bytes back
    g = c("SEMDEX.GET", "k", items[7][0])
    expect(isinstance(g, list) and g[0] == items[7][2] and g[1] == f32(items[7][1]), "get returns doc and vector")
    expect(c("SEMDEX.GET", "k", "nope") is None, "get of an unknown id is nil")
    # search: itself first, score ~1, double replies, best first
    r = c("SEMDEX.SEARCH", "k", f32(items[3][1]), 5, 0)
    expect(isinstance(r, list) and len(r) == 5, "search returns 5 hits: %r" % (r,))
    expect(r[0][0] == items[3][0].encode() and abs(float(r[0][1]) - 1) < 0.02, "search finds itself: %r" % (r[0],))
    scores = [float(h[1]) for h in r]
    expect(scores == sorted(scores, reverse=True) and all(len(h) == 2 for h in r), "best first, [id, score]")
    # FILTER and WITHDOCS
    r = c("SEMDEX.SEARCH", "k", f32(items[3][1]), 50, 0, "FILTER", 1, "math.ST", "WITHDOCS")
    expect(len(r) == 10, "FILTER math.ST passes 10 papers, got %d" % len(r))
    for h in r:
        expect(len(h) == 3, "WITHDOCS hit has 3 elements")
        d = decode_doc(h[2])
        expect(d[0] == h[0].decode() and "math.ST" in d[5].split(), "filtered hit carries math.ST: %r" % d)
    r = c("SEMDEX.SEARCH", "k", f32(items[3][1]), 50, 100, "FILTER", 2, "math.ST", "cs.CL")
    expect(len(r) == len([i for i in range(50) if i % 5 == 0 or i % 3 == 0]), "FILTER any-of two codes")
    expect(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 5, 0, "FILTER", 1, "none.XX") == [], "unknown code: no hits")
    # errors
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 0, 0), "k must be", "k=0")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 10001, 0), "k must be", "k=10001")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), "ten", 0), "k must be", "k not a number")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 5, -1), "ef must be", "ef=-1")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1])[:-4], 5, 0), "vector is 1532 bytes", "short vector")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]) + b"\0\0\0\0", 5, 0), "vector is 1540 bytes", "long vector")
    expect_err(c("SEMDEX.SEARCH", "k", b"abc", 5, 0), "not a multiple of 4", "3-byte vector")
    nan = list(items[3][1])
    nan[17] = float("nan")
    expect_err(c("SEMDEX.SEARCH", "k", f32(nan), 5, 0), "non-finite", "NaN query")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 5, 0, "FILTER", 3, "a"), "FILTER", "short FILTER")
    expect_err(c("SEMDEX.SEARCH", "k", f32(items[3][1]), 5, 0, "BOGUS"), "syntax error", "unknown option")
    id, v, d = paper(100, rng)
    bad = [
        ([id, f32(v)[:-4], d], "vector is 1532 bytes"),
        ([id, f32(v) + b"\0" * 4, d], "vector is 1540 bytes"),
        ([id, f32(nan), d], "non-finite"),
        ([id, f32([x * 2 for x in v]), d], "not L2-normalised"),
        ([id, f32(v), b"garbage"], "bad doc"),
        ([id, f32(v), d[:-1]], "bad doc"),
        ([id, f32(v), d + b"x"], "bad doc"),
        ([id, f32(v), encode_doc("2101.99999", "t")], "differs from the id"),
        ([id, f32(v), encode_doc(id, "")], "title"),
        (["bad id", f32(v), encode_doc("bad id", "t")], "'id' may contain only"),
        ([id, f32(v), encode_raw([id.encode(), b"t\xff", b"", b"", b"", b""])], "UTF-8"),
        ([id, f32(v), encode_raw([id.encode(), b"t\0t", b"", b"", b"", b""])], "NUL"),
    ]
    for k, (item, frag) in enumerate(bad):
        good = list(args[:6])  # two good papers first
        r = c("SEMDEX.UPSERT", "k", *good, *item)
        expect_err(r, "item 2", "bad item %d" % k)
        expect(frag in str(r), "bad item %d: expected '%s' in '%s'" % (k, frag, r))
    # nothing applied: a new paper in a rejected batch is absent
    r = c("SEMDEX.UPSERT", "k", id, f32(v), d, id, f32(v), b"junk")
    expect_err(r, "item 1", "second item bad")
    expect(c("SEMDEX.GET", "k", id) is None, "a rejected batch applies nothing")
    # a garbled length prefix inside the doc
    d2 = bytearray(d)
    d2[8] = 0xFF
    expect_err(c("SEMDEX.UPSERT", "k", id, f32(v), bytes(d2)), "bad doc", "garbled field length")
    # internal command
    expect_err(c("SEMDEX.UPSERTL", "k", id, 0, f32(v), d), "internal", "UPSERTL from a client")
    # wrong type
    c("SET", "s", "v")
    expect_err(c("SEMDEX.SEARCH", "s", f32(v), 5, 0), "WRONGTYPE", "search on a string")
    expect_err(c("SEMDEX.UPSERT", "s", id, f32(v), d), "WRONGTYPE", "upsert on a string")
    expect_err(c("SEMDEX.GET", "s", id), "WRONGTYPE", "get on a string")
    expect_err(c("SEMDEX.DEL", "s", id), "WRONGTYPE", "del on a string")
    expect_err(c("SEMDEX.INFO", "s"), "WRONGTYPE", "info on a string")
    expect_err(c("GET", "k"), "WRONGTYPE", "GET on a shard")
    # del
    expect(c("SEMDEX.DEL", "k", items[0][0]) == 1, "del 1")
    expect(c("SEMDEX.DEL", "k", items[0][0]) == 0, "del again 0")
    expect(c("SEMDEX.GET", "k", items[0][0]) is None, "deleted paper gone")
    r = c("SEMDEX.SEARCH", "k", f32(items[0][1]), 10, 0)
    expect(all(h[0] != items[0][0].encode() for h in r), "deleted paper not found")
    # upsert replaces
    nd = encode_doc(items[1][0], "New title", categories="q-bio.NC")
    expect(c("SEMDEX.UPSERT", "k", items[1][0], f32(items[1][1]), nd) == 1, "replace")
    expect(c("SEMDEX.GET", "k", items[1][0])[0] == nd, "replaced doc")
    # info
    m = info_map(c("SEMDEX.INFO", "k"))
    for f in ("papers", "deleted", "dim", "m", "ef_construction", "ef_search", "storage", "bytes_vectors",
              "bytes_graph", "bytes_documents", "bytes_total", "searches", "search_usec_total", "levels"):
        expect(f in m, "SEMDEX.INFO has %s: %r" % (f, m))
    expect(m["papers"] == 49 and m["dim"] == 384 and m["storage"] == b"sq8" and m["m"] == 16, "info values %r" % m)
    expect(m["searches"] >= 5 and m["bytes_total"] > 49 * 384, "info counters %r" % m)
    # a shard of another dim, CREATE
    expect(c("SEMDEX.CREATE", "k8", 8, "M", 8, "STORAGE", "fp32") == b"OK", "create")
    expect(c("SEMDEX.CREATE", "k8", 8, "M", 8, "STORAGE", "fp32") == b"OK", "create again, same params")
    expect_err(c("SEMDEX.CREATE", "k8", 8, "M", 12), "other parameters", "create with other params")
    expect_err(c("SEMDEX.CREATE", "k9", 0), "dim", "create dim 0")
    expect_err(c("SEMDEX.CREATE", "k9", 8, "FOO", 1), "unknown option", "create bad option")
    v8 = unit(rng, 8)
    expect_err(c("SEMDEX.UPSERT", "k8", id, f32(v), d), "vector is 1536 bytes", "384-d vector into an 8-d shard")
    expect(c("SEMDEX.UPSERT", "k8", id, f32(v8), d) == 1, "8-d upsert")
    m = info_map(c("SEMDEX.INFO", "k8"))
    expect(m["dim"] == 8 and m["m"] == 8 and m["storage"] == b"fp32", "8-d info %r" % m)
    r = c("SEMDEX.SEARCH", "k8", f32(v8), 3, 0)
    expect(len(r) == 1 and r[0][0] == id.encode(), "8-d search")
    # MULTI: the search runs inline
    c("MULTI")
    c("SEMDEX.SEARCH", "k", f32(items[3][1]), 3, 0)
    r = c("EXEC")
    expect(isinstance(r, list) and len(r) == 1 and len(r[0]) == 3, "search inside MULTI: %r" % (r,))
    # INFO semdex
    text = c("INFO", "semdex").decode()
    for f in ("semdex_keys:2", "semdex_papers:50", "semdex_memory:", "semdex_searches:", "semdex_search_usec_total:",
              "semdex_worker_threads:", "semdex_queue_depth:", "semdex_write_usec_max:"):
        expect(f in text, "INFO semdex has %s: %s" % (f, text))
    expect(c("PING") == b"PONG", "alive")
    print("basic: ok")


def ingest(port, key, n, seed):
    c = Client(port)
    rng = random.Random(seed)
    batch, i = [], 0
    ids = []
    while i < n:
        id, v, d = paper(i, rng)
        ids.append(id)
        batch += [id, f32(v), d]
        i += 1
        if len(batch) == 3 * 250 or i == n:
            r = c("SEMDEX.UPSERT", key, *batch)
            expect(r == len(batch) // 3, "upsert batch: %r" % (r,))
            batch = []
            # delete some earlier papers, re-upsert a few with new vectors
            for _ in range(12):
                c("SEMDEX.DEL", key, rng.choice(ids))
            for _ in range(5):
                j = rng.randrange(len(ids))
                _, v2, d2 = paper(j, rng)
                expect(c("SEMDEX.UPSERT", key, ids[j], f32(v2), d2) == 1, "re-upsert")
    print("ingest: %d papers, %s" % (n, info_map(c("SEMDEX.INFO", key))["papers"]))


def results(port, key, with_self=False):
    """Prints the digest and the answers to fixed queries, one per line."""
    c = Client(port)
    print("digest", c("DEBUG", "DIGEST-VALUE", key))
    m = info_map(c("SEMDEX.INFO", key))
    print("papers", m["papers"], "dim", m["dim"], "levels", m["levels"])
    rng = random.Random(99)
    for q in range(40):
        v = unit(rng)
        args = [key, f32(v), 10, 0 if q % 3 else 40]
        if q % 4 == 1:
            args += ["FILTER", 1, "math.ST"]
        r = c("SEMDEX.SEARCH", *args)
        print("q%d" % q, " ".join("%s:%s" % (h[0].decode(), h[1].decode()) for h in r))
    if with_self:
        # stored vectors find themselves first
        ids = [h[0] for h in c("SEMDEX.SEARCH", key, f32(unit(rng)), 50, 200)]
        for id in ids:
            g = c("SEMDEX.GET", key, id)
            r = c("SEMDEX.SEARCH", key, g[1], 1, 100)
            print("self", id.decode(), r[0][0].decode())


def inflight(port):
    """Searches in flight on keys being deleted and flushed: all answered or
    the connection intact, the server alive."""
    rng = random.Random(3)
    setup = Client(port)
    for key in ("f1", "f2"):
        batch = []
        for i in range(1500):
            id, v, d = paper(i, rng)
            batch += [id, f32(v), d]
        expect(setup("SEMDEX.UPSERT", key, *batch) == 1500, "inflight setup")
    clients = [Client(port) for _ in range(4)]
    q = f32(unit(rng))
    for c in clients:
        for key in ("f1", "f2"):
            for _ in range(25):
                c.send("SEMDEX.SEARCH", key, q, 2000, 4000, "WITHDOCS")
    time.sleep(0.05)
    expect(setup("DEL", "f1") == 1, "DEL during searches")
    expect(setup("FLUSHALL") == b"OK", "FLUSHALL during searches")
    n = 0
    for c in clients:
        for _ in range(50):
            r = c.read()
            # answered before the DEL: hits; queued after it: no such key
            expect(isinstance(r, list) or (isinstance(r, Err) and "no such key" in str(r)),
                   "search reply %r" % (r,))
            n += 1
    expect(setup("PING") == b"PONG", "alive after searches on freed keys")
    text = setup("INFO", "semdex").decode()
    expect("semdex_keys:0" in text and "semdex_queue_depth:0" in text, "all freed: %s" % text)
    print("inflight: %d searches answered" % n)


def msearch(port):
    """SEMDEX.MSEARCH: one search over several keys equals SEARCH on each key
    merged (best first, ties by id, k kept), with the missing keys named."""
    c = Client(port)
    c("FLUSHALL")
    rng = random.Random(5)
    items = [paper(i, rng) for i in range(90)]
    for key, part in (("ka", items[0:30]), ("kb", items[30:60]), ("kc", items[60:90])):
        args = []
        for id, v, d in part:
            args += [id, f32(v), d]
        expect(c("SEMDEX.UPSERT", key, *args) == 30, "upsert into " + key)

    def merged(q, k, *opts):
        hits = []
        for key in ("ka", "kb", "kc"):
            hits += [(float(h[1]), h[0]) for h in c("SEMDEX.SEARCH", key, q, k, 0, *opts)]
        hits.sort(key=lambda x: (-x[0], x[1]))
        return [h[1] for h in hits[:k]]

    for qi in (3, 40, 77):
        q = f32(items[qi][1])
        r = c("SEMDEX.MSEARCH", 3, "ka", "kb", "kc", q, 10, 0)
        expect(isinstance(r, list) and len(r) == 2 and r[1] == [], "msearch reply [hits, []]: %r" % (r,))
        expect([h[0] for h in r[0]] == merged(q, 10), "msearch equals the merged searches (query %d)" % qi)
        expect(r[0][0][0] == items[qi][0].encode(), "msearch finds the query's own paper first")
    q = f32(items[5][1])
    # a missing key is named, the others searched
    r = c("SEMDEX.MSEARCH", 4, "ka", "nokey", "kb", "kc", q, 5, 0)
    expect(r[1] == [b"nokey"] and [h[0] for h in r[0]] == merged(q, 5), "missing key named: %r" % (r[1],))
    r = c("SEMDEX.MSEARCH", 2, "gone1", "gone2", q, 5, 0)
    expect(r == [[], [b"gone1", b"gone2"]], "only missing keys: %r" % (r,))
    # filters, WITHDOCS (documents only for the merged k), keyword mode
    r = c("SEMDEX.MSEARCH", 3, "ka", "kb", "kc", q, 50, 0, "FILTER", 1, "math.ST", "WITHDOCS")
    expect(len(r[0]) == 18 and all(len(h) == 3 and "math.ST" in decode_doc(h[2])[5] for h in r[0]),
           "msearch FILTER + WITHDOCS: %d hits" % len(r[0]))
    r = c("SEMDEX.MSEARCH", 3, "ka", "kb", "kc", "", 4, 0, "MODE", "KEYWORD", "TEXT", "paper 61")
    kw = merged("", 4, "MODE", "KEYWORD", "TEXT", "paper 61")
    expect([h[0] for h in r[0]] == kw and r[0][0][0] == b"2101.00061", "msearch keyword mode: %r" % (r[0],))
    # errors
    expect_err(c("SEMDEX.MSEARCH", 1, "ka", q, 5), "wrong number of arguments", "msearch arity")
    expect_err(c("SEMDEX.MSEARCH", 0, "ka", q, 5, 0), "numkeys", "numkeys 0")
    expect_err(c("SEMDEX.MSEARCH", 3, "ka", "kb", q, 5, 0), "numkeys", "numkeys beyond the arguments")
    expect_err(c("SEMDEX.MSEARCH", "x", "ka", q, 5, 0), "numkeys", "numkeys not a number")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "ka", q, 5, 0), "listed twice", "a key twice")
    c("SET", "str", "v")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "str", q, 5, 0), "WRONGTYPE", "a key of another type")
    expect(c("SEMDEX.CREATE", "k8", 8) == b"OK", "create an 8-d shard")
    v8 = unit(rng, 8)
    expect(c("SEMDEX.UPSERT", "k8", "2101.99999", f32(v8), encode_doc("2101.99999", "t")) == 1, "8-d upsert")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "k8", q, 5, 0), "different dimensions", "keys of two dims")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "kb", q[:-4], 5, 0), "vector is 1532 bytes", "short vector")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "kb", q, 0, 0), "k must be", "k=0")
    expect_err(c("SEMDEX.MSEARCH", 2, "ka", "kb", q, 5, 0, "BOGUS"), "syntax error", "unknown option")
    # inside MULTI it runs inline
    c("MULTI")
    c("SEMDEX.MSEARCH", 3, "ka", "kb", "kc", q, 3, 0)
    r = c("EXEC")
    expect(isinstance(r, list) and len(r) == 1 and [h[0] for h in r[0][0]] == merged(q, 3), "msearch in MULTI")
    c("DEL", "str", "k8", "ka", "kb", "kc")  # the steps after this one count keys
    print("msearch: ok")


def stall(port, n):
    c = Client(port)
    rng = random.Random(11)
    base = 100000
    batch = []
    for i in range(n):
        id, v, d = paper(base + i, rng)
        batch += [id, f32(v), d]
    t = time.time()
    expect(c("SEMDEX.UPSERT", "stall", *batch) == n, "stall upsert")
    print("%.1f" % ((time.time() - t) * 1000))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "basic":
        basic(a[0])
    elif cmd == "msearch":
        msearch(a[0])
    elif cmd == "ingest":
        ingest(a[0], a[1], int(a[2]), int(a[3]))
    elif cmd == "results":
        results(a[0], a[1], len(a) > 2)
    elif cmd == "inflight":
        inflight(a[0])
    elif cmd == "stall":
        stall(a[0], int(a[1]))
    else:
        fail("unknown step " + cmd)
