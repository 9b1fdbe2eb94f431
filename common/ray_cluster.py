"""Connecting to Ray with safe defaults."""

from __future__ import annotations

import logging
import os
import socket
import sys
from urllib.parse import urlsplit

# Ray's switch for single-machine instances (its default on macOS and Windows): with "0" the
# node's address is the loopback address, so every Ray service of the instance binds 127.0.0.1.
SINGLE_NODE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


PROBE_SECONDS = 5.0  # how long a cluster address may take to accept a connection


def check_reachable(address: str, what: str = "a Ray cluster", timeout: float = PROBE_SECONDS):
    """``ValueError`` naming ``address`` unless a TCP connection to its host and port opens
    within ``timeout`` seconds (``host:port``, ``ray://host:port`` or ``http(s)://host:port``;
    ``auto`` is Ray's own look-up and is not probed). Ray itself retries a silent address
    for minutes; this answers in seconds."""
    if address == "auto":
        return
    host, port = _host_port(address)
    if not host or port is None:
        raise ValueError(
            f"address {address!r} names no host and port (e.g. 127.0.0.1:6379, "
            "ray://head:10001, http://127.0.0.1:8265)"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise ValueError(
            f"nothing answers at {address} ({reason} within {timeout:g} s): is {what} running "
            "there? Start one (ray start --head) or give its address"
        ) from None


def _host_port(address: str) -> tuple[str | None, int | None]:
    """``(host, port)`` of ``host:port`` or ``scheme://host:port`` (None where missing or no
    number)."""
    split = urlsplit(address if "://" in address else f"//{address}")
    try:
        return split.hostname, split.port
    except ValueError:
        return split.hostname, None


def _check_same_cluster(ray, address: str) -> None:
    """``ValueError`` when this process is already connected to Ray and ``address`` names
    another cluster: one process talks to one cluster, and Ray would silently keep the first."""
    if not address or address == "auto" or address.startswith("ray://"):
        return  # no address asked for, Ray's own look-up, or a client address (other port)
    current = ray.get_runtime_context().gcs_address
    if _host_port(address) != _host_port(current):
        raise ValueError(
            f"this process is already connected to the Ray cluster at {current}, and "
            f"parallel.address = {address} names another; one process talks to one cluster: "
            "run this in a new process, or leave parallel.address empty"
        )


def connect(address: str = "", log_to_driver: bool = True) -> None:
    """Connects this process to Ray, once: to ``address`` when given; else to the cluster of the
    Ray job this process runs in (``RAY_ADDRESS``, set by ``ray job submit``); else to a new
    private instance on this machine whose services, dashboard included, bind to 127.0.0.1."""
    target = address or os.environ.get("RAY_ADDRESS", "")
    if not target:
        os.environ[SINGLE_NODE_SWITCH] = "0"  # read by Ray at import and by its child processes
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:  # Ray was imported before: its copy of the switch too
            constants.ENABLE_RAY_CLUSTER = False
    import ray

    if target:
        check_reachable(target)
    if ray.is_initialized():
        _check_same_cluster(ray, address)
        return
    quiet = logging.WARNING  # Ray's own INFO lines at startup are noise to a gnnrec user
    if not target:  # our own instance: its token-auth notice is about a cluster we just made
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    if target:
        ray.init(address=target, log_to_driver=log_to_driver, logging_level=quiet)
    else:
        ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=log_to_driver,
            logging_level=quiet,
        )
