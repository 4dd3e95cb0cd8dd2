"""The floor under the fan-out: what one plain `send()` of a snapshot-sized
frame costs on this machine's loopback, with no Python framework around it.

    python tests/bench/loopback_send.py --connections 5000 --bytes 2000

A child process holds the receiving ends. With `--reader sleeping` it waits in
epoll and reads whatever arrives, so a send may wake it; `--reader asyncio`
reads through asyncio Protocols, one Python callback per read, as the load
generator does; with `--reader none` it never reads (the data stays in socket
buffers, a few rounds fit), which shows the cost of a send that wakes nobody.
Prints wall and CPU time per send, per round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import selectors
import socket
import sys
import time


class Draining(asyncio.Protocol):
    """Reads like the load generator: a Python callback per read."""

    received = 0

    def data_received(self, data: bytes) -> None:
        Draining.received += len(data)


async def read_with_asyncio(sockets: list[socket.socket], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    for sock in sockets:
        await loop.connect_accepted_socket(Draining, sock)
    await asyncio.sleep(seconds)


def hold_receivers(port: int, count: int, reader: str, seconds: float) -> None:
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    if reader == "none":
        time.sleep(seconds)
        return
    if reader == "asyncio":
        asyncio.run(read_with_asyncio(sockets, seconds))
        return
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in selector.select(0.5):
            with contextlib.suppress(BlockingIOError):
                key.fileobj.recv(65536)  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--bytes", type=int, default=2000, help="frame size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reader", choices=("sleeping", "asyncio", "none"), default="sleeping")
    parser.add_argument(
        "--like-asyncio",
        action="store_true",
        help="non-blocking senders with TCP_NODELAY, as asyncio's transports are",
    )
    args = parser.parse_args()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        listener.close()
        hold_receivers(port, args.connections, args.reader, args.rounds + 30)
        os._exit(0)
    try:
        senders = [listener.accept()[0] for _ in range(args.connections)]
        if args.like_asyncio:
            for sock in senders:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
        frame = b"x" * args.bytes
        time.sleep(1)
        for _ in range(args.rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for sock in senders:
                sock.send(frame)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{args.connections} sends of {args.bytes} B, reader {args.reader}: "
                f"{wall * 1e6 / args.connections:.1f} µs wall, "
                f"{cpu * 1e6 / args.connections:.1f} µs CPU per send "
                f"(round {wall * 1000:.0f} ms)",
                flush=True,
            )
            time.sleep(1)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
