"""``gnnrec serve`` for real: a Ray Serve service on a free loopback port answers every endpoint
over HTTP, refuses bad input with a 4xx and a JSON body, folds a recorded interaction in before
the next request, keeps every acknowledged interaction through ``kill -9`` and a restart, and
listens on 127.0.0.1 only; what would be unsafe or cannot work is refused before it starts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from helpers import error_line, planted_config

from gnnrec.cli import main
from gnnrec.common.run_lock import run_dir_lock
from gnnrec.run import train_run

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token-for-the-test"
SPACE = [f"i0_{k}" for k in range(15)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listeners() -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


class Service:
    """``gnnrec serve`` in its own process group, on ``port``."""

    def __init__(self, run_dir: Path, port: int, token_file: Path, log: Path, *extra: str):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        command = [sys.executable, "-m", "gnnrec", "serve", "--run-dir", str(run_dir)]
        command += ["--port", str(port), "--token-file", str(token_file), "--replicas", "2", *extra]
        self.process = subprocess.Popen(
            command, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 240
        try:
            while time.time() < deadline:
                assert self.process.poll() is None, log.read_text()[-3000:]
                try:
                    if "serving" in log.read_text() and self.call("GET", "/health")[0] == 200:
                        return
                except (OSError, ValueError):  # not listening, or not deployed yet (no JSON)
                    pass
                time.sleep(1)
            raise AssertionError(f"the service did not come up: {log.read_text()[-3000:]}")
        except BaseException:
            self.kill()
            raise

    def call(self, method: str, path: str, body=None, token: str | None = TOKEN, raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def recommended(self, user: str) -> set[str]:
        """Every item the service recommends ``user`` (``k`` = the whole catalogue)."""
        return {
            i["item"] for i in self.call("POST", "/recommend", {"user": user, "k": 60})[1]["items"]
        }

    def kill(self) -> None:
        """``kill -9`` of the service's whole process group (Ray's processes included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.kill()


