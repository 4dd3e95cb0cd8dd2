"""A widget that connects, says hello, then keeps reading: the test freezes it with SIGSTOP."""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url: str, visitor: str) -> None:
    async with connect(url, origin="http://localhost:8000", ping_interval=None) as ws:  # type: ignore[arg-type]
        await ws.send(
            json.dumps({"type": "hello", "visitor": visitor, "pages": [{"path": "/frozen"}]})
        )
        print("hello sent", flush=True)
        async for _ in ws:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
