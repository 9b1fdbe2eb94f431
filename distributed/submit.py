"""``gnnrec submit``: run a gnnrec command as a Ray job on a running cluster, the same as
``ray job submit --working-dir DIR -- gnnrec COMMAND ...``, and follow its logs."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from gnnrec.common.huge_pages import SWITCH as HUGE_PAGES
from gnnrec.common.ray_cluster import check_reachable

# The dashboard's job server of a cluster on this machine, or one forwarded to it
# (``ray dashboard cluster.yaml``): never a public address by default.
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Never uploaded with the working directory.
EXCLUDES = [".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache"]


def job_address(address: str = "") -> str:
    """``address``, else ``RAY_ADDRESS`` when it is a job server URL, else 127.0.0.1:8265."""
    env = os.environ.get("RAY_ADDRESS", "")
    return address or (env if env.startswith(("http://", "https://")) else DEFAULT_ADDRESS)


def auth_headers() -> dict[str, str]:
    """The ``Authorization`` header for clusters with Ray's token authentication (on by default
    since Ray 2.5x): the token from ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token`` (where ``ray start`` and ``ray get-auth-token --generate`` put it)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "")
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if not token and path.is_file():
        token = path.read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def submit(
    command: list[str],
    address: str = "",
    working_dir: str | Path | None = None,
    wait: bool = True,
    poll_seconds: float = 1.0,
    agent_wait_seconds: float = 60.0,
    out: TextIO | None = None,
) -> int:
    """Submits ``gnnrec COMMAND...`` (waiting up to ``agent_wait_seconds`` for the job agent of
    a cluster that has just started); writes the job id, then with ``wait`` its logs as they
    come and its final status, to ``out`` (default stdout), and returns 0 when the job succeeds,
    1 otherwise (0 right after submission without ``wait``)."""
    out = out or sys.stdout
    from ray.job_submission import JobStatus, JobSubmissionClient

    if not command:
        raise ValueError(
            "give the gnnrec command to run, e.g. gnnrec submit -- train --config c.toml"
        )
    # the job's processes on every node: large CPU tensors on huge pages (as here)
    runtime_env: dict = {"env_vars": {HUGE_PAGES: os.environ.get(HUGE_PAGES, "1")}}
    if working_dir is not None:  # checked before any connection is tried
        folder = Path(working_dir)
        if not folder.is_dir():
            raise ValueError(f"--working-dir {folder}: no such folder")
        runtime_env.update(working_dir=str(folder), excludes=EXCLUDES)
    address = job_address(address)
    if not address.startswith(("http://", "https://")):
        raise ValueError(
            f"--address {address}: a Ray job server is an http:// or https:// URL (e.g. "
            f"http://{address.split('://')[-1]})"
        )
    check_reachable(address, "a Ray job server (the dashboard)")
    client = JobSubmissionClient(address, headers=auth_headers())
    entrypoint = shlex.join(["gnnrec", *command])
    deadline = time.monotonic() + agent_wait_seconds
    while True:
        try:
            job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
            break
        except RuntimeError as err:  # a cluster that has just started has no job agent yet
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(poll_seconds)
    out.write(f"submitted job {job_id} to {address}: {entrypoint}\n")
    out.flush()
    if not wait:
        return 0
    shown = 0
    while True:
        status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        out.write(logs[shown:])  # the job's own output, streamed as it comes
        out.flush()
        shown = len(logs)
        if status.is_terminal():
            break
        time.sleep(poll_seconds)
    out.write(f"job {job_id}: {status.value}\n")
    return 0 if status == JobStatus.SUCCEEDED else 1
