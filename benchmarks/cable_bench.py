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


def run_publisher(kind: str, count: int, pause: float, env: dict[str, str], collector: Collector, *,
                  timeout: float = 120) -> float:
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER, kind, str(count), str(pause)], env=env,
                             stdin=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let the child import and connect
    start = time.monotonic_ns()
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    child.stdin.close()
    if not collector.done.wait(timeout):
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


def decile_rates(collector: Collector, times: list[int]) -> tuple[float, float]:
    """Messages/s over the first and the last tenth of a run (received times): flat when they are close."""
    tenth = len(times) // 10
    first = tenth / ((times[tenth] - times[0]) / 1e9)
    last = tenth / ((times[-1] - times[-1 - tenth]) / 1e9)
    return first, last


class TimedCollector(Collector):
    """A collector that keeps every receipt time too (for the first and last tenth of a long run)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.times: list[int] = []

    def __call__(self, payload: str | bytes) -> None:
        self.times.append(time.monotonic_ns())
        super().__call__(payload)


def bench_long(kind: str, count: int, env: dict[str, str]) -> tuple[float, float, float]:
    """``count`` messages broadcast one by one as fast as one publisher can: (msgs/s, first tenth, last tenth)."""
    collector = TimedCollector(count)
    if kind == "cable":
        from solidstack.cable import pubsub

        pubsub().subscribe("bench", collector, raw=True)
        try:
            rate = run_publisher("cable", count, 0.0, env, collector, timeout=600)
        finally:
            pubsub().unsubscribe("bench", collector)
    else:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        channel = client.pubsub(ignore_subscribe_messages=True)
        channel.subscribe(bench=lambda message: collector(message["data"]))
        thread = channel.run_in_thread(sleep_time=0.001, daemon=True)
        try:
            rate = run_publisher("redis", count, 0.0, env, collector, timeout=600)
        finally:
            thread.stop()
            thread.join(5)
            channel.close()
            client.close()
    first, last = decile_rates(collector, collector.times)
    return rate, first, last


DEPTHS = (0, 100_000, 1_000_000)


def fill(depth: int) -> None:
    """Top the cable table up to ``depth`` messages, all younger than the retention (none may be trimmed)."""
    from solidstack.cable import pubsub

    storage = pubsub().storage  # type: ignore[attr-defined]
    if storage.count() > depth:  # the long run's messages, say: start from an empty table
        storage.db.execute("DELETE FROM solidstack_cable_messages")
    missing = depth - storage.count()
    if missing <= 0:
        return
    rows = ("generate_series(1, :missing)" if storage.db.dialect == "postgresql" else
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :missing) SELECT i FROM n)")
    with storage.db.transaction() as conn:
        conn.execute(storage.db.statement(
            "INSERT INTO solidstack_cable_messages (channel, channel_hash, payload, created_at) "
            f"SELECT 'filler', 1, '[0]', :now FROM {rows} AS filler"), {"missing": missing, "now": time.time()})


def broadcast_rate(count: int) -> float:
    """Broadcasts/s of this process, one by one, at the configured retention and autotrim (the defaults)."""
    from solidstack.cable import pubsub

    bus = pubsub()
    start = time.perf_counter()
    for i in range(count):
        bus.broadcast_raw("depth", f"[{i}]")
    return count / (time.perf_counter() - start)


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


async def ws_latency(url: str, env: dict[str, str], count: int, pause: float) -> list[float]:
    """Broadcast → WebSocket client across processes: a publisher process broadcasts ``[i, monotonic_ns]`` every
    ``pause`` s to a stream one socket subscribes to (through the server process); ms from send to frame."""
    from websockets.asyncio.client import connect

    from solidstack.cable.turbo import derive_key, sign_stream_name

    signed = sign_stream_name("latency", key=derive_key(env["SECRET_KEY_BASE"]))
    identifier = json.dumps({"channel": "Turbo::StreamsChannel", "signed_stream_name": signed})
    async with connect(url, subprotocols=["actioncable-v1-json"], max_queue=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
        while json.loads(await ws.recv()).get("type") != "confirm_subscription":
            pass
        code = ("import sys, time; from solidstack.cable import broadcast\n"
                "count, pause = int(sys.argv[1]), float(sys.argv[2])\nsys.stdin.readline()\n"
                "for i in range(count):\n"
                "    broadcast('latency', [i, time.monotonic_ns()]); time.sleep(pause)\n")
        publisher = subprocess.Popen([sys.executable, "-c", code, str(count), str(pause)], env=env,
                                     stdin=subprocess.PIPE, text=True)
        assert publisher.stdin is not None
        await asyncio.sleep(0.5)
        publisher.stdin.write("go\n")
        publisher.stdin.close()
        latencies = []
        while len(latencies) < count:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            now = time.monotonic_ns()
            message = frame.get("message")
            if isinstance(message, list):
                latencies.append((now - message[1]) / 1e6)
        publisher.wait(10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--throughput", type=int, default=5000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--long", type=int, default=100_000, metavar="N",
                        help="N messages one by one against Redis, first and last tenth (0: skip)")
    parser.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True,
                        help="broadcast rate at 0, 100k and 1M retained messages")
    parser.add_argument("--depth-count", type=int, default=5000)
    parser.add_argument("--ws-messages", type=int, default=1000, help="broadcast → WebSocket latency (0: skip)")
    parser.add_argument("--skip-basic", action="store_true", help="skip the latency and short throughput rows")
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

    if not args.skip_basic:
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

    targets: list[tuple[str, str, str, bool]] = []
    if args.long:
        print(f"{args.long:,} messages broadcast one by one by one publisher process, as fast as it can "
              "(msgs/s over the run; over its first and last tenth):")
        long_results = {}
        for kind in ("cable", "redis"):
            long_results[kind] = bench_long(kind, args.long, env)
            rate, first, last = long_results[kind]
            print(f"{kind:>10}: {rate:,.0f} msgs/s   first tenth {first:,.0f}   last tenth {last:,.0f}")
        (rate, first, last), redis_rate = long_results["cable"], long_results["redis"][0]
        targets.append((f"broadcast one by one, {args.long:,} messages, ≥ 1x Redis", f"{rate / redis_rate:.2f}x",
                        "≥ 1x", rate >= redis_rate))
        targets.append(("flat: last tenth ≥ 0.8x first tenth", f"{last / first:.2f}x", "≥ 0.8x",
                        last >= 0.8 * first))
    if args.depth:
        print(f"broadcasts/s of one process at each table depth ({args.depth_count:,} broadcasts, default "
              "retention and autotrim; the table filled with messages too young to trim):")
        rates = {}
        for depth in DEPTHS:
            fill(depth)
            rates[depth] = broadcast_rate(args.depth_count)
            print(f"   {depth:>9,} retained: {rates[depth]:,.0f} broadcasts/s")
        worst = min(rates.values()) / rates[0]
        targets.append(("depth: the slowest depth ≥ 0.8x the rate at 0", f"{worst:.2f}x", "≥ 0.8x", worst >= 0.8))

    if args.fanout or args.ws_messages:
        port = 28000 + os.getpid() % 1000
        server = subprocess.Popen([sys.executable, "-m", "solidstack", "cable", "serve", "--port", str(port),
                                   "--log-level", "warning"], env=env, cwd=root)
        try:
            wait_for_port(port, 60)
            if args.ws_messages:
                latencies = asyncio.run(ws_latency(f"ws://127.0.0.1:{port}/", env, args.ws_messages, 0.005))
                p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
                print(f"broadcast → WebSocket client across processes ({args.ws_messages} messages, one every 5 ms): "
                      f"p50 {p50:.3f} ms  p99 {p99:.3f} ms")
                targets.append(("broadcast → WebSocket p50 ≤ 0.5 ms", f"{p50:.3f} ms", "≤ 0.5 ms", p50 <= 0.5))
                targets.append(("broadcast → WebSocket p99 ≤ 1.0 ms", f"{p99:.3f} ms", "≤ 1.0 ms", p99 <= 1.0))
            if args.fanout:
                times = asyncio.run(fanout(f"ws://127.0.0.1:{port}/", args.fanout, root, env, args.rounds))
                print(f"fan-out to {args.fanout} WebSocket connections (one server process), broadcast from another "
                      f"process: until all receive, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
        finally:
            server.terminate()
            server.wait(10)
            solidstack.cable.reset()
    print_targets(targets)


def wait_for_port(port: int, timeout: float) -> None:
    """Until the server accepts connections (its start-up takes seconds on a loaded machine)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.5)  # its lifespan (the pub/sub, the router) is up by the time it listens
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def print_targets(targets: list[tuple[str, str, str, bool]]) -> None:
    if targets:
        print("\n| target | measured | wanted | met |\n|---|---|---|---|")
        for name, measured, wanted, met in targets:
            print(f"| {name} | {measured} | {wanted} | {'yes' if met else '**no**'} |")


if __name__ == "__main__":
    main()
