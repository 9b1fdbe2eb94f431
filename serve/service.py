"""The HTTP service of a trained run: a Ray Serve deployment with a FastAPI ingress, each replica
holding the run in memory (:class:`~gnnrec.serve.handle.RunHandle`).

Endpoints (JSON in and out; ids are strings or integers as in the data)::

    GET  /health     {"status": "ok", "version", "version_name", "users", "items", "folded_users"}
    GET  /version                {"version", "name", "run_dir"}
    POST /recommend              {"user", "k"}                -> {"user", "items": [...]}
    POST /recommend/items        {"items", "k", "text"?}      -> {"items": [...]}  (fold-in)
    POST /recommend/text         {"text", "k"}                -> {"items": [...]}
    POST /interactions           {"user", "items"}            -> {"user", "recorded", "time"}
    POST /similar/items          {"items", "k"}               -> {"similar": {id: [...]}}
    POST /similar/users          {"users", "k"}     -> {"similar": {id: [{"user", "score"}]}}

An item list is ``[{"item", "score", "title"}]``, best first, seen items excluded; ``k`` larger
than what is left returns all of it, with a ``note``. Known users' requests are batched
(``@serve.batch``), and so are new users' (fold-in) requests. A recorded interaction is in the
log (:mod:`gnnrec.serve.interaction_log`) before the reply; every replica folds in the log's
new lines before answering, so the next request of that user, on any replica, sees it. Errors
are 4xx with ``{"error": ...}`` (unknown ids also list them in ``"unknown"``, invalid fields in
``"detail"``); a request body over :data:`MAX_BODY_BYTES` is 413; with a token, a request
without ``Authorization: Bearer <token>`` is 401.

When ``gnnrec update`` makes a new version of the run current, every replica loads it in the
background and swaps it in once it holds the whole log; no request waits for it or fails.
"""

from __future__ import annotations

import hmac
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from gnnrec.common.log import get_logger
from gnnrec.serve.handle import TRAINED, Ranked, RunHandle, UnknownIds, load
from gnnrec.serve.interaction_log import InteractionLog
from gnnrec.serve.item_index import IndexConfig
from gnnrec.versions import current_version

MAX_BODY_BYTES = 1 << 20
MAX_IDS = 10_000  # ids in one request
MAX_TEXT = 10_000  # characters of a text
MAX_BATCH = 32  # requests ranked together (known users; new users' fold-ins)
VERSION_POLL_S = 0.5  # how often a replica looks for a new version of the run
logger = get_logger(__name__)

Id = str | int


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UserRequest(_Body):
    user: Id
    k: int = Field(10, ge=1)


class ItemsRequest(_Body):
    items: list[Id] = Field(min_length=1, max_length=MAX_IDS)
    k: int = Field(10, ge=1)
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT)


class TextRequest(_Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(10, ge=1)


class RecordRequest(_Body):
    user: Id
    items: list[Id] = Field(min_length=1, max_length=MAX_IDS)


class SimilarUsersRequest(_Body):
    users: list[Id] = Field(min_length=1, max_length=MAX_IDS)
    k: int = Field(10, ge=1)


app = FastAPI(title="gnnrec", description=__doc__)


def _fold_log(handle: RunHandle, log: InteractionLog) -> None:
    """Folds the lines ``log`` gained since its last read into ``handle``."""
    for record in log.read_new():
        try:
            handle.record(record.user, record.items)
        except UnknownIds as err:
            raise ValueError(f"{log.path}, line {record.line}: {err}") from None


@app.middleware("http")
async def _guard(request: Request, call_next):
    """The token (when the service has one) and the body bound, before anything is read."""
    from gnnrec.serve import replica_setup  # the replica's own module (this app is pickled)

    token = replica_setup.TOKEN["bearer"]
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
    return await call_next(request)


@app.exception_handler(UnknownIds)
async def _unknown(request: Request, err: UnknownIds):
    return JSONResponse({"error": str(err), "unknown": err.ids}, status_code=404)


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError):
    problems = [
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in err.errors()
    ]
    return JSONResponse({"error": "; ".join(problems), "detail": err.errors()}, status_code=422)


@app.exception_handler(ValueError)
async def _bad_value(request: Request, err: ValueError):
    return JSONResponse({"error": str(err)}, status_code=400)


