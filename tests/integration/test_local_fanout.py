"""The embedded multi-process fan-out: a Unix socket hub in the main process and one client per web process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from carebox.fanout import LocalFanout, LocalHub
from web.live import LiveEvent, Presence, SharedBroadcaster


async def _next(events, timeout: float = 2.0) -> dict:
    return await asyncio.wait_for(anext(events), timeout)


async def _connected(hub: LocalHub, n: int) -> None:
    for _ in range(100):
        if hub.connected == n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{hub.connected} web processes connected, not {n}")


async def test_every_event_reaches_every_process_the_publisher_included(tmp_path: Path):
    hub = LocalHub(str(tmp_path / "live.sock"))
    await hub.start()
    lost: list[str] = []
    a, b = LocalFanout(hub.path, lambda: lost.append("a")), LocalFanout(hub.path, lambda: lost.append("b"))
    await a.start()
    await b.start()
    await _connected(hub, 2)
    try:
        async with hub.subscribe() as at_hub, a.subscribe() as at_a, b.subscribe() as at_b:
            a.publish_nowait({"kind": "clocks", "ids": [1, 2]})
            for events in (at_hub, at_a, at_b):
                assert await _next(events) == {"kind": "clocks", "ids": [1, 2], "origin": a.origin}
            await hub.publish({"kind": "sla.edited"})
            for events in (at_hub, at_a, at_b):
                assert (await _next(events))["origin"] == hub.origin
    finally:
        await a.close()
        await b.close()
        await hub.close()
    assert lost == [] and not os.path.exists(hub.path)


async def test_a_web_process_is_told_when_the_main_process_goes_away(tmp_path: Path):
    hub = LocalHub(str(tmp_path / "live.sock"))
    await hub.start()
    gone = asyncio.Event()
    client = LocalFanout(hub.path, gone.set)
    await client.start()
    await _connected(hub, 1)
    await hub.close()
    await asyncio.wait_for(gone.wait(), 2)
    await client.close()


async def test_a_web_process_waits_for_the_hub_then_gives_up_with_a_clear_error(tmp_path: Path):
    client = LocalFanout(str(tmp_path / "nobody.sock"), lambda: None, connect_s=0.2)
    try:
        await client.start()
    except ConnectionError as err:
        assert "no live fan-out hub" in str(err)
    else:
        raise AssertionError("connected to nothing")


async def test_page_events_and_presence_marks_are_shared_and_published_once(tmp_path: Path):
    hub = LocalHub(str(tmp_path / "live.sock"))
    await hub.start()
    other = LocalFanout(hub.path, lambda: None)
    await other.start()
    await _connected(hub, 1)
    here, there = SharedBroadcaster(hub, Presence()), SharedBroadcaster(other, Presence())
    relays = [asyncio.create_task(here.relay()), asyncio.create_task(there.relay())]
    try:
        async with here.subscribe() as mine, there.subscribe() as theirs:
            await asyncio.sleep(0.05)  # the relays subscribe
            here.publish(LiveEvent("assign", 7, {"assignee_id": 3, "by": 1}))
            assert await asyncio.wait_for(mine.get(), 2) == LiveEvent("assign", 7, {"assignee_id": 3, "by": 1})
            assert await asyncio.wait_for(theirs.get(), 2) == LiveEvent("assign", 7, {"assignee_id": 3, "by": 1})
            there.share_mark(7, 2, "bea", "typing", 8.0)
            for _ in range(40):
                if here.presence.who(7):
                    break
                await asyncio.sleep(0.05)
            assert here.presence.who(7) == [{"user_id": 2, "username": "bea", "state": "typing"}]
            await asyncio.sleep(0.1)
            assert mine.empty() and theirs.empty()  # nothing echoed back a second time
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await other.close()
        await hub.close()
