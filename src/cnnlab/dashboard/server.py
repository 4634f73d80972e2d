"""Running the dashboard with uvicorn in a background thread: for ``cnnlab dashboard`` (the
main thread waits for Ctrl-C) and beside a training run (``cnnlab train --dashboard``)."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from typing import Any

from cnnlab.errors import CnnlabError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _uvicorn() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise CnnlabError(
            "the dashboard needs Starlette and uvicorn: pip install 'cnnlab[dashboard]' "
            "(or pip install starlette uvicorn)"
        ) from None
    return uvicorn


def _server(runs_dir: str | os.PathLike[str], host: str, port: int) -> Any:
    uvicorn = _uvicorn()
    from cnnlab.dashboard.app import create_app

    config = uvicorn.Config(
        create_app(runs_dir),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,  # open event streams never end by themselves
        lifespan="off",
    )
    return uvicorn.Server(config)


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class BackgroundServer:
    """The dashboard in a daemon thread; ``url`` once it listens, ``stop()`` to end it.

    Example (port 0 picks a free port):
        >>> import tempfile
        >>> server = BackgroundServer(tempfile.mkdtemp(), port=0).start()  # doctest: +SKIP
        >>> server.url  # doctest: +SKIP
        'http://127.0.0.1:40123/'
    """

    def __init__(self, runs_dir: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.server = _server(runs_dir, host, port)
        self.host = host
        self.port = port
        self.thread = threading.Thread(target=self._serve, name="cnnlab-dashboard", daemon=True)
        self.url = ""
        self._socket: socket.socket | None = None

    def _serve(self) -> None:
        self.server.run(sockets=[self._socket])

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        self._socket = listening_socket(self.host, self.port)  # errors name the host or the port
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise CnnlabError(f"dashboard: the server did not start on {self.host} port {self.port}")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = url(self.host, port)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, or a ``CnnlabError`` that says which one failed.

    Bound here rather than by uvicorn, so that a host name that does not resolve, a port in
    use and an address this machine does not have each get one message of their own.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CnnlabError(
            f"dashboard: --host {host!r} cannot be resolved to an address of this machine "
            f"({exc.strerror}); use an IP address such as 127.0.0.1 (this machine only) or 0.0.0.0 (all)"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CnnlabError(
                f"dashboard: port {port} on {host} is in use (another dashboard?); choose another "
                "with --port, or --port 0 for any free port"
            ) from None
        raise CnnlabError(f"dashboard: cannot listen on {host} port {port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


def start_beside(run_dir: str | os.PathLike[str], port: int = DEFAULT_PORT) -> BackgroundServer:
    """The dashboard for the runs folder holding ``run_dir`` (created if needed), in a thread.

    Uses ``port`` when it is free, any free port otherwise.
    """
    from pathlib import Path

    root = Path(run_dir).absolute().parent
    root.mkdir(parents=True, exist_ok=True)
    return BackgroundServer(root, port=port if _port_free(DEFAULT_HOST, port) else 0).start()


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def keep_serving(server: BackgroundServer) -> None:
    """After training: the page stays up (final metrics, try-it) until Ctrl-C."""
    wait_for_ctrl_c(server, f"dashboard: still serving at {server.url} (Ctrl-C to stop)")


def wait_for_ctrl_c(server: BackgroundServer, message: str = "") -> None:
    """Print ``message``, block until Ctrl-C (or the server ends), then stop the server.

    The message is printed inside the Ctrl-C guard: a Ctrl-C that comes the moment it shows
    (a user quick on the keys, a script waiting for the line) stops the server cleanly too.
    """
    try:
        if message:
            print(message, flush=True)
        while server.thread.is_alive():
            server.thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    server.stop()
