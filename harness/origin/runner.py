"""Ways to run an ``Origin``: on a background thread in-process, or in the foreground until a
signal (stdlib only).

In-process use: ``with OriginServer(OriginConfig()) as origin: origin.data_url ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable

from .server import Origin, OriginConfig


class OriginServer:
    """Runs an ``Origin`` on a private event loop in a background thread.

    ``with OriginServer() as origin:`` starts it (raising if a port cannot be bound) and
    always stops it. Meant for tests and tools that want the origin in-process.
    """

    def __init__(self, config: OriginConfig | None = None, start_timeout: float = 10.0) -> None:
        self.config = config or OriginConfig()
        self.start_timeout = start_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._origin: Origin | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OriginServer:
        """Start the listeners; returns once both are bound."""
        self._thread = threading.Thread(target=self._run, name="cachewright-origin", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise TimeoutError(f"origin did not start within {self.start_timeout}s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the listeners and the thread; safe to call more than once."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self.start_timeout)
            self._thread = None

    def __enter__(self) -> OriginServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def origin(self) -> Origin:
        """The running app (its state lives on the server's thread: read, don't mutate)."""
        if self._origin is None:
            raise RuntimeError("origin is not running")
        return self._origin

    @property
    def data_port(self) -> int:
        """The bound data port."""
        return self.origin.data_port

    @property
    def control_port(self) -> int:
        """The bound control port."""
        return self.origin.control_port

    @property
    def data_url(self) -> str:
        """``http://host:port`` of the data port."""
        return f"http://{_url_host(self.config.host)}:{self.data_port}"

    @property
    def control_url(self) -> str:
        """``http://host:port`` of the control port."""
        return f"http://{_url_host(self.config.host)}:{self.control_port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to start(); the thread itself must not die loudly
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        origin = Origin(self.config)
        await origin.start()
        self._origin = origin
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await origin.close()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def serve(config: OriginConfig, ready: Callable[[Origin], None]) -> None:
    """Run until SIGTERM or SIGINT; ``ready`` is called once both ports listen."""
    origin = Origin(config)
    await origin.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready(origin)
        await stop.wait()
    finally:
        await origin.close()
