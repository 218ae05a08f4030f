"""The server's per-socket session, stepped without a network."""

from __future__ import annotations

import json


def test_slow_client_is_disconnected_without_recursion() -> None:
    """A full outbox closes the session once, with a disconnect frame, and queues nothing after it."""
    import asyncio

    from solidstack.cable import asgi
    from solidstack.cable import session as sessions

    async def scenario() -> list[str | None]:
        session = sessions.Session(asgi.CableApp(), websocket=None, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
        for i in range(sessions.MAX_PENDING_FRAMES + 5):
            session.send_text(str(i))
        frames = []
        while not session.outbox.empty():
            frames.append(session.outbox.get_nowait())
        return frames

    frames = asyncio.run(scenario())
    assert len(frames) == sessions.MAX_PENDING_FRAMES + 2
    assert json.loads(frames[-2]) == {"type": "disconnect", "reason": "slow_client", "reconnect": True}  # type: ignore[arg-type]
    assert frames[-1] is None
