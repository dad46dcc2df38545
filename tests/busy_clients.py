"""Busy keep-alive clients for the flood tests, in a process of their own.

    python3 tests/busy_clients.py PORT CLIENTS

Each client loops `GET /` on one kept-alive connection to 127.0.0.1:PORT and reconnects at once
when the server closes the connection or says it will: an app's pool larger than the sidecar's
connection cap. It runs until killed. A process of its own, so that the test's new clients are
not slowed by these clients' event loop.
"""

from __future__ import annotations

import asyncio
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: busy\r\n\r\n"


async def answer(reader: asyncio.StreamReader) -> bool:
    """Reads one answer; whether the connection may be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return b"\r\nconnection: close\r\n" not in head.lower()


async def client(port: int) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)  # refused: the server is not listening yet, or any more
            continue
        try:
            while True:
                writer.write(REQUEST)
                if not await answer(reader):
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass  # closed for room: reconnect at once
        finally:
            writer.close()


async def main(port: int, clients: int) -> None:
    await asyncio.gather(*(client(port) for _ in range(clients)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
