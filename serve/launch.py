"""``gnnrec serve``: checks, then starts the service of a run on Ray Serve and keeps it up until
interrupted (Ctrl-C or SIGTERM), then shuts it down.

Safe defaults: the HTTP proxy binds 127.0.0.1, and a private local Ray instance (every service
on 127.0.0.1) is started unless ``address`` names a cluster. A non-loopback ``host`` is refused
without a token file; with one, every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import signal
import socket
import time
from pathlib import Path

from gnnrec.common.log import get_logger
from gnnrec.common.run_lock import lock_purpose, run_dir_lock
from gnnrec.config import load_config
from gnnrec.models.config import build_model
from gnnrec.run import check_model_file
from gnnrec.serve.interaction_log import InteractionLog
from gnnrec.serve.item_index import IndexConfig, check_indexable
from gnnrec.update import UPDATING
from gnnrec.versions import current_dir

log = get_logger(__name__)
APP_NAME = "gnnrec"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None, host: str) -> str | None:
    """The bearer token in ``token_file`` (stripped); ``ValueError`` when a non-loopback
    ``host`` has none, or the file is empty or unreadable."""
    if token_file is None:
        if not is_loopback(host):
            raise ValueError(
                f"--host {host} is not a loopback address: serving beyond this machine needs "
                "--token-file FILE (a secret that clients send as 'Authorization: Bearer ...')"
            )
        return None
    try:
        token = Path(token_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{token_file}: cannot read the token ({err})") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ValueError(f"{token_file}: the token must be one word of at least 16 characters")
    return token


def check_servable(run_dir: Path) -> None:
    """``ValueError`` unless ``run_dir`` holds a finished run that no process is training (an
    update may be writing its next version)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: is a file, not a run directory")
    try:
        with run_dir_lock(run_dir, create=False):  # ValueError: missing, no run, or in use
            pass
    except ValueError:
        # an update writes its version beside the current one, which stays servable
        if not (lock_purpose(run_dir) == UPDATING and (current_dir(run_dir) / "model.pt").exists()):
            raise
    if not (current_dir(run_dir) / "model.pt").exists():
        raise ValueError(f"{run_dir}: the run has not finished training (no model.pt)")
    check_model_file(run_dir)  # here, not in every replica that Ray Serve restarts
    InteractionLog(run_dir).read_new()  # every line a record (its ids: the replicas check)


def check_port_free(host: str, port: int) -> None:
    """``ValueError`` naming ``host:port`` when something listens there already."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ValueError(f"{host}:{port} is in use: give another --port") from None
            raise ValueError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def replica_error(app) -> str | None:
    """The exception a replica of ``app`` (a Ray Serve application status) failed to start
    with, as its last traceback line says (``ValueError: ...`` without the type for a
    ``ValueError``, the run's own refusals); ``None`` when no deployment says."""
    for deployment in app.deployments.values() if app is not None else []:
        lines = [line.strip() for line in (deployment.message or "").splitlines()]
        raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
        if raised:
            kind, _, message = raised[-1].partition(": ")
            return message if kind == "ValueError" else raised[-1]
    return None


def serve_run(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    address: str = "",
    token_file: Path | None = None,
    index: str | None = None,
) -> None:
    """Serves ``run_dir`` at ``http://host:port`` until interrupted (see the module docstring)."""
    given, run_dir = Path(run_dir), Path(run_dir).absolute()  # errors name the path given
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {replicas}")
    if not 0 < port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {port}")
    token = read_token(token_file, host)
    if index is not None:
        IndexConfig(kind=index)  # a wrong kind refused here, not in every replica
    check_servable(given)
    if index is not None:  # NCF: refused here, not after every replica failed to start
        config = load_config(current_dir(given) / "config.toml")
        check_indexable(build_model(config.model, 1, 1, feature_dim=8, seed=0))
    check_port_free(host, port)

    from ray import serve

    from gnnrec.common.ray_cluster import connect
    from gnnrec.serve.service import service_app

    log.info("starting Ray Serve for %s on %s:%d (%d replicas)", run_dir, host, port, replicas)
    connect(address)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        serve.start(http_options={"host": host, "port": port})
        try:
            service = serve.run(
                service_app(run_dir, replicas, token, index),
                name=APP_NAME,
                route_prefix="/",
                blocking=False,
            )
            reason = service.startup_failure.remote().result()
        except RuntimeError:  # a replica raised something else while loading
            reason = replica_error(serve.status().applications.get(APP_NAME))
            if reason is None:
                raise
        if reason is not None:
            raise ValueError(
                f"the service could not start: {reason}".replace(str(run_dir), str(given))
            )
        print(
            f"serving {run_dir} at http://{host}:{port} ({replicas} replicas); Ctrl-C stops",
            flush=True,
        )
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping the service")
        serve.delete(APP_NAME, _blocking=True) if address else serve.shutdown()
