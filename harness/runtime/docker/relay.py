"""A TCP relay, shipped into a container of a run's private network and run there as a script
(``python3 relay.py PORT:HOST:TARGET ...``): each PORT forwards to HOST:TARGET, so requests sent
through it reach an engine from another container's address (a client outside purge.allow).

It runs on the origin's image (any ``python3``), so it uses the standard library only.
"""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until either side closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def serve(port: int, host: str, target: int) -> None:
    """Accept on ``port`` (all addresses) and relay each connection to ``host:target``."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    await server.serve_forever()


async def main(specs: list[str]) -> None:
    """Serve every ``PORT:HOST:TARGET`` in ``specs``."""
    parts = [spec.split(":") for spec in specs]
    await asyncio.gather(*(serve(int(p), h, int(t)) for p, h, t in parts))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
