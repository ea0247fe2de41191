"""The ``docker`` runtime: the origin and the engines as containers, one private network per run.

    with DockerRuntime().start(policy, ("nginx", "varnish")) as stack:
        stack.endpoints["varnish"].url()          # http://127.0.0.1:49153 (a published port)
        stack.stored("nginx", "/static/a.css")    # read from the container's cache directory

Per run: a bridge network ``cachewright-<run>``; containers ``cachewright-<run>-origin``,
``-nginx``, ``-varnish`` and (HTTPS) ``-hitch``, which sends PROXY v2 to the varnish container.
Engines listen on fixed ports inside their containers (8080 http, 8443 https, 6086 Varnish's
PROXY listener); those are published on 127.0.0.1 only, on random host ports. Every container and
the network carry ``cachewright=1``, ``cachewright.run=<run>`` and their owner (pid, its start
time, boot id, host name), so ``reap`` can remove what a killed run left behind.

What the engines see as the client address: with the private network, every request from the
host arrives from the network's gateway (Docker's port proxy), whatever loopback address the
client bound. The policy is adapted so that loopback entries of ``purge.allow`` also allow the
gateway (the host running the checks stays a permitted purger), but a refused purge sent from
127.0.0.2 cannot be told apart, and the origin sees ``X-Forwarded-For: <gateway>``. With
``network="host"`` the containers share the host's network and the checks see exactly what they
see with the local runtime.

Images: ``cachewright/<role>:local`` when present (``harness/images/build-local.sh``), else the
official images at pinned tags; each image is probed once (engine version, module directory,
modules, users) and a policy needing a module the image lacks is refused with the module named.

Modules: ``daemon`` (reaching the engine), ``images`` (choice of image, probing, its cache),
``reaper`` (owner labels, removing what killed runs left), ``stack`` (the running stack and
what the engines stored), ``launch`` (one run's network, containers and origin), ``start`` (the
engines' containers and the relay, ``relay.py``, shipped into a container as a script),
``runtime`` (``DockerRuntime``) and ``fleet`` (``DockerFleetRuntime``: a policy's ``fleet:``,
every node a container with its own address; imported by ``test`` for a fleet).
"""

from __future__ import annotations

from .daemon import connect
from .launch import NetworkMode
from .runtime import DockerRuntime
from .stack import DockerStack

__all__ = ["DockerRuntime", "DockerStack", "NetworkMode", "connect"]
