"""The Action Cable endpoint in a real uvicorn process, driven by a Python WebSocket client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cable_helpers import SECRET, Client, Server, broadcast_from_child, child_env, free_port, welcome
from websockets.exceptions import ConnectionClosed, InvalidStatus

import solidstack
from solidstack.cable.turbo import derive_key, sign_stream_name, verify_stream_name


def test_welcome_ping_subscribe_and_a_broadcast_from_another_process(server: Server) -> None:
    client = welcome(server)
    ping = client.recv(timeout=5, pings=True)
    assert ping["type"] == "ping" and isinstance(ping["message"], int)
    identifier, reply = client.subscribe(channel="ChatChannel", room=1)
    assert reply == {"identifier": identifier, "type": "confirm_subscription"}
    broadcast_from_child(server.root, "chat:1", {"text": "from a job"})
    assert client.recv() == {"identifier": identifier, "message": {"text": "from a job"}}
    client.close()


def test_actions_plain_async_and_failing(server: Server) -> None:
    alice, bob = welcome(server), welcome(server, "?user=bob")
    a_id, _ = alice.subscribe(channel="ChatChannel", room="lobby")
    b_id, _ = bob.subscribe(channel="ChatChannel", room="lobby")
    alice.perform(a_id, "speak", text="hi")  # a plain method: broadcasts through the database
    assert bob.recv() == {"identifier": b_id, "message": {"from": "alice", "text": "hi"}}
    assert alice.recv() == {"identifier": a_id, "message": {"from": "alice", "text": "hi"}}
    alice.perform(a_id, "echo", text="only me")  # async def: transmits to this subscription only
    assert alice.recv() == {"identifier": a_id, "message": {"echo": "only me"}}
    alice.perform(a_id, "boom")  # raises in the server; logged, the socket stays
    alice.perform(a_id, "subscribed")  # base-class methods are not actions
    alice.perform(a_id, "nonexistent")
    alice.perform(a_id, "whoami")
    assert alice.recv() == {"identifier": a_id, "message": {"user": "alice"}}
    assert "RuntimeError: an action that fails" in server.output()
    alice.close()
    bob.close()


def test_unauthorised_subscription_and_unknown_channel_are_rejected(server: Server) -> None:
    client = welcome(server)
    identifier, reply = client.subscribe(channel="SecretChannel")
    assert reply == {"identifier": identifier, "type": "reject_subscription"}
    identifier, reply = client.subscribe(channel="NoSuchChannel")
    assert reply == {"identifier": identifier, "type": "reject_subscription"}
    broadcast_from_child(server.root, "secret", "classified")
    admin = welcome(server, "?user=admin")
    identifier, reply = admin.subscribe(channel="SecretChannel")
    assert reply["type"] == "confirm_subscription"
    broadcast_from_child(server.root, "secret", "for admins")
    assert admin.recv()["message"] == "for admins"
    # The rejected client got neither message.
    with pytest.raises(TimeoutError):
        client.recv(timeout=0.5)
    client.close()
    admin.close()


def test_an_unauthorised_connection_is_told_not_to_reconnect(server: Server) -> None:
    client = Client(server.url + "?user=mallory")
    assert client.recv() == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=5)


def test_origins(server: Server) -> None:
    host = f"127.0.0.1:{server.port}"
    for origin in (f"http://{host}", "https://allowed.example", "https://app.trusted.example"):
        welcome(server, origin=origin).close()
    for origin in ("https://evil.example", "https://allowed.example.evil.example"):
        with pytest.raises(InvalidStatus) as info:
            Client(server.url, origin=origin)
        assert info.value.response.status_code == 403
    assert "request origin not allowed: https://evil.example" in server.output()


def test_bad_input_is_logged_and_the_connection_stays_usable(server: Server) -> None:
    bystander = welcome(server, "?user=carol")
    b_id, _ = bystander.subscribe(channel="ChatChannel", room="calm")
    client = welcome(server)
    identifier, _ = client.subscribe(channel="ChatChannel", room="bad")
    client.send("{not json")
    client.send("[1, 2, 3]")
    client.send(b"\x00\x01binary")
    client.send({"command": "subscribe"})
    client.send({"command": "subscribe", "identifier": "not json"})
    assert client.recv() == {"identifier": "not json", "type": "reject_subscription"}
    client.send({"command": "subscribe", "identifier": "[1]"})
    assert client.recv() == {"identifier": "[1]", "type": "reject_subscription"}
    client.send({"command": "dance", "identifier": identifier})
    client.send({"command": "message", "identifier": identifier, "data": "not json"})
    client.send({"command": "message", "identifier": identifier, "data": {"action": "echo"}})
    client.send({"command": "message", "identifier": json.dumps({"channel": "ChatChannel", "room": "x"}),
                 "data": "{}"})
    client.send({"command": "unsubscribe", "identifier": "{}"})
    client.send({"command": "message", "identifier": identifier, "data": json.dumps({"action": "echo",
                                                                                     "text": "x" * 5000})})
    client.perform(identifier, "echo", text="still here")
    assert client.recv() == {"identifier": identifier, "message": {"echo": "still here"}}
    broadcast_from_child(server.root, "chat:calm", "fine")
    assert bystander.recv() == {"identifier": b_id, "message": "fine"}
    log = server.output()
    for line in ("not JSON", "not a JSON object", "binary frame", "without a string identifier",
                 "unrecognized command", "unable to find subscription", "dropped a 5", "(limit 4096)"):
        assert line in log, line
    assert "Traceback" not in log
    client.close()
    bystander.close()


def test_unsubscribe_stops_the_stream(server: Server) -> None:
    client = welcome(server)
    identifier, _ = client.subscribe(channel="ChatChannel", room=7)
    client.send({"command": "unsubscribe", "identifier": identifier})
    other, _ = client.subscribe(channel="ChatChannel", room=8)
    broadcast_from_child(server.root, "chat:7", "gone")
    broadcast_from_child(server.root, "chat:8", "here")
    assert client.recv() == {"identifier": other, "message": "here"}
    client.close()


def test_turbo_streams_with_signed_stream_names(server: Server) -> None:
    key = derive_key(SECRET)
    signed = sign_stream_name("board", 42, key=key)
    assert verify_stream_name(signed, key=key) == "board:42"
    client = welcome(server)
    identifier, reply = client.subscribe(channel="Turbo::StreamsChannel", signed_stream_name=signed)
    assert reply["type"] == "confirm_subscription"
    html = '<turbo-stream action="append" target="cards"><template><p>hi</p></template></turbo-stream>'
    broadcast_from_child(server.root, "board:42", html)
    assert client.recv() == {"identifier": identifier, "message": html}
    data, _, digest = signed.rpartition("--")
    forged = sign_stream_name("board", 43, key=b"another key")
    for bad in (f"{data}--{'0' * len(digest)}", forged, "board:42", None, 42):
        bad_id, reply = client.subscribe(channel="Turbo::StreamsChannel", signed_stream_name=bad)
        assert reply == {"identifier": bad_id, "type": "reject_subscription"}
    client.close()


def test_turbo_signature_matches_the_rails_message_verifier_format() -> None:
    key = derive_key(SECRET)
    signed = sign_stream_name("room:1", key=key)
    data, _, digest = signed.partition("--")
    import base64
    import hashlib
    import hmac

    assert base64.b64decode(data) == b'"room:1"'
    assert digest == hmac.new(key, data.encode(), hashlib.sha256).hexdigest()
    # The 7.1+ envelope is accepted too.
    wrapped = base64.b64encode(b'{"_rails":{"data":"room:1"}}').decode()
    assert verify_stream_name(f"{wrapped}--{hmac.new(key, wrapped.encode(), hashlib.sha256).hexdigest()}",
                              key=key) == "room:1"


def test_server_restart_tells_clients_to_reconnect_and_they_can(server: Server) -> None:
    client = welcome(server)
    client.subscribe(channel="ChatChannel", room=1)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert client.recv() == {"type": "disconnect", "reason": "server_restart", "reconnect": True}
    server.process.wait(10)
    server.start()
    again = welcome(server)
    identifier, reply = again.subscribe(channel="ChatChannel", room=1)
    assert reply["type"] == "confirm_subscription"
    broadcast_from_child(server.root, "chat:1", "after restart")
    assert again.recv() == {"identifier": identifier, "message": "after restart"}
    again.close()


def test_plain_http_gets_upgrade_required(server: Server) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
    assert info.value.code == 426
    info.value.close()


def test_a_remote_disconnect_closes_that_users_sockets_only(server: Server) -> None:
    # From another process, as a sign-out request or a job would: every socket of alice, none of bob's.
    alice, alice_too, bob = welcome(server, "?user=alice"), welcome(server, "?user=alice"), welcome(server, "?user=bob")
    code = ("from solidstack.cable import Connection, remote_connections\n"
            "class UserConnection(Connection):\n    identified_by = ('current_user',)\n"
            "remote_connections(UserConnection).where(current_user='alice').disconnect(reconnect=False)\n")
    subprocess.run([sys.executable, "-c", code], env=child_env(server.root), check=True, timeout=30)
    for client in (alice, alice_too):
        assert client.recv() == {"type": "disconnect", "reason": "remote", "reconnect": False}
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
    identifier, reply = bob.subscribe(channel="ChatChannel", room=7)
    assert reply["type"] == "confirm_subscription"
    bob.perform(identifier, "whoami")
    assert bob.recv() == {"identifier": identifier, "message": {"user": "bob"}}
    bob.close()
    # An anonymous socket has no internal stream; a where() naming no identifier of the class is refused.
    from solidstack.cable import Connection, remote_connections

    with pytest.raises(ValueError, match="unknown identifier"):
        remote_connections(Connection).where(current_user="alice")


def test_frames_are_not_compressed_unless_asked(cable_app: solidstack.App, tmp_path: Path) -> None:
    # The client offers permessage-deflate (websockets does by default, as browsers do); `cable serve` declines
    # it unless started with --per-message-deflate: compressing costs each small frame ~0.05 ms (decision 0221).
    for flag, compressed in (([], False), (["--per-message-deflate"], True)):
        port = free_port()
        command = [sys.executable, "-c", "from solidstack.cli import main; main()", "cable", "serve",
                   "cable_test_app:cable", "--port", str(port), "--log-level", "warning", *flag]
        srv = Server(cable_app.root, port, tmp_path / f"server-{port}.log", command)
        srv.start()
        try:
            client = welcome(srv)
            try:
                offered = client.ws.request.headers.get("Sec-WebSocket-Extensions", "")  # type: ignore[union-attr]
                accepted = client.ws.response.headers.get("Sec-WebSocket-Extensions", "")  # type: ignore[union-attr]
                assert "permessage-deflate" in offered
                assert ("permessage-deflate" in accepted) is compressed, (flag, accepted)
            finally:
                client.close()
        finally:
            srv.stop()
