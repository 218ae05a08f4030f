"""Cable under abuse: one socket tries 100,000 subscriptions while another waits for broadcasts.

    .venv/bin/python benchmarks/cable_abuse.py [--subscriptions 100000] [--unlimited]

A uvicorn server (``solidstack cable serve``, the cable tests' app) on SQLite; a bystander subscribes to one
room; an attacker sends ``subscribe`` frames for ``--subscriptions`` rooms as fast as it can, reading what
comes back. Meanwhile this process broadcasts to the bystander's room every 20 ms and records broadcast-to-
receipt latency. Reported: what the attacker got (confirmed, rejected, disconnect), how many frames it sent,
the server's RSS growth, and the bystander's latency p50/p99/max before and during the flood.
``--unlimited`` raises the per-connection limits of cable.yml out of reach, to show what they prevent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cable"))

from cable_helpers import Client, Server, free_port, make_app  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

import solidstack  # noqa: E402
from solidstack.cable import broadcast, reset  # noqa: E402

UNLIMITED = ("  max_subscriptions_per_connection: 1000000\n  max_commands_per_second: 1000000\n"
             "  max_commands_burst: 1000000\n")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(client: Client, identifier: str, samples: int, stop: threading.Event | None = None) -> list[float]:
    """Broadcast to the bystander's room every 20 ms; milliseconds from broadcast to receipt."""
    latencies = []
    for i in range(samples):
        if stop is not None and stop.is_set():
            break
        started = time.perf_counter()
        broadcast("chat:calm", i)
        while True:
            frame = client.recv(timeout=30)
            if frame.get("identifier") == identifier and frame.get("message") == i:
                break
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return latencies


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms (n={len(ordered)})"


def attack(url: str, count: int, result: dict[str, object]) -> None:
    attacker = Client(url + "?user=mallet", max_queue=None)
    attacker.recv()  # welcome
    started, sent = time.perf_counter(), 0
    try:
        for room in range(count):
            attacker.send({"command": "subscribe", "identifier": json.dumps({"channel": "ChatChannel", "room": room})})
            sent += 1
    except ConnectionClosed:
        pass
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            frame = json.loads(attacker.ws.recv(timeout=10))
        except (ConnectionClosed, TimeoutError):
            break
        kind = frame.get("type") or "message"
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "disconnect":
            result["disconnect"] = frame
        if kinds.get("confirm_subscription", 0) + kinds.get("reject_subscription", 0) >= sent:
            break
    result.update(sent=sent, kinds=kinds, seconds=time.perf_counter() - started)
    attacker.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--unlimited", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        root = Path(tmp) / "app"
        os.environ.update(SOLIDSTACK_ROOT=str(root), SOLIDSTACK_ENV="development")
        app = make_app(root)
        if args.unlimited:
            cable_yml = root / "config" / "cable.yml"
            cable_yml.write_text(cable_yml.read_text() + UNLIMITED)
        solidstack.configure(app.root, "development")
        server = Server(root, free_port(), Path(tmp) / "server.log")
        server.start()
        try:
            assert server.process is not None
            bystander = Client(server.url + "?user=carol")
            bystander.recv()
            identifier, _ = bystander.subscribe(channel="ChatChannel", room="calm")
            idle = probe(bystander, identifier, 50)
            rss_before = rss_mib(server.process.pid)
            result: dict[str, object] = {}
            attacker = threading.Thread(target=attack, args=(server.url, args.subscriptions, result))
            attacker.start()
            during: list[float] = []
            while attacker.is_alive():
                during += probe(bystander, identifier, 10)
            attacker.join()
            rss_after = rss_mib(server.process.pid)
            after = probe(bystander, identifier, 50)
            print(f"limits: {'unlimited' if args.unlimited else 'cable.yml defaults'}; "
                  f"attacker tried {args.subscriptions:,} subscriptions")
            print(f"attacker: sent {result['sent']:,} frames in {result['seconds']:.2f} s; got {result['kinds']}; "
                  f"disconnect: {result.get('disconnect')}")
            print(f"server RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after (+{rss_after - rss_before:.0f})")
            print(f"bystander latency idle:   {summary(idle)}")
            print(f"bystander latency during: {summary(during)}")
            print(f"bystander latency after:  {summary(after)}")
            bystander.close()
        finally:
            server.stop()
            reset()


if __name__ == "__main__":
    main()
