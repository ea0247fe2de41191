"""Reaching the Docker engine: a client with a fixed API version, or HarnessError saying why not."""

from __future__ import annotations

import os
import socket

import docker
import docker.errors

from ..api import HarnessError

API_VERSION = "1.41"  # Docker Engine 20.10 and later (Docker 28 accepts 1.24 and up)
SOCKET_TIMEOUT = 5.0


def connect() -> docker.DockerClient:
    """A client for the Docker engine of the environment, or HarnessError saying why not."""
    try:
        # A fixed API version: with "auto", docker-py asks the daemon for its version while
        # constructing the client, and that request's socket leaks when it fails.
        client = docker.from_env(version=API_VERSION, timeout=120)
    except docker.errors.DockerException as exc:
        raise _unreachable(str(exc)) from exc
    problem = _socket_problem(client)
    if problem is None:
        try:
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
            problem = str(exc)
    if problem is not None:
        client.close()
        raise _unreachable(problem)
    return client


def _socket_problem(client: docker.DockerClient) -> str | None:
    """Why the daemon's Unix socket (if it is one) refuses a connection. Tried with a socket of
    our own: docker-py leaks the socket of a connection that fails (docker/docker-py#3356)."""
    path = getattr(client.api.get_adapter(client.api.base_url), "socket_path", None)
    if path is None:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT)
        try:
            sock.connect(path)
        except OSError as exc:
            return f"cannot connect to {path} ({exc.strerror or exc})"
    return None


def _unreachable(why: str) -> HarnessError:
    return HarnessError(f"no Docker engine answers (DOCKER_HOST="
                        f"{os.environ.get('DOCKER_HOST', 'default socket')}): {why}")
