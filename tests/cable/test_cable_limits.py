"""Per-socket bounds of the Action Cable endpoint, and frames too deep to parse (issue 11, item 5)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cable_helpers import Server, broadcast_from_child, free_port, welcome
from websockets.exceptions import ConnectionClosed

import solidstack
from solidstack.cable.limits import CommandBudget, ConnectionLimits


def test_the_command_budget_allows_a_burst_then_its_rate() -> None:
    budget = CommandBudget(rate=10, burst=5, now=100.0)
    assert [budget.spend(100.0) for _ in range(6)] == [True] * 5 + [False]
    assert budget.spend(100.05) is False  # half a token
    assert budget.spend(100.11) is True  # one token back after 1/rate seconds
    assert [budget.spend(200.0) for _ in range(6)] == [True] * 5 + [False]  # refills to the burst, no more
    assert budget.spend(150.0) is False  # a clock that steps back gives nothing
    with pytest.raises(ValueError):
        ConnectionLimits(commands_per_second=float("nan"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_one_socket_trying_100000_subscriptions_is_cut_off_and_others_still_get_broadcasts(server: Server) -> None:
    bystander = welcome(server, "?user=carol")
    b_id, reply = bystander.subscribe(channel="ChatChannel", room="calm")
    assert reply["type"] == "confirm_subscription"
    assert server.process is not None
    rss_before = rss_kib(server.process.pid)
    # max_queue=None: the client keeps reading while it floods, so it sees the server's disconnect at once.
    attacker = welcome(server, "?user=mallet", max_queue=None)
    during = threading.Thread(target=broadcast_from_child, args=(server.root, "chat:calm", "during"))
    during.start()
    sent = 0
    with pytest.raises(ConnectionClosed):
        for room in range(100_000):
            attacker.send({"command": "subscribe", "identifier": json.dumps({"channel": "ChatChannel", "room": room})})
            sent += 1
        attacker.recv(timeout=30)  # not cut off: the test fails below
    frames = []
    while True:
        try:
            frames.append(json.loads(attacker.ws.recv(timeout=5)))
        except (ConnectionClosed, TimeoutError):
            break
    during.join(30)
    kinds = [frame.get("type") for frame in frames if frame.get("type") != "ping"]
    defaults = ConnectionLimits()
    assert sent < 100_000
    assert kinds.count("confirm_subscription") == defaults.max_subscriptions
    # The rest of the burst is rejected (the budget refills while the server works: a generous bound).
    assert 0 < kinds.count("reject_subscription") < 1_000
    assert frames[-1] == {"type": "disconnect", "reason": "too_many_commands", "reconnect": False}
    # The bystander got the broadcast sent during the flood and one sent after it.
    broadcast_from_child(server.root, "chat:calm", "after")
    assert bystander.recv(timeout=10) == {"identifier": b_id, "message": "during"}
    assert bystander.recv(timeout=10) == {"identifier": b_id, "message": "after"}
    # 100,000 subscriptions took +226 MB; a bounded socket leaves the server's memory about where it was.
    assert rss_kib(server.process.pid) - rss_before < 64 * 1024
    log = server.output()
    assert "rejected a subscription of mallet: it holds 100" in log
    assert "closing the socket of mallet: more than 200 commands at once or 50 per second" in log
    bystander.close()


@pytest.fixture
def limited_server(cable_app: solidstack.App, tmp_path: Path) -> Iterator[Server]:
    """The cable test server with ``max_subscriptions_per_connection: 3`` and a budget of 10 frames, 1 per 10 s."""
    cable_yml = cable_app.root / "config" / "cable.yml"
    cable_yml.write_text(cable_yml.read_text() + "  max_subscriptions_per_connection: 3\n"
                         "  max_commands_per_second: 0.1\n  max_commands_burst: 10\n")
    srv = Server(cable_app.root, free_port(), tmp_path / "server.log")
    srv.start()
    yield srv
    srv.stop()


def test_limits_come_from_cable_yml_subscriptions_beyond_are_rejected(limited_server: Server) -> None:
    client = welcome(limited_server)
    ids = []
    for room in range(3):
        identifier, reply = client.subscribe(channel="ChatChannel", room=room)
        assert reply == {"identifier": identifier, "type": "confirm_subscription"}
        ids.append(identifier)
    identifier, reply = client.subscribe(channel="ChatChannel", room=3)
    assert reply == {"identifier": identifier, "type": "reject_subscription"}
    client.send({"command": "unsubscribe", "identifier": ids[0]})  # room for one more
    identifier, reply = client.subscribe(channel="ChatChannel", room=4)
    assert reply == {"identifier": identifier, "type": "confirm_subscription"}
    broadcast_from_child(limited_server.root, "chat:4", "in")
    assert client.recv() == {"identifier": identifier, "message": "in"}
    # 6 frames so far; the budget of 10 goes with 4 more (plus one per 10 s of refill): then disconnect.
    with pytest.raises(ConnectionClosed):
        for _ in range(20):
            client.perform(identifier, "whoami")
            frame = client.recv()
            if frame.get("type") == "disconnect":
                assert frame == {"type": "disconnect", "reason": "too_many_commands", "reconnect": False}
                client.recv(timeout=5)
    log = limited_server.output()
    assert "rejected a subscription of alice: it holds 3, the most a connection may" in log
    assert "closing the socket of alice: more than 10 commands at once or 0.1 per second" in log


@pytest.fixture
def roomy_server(cable_app: solidstack.App, tmp_path: Path) -> Iterator[Server]:
    """The test app with the default frame limit (1 MiB), so a 400 KB frame reaches the parser."""
    port = free_port()
    srv = Server(cable_app.root, port, tmp_path / "server.log", command=[
        sys.executable, "-c", "from solidstack.cli import main; main()", "cable", "serve", "cable_test_app:roomy",
        "--port", str(port), "--log-level", "warning"])
    srv.start()
    yield srv
    srv.stop()


def test_a_frame_nested_200000_levels_deep_is_logged_and_the_socket_kept(roomy_server: Server) -> None:
    client = welcome(roomy_server)
    identifier, _ = client.subscribe(channel="ChatChannel", room="deep")
    deep = "[" * 200_000 + "]" * 200_000
    client.send(deep)
    client.send({"command": "subscribe", "identifier": deep})
    assert client.recv() == {"identifier": deep, "type": "reject_subscription"}
    client.send({"command": "message", "identifier": identifier, "data": deep})
    client.perform(identifier, "echo", text="still here")
    assert client.recv() == {"identifier": identifier, "message": {"echo": "still here"}}
    client.close()
    log = roomy_server.output()
    assert "dropped a frame that is nested too deeply to parse (400000 characters)" in log
    assert "rejected a subscription whose identifier is not a JSON object" in log
    assert "dropped a message whose data is not a JSON object" in log
    assert "Traceback" not in log
