"""Remote connections: the internal stream each identified connection listens on, and the command sent there."""

from __future__ import annotations

import pytest

from solidstack.cable import Connection, MemoryPubSub, RemoteConnections


class RoomConnection(Connection):
    identified_by = ("user", "room")


def test_the_identifier_leaves_out_values_not_set_as_action_cable_does() -> None:
    connection = RoomConnection(request=None, runtime=None)  # type: ignore[arg-type]
    assert connection.connection_identifier == "" and connection.internal_channel is None
    connection.user = "ann"  # type: ignore[attr-defined]
    assert connection.internal_channel == "action_cable/ann"
    connection.room = 3  # type: ignore[attr-defined]
    assert connection.internal_channel == "action_cable/ann:3"


def test_where_names_the_same_stream_and_disconnect_sends_the_command() -> None:
    pubsub = MemoryPubSub(record=True)
    remote = RemoteConnections(RoomConnection, pubsub)
    assert remote.where(user="ann").internal_channel == "action_cable/ann"
    assert remote.where(room=3, user="ann").internal_channel == "action_cable/ann:3"  # identified_by's order
    remote.where(user="ann").disconnect()
    remote.where(user="bob").disconnect(reconnect=False)
    assert pubsub.broadcasts("action_cable/ann") == [{"type": "disconnect", "reconnect": True}]
    assert pubsub.broadcasts("action_cable/bob") == [{"type": "disconnect", "reconnect": False}]


def test_where_refuses_unknown_or_empty_identifiers() -> None:
    remote = RemoteConnections(RoomConnection, MemoryPubSub())
    with pytest.raises(ValueError, match=r"identified by \['user', 'room'\]; unknown identifier\(s\): \['usr'\]"):
        remote.where(usr="ann")
    with pytest.raises(ValueError, match="at least one identifier"):
        remote.where(user=None)
