"""Where the time goes from a broadcast to the frame on a WebSocket client, hop by hop, across three processes.

    .venv/bin/python benchmarks/cable_hops.py [--messages 1000] [--pause 0.005] [--ws websockets-sansio]

A publisher process broadcasts ``[i, t0]`` every ``--pause`` s on SQLite (as ``cable_bench.py``'s WebSocket row
does); a server process (``solidstack cable serve``'s app and uvicorn settings) records when each message passes
each hop; this process is the client. Every timestamp is CLOCK_MONOTONIC (shared by processes on Linux). Hops:

  insert     t0 → the message's row committed (publisher)
  notify     → the wake-up datagrams sent (publisher)
  wake       → the server's listener thread back from its wait (its poll woke)
  poll       → the message read (from its datagram, or from the table: decision 0222) and the pub/sub callback
               entered (listener thread)
  handoff    → the router's dispatch running on the event loop (call_soon_threadsafe)
  loop       → the frame handed to the WebSocket (the outbox, the writer task)
  send       → the WebSocket implementation done with it (uvicorn's send)
  client     → the frame received and decoded by this process's client (``websockets``)

Medians and 99th percentiles per hop, with the load average; ``--ws`` picks uvicorn's WebSocket implementation.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

PUBLISHER = r"""
import json, sys, time
from solidstack.cable import pubsub
from solidstack.cable.pubsub import announcement
from solidstack.cable.wakeup import notify
count, pause, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
bus = pubsub()
bus.storage.insert("warm-up", "0")
sys.stdin.readline()
trace = []
now = time.monotonic_ns
for i in range(count):
    t0 = now()
    payload = json.dumps([i, t0])
    new_id = bus.storage.insert("latency", payload)   # SolidCablePubSub.broadcast_raw, step by step
    t1 = now()
    notify(bus._wakeup_dir, announcement(new_id, "latency", payload))
    t2 = now()
    trace.append((i, t0, t1, t2))
    time.sleep(pause)
json.dump(trace, open(out, "w"))
"""

SERVER = r"""
import json, os, signal, sys, time
import uvicorn
from starlette.websockets import WebSocket
from solidstack.cable import asgi, router, storage
from solidstack.db import wakeup
from solidstack.cable.cli import load_app
port, out, ws, deflate = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
now = time.monotonic_ns
woken, polled, called, dispatched, handed, sent = [], [], [], [], [], []

receive = wakeup.WakeupSocket.receive
def traced_receive(self, timeout, size):
    result = receive(self, timeout, size)
    woken.append(now())
    return result
wakeup.WakeupSocket.receive = traced_receive

poll = storage.CableStorage.poll
def traced_poll(self, since, channels, **kw):
    result = poll(self, since, channels, **kw)
    polled.append((now(), [m.payload for m in result.messages]))
    return result
storage.CableStorage.poll = traced_poll

make_callback = router.StreamRouter._callback
def traced_callback(self, stream):
    inner = make_callback(self, stream)
    def on_message(payload):
        called.append((now(), payload))
        inner(payload)
    return on_message
router.StreamRouter._callback = traced_callback

dispatch = router.StreamRouter._dispatch
def traced_dispatch(self, stream, payload):
    dispatched.append((now(), payload))
    dispatch(self, stream, payload)
router.StreamRouter._dispatch = traced_dispatch

send_text = WebSocket.send_text
async def traced_send_text(self, text):
    handed.append((now(), text))
    await send_text(self, text)
    sent.append((now(), text))
WebSocket.send_text = traced_send_text

def dump(*_):
    def index(payload):
        try:
            value = json.loads(payload)
        except ValueError:
            return None
        if isinstance(value, dict):
            value = value.get("message")
        return value[0] if isinstance(value, list) and len(value) == 2 else None
    trace = {"woken": woken,
             "polled": [(t, [index(p) for p in ps]) for t, ps in polled],
             "called": [(t, index(p)) for t, p in called],
             "dispatched": [(t, index(p)) for t, p in dispatched],
             "handed": [(t, index(p)) for t, p in handed],
             "sent": [(t, index(p)) for t, p in sent]}
    with open(out, "w") as file:
        json.dump(trace, file)
    os._exit(0)  # the trace is all this process is for
