"""The app the cable tests serve in a real uvicorn process (imported by module path, not by pytest)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute

from solidstack.cable import CableApp, Channel, Connection, StreamsChannel, broadcast


class UserConnection(Connection):
    """Identifies the user from ``?user=`` or the ``user`` cookie; refuses ``mallory``."""

    identified_by = ("current_user",)

    def connect(self) -> None:
        user = self.request.query_params.get("user") or self.request.cookies.get("user")
        if user == "mallory":
            self.reject_unauthorized_connection()
        self.current_user = user


class ChatChannel(Channel):
    def subscribed(self) -> None:
        self.stream_from(f"chat:{self.params.get('room')}")

    def speak(self, data: dict[str, Any]) -> None:
        # Plain method: runs in a worker thread and writes the database, as an app's action would.
        broadcast(f"chat:{self.params.get('room')}", {"from": self.connection.current_user, "text": data["text"]})

    async def echo(self, data: dict[str, Any]) -> None:
        self.transmit({"echo": data.get("text")})

    def whoami(self) -> None:
        self.transmit({"user": self.connection.current_user})

    def boom(self, data: dict[str, Any]) -> None:
        raise RuntimeError("an action that fails must not close the socket")


class SecretChannel(Channel):
    """Only ``admin`` may read it."""

    def subscribed(self) -> None:
        if self.connection.current_user != "admin":
            self.reject()
            return
        self.stream_from("secret")


cable = CableApp([ChatChannel, SecretChannel, StreamsChannel], connection_class=UserConnection,
                 allowed_request_origins=["https://allowed.example", "/https://.*\\.trusted\\.example/"],
                 max_message_size=4096)
#: The same with the default frame size limit (1 MiB).
roomy = CableApp([ChatChannel, SecretChannel, StreamsChannel], connection_class=UserConnection)


async def home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("home")


#: A web app serving the cable endpoint at /cable (the client's default URL), and under a Mount.
web = Starlette(routes=[Route("/", home), WebSocketRoute("/cable", cable), Mount("/mounted", app=cable)])
