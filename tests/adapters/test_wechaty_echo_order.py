"""A send whose outcome is unknown is settled by its echo. The Wechaty client holds a
message event back until its payload is in, but lets later events overtake it after a
while: delivery took "events went on for 3 s and no echo" as proof the message did not
go out, so heartbeats that overtook a slow echo had the same text sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from test_wechaty_client import TOKEN, FakeServer, Script
from waiting import until

from simulator import Recorder
from wechat_sdk import parse_config
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.prefetch import PrefetchWindow
from wechat_sdk.gateway import Gateway
from wechat_sdk.outbound.delivery import DeliveryFailed

BOT, ALICE, TEXT = "wxid_bot", "wxid_alice", "good morning"


async def test_the_window_counts_what_later_items_overtook() -> None:
    out: asyncio.Queue[str] = asyncio.Queue()
    window = PrefetchWindow(out, size=8, patience_s=0.05)
    slow: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await window.add("slow", lambda: slow)
    await window.add("fast")
    assert await asyncio.wait_for(out.get(), 1) == "fast"
    assert window.overtaken() == 1
    slow.set_result(None)
    assert await asyncio.wait_for(out.get(), 1) == "slow"
    assert window.overtaken() == 0


class EchoingServer(FakeServer):
    """MessageSendText delivers (the echo's event is pushed), then its answer is lost;
    the echo's payload takes 5 s (a busy puppet)."""

    sends = 0

    async def MessageSendText(self, request: Any, context: Any) -> Any:
        self.sends += 1
        self.s.calls.append(f"MessageSendText:{request.text}")
        if self.sends == 1:
            self.s.push(2, {"messageId": "echo1"})
            await context.abort(grpc.StatusCode.INTERNAL, "stream reset")
        return pb.MessageSendTextResponse(id=f"sent-{self.sends}")

    async def MessagePayload(self, request: Any, context: Any) -> Any:
        if request.id != "echo1":
            return await super().MessagePayload(request, context)
        await asyncio.sleep(5)
        said = Timestamp()
        said.FromSeconds(int(time.time()))
        return pb.MessagePayloadResponse(
            id="echo1", talker_id=BOT, listener_id=ALICE, text=TEXT, type=7, receive_time=said
        )


@pytest.mark.slow  # real gRPC on the real clock: about 8 s
async def test_a_slow_echo_overtaken_by_later_events_is_not_sent_twice(tmp_path: Path) -> None:
    script = Script(replay=[(25, json.dumps({"contactId": BOT})), (23, "{}")])
    script.contacts[BOT] = "Bot"
    server = grpc.aio.server()
    pb_grpc.add_PuppetServicer_to_server(EchoingServer(script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def heartbeats() -> None:
        while True:
            await asyncio.sleep(0.5)
            if script.streams:
                script.push(1, {"data": "beat"})

    beating = asyncio.create_task(heartbeats())
    config = parse_config(
        '{channels: {wechat: {puppet: "wechaty-puppet-service", dmPolicy: "open",'
        f' allowFrom: ["*"], puppetOptions: {{endpoint: "127.0.0.1:{port}",'
        f' token: "{TOKEN}", tls: false}}}}}}}}'
    )
    gw = Gateway(config, agent=Recorder(), state_dir=tmp_path / "state", show_terminal_qr=False)
    await gw.start()
    try:
        await until("logged in", gw.runners["default"].connection.logged_in.is_set)
        # (an honest "may or may not have gone out" would do; a second send not)
        with contextlib.suppress(DeliveryFailed):
            await gw.send(ALICE, TEXT)
    finally:
        beating.cancel()
        await gw.stop(grace_s=1)
        await server.stop(0)
    sends = [c for c in script.calls if c.startswith("MessageSendText")]
    assert sends == [f"MessageSendText:{TEXT}"]
