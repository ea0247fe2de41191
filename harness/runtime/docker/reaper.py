"""Owners and reaping for the docker runtime: every container and network of a run carries
``cachewright=1``, ``cachewright.run=<run>`` and its owner (pid, its start time, boot id, host
name), so ``reap`` can remove what a killed run left behind (its host-side temp dir too)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from ..reaper import boot_id, start_time

LABEL = "cachewright"
RUN_LABEL = "cachewright.run"
OWNER_LABELS = ("cachewright.pid", "cachewright.pid-start", "cachewright.boot", "cachewright.host")
TMP_PREFIX = "cachewright-docker-"  # + run id: the host-side temp dir (TLS files) of a run


def owner_labels(run_id: str) -> dict[str, str]:
    """The labels of everything a run creates: who owns it, so a reaper can tell it is dead."""
    pid = os.getpid()
    return {LABEL: "1", RUN_LABEL: run_id, "cachewright.pid": str(pid),
            "cachewright.pid-start": start_time(pid) or "", "cachewright.boot": boot_id(),
            "cachewright.host": socket.gethostname()}


def owner_dead(labels: Mapping[str, str]) -> bool:
    """Whether the process that created a labelled object is gone (only judged on this host)."""
    if labels.get("cachewright.host") != socket.gethostname():
        return False
    if labels.get("cachewright.boot") != boot_id():
        return True
    try:
        pid = int(labels.get("cachewright.pid", ""))
    except ValueError:
        return True
    return start_time(pid) != labels.get("cachewright.pid-start")


def reap(client: docker.DockerClient) -> list[str]:
    """Remove the containers, networks and temp dirs of earlier runs whose owner died; return
    their run ids."""
    dead: set[str] = set()
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}=1", RUN_LABEL]}):
        if owner_dead(container.labels):
            dead.add(container.labels[RUN_LABEL])
            remove_container(container)
    for network in client.networks.list(filters={"label": [f"{LABEL}=1", RUN_LABEL]}):
        labels = network.attrs.get("Labels") or {}
        if owner_dead(labels):
            dead.add(labels[RUN_LABEL])
            remove_network(network)
    for run_id in dead:
        for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{run_id}-*"):
            remove_tree(path)
    return sorted(dead)


def remove_container(container: Container) -> None:
    """Remove ``container`` (forced, with its volumes); gone already is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)


def remove_network(network: Network) -> None:
    """Remove ``network``; gone already is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        network.remove()


def remove_tree(path: Path) -> None:
    """Remove a host-side temp dir of a run."""
    shutil.rmtree(path, ignore_errors=True)