@pytest.fixture(scope="module")
def run_dir(planted_dir, feature_cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("served") / "run"
    overrides = ["model.name=lightgcn", "model.text_features=false", "model.layers=2"]
    train_run(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    return run_dir


def test_the_service_answers_records_and_survives_kill_9(run_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    before = _listeners()
    service = Service(run_dir, _free_port(), token_file, tmp_path / "serve-1.log")
    try:
        new = _listeners() - before
        assert new and {ip for ip, _ in new} <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, new
        assert service.call("GET", "/health", token=None) == (
            401,
            {"error": "missing or wrong bearer token"},
        )
        assert service.call("GET", "/health", token="wrong")[0] == 401
        status, health = service.call("GET", "/health")
        assert status == 200 and health["status"] == "ok" and health["items"] == 60
        assert service.call("GET", "/version")[1]["version"] == health["version"]

        status, known = service.call("POST", "/recommend", {"user": "u0", "k": 5})
        assert status == 200 and known["user"] == "u0" and len(known["items"]) == 5
        assert {"item", "score", "title"} == set(known["items"][0])
        status, folded = service.call("POST", "/recommend/items", {"items": SPACE[:4], "k": 5})
        top = [row["item"] for row in folded["items"]]
        assert status == 200 and not set(top) & set(SPACE[:4]) and sum(i in SPACE for i in top) >= 3
        status, similar = service.call("POST", "/similar/items", {"items": ["i0_0"], "k": 3})
        assert status == 200 and len(similar["similar"]["i0_0"]) == 3
        status, peers = service.call("POST", "/similar/users", {"users": ["u0", "u1"], "k": 2})
        assert status == 200 and [len(v) for v in peers["similar"].values()] == [2, 2]
        assert set(peers["similar"]["u0"][0]) == {"user", "score"}
        status, answer = service.call("POST", "/similar/users", {"users": ["u0", 7], "k": 2})
        assert status == 404 and answer["unknown"] == ["7"]  # ids may be numbers: 7 is "7"
        status, many = service.call("POST", "/recommend", {"user": "u0", "k": 1000})
        assert status == 200 and len(many["items"]) < 60 and "note" in many

        # bad input: 4xx with a JSON body, nothing recorded
        bad = {
            ("POST", "/recommend", json.dumps({"user": "ghost"})): (404, "ghost"),
            ("POST", "/recommend/items", json.dumps({"items": ["i0_1", "nope"]})): (404, "nope"),
            ("POST", "/recommend/items", json.dumps({"items": []})): (422, "items"),
            ("POST", "/recommend", json.dumps({"user": "u0", "k": 0})): (422, "k"),
            ("POST", "/recommend", json.dumps({"user": "u0", "k": "5"})): (422, "k"),
            ("POST", "/recommend", json.dumps({"user": ["u0"]})): (422, "user"),
            ("POST", "/recommend", '{"user": "u0",'): (422, "json"),
            ("POST", "/recommend/text", json.dumps({"text": "space"})): (400, "no text features"),
            ("POST", "/interactions", json.dumps({"user": "x", "items": ["zzz"]})): (404, "zzz"),
            ("POST", "/interactions", json.dumps({"user": "x", "items": "i0_1"})): (422, "items"),
            ("POST", "/recommend", json.dumps({"user": "u0", "pad": "x" * (2 << 20)})): (
                413,
                "body",
            ),
        }
        for (method, path, raw), (code, word) in bad.items():
            status, answer = service.call(method, path, raw=raw.encode())
            assert status == code, (path, raw[:80], status, answer)
            assert word in json.dumps(answer).lower(), (path, answer)
        assert (
            not (run_dir / "interactions.jsonl").exists()
            or "zzz" not in (run_dir / "interactions.jsonl").read_text()
        )

        # record -> the next request (on either replica) reflects it
        acknowledged = []
        for n in range(6):
            items = SPACE[n : n + 2] if n % 2 else [known["items"][0]["item"]]
            user = "newcomer" if n % 2 else "u0"
            status, answer = service.call("POST", "/interactions", {"user": user, "items": items})
            assert status == 200 and answer["recorded"] == len(items)
            acknowledged.append((user, items))
            for _ in range(2):  # two requests: both replicas in turn, most likely
                assert not service.recommended(user) & set(items)
    finally:
        service.kill()

    # kill -9 lost nothing acknowledged: a new service (ranking through an index) replays the log
    lines = [json.loads(line) for line in (run_dir / "interactions.jsonl").read_text().splitlines()]
    assert [(r["user"], r["items"]) for r in lines] == acknowledged
    service = Service(
        run_dir, _free_port(), token_file, tmp_path / "serve-2.log", "--index", "hnsw"
    )
    try:
        assert service.call("GET", "/health")[1]["folded_users"] == 2
        for user, items in acknowledged:
            assert not service.recommended(user) & set(items)
    finally:
        service.stop()
    assert service.process.returncode == 0, (tmp_path / "serve-2.log").read_text()[-2000:]


def test_a_new_version_is_switched_to_under_a_stream_of_requests(
    planted_dir, feature_cache, tmp_path
):
    run = tmp_path / "run"
    overrides = ["model.name=lightgcn", "model.text_features=false", "model.layers=2"]
    train_run(planted_config(planted_dir, feature_cache, run, *overrides))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    service = Service(run, _free_port(), token_file, tmp_path / "serve.log")
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:  # known users, a fold-in, and the version, without a pause
        bodies = [
            ("POST", "/recommend", {"user": "u3", "k": 5}),
            ("POST", "/recommend/items", {"items": SPACE[:3], "k": 5}),
            ("GET", "/version", None),
        ]
        while not stop.is_set():
            for method, path, body in bodies:
                statuses.append(service.call(method, path, body)[0])

    try:
        assert service.call("GET", "/version")[1]["name"] == "trained"
        logged = {"user": "logged", "items": SPACE[:2]}
        assert service.call("POST", "/interactions", logged)[0] == 200
        streams = [threading.Thread(target=stream) for _ in range(3)]
        for thread in streams:
            thread.start()
        new = tmp_path / "new.csv"
        new.write_text("user_id,item_id\n" + "".join(f"newbie,{i}\n" for i in SPACE[:6]))
        update = [sys.executable, "-m", "gnnrec", "update", "--run-dir", str(run)]
        done = subprocess.run([*update, "--data", str(new)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        deadline, switched = time.time() + 120, 0
        while switched < 10 and time.time() < deadline:  # ten answers in a row: both replicas
            name = service.call("GET", "/version")[1]["name"]
            switched = switched + 1 if name == "0001" else 0
            time.sleep(0.1)
        stop.set()
        for thread in streams:
            thread.join()
        assert switched == 10, (tmp_path / "serve.log").read_text()[-3000:]
        assert len(statuses) > 30 and set(statuses) == {200}, sorted(set(statuses))
        # the update trained the new user in; the logged interaction is folded in again
        for _ in range(2):
            assert service.call("POST", "/recommend", {"user": "newbie", "k": 3})[0] == 200
            assert not service.recommended("logged") & set(SPACE[:2])
            assert not service.recommended("newbie") & set(SPACE[:6])
    finally:
        stop.set()
        service.kill()


def test_what_cannot_be_served_is_refused_before_starting(run_dir, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    serve = ["serve", "--run-dir", str(run_dir)]
    assert "not a loopback address" in error_line(capsys, main([*serve, "--host", "0.0.0.0"]))
    short = tmp_path / "short"
    short.write_text("abc")
    assert "at least 16 characters" in error_line(
        capsys, main([*serve, "--host", "0.0.0.0", "--token-file", str(short)])
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"127.0.0.1:{port} is in use" in error_line(
            capsys, main([*serve, "--port", str(port)])
        )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.toml").write_text((run_dir / "config.toml").read_text())
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    assert "no gnnrec run directory" in error_line(
        capsys, main(["serve", "--run-dir", str(foreign)])
    )
    assert "is a file" in error_line(capsys, main(["serve", "--run-dir", str(token_file)]))
    assert "has not finished training" in error_line(
        capsys, main(["serve", "--run-dir", str(unfinished)])
    )
    with run_dir_lock(run_dir, create=False):  # a train in progress holds the lock
        held = subprocess.run(
            [
                sys.executable,
                "-m",
                "gnnrec",
                "serve",
                "--run-dir",
                str(run_dir),
                "--port",
                str(_free_port()),
            ],
            capture_output=True,
            text=True,
        )
    assert held.returncode == 2 and "in use by another gnnrec process" in held.stderr, held.stderr


def test_a_log_that_is_not_records_is_refused_before_starting(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "interactions.jsonl").write_text('{"user": "u1", "items": [], "time": 1}\nnot json\n')
    line = error_line(capsys, main(["serve", "--run-dir", str(copy), "--port", str(_free_port())]))
    assert "interactions.jsonl, line 2: not a JSON record" in line


def test_a_replica_that_fails_to_start_is_reported_by_its_own_error():
    """What Ray Serve's status holds for a replica whose ``__init__`` raised (its traceback),
    reduced to the error's line."""
    from types import SimpleNamespace

    from gnnrec.serve.launch import replica_error

    trace = (
        "ray.exceptions.RayTaskError(RuntimeError): Traceback (most recent call last):\n"
        '  File "/x/serve/service.py", line 91, in _fold_log\n'
        "    raise ValueError(...)\n"
        "ValueError: run/interactions.jsonl, line 1: unknown item id(s): 'i9'"
    )

    def status(*messages):
        deployments = {f"d{i}": SimpleNamespace(message=m) for i, m in enumerate(messages)}
        return SimpleNamespace(deployments=deployments)

    assert (
        replica_error(status("", trace))
        == "run/interactions.jsonl, line 1: unknown item id(s): 'i9'"
    )
    other = trace.replace("ValueError: run", "MemoryError: run")
    assert replica_error(status(other)).startswith("MemoryError: run/interactions.jsonl")
    assert replica_error(status("Deploying", None)) is None and replica_error(None) is None


@pytest.mark.slow  # a real Ray Serve start
def test_a_replica_that_cannot_load_the_run_stops_the_service_with_its_reason(run_dir, tmp_path):
    """A log naming an item the run does not have (another run's log): the replica loads the
    run, refuses the log, and ``gnnrec serve`` reports why in one line and stops, no traceback
    on the console."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "interactions.jsonl").write_text('{"user": "u1", "items": ["zzz"], "time": 1}\n')
    port = _free_port()
    done = subprocess.run(
        [sys.executable, "-m", "gnnrec", "serve", "--run-dir", str(copy), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("gnnrec ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert errors == [
        f"gnnrec serve: error: the service could not start: {copy}/interactions.jsonl, "
        "line 1: unknown item id(s): 'zzz'"
    ]
    assert all(listening != port for _, listening in _listeners())  # stopped, nothing left
