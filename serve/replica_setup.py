"""What a service replica sets up in its own process before it serves: the bearer token its
requests must carry, and Ray Serve's internal gRPC server kept on loopback.

The service's class and FastAPI app reach a replica pickled by value (Ray Serve wraps the class),
so state they share lives here, in a module each replica imports."""

from __future__ import annotations

TOKEN: dict[str, str | None] = {"bearer": None}  # None: requests need no token


def replica_grpc_on_loopback() -> None:
    """Ray Serve (2.60) starts an internal gRPC server in every replica, after the replica's
    constructor, on ``[::]:0``: every interface. Serve uses it only with
    ``RAY_SERVE_USE_GRPC_BY_DEFAULT=1``; otherwise (the default) it is bound to 127.0.0.1
    here, so that the service listens on nothing beyond this machine but its proxy."""
    from ray.serve._private import constants, replica

    if constants.RAY_SERVE_USE_GRPC_BY_DEFAULT or not hasattr(replica, "add_port_to_grpc_server"):
        return
    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback", False):
        return

    def on_loopback(server, address: str):
        return bind(server, address.replace("[::]", "127.0.0.1"))

    on_loopback.loopback = True
    replica.add_port_to_grpc_server = on_loopback
