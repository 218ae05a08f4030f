"""SolidChannelLayer held to what Channels' own layers are tested for (send/receive, process-local channels,
ordering, capacity, groups with discard, group_send past a full channel, expiry, flush), adapted, plus what only
a layer shared between processes must do: a message sent by one process is received by another, and each message
goes to one receiver. Both engines (the project fixture)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.exceptions import ChannelFull

from solidstack.django.channels import SolidChannelLayer

HERE = Path(__file__).parent


@pytest.fixture
def layer(project: Path) -> SolidChannelLayer:
    return SolidChannelLayer(capacity=3)


def run(coro):
    return asyncio.run(coro)


async def nothing_on(layer: SolidChannelLayer, channel: str, wait: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(wait):
            await layer.receive(channel)
    except TimeoutError:
        return True
    return False


def test_send_then_receive(layer: SolidChannelLayer) -> None:
    async def go() -> dict:
        await layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!", "raw": b"\x00\xff"})
        return await layer.receive("test-channel-1")

    assert run(go()) == {"type": "test.message", "text": "Ahoy-hoy!", "raw": b"\x00\xff"}


def test_capacity(layer: SolidChannelLayer) -> None:
    async def go() -> None:
        for _ in range(3):
            await layer.send("test-channel-1", {"type": "test.message"})
        with pytest.raises(ChannelFull):
            await layer.send("test-channel-1", {"type": "test.message"})
        await layer.receive("test-channel-1")
        await layer.send("test-channel-1", {"type": "test.message"})  # room again

    run(go())


def test_channel_capacity_globs(project: Path) -> None:
    layer = SolidChannelLayer(capacity=100, channel_capacity={"tiny-*": 1})

    async def go() -> None:
        await layer.send("tiny-1", {"type": "a"})
        with pytest.raises(ChannelFull):
            await layer.send("tiny-1", {"type": "b"})
        await layer.send("big-1", {"type": "a"})
        await layer.send("big-1", {"type": "b"})

    run(go())


def test_process_local_channel(layer: SolidChannelLayer) -> None:
    async def go() -> tuple[str, dict]:
        name = await layer.new_channel()
        await layer.send(name, {"type": "test.message", "text": "Local only please"})
        return name, await layer.receive(name)

    name, message = run(go())
    assert "!" in name and message["text"] == "Local only please"


def test_order_is_kept(layer: SolidChannelLayer) -> None:
    async def go() -> list[str]:
        for n in (1, 2, 3):
            await layer.send("test-channel-3", {"type": f"message.{n}"})
        return [(await layer.receive("test-channel-3"))["type"] for _ in range(3)]

    assert run(go()) == ["message.1", "message.2", "message.3"]


def test_groups(layer: SolidChannelLayer) -> None:
    async def go() -> tuple[list[str], bool]:
        for n in (1, 2, 3):
            await layer.group_add("test-group", f"test-gr-chan-{n}")
        await layer.group_discard("test-group", "test-gr-chan-2")
        await layer.group_send("test-group", {"type": "message.1"})
        async with asyncio.timeout(2):
            got = [(await layer.receive(c))["type"] for c in ("test-gr-chan-1", "test-gr-chan-3")]
        return got, await nothing_on(layer, "test-gr-chan-2")

    assert run(go()) == (["message.1", "message.1"], True)


def test_group_send_skips_a_full_channel(layer: SolidChannelLayer) -> None:
    async def go() -> None:
        await layer.group_add("test-group", "test-gr-chan-1")
        for _ in range(5):
            await layer.group_send("test-group", {"type": "message.1"})  # no ChannelFull past 3

    run(go())


def test_group_membership_expires(project: Path) -> None:
    layer = SolidChannelLayer(group_expiry=0.2)

    async def go() -> bool:
        await layer.group_add("g", "c1")
        await asyncio.sleep(0.3)
        await layer.group_send("g", {"type": "late"})
        return await nothing_on(layer, "c1")

    assert run(go())


def test_expiry(project: Path) -> None:
    layer = SolidChannelLayer(expiry=0.2)

    async def go() -> tuple[str, str, bool]:
        await layer.send("test-channel-1", {"type": "message.1"})
        await layer.send("test-channel-1", {"type": "message.2"})
        first = (await layer.receive("test-channel-1"))["type"]
        await asyncio.sleep(0.3)
        await layer.send("test-channel-1", {"type": "message.3"})
        fresh = (await layer.receive("test-channel-1"))["type"]
        return first, fresh, await nothing_on(layer, "test-channel-1")  # message.2 expired

    assert run(go()) == ("message.1", "message.3", True)


def test_flush(layer: SolidChannelLayer) -> None:
    async def go() -> tuple[bool, bool]:
        await layer.send("c", {"type": "x"})
        await layer.group_add("g", "c2")
        await layer.flush()
        await layer.group_send("g", {"type": "y"})
        return await nothing_on(layer, "c", 0.3), await nothing_on(layer, "c2", 0.3)

    assert run(go()) == (True, True)


def test_bad_names_and_messages(layer: SolidChannelLayer) -> None:
    with pytest.raises(TypeError):
        run(layer.send("bad name with spaces", {"type": "x"}))
    with pytest.raises(TypeError, match=r"channel 'c': message\['thing'\]: a builtins.object cannot be"):
        run(layer.send("c", {"type": "x", "thing": object()}))


def _in_another_process(project: Path, code: str) -> None:
    script = (f"import os, sys, asyncio, django; sys.path.insert(0, {str(HERE)!r}); "
              "os.environ['DJANGO_SETTINGS_MODULE'] = 'djproject.settings'; django.setup()\n"
              "from channels.layers import get_channel_layer\nlayer = get_channel_layer()\n" + code)
    env = {**os.environ, "SOLIDSTACK_TEST_ROOT": str(project)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)


def test_across_processes(layer: SolidChannelLayer, project: Path) -> None:
    async def join() -> None:
        await layer.group_add("room", "here-1")

    run(join())
    _in_another_process(project, "asyncio.run(layer.send('from-child', {'type': 'hi', 'pid': os.getpid()}))\n"
                                  "asyncio.run(layer.group_send('room', {'type': 'room.msg'}))\n")

    async def go() -> tuple[dict, dict]:
        async with asyncio.timeout(5):
            return await layer.receive("from-child"), await layer.receive("here-1")

    direct, grouped = run(go())
    assert direct["type"] == "hi" and direct["pid"] != os.getpid() and grouped == {"type": "room.msg"}


def test_each_message_goes_to_one_receiver(layer: SolidChannelLayer) -> None:
    big = SolidChannelLayer(capacity=1000)

    async def go() -> list[int]:
        got: list[int] = []

        async def receiver() -> None:
            while True:
                got.append((await big.receive("work"))["n"])

        tasks = [asyncio.create_task(receiver()) for _ in range(4)]
        for n in range(100):
            await big.send("work", {"type": "job", "n": n})
        async with asyncio.timeout(20):
            while len(got) < 100:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        return got

    got = run(go())
    assert sorted(got) == list(range(100))
