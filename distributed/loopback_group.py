"""The DDP process group of a run on this machine alone, with every socket on the loopback.

Ray Train's default setup has rank 0 host torch's rendezvous store (``TCPStore``), which listens
on all interfaces whatever address it is given. When the run's master address is a loopback
address (gnnrec's private local Ray instance), :class:`LoopbackTorchConfig` instead has rank 0
bind the store's socket to 127.0.0.1 itself and hand it over (``master_listen_fd``), and points
gloo and NCCL at the loopback interface (unless the user chose interfaces). A cluster the user
names keeps Ray's setup: its network is the user's.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
import torch.distributed as dist

# Ray Train's process-group backend and helpers (internal API of the pinned Ray >= 2.60).
from ray.train._internal.utils import get_address_and_port
from ray.train.torch.config import TorchConfig, _set_torch_distributed_env_vars, _TorchBackend

LOOPBACK = "127.0.0.1"
_listener: socket.socket | None = None  # rank 0's store socket, open while the store lives


def setup_loopback_process_group(
    backend: str, world_rank: int, world_size: int, port: int, timeout_s: int
) -> None:
    """Runs in every worker: the rendezvous store on 127.0.0.1:``port`` (rank 0 hosts it on a
    socket bound to the loopback), then ``init_process_group`` on it."""
    global _listener
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    os.environ.update(MASTER_ADDR=LOOPBACK, MASTER_PORT=str(port))
    timeout = timedelta(seconds=timeout_s)
    if world_rank == 0:
        _listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _listener.bind((LOOPBACK, port))
        _listener.listen(max(world_size, 8))
        store = dist.TCPStore(
            LOOPBACK, port, world_size, True, timeout, master_listen_fd=_listener.fileno()
        )
    else:
        store = dist.TCPStore(LOOPBACK, port, world_size, False, timeout)
    dist.init_process_group(
        backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout
    )


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        master_addr, master_port = worker_group.execute_single(0, get_address_and_port)
        if not ipaddress.ip_address(master_addr).is_loopback:
            return super().on_start(worker_group, backend_config)
        gpus = worker_group.get_resources_per_worker().get("GPU", 0)
        backend = backend_config.backend or ("nccl" if gpus else "gloo")
        worker_group.execute(_set_torch_distributed_env_vars)
        ray.get(
            [
                worker_group.execute_single_async(
                    rank,
                    setup_loopback_process_group,
                    backend=backend,
                    world_rank=rank,
                    world_size=len(worker_group),
                    port=master_port,
                    timeout_s=backend_config.timeout_s,
                )
                for rank in range(len(worker_group))
            ]
        )


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """Ray Train's ``TorchConfig`` whose process group stays on the loopback for a run whose
    workers all share one machine's loopback address (see the module docstring)."""

    @property
    def backend_cls(self):
        return _LoopbackTorchBackend
