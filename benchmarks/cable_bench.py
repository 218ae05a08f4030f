"""Cable speed: broadcast-to-receive latency and messages/s across processes, against Redis pub/sub; fan-out
to 1,000 WebSocket connections on one server process.

    .venv/bin/pip install -e '.[web,dev,bench]'      # redis client; a Redis server on 127.0.0.1:6379
    .venv/bin/python benchmarks/cable_bench.py [--messages 500] [--fanout 1000]
    .venv/bin/python benchmarks/cable_bench.py --postgres postgresql://postgres@127.0.0.1:5432   # cable on PostgreSQL

``--postgres URL`` (a server, without a database name) puts the cable database on PostgreSQL: a scratch
database is created there and dropped after; delivery is then by ``LISTEN/NOTIFY`` across processes.

Latency: a child process publishes one message every 5 ms (an idle system, not a flood); the subscriber in
this process records receive time minus send time (CLOCK_MONOTONIC is shared by processes on Linux).
Throughput: the child publishes as fast as it can; messages/s from first send to last receipt.
Every figure is printed with the Redis figure of the same run and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CABLE_YML = "development:\n  adapter: solid_cable\n  polling_interval: 1.second\n  message_retention: 1.day\n"
DATABASE_YML = "development:\n  cable:\n    adapter: postgresql\n    url: {url}\n"


def write_app(root: Path, postgres_url: str = "") -> None:
    """An app folder with cable.yml, and a database.yml putting the cable database on PostgreSQL when asked."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "cable.yml").write_text(CABLE_YML)
    if postgres_url:
        (root / "config" / "database.yml").write_text(DATABASE_YML.format(url=postgres_url))

PUBLISHER = r"""
import json, os, sys, time
kind, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if kind == "cable":
    from solidstack.cable import pubsub
    bus = pubsub()
    send = lambda payload: bus.broadcast_raw("bench", payload)
else:
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379)
    send = lambda payload: client.publish("bench", payload)
sys.stdin.readline()  # the subscriber is ready
for i in range(count):
    send(json.dumps([i, time.monotonic_ns()]))
    if pause:
        time.sleep(pause)
"""


class Collector:
    def __init__(self, count: int) -> None:
        self.count, self.latencies, self.done = count, [], threading.Event()
        self.last = 0

    def __call__(self, payload: str | bytes) -> None:
        now = time.monotonic_ns()
        _, sent = json.loads(payload)
        self.latencies.append((now - sent) / 1e6)
        self.last = now
        if len(self.latencies) >= self.count:
            self.done.set()


def run_publisher(kind: str, count: int, pause: float, env: dict[str, str], collector: Collector) -> float:
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER, kind, str(count), str(pause)], env=env,
                             stdin=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let the child import and connect
    start = time.monotonic_ns()
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    child.stdin.close()
    if not collector.done.wait(120):
        raise RuntimeError(f"{kind}: only {len(collector.latencies)} of {collector.count} messages arrived")
    child.wait(30)
    return collector.count / ((collector.last - start) / 1e9)


def bench_cable(count: int, pause: float, env: dict[str, str]) -> tuple[list[float], float]:
    from solidstack.cable import pubsub

    collector = Collector(count)
    pubsub().subscribe("bench", collector, raw=True)
    try:
        rate = run_publisher("cable", count, pause, env, collector)
    finally:
        pubsub().unsubscribe("bench", collector)
    return collector.latencies, rate


