"""A raw RSGI app for granian's native interface (its fastest Python path)."""

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY
from granian.rsgi import WebsocketMessageType

HEADERS = [("content-type", CONTENT_TYPE)]


async def app(scope, proto):
    if scope.proto == "http":
        if scope.method == "POST":
            await proto()  # read the whole request body
            proto.response_bytes(200, HEADERS, SMALL_BODY)
        elif scope.path == "/":
            proto.response_bytes(200, HEADERS, SEED_BODY)
        elif scope.path == "/small":
            proto.response_bytes(200, HEADERS, SMALL_BODY)
        else:
            proto.response_empty(404, [])
    elif scope.proto == "ws":
        transport = await proto.accept()
        while True:
            message = await transport.receive()
            if message.kind == WebsocketMessageType.close:
                break
            if message.kind == WebsocketMessageType.string:
                await transport.send_str(message.data)
            else:
                await transport.send_bytes(message.data)
        proto.close()
