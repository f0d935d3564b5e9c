#!/usr/bin/env python3
"""Abusive HTTP clients for tests/e2e/http-abuse.sh (standard library only).

    e2e-http.py hold --port P --count N --mode idle|headers|body [--sources K]
                     [--searches S] [--watch SECONDS] [--ready FILE] [--hold SECONDS]

Opens N connections to 127.0.0.1:P from the source addresses 127.0.0.2 ..
127.0.0.(K+1) in turn (Linux accepts any 127/8 source), so that a per-address
connection cap can be tested apart from the total. In mode `headers` each
connection sends a request line and then one header byte per second
(slowloris); in mode `body` complete headers announcing a 100000-byte JSON
body and then one body byte per second; in mode `idle` nothing.

After 1 s it counts the connections the server closed at once (refused),
then runs S searches (POST /search, one connection each, from 127.0.0.1,
10 s timeout) while the others stay open and trickling, then keeps trickling
for --watch seconds and reports when the server closed each connection.
With --ready it writes FILE once the connections are open and the searches
done, and keeps them open --hold more seconds (for a shutdown test).

Prints one JSON object: opened, refused, searches_ok, searches_failed,
closed (by the end of the watch), closed_after (sorted seconds after open).

    e2e-http.py raw --port P --file F [--timeout S]

Sends the bytes of F on one connection (pipelined requests, odd headers),
reads until the server closes or S seconds (10) pass, and prints the status
code of every response, one per line.
"""
import argparse
import http.client
import json
import os
import re
import select
import socket
import sys
import time


def open_conns(port, count, sources):
    conns = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.%d" % (2 + i % sources), 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        conns.append(s)
    # Wait for the handshakes (the kernel completes them before accept).
    deadline = time.time() + 10
    pending = {s.fileno(): s for s in conns}
    while pending and time.time() < deadline:
        p = select.poll()
        for fd in pending:
            p.register(fd, select.POLLOUT)
        for fd, _ in p.poll(500):
            pending.pop(fd, None)
    return conns


def trickle(conns, mode, step, open_set):
    """Sends the next byte of each open connection's slow request."""
    for s in list(open_set):
        if step == 0:
            if mode == "headers":
                data = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            elif mode == "body":
                data = (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            else:
                return
        else:
            if mode == "idle":
                return
            data = b"a" if mode == "headers" else b" "
        try:
            s.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass  # noticed as closed by poll_closed


def poll_closed(open_set, closed_at, t0):
    """Moves connections the server closed (EOF, reset or an answer) out of open_set."""
    if not open_set:
        return
    p = select.poll()
    fds = {}
    for s in open_set:
        p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        fds[s.fileno()] = s
    for fd, _ in p.poll(0):
        s = fds[fd]
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        open_set.discard(s)
        closed_at.append(round(time.time() - t0, 2))
        s.close()


def search(port, i):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/search", json.dumps({"query": "idle connection test query %d" % i}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status == 200
    except OSError:
        return False


def raw(port, path, timeout):
    with open(path, "rb") as f:
        data = f.read()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # the server may answer and close before reading everything
    got = b""
    end = time.time() + timeout
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    # A status line follows the previous body directly (no line break).
    for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", got):
        print(m.group(1).decode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["hold", "raw"])
    ap.add_argument("--file")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--mode", choices=["idle", "headers", "body"], default="idle")
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--searches", type=int, default=0)
    ap.add_argument("--watch", type=float, default=0)
    ap.add_argument("--ready")
    ap.add_argument("--hold", type=float, default=0)
    a = ap.parse_args()
    if a.cmd == "raw":
        return raw(a.port, a.file, a.timeout)

    t0 = time.time()
    conns = open_conns(a.port, a.count, a.sources)
    open_set = set(conns)
    closed_at = []
    step = 0
    trickle(conns, a.mode, step, open_set)
    time.sleep(1.0)
    poll_closed(open_set, closed_at, t0)
    refused = len(closed_at)

    ok = failed = 0
    last = time.time()
    for i in range(a.searches):
        if search(a.port, i):
            ok += 1
        else:
            failed += 1
        if time.time() - last >= 1:
            step += 1
            trickle(conns, a.mode, step, open_set)
            last = time.time()
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("%d\n" % len(open_set))
    end = time.time() + max(a.watch, a.hold)
    while time.time() < end and open_set:
        time.sleep(0.2)
        poll_closed(open_set, closed_at, t0)
        if time.time() - last >= 1:
            step += 1
            trickle(conns, a.mode, step, open_set)
            last = time.time()
    poll_closed(open_set, closed_at, t0)
    print(json.dumps({"opened": len(conns), "refused": refused, "searches_ok": ok,
                      "searches_failed": failed, "closed": len(closed_at),
                      "still_open": len(open_set), "closed_after": sorted(closed_at)}))
    for s in open_set:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
