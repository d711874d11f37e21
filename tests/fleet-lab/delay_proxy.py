#!/usr/bin/env python3
"""A TCP proxy for the fleet lab's slow link: adds DELAY_MS to each direction (order kept,
throughput not limited) and counts the PostgreSQL round trips that go through it.

A *turn* is a burst of client -> server data that follows server -> client data (or opens
the connection): one round trip of the client. Each turn is written to LOG as a JSON line
with the statements it refers to (frontend messages Q, P and B: simple queries, prepares,
and executions of prepared statements, resolved to their text), so the lab can count round
trips per lease renewal and per claim batch. Every 10 s and at exit a summary line per
connection says how many turns it made and how many per second.

Usage: delay_proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS LOG
"""
import asyncio
import json
import signal
import struct
import sys
import time

LISTEN, TARGET, DELAY, LOG = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000.0, sys.argv[4]
log = open(LOG, "a", buffering=1)
conns = {}
next_id = [0]


def emit(obj):
    log.write(json.dumps(obj) + "\n")


class Frontend:
    """Splits the client's byte stream into PostgreSQL frontend messages."""

    def __init__(self):
        self.buf = b""
        self.started = False
        self.stmts = {}  # prepared statement name -> text

    def feed(self, data):
        """Returns (kind, text) for each Q, P or B message completed by `data`."""
        self.buf += data
        out = []
        while True:
            if not self.started:
                if len(self.buf) < 8:
                    return out
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) < n:
                    return out
                code = struct.unpack("!I", self.buf[4:8])[0]
                self.buf = self.buf[n:]
                if code == 80877103:  # SSLRequest: the answer comes first, then the startup
                    out.append(("ssl", ""))
                    continue
                self.started = True
                out.append(("startup", ""))
                continue
            if len(self.buf) < 5:
                return out
            t = self.buf[:1]
            n = struct.unpack("!I", self.buf[1:5])[0]
            if len(self.buf) < 1 + n:
                return out
            body = self.buf[5:1 + n]
            self.buf = self.buf[1 + n:]
            if t == b"Q":
                out.append(("Q", body.split(b"\0", 1)[0].decode("utf-8", "replace")))
            elif t == b"P":
                name, rest = body.split(b"\0", 1)
                text = rest.split(b"\0", 1)[0].decode("utf-8", "replace")
                self.stmts[name] = text
                out.append(("P", text))
            elif t == b"B":
                parts = body.split(b"\0", 2)
                if len(parts) >= 2:
                    out.append(("B", self.stmts.get(parts[1], "?")))


def short(text):
    return " ".join(text.split())[:160]


async def pump(reader, writer, conn, upstream):
    """Reads one direction; a sender task writes each chunk DELAY after it arrived."""
    q = asyncio.Queue()

    async def sender():
        while True:
            item = await q.get()
            if item is None:
                break
            t, data = item
            wait = t + DELAY - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                break
        try:
            writer.close()
        except Exception:
            pass

    task = asyncio.ensure_future(sender())
    fe = conn["fe"]
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            now = time.monotonic()
            if upstream:
                msgs = fe.feed(data)
                if conn["last"] != "c":
                    conn["turns"] += 1
                    conn["cur"] = {"conn": conn["id"], "t": time.time(), "turn": conn["turns"], "msgs": []}
                    conn["turn_log"].append(conn["cur"])
                conn["cur"]["msgs"] += [[k, short(s)] for k, s in msgs]
                conn["last"] = "c"
            else:
                if conn["last"] == "c" and conn.get("cur"):
                    emit(conn["cur"])
                    conn["cur"] = None
                conn["last"] = "s"
            q.put_nowait((now, data))
    except (ConnectionError, OSError):
        pass
    q.put_nowait(None)
    await task


async def handle(creader, cwriter):
    next_id[0] += 1
    cid = next_id[0]
    host, port = TARGET.rsplit(":", 1)
    try:
        sreader, swriter = await asyncio.open_connection(host, int(port))
    except OSError as e:
        emit({"conn": cid, "t": time.time(), "error": str(e)})
        cwriter.close()
        return
    conn = {"id": cid, "turns": 0, "last": None, "cur": None, "fe": Frontend(), "turn_log": [],
            "opened": time.time()}
    conns[cid] = conn
    emit({"conn": cid, "t": time.time(), "open": str(cwriter.get_extra_info("peername"))})
    await asyncio.gather(pump(creader, swriter, conn, True), pump(sreader, cwriter, conn, False))
    if conn.get("cur"):
        emit(conn["cur"])
    conn["closed"] = time.time()
    emit({"conn": cid, "t": time.time(), "close": True, "turns": conn["turns"]})


def summary():
    now = time.time()
    for c in conns.values():
        span = c.get("closed", now) - c["opened"]
        emit({"summary": c["id"], "turns": c["turns"], "seconds": round(span, 1),
              "turns_per_s": round(c["turns"] / span, 2) if span > 0 else None})


async def main():
    host, port = LISTEN.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    emit({"listening": LISTEN, "target": TARGET, "delay_ms_each_way": DELAY * 1000})
    while not stop.done():
        await asyncio.wait([stop], timeout=10)
        summary()
    server.close()


asyncio.run(main())