def bench_redis(count: int, pause: float, env: dict[str, str]) -> tuple[list[float], float]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    channel = client.pubsub(ignore_subscribe_messages=True)
    collector = Collector(count)
    channel.subscribe(bench=lambda message: collector(message["data"]))
    thread = channel.run_in_thread(sleep_time=0.001, daemon=True)
    try:
        rate = run_publisher("redis", count, pause, env, collector)
    finally:
        thread.stop()
        thread.join(5)
        channel.close()
        client.close()
    return collector.latencies, rate


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fanout(url: str, connections: int, root: Path, env: dict[str, str], rounds: int) -> list[float]:
    from websockets.asyncio.client import connect

    from solidstack.cable.turbo import derive_key, sign_stream_name

    signed = sign_stream_name("fanout", key=derive_key(env["SECRET_KEY_BASE"]))
    identifier = json.dumps({"channel": "Turbo::StreamsChannel", "signed_stream_name": signed})
    sockets = []
    for _ in range(connections):
        ws = await connect(url, subprotocols=["actioncable-v1-json"], max_queue=None)
        await ws.recv()  # welcome
        await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
        sockets.append(ws)

    async def until(ws, predicate) -> int:  # type: ignore[no-untyped-def]
        while True:
            frame = json.loads(await ws.recv())
            if predicate(frame):
                return time.monotonic_ns()

    await asyncio.gather(*(until(ws, lambda f: f.get("type") == "confirm_subscription") for ws in sockets))
    # A publisher process that is already running: each line on its stdin is one broadcast, and it answers
    # with the monotonic time just before the broadcast, so start-up is not counted.
    code = ("import sys, time; from solidstack.cable import broadcast\n"
            "for line in sys.stdin:\n"
            "    t = time.monotonic_ns(); broadcast('fanout', line.strip()); print(t, flush=True)\n")
    publisher = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
    assert publisher.stdin is not None and publisher.stdout is not None
    times = []
    for round_ in range(rounds):
        waiters = [asyncio.ensure_future(until(ws, lambda f, r=round_: f.get("message") == f"round {r}"))
                   for ws in sockets]
        await asyncio.sleep(0.3)
        publisher.stdin.write(f"round {round_}\n")
        publisher.stdin.flush()
        ends = await asyncio.gather(*waiters)
        start = int(await asyncio.to_thread(publisher.stdout.readline))
        times.append((max(ends) - start) / 1e6)
    publisher.stdin.close()
    publisher.wait(10)
    for ws in sockets:
        await ws.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--throughput", type=int, default=5000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", default="",
                        help="the cable database on this PostgreSQL server (a scratch database, dropped after)")
    args = parser.parse_args()
    if args.postgres:
        import psycopg

        server = args.postgres.rstrip("/")
        name = f"cable_bench_{os.getpid()}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        try:
            run(args, f"{server}/{name}")
        finally:
            import solidstack.db

            solidstack.db.close_all()
            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    else:
        run(args, "")


def run(args: argparse.Namespace, postgres_url: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="cable-bench-"))
    write_app(root, postgres_url)
    import solidstack
    from solidstack.tasks import migrate_all

    app = solidstack.configure(root, "development")
    migrate_all(app)
    env = dict(os.environ, SECRET_KEY_BASE="bench")
    engine = "PostgreSQL (LISTEN/NOTIFY)" if postgres_url else "SQLite (wake-up sockets)"
    print(f"cable on {engine}, polling_interval 1 s, vs Redis pub/sub, {time.strftime('%F %T')}")

    results = {}
    for name, bench in (("solidstack", bench_cable), ("redis", bench_redis)):
        latencies, _ = bench(args.messages, 0.005, env)
        _, rate = bench(args.throughput, 0.0, env)
        results[name] = (pct(latencies, 0.5), pct(latencies, 0.99), rate)
        print(f"{name:>10}: latency p50 {results[name][0]:.3f} ms  p99 {results[name][1]:.3f} ms   "
              f"{rate:,.0f} messages/s")
    cable, redis_ = results["solidstack"], results["redis"]
    print(f"     ratio: p50 x{cable[0] / redis_[0]:.1f}  p99 x{cable[1] / redis_[1]:.1f}  "
          f"messages/s x{cable[2] / redis_[2]:.2f}  (solidstack / redis)")

    port = 28000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-m", "solidstack", "cable", "serve", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=root)
    try:
        time.sleep(1.5)
        times = asyncio.run(fanout(f"ws://127.0.0.1:{port}/", args.fanout, root, env, args.rounds))
        print(f"fan-out to {args.fanout} WebSocket connections (one server process), broadcast from another "
              f"process: until all receive, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    finally:
        server.terminate()
        server.wait(10)
        solidstack.cable.reset()


if __name__ == "__main__":
    main()
