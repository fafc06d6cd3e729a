"""The ``Transport`` base class (vllm_mcp/protocol/transport.py): intake and drain, held once.

Both transports only say when a call starts and when it is answered; what a shutdown reads
(``in_flight``, ``wait_drained``, ``intake_open``) is the base's. The transports' own use of it
is in test_stdio.py, test_http.py and test_app.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vllm_mcp.protocol.transport import ServerHooks, Transport


class WirelessTransport(Transport):
    """A transport with no wire: the test says when calls start and end."""

    async def serve(self, server: Any) -> None:
        await self.startup()

    def close(self) -> None:
        pass


def test_in_flight_counts_calls_until_each_is_answered_once() -> None:
    async def scenario() -> None:
        t = WirelessTransport()
        assert (t.in_flight, await t.wait_drained(0)) == (0, True)
        t._call_started(1)
        t._call_started("a")
        t._call_started(1)  # the same call seen twice counts once
        assert (t.in_flight, await t.wait_drained(0)) == (2, False)
        t._call_finished(1)
        t._call_finished(7)  # an answer to no call in flight changes nothing
        assert (t.in_flight, await t.wait_drained(0)) == (1, False)
        waiter = asyncio.create_task(t.wait_drained())
        await asyncio.sleep(0)
        assert not waiter.done()
        t._call_finished("a")
        assert await asyncio.wait_for(waiter, 5) is True
        assert t.in_flight == 0

    asyncio.run(scenario())


def test_stop_intake_closes_intake_and_leaves_calls_in_flight() -> None:
    t = WirelessTransport()
    t._call_started(1)
    assert t.intake_open
    t.stop_intake()
    assert not t.intake_open and t.in_flight == 1


def test_hooks_default_to_a_server_that_is_ready_and_ignores_end_of_input() -> None:
    hooks = WirelessTransport().hooks
    assert (hooks.health(), hooks.load_status(), hooks.on_eof()) == ("ready", {}, None)
    given = ServerHooks(health=lambda: "loading")
    assert WirelessTransport(given).hooks.health() == "loading"
