"""Every open index page joins the ``notices`` group; a task's ``group_send`` reaches them all, from any process."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class NoticeConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add("notices", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard("notices", self.channel_name)

    async def notice(self, event: dict) -> None:
        await self.send_json({"text": event["text"]})