signal.signal(signal.SIGUSR1, dump)
app = load_app(None)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws=ws,
            ws_per_message_deflate=deflate)
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client(url: str, env: dict[str, str], count: int, pause: float, folder: Path) -> dict[int, int]:
    from websockets.asyncio.client import connect

    from solidstack.cable.turbo import derive_key, sign_stream_name

    signed = sign_stream_name("latency", key=derive_key(env["SECRET_KEY_BASE"]))
    identifier = json.dumps({"channel": "Turbo::StreamsChannel", "signed_stream_name": signed})
    received: dict[int, int] = {}
    async with connect(url, subprotocols=["actioncable-v1-json"], max_queue=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
        while json.loads(await ws.recv()).get("type") != "confirm_subscription":
            pass
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(count), str(pause),
                                      str(folder / "publisher.json")], env=env, stdin=subprocess.PIPE, text=True)
        assert publisher.stdin is not None
        await asyncio.sleep(1.0)
        publisher.stdin.write("go\n")
        publisher.stdin.close()
        while len(received) < count:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            t = time.monotonic_ns()
            message = frame.get("message")
            if isinstance(message, list):
                received[message[0]] = t
        publisher.wait(30)
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's ws implementation")
    parser.add_argument("--deflate", action=argparse.BooleanOptionalAction, default=False,
                        help="permessage-deflate on the socket (uvicorn's default; solidstack cable serve's is off)")
    args = parser.parse_args()
    from cable_bench import wait_for_port, write_app

    import solidstack
    from solidstack.tasks import migrate_all

    folder = Path(tempfile.mkdtemp(prefix="cable-hops-"))
    write_app(folder)
    migrate_all(solidstack.configure(folder, "development"))  # also for the child processes
    env = dict(os.environ, SECRET_KEY_BASE="bench")
    port = 29000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(folder / "server.json"), args.ws,
                               "1" if args.deflate else "0"],
                              env=env, cwd=folder)
    try:
        wait_for_port(port, 60)
        load_before = os.getloadavg()[0]
        received = asyncio.run(client(f"ws://127.0.0.1:{port}/", env, args.messages, args.pause, folder))
        load_after = os.getloadavg()[0]
    finally:
        import signal

        server.send_signal(signal.SIGUSR1)
        server.wait(30)
    publisher = {i: (t0, t1, t2) for i, t0, t1, t2 in json.loads((folder / "publisher.json").read_text())}
    trace = json.loads((folder / "server.json").read_text())

    def first_at(events: list[list]) -> dict[int, int]:  # type: ignore[type-arg]
        found: dict[int, int] = {}
        for t, i in events:
            if i is not None and i not in found:
                found[i] = t
        return found

    polled: set[int] = {i for _, indexes in trace["polled"] for i in indexes if i is not None}
    called, dispatched = first_at(trace["called"]), first_at(trace["dispatched"])
    woken_at: dict[int, int] = {}
    woken = sorted(trace["woken"])
    for i, t in called.items():  # the listener's last return from its wait before the callback
        k = bisect.bisect_right(woken, t)
        woken_at[i] = woken[k - 1] if k else t
    handed, sent = first_at(trace["handed"]), first_at(trace["sent"])
    names = ("insert", "notify", "wake", "poll", "handoff", "loop", "send", "client")
    hops: dict[str, list[float]] = {name: [] for name in (*names, "total")}
    for i, (t0, t1, t2) in publisher.items():
        if not all(i in d for d in (woken_at, called, dispatched, handed, sent, received)):
            continue
        points = [t0, t1, t2, woken_at[i], called[i], dispatched[i], handed[i], sent[i], received[i]]
        for name, (a, b) in zip(names, itertools.pairwise(points), strict=True):
            hops[name].append((b - a) / 1e6)
        hops["total"].append((received[i] - t0) / 1e6)
    deflate = "on" if args.deflate else "off"
    print(f"broadcast → WebSocket client, hop by hop ({len(hops['total'])} of {args.messages} messages, one every "
          f"{args.pause * 1000:g} ms, uvicorn ws={args.ws}, permessage-deflate {deflate}), "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {load_before:.2f} → {load_after:.2f}, "
          f"{os.cpu_count()} CPUs")
    by_table = sum(1 for i in publisher if i in polled)
    print(f"read from the table: {by_table} of {len(publisher)} messages (the rest came in their datagram)")
    print(f"{'hop':>8}  {'p50 ms':>8}  {'p99 ms':>8}")
    for name, values in hops.items():
        if values:
            print(f"{name:>8}  {statistics.median(values):8.3f}  {pct(values, 0.99):8.3f}")
    if hops["total"]:
        p50, p99 = statistics.median(hops["total"]), pct(hops["total"], 0.99)
        print("| target | measured | wanted | met |\n|---|---|---|---|")
        print(f"| broadcast → WebSocket p50 ≤ 0.5 ms | {p50:.3f} ms | ≤ 0.5 ms | {'yes' if p50 <= 0.5 else '**no**'} |")
        print(f"| broadcast → WebSocket p99 ≤ 1.0 ms | {p99:.3f} ms | ≤ 1.0 ms | {'yes' if p99 <= 1.0 else '**no**'} |")


if __name__ == "__main__":
    main()
