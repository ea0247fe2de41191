"""The running origin: a data listener and a control listener on the current event loop.

``Origin`` wires the parts together: one ``OriginState``, the data port's handler, the control
port's handler, and one ``Listener`` for each port. The data listener can be stopped and
started again on the same port (``/down``, ``/up``); the control listener lives as long as the
origin. Stdlib only: this runs inside a container that has nothing but python3.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from .control import ControlHandler
from .data import DataHandler
from .state import OriginState
from .wire import MAX_LINE, RequestHandler, serve_connection

DEFAULT_SURROGATE_KEY_HEADER: Final = "Surrogate-Key"
LISTEN_BACKLOG: Final = 1024


@dataclass(frozen=True)
class OriginConfig:
    """Where the origin listens and how it logs."""

    host: str = "127.0.0.1"
    data_port: int = 0
    control_port: int = 0
    log_json: bool = False
    log_size: int = 1000
    surrogate_key_header: str = DEFAULT_SURROGATE_KEY_HEADER
    idle_timeout: float = 300.0


class Listener:
    """One listening socket and the connections it accepted; ``port`` stays the bound port
    after ``stop`` so that ``start`` listens on the same one again."""

    def __init__(self, host: str, port: int, handler: RequestHandler, idle_timeout: float) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def listening(self) -> bool:
        """Whether the socket is open."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (no-op when already listening); raises ``OSError`` when the port is taken."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._on_connect, self.host, self.port,
                backlog=LISTEN_BACKLOG, limit=MAX_LINE, reuse_address=True,
            )
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await serve_connection(reader, writer, self.handler, self.idle_timeout)
        except asyncio.CancelledError:
            # Dropped by stop(). Ending normally matters: Python 3.11's StreamReaderProtocol
            # calls task.exception() on this task and would log.
            pass
        finally:
            self._tasks.discard(task)


class Origin:
    """The running app: data and control listeners on the current event loop."""

    def __init__(self, config: OriginConfig) -> None:
        self.config = config
        self.state = OriginState(config.log_size)
        data = DataHandler(self.state, config.surrogate_key_header, config.log_json)
        control = ControlHandler(self.state, self)
        self._data = Listener(config.host, config.data_port, data, config.idle_timeout)
        self._control = Listener(config.host, config.control_port, control, config.idle_timeout)

    @property
    def host(self) -> str:
        """The address both ports are bound to."""
        return self.config.host

    @property
    def data_port(self) -> int:
        """The data port (the bound one once started)."""
        return self._data.port

    @property
    def control_port(self) -> int:
        """The control port (the bound one once started)."""
        return self._control.port

    @property
    def data_up(self) -> bool:
        """Whether the data port is listening."""
        return self._data.listening

    async def start(self) -> None:
        """Bind both listeners; raises ``OSError`` when a port is taken."""
        await self._control.start()
        try:
            await self.up()
        except OSError:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        await self.down()
        await self._control.stop()

    async def up(self) -> None:
        """Listen on the data port (the same port again after ``down``)."""
        await self._data.start()

    async def down(self) -> None:
        """Stop listening on the data port and drop its open connections."""
        await self._data.stop()
