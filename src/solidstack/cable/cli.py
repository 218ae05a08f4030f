"""``solidstack cable``: serve the WebSocket endpoint alone, trim old messages."""

from __future__ import annotations

import importlib

import click


def load_app(spec: str | None):  # type: ignore[no-untyped-def]
    """``module:attribute`` naming a CableApp; without one, a CableApp serving Turbo Streams."""
    from .asgi import CableApp
    from .turbo import StreamsChannel

    if not spec:
        return CableApp([StreamsChannel])
    module_name, _, attribute = spec.partition(":")
    try:
        app = getattr(importlib.import_module(module_name), attribute or "cable")
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="APP") from None
    return app() if isinstance(app, type) else app


@click.group()
def cable() -> None:
    """WebSocket pub/sub (Action Cable protocol)."""


@cable.command("serve")
@click.argument("app_spec", required=False, metavar="[APP]")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=28080, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
@click.option("--per-message-deflate/--no-per-message-deflate", default=False, show_default=True,
              help="Compress each frame (permessage-deflate) when the client offers it. Off, as in Rails' Action "
                   "Cable: cable frames are small, and compressing costs each one ~0.05 ms on its way (decision 0221).")
def serve(app_spec: str | None, host: str, port: int, log_level: str, per_message_deflate: bool) -> None:
    """Serve APP (module:attribute of a CableApp; default: Turbo Streams only) at ws://HOST:PORT/."""
    import uvicorn

    app = load_app(app_spec)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):  # type: ignore[no-untyped-def]
            # Tell clients to reconnect (as Rails does on restart) before uvicorn drops the sockets.
            await app.disconnect_all("server_restart", reconnect=True)
            await super().shutdown(sockets)
            # uvicorn re-raises the signal after its shutdown, so atexit handlers would not run: close the
            # pub/sub (listener thread, wake-up socket file) here.
            from .adapter import reset

            reset()

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", ws="websockets-sansio",
                            ws_per_message_deflate=per_message_deflate)
    Server(config).run()


@cable.command("trim")
@click.pass_obj
def trim(app) -> None:  # type: ignore[no-untyped-def]
    """Delete messages older than message_retention, in batches, until none is left."""
    from .adapter import build_pubsub
    from .config import load_cable_config
    from .pubsub import SolidCablePubSub

    pubsub = build_pubsub(load_cable_config(app), app)
    if not isinstance(pubsub, SolidCablePubSub):
        click.echo("the cable adapter keeps no messages; nothing to trim")
        return
    total = 0
    while deleted := pubsub.trim():
        total += deleted
    click.echo(f"deleted {total} messages")