@serve.deployment(max_ongoing_requests=4 * MAX_BATCH)
@serve.ingress(app)
class RunService:
    """One replica: the run in memory, kept up to date with the interaction log."""

    def __init__(
        self, run_dir: str, token: str | None = None, index: str | IndexConfig | None = None
    ):
        from gnnrec.serve import replica_setup

        self._stop = threading.Event()  # (first: __del__ reads it however __init__ ends)
        replica_setup.TOKEN["bearer"] = token
        replica_setup.replica_grpc_on_loopback()
        self.run_dir = Path(run_dir)
        if isinstance(index, str):
            index = IndexConfig(kind=index)
        self.index = index
        self._sync_lock = threading.Lock()
        self.failure: str | None = None
        try:
            self.handle: RunHandle = load(run_dir, index=index)
            self.handle.prepare_fold_in()
            self.log = InteractionLog(run_dir)
            self._sync()  # replays everything recorded so far
        except ValueError as err:  # the run's own refusal (its data changed, a bad log line)
            self.failure = str(err)  # reported by `gnnrec serve`, which then stops the service
            return
        threading.Thread(target=self._watch_versions, daemon=True).start()

    def startup_failure(self) -> str | None:
        """Why this replica could not load the run (``None``: it serves it); ``gnnrec serve``
        asks before it announces the service."""
        return self.failure

    def __del__(self) -> None:  # Ray Serve's replica shutdown: the version watcher stops too
        self._stop.set()

    def _sync(self) -> None:
        """Folds in what the log gained since the last call (from any replica)."""
        with self._sync_lock:
            _fold_log(self.handle, self.log)

    def _watch_versions(self) -> None:
        """Switches to the run's current version whenever ``gnnrec update`` makes a new one
        current: loads it beside the one serving, folds the whole log into it, then swaps it in
        under the log's lock (requests meanwhile, and those in flight, use the old one)."""
        failed = None
        while not self._stop.wait(VERSION_POLL_S):
            try:
                name = current_version(self.run_dir) or TRAINED
            except (ValueError, OSError):
                continue  # (a pointer being replaced, or unreadable for now: look again)
            if name in (self.handle.version_name, failed):
                continue
            try:
                handle = load(self.run_dir, index=self.index)
                handle.prepare_fold_in()
                log = InteractionLog(self.run_dir)
                _fold_log(handle, log)
                with self._sync_lock:
                    _fold_log(handle, log)  # what came in while it loaded
                    self.handle, self.log = handle, log
                logger.info("%s: now serving version %s", self.run_dir, handle.version_name)
            except Exception:
                failed = name  # tried once; the old version keeps serving
                logger.exception("%s: version %s could not be loaded", self.run_dir, name)

    def _items(self, ranked: Ranked) -> list[dict]:
        return [
            {"item": item, "score": round(score, 6), "title": self.handle.title(item)}
            for item, score in ranked
        ]

    def _listed(self, ranked: Ranked, k: int) -> dict:
        out = {"items": self._items(ranked)}
        if len(ranked) < k:
            out["note"] = (
                f"k = {k} is more than the {len(ranked)} items left to recommend: all given"
            )
        return out

    @app.get("/health")
    def health(self) -> dict:
        return {
            "status": "ok",
            "version": self.handle.version,
            "version_name": self.handle.version_name,
            "users": self.handle.num_users,
            "items": self.handle.num_items,
            "folded_users": self.handle.num_folded,
        }

    @app.get("/version")
    def version(self) -> dict:
        handle = self.handle
        return {
            "version": handle.version,
            "name": handle.version_name,
            "run_dir": str(self.run_dir),
        }

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.002)
    async def _recommend_batch(self, requests: list[tuple[str, int]]) -> list:
        self._sync()
        users = [user for user, _ in requests]
        known = [u for u in dict.fromkeys(users) if self.handle.knows_user(u)]
        ranked = self.handle.recommend(known, max(k for _, k in requests)) if known else {}
        return [
            ranked[user][:k] if user in ranked else UnknownIds("user", [user])
            for user, k in requests
        ]

    @app.post("/recommend")
    async def recommend(self, body: UserRequest) -> dict:
        user = str(body.user)
        ranked = await self._recommend_batch((user, body.k))
        if isinstance(ranked, Exception):
            raise ranked
        return {"user": user, **self._listed(ranked, body.k)}

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.002)
    async def _items_batch(self, requests: list[tuple[list[str], int, str | None]]) -> list:
        """New users' requests folded in and ranked together; a request the handle refuses
        (an unknown item, text the model cannot read) gets its own error, not the batch."""
        answers: list = [None] * len(requests)
        valid = []
        for n, (items, _, text) in enumerate(requests):
            try:
                self.handle.new_user_rows(items, text)
                valid.append(n)
            except ValueError as err:
                answers[n] = err
        if valid:
            k = max(requests[n][1] for n in valid)
            ranked = self.handle.recommend_for_item_lists(
                [requests[n][0] for n in valid], k, [requests[n][2] for n in valid]
            )
            for n, top in zip(valid, ranked):
                answers[n] = top[: requests[n][1]]
        return answers

    @app.post("/recommend/items")
    async def recommend_for_items(self, body: ItemsRequest) -> dict:
        ranked = await self._items_batch(([str(i) for i in body.items], body.k, body.text))
        if isinstance(ranked, Exception):
            raise ranked
        return self._listed(ranked, body.k)

    @app.post("/recommend/text")
    def recommend_for_text(self, body: TextRequest) -> dict:
        return self._listed(self.handle.recommend_for_text(body.text, body.k), body.k)

    @app.post("/interactions")
    def record(self, body: RecordRequest) -> dict:
        user, items = str(body.user), [str(i) for i in body.items]
        self.handle.item_rows(items)  # unknown items refused before anything is written
        time = self.log.append(user, items)
        self._sync()
        return {"user": user, "recorded": len(items), "time": time}

    @app.post("/similar/items")
    def similar_items(self, body: ItemsRequest) -> dict:
        self._check_no_text(body)
        nearest = self.handle.similar_items([str(i) for i in body.items], body.k)
        return {"similar": {item: self._items(ranked) for item, ranked in nearest.items()}}

    @app.post("/similar/users")
    def similar_users(self, body: SimilarUsersRequest) -> dict:
        self._sync()
        nearest = self.handle.similar_users([str(u) for u in body.users], body.k)
        return {
            "similar": {
                user: [{"user": other, "score": round(score, 6)} for other, score in ranked]
                for user, ranked in nearest.items()
            }
        }

    @staticmethod
    def _check_no_text(body: ItemsRequest) -> None:
        if body.text is not None:
            raise ValueError("similar items take no text")


def service_app(
    run_dir: str | Path,
    replicas: int = 1,
    token: str | None = None,
    index: str | IndexConfig | None = None,
):
    """The Ray Serve application of ``run_dir`` with ``replicas`` replicas (``index``: rank
    through a faiss index of that kind, or of that configuration)."""
    # a replica that cannot load the run (its data, model or log) fails alike on every try:
    # once is enough, and the driver reports its error at once
    options = {"num_replicas": replicas, "max_constructor_retry_count": 1}
    return RunService.options(**options).bind(str(run_dir), token, index)
