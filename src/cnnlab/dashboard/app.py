"""The dashboard's web app (Starlette): one page, a small JSON API and a server-sent-event stream.

Routes (every run name is a path relative to RUNS_DIR; see ``data.RunsDir.resolve``):

- ``GET /``: the page (``static/index.html``; its JS and CSS from ``/static/``, no CDN);
- ``GET /api/runs``: one summary row per run (config columns, progress, metrics);
- ``GET /api/run?name=RUN``: config, metrics, history, confusion matrix, files of a run;
- ``GET /api/events?run=RUN``: server-sent events ``runs`` (the table changed) and ``run``
  (that run wrote a file: new history row, metrics, weights), polled from file stats;
- ``GET /api/features?run=RUN&index=I``: test image I and the feature maps of the latest weights;
- ``POST /api/predict?run=RUN&top_k=K``: body = a PNG/JPEG (at most ``MAX_UPLOAD_BYTES``):
  top-k probabilities as ``cnnlab predict`` computes them and the Grad-CAM map; for a text
  run (``text_runs``) body = UTF-8 text: top-k and each token's Grad-CAM weight;
- ``GET /files/RUN/PATH``: a file of a run (report.html, plots/*.png), read-only.

Anything outside RUNS_DIR is 404; only GET/HEAD and that one POST exist (405 otherwise).
Every ``/api/`` error is a JSON ``{"error": "..."}`` with its status (the page shows it): 404,
409 (no weights yet, or the run's dataset cannot be loaded here), 400/413 (a bad upload) and
500 for anything unexpected (one line on the server's stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cnnlab.dashboard import data, models, text_runs
from cnnlab.train.runs.files import PLOTS_DIR

#: Seconds between two looks at the run folders' file stats for the event stream.
POLL_SECONDS = 0.5
#: Seconds between keep-alive comments on an idle event stream.
HEARTBEAT_SECONDS = 15.0
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}
#: No page from elsewhere may frame or script this one; it loads nothing from other hosts.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


#: A run's files (report.html too) open sandboxed: no script of theirs runs with this origin.
FILE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def create_app(runs_dir: str | os.PathLike[str], poll_seconds: float = POLL_SECONDS) -> Starlette:
    """The dashboard app serving the runs under ``runs_dir`` (which must be a folder)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dashboard: RUNS_DIR {str(root)!r} is not a folder")
    runs = data.RunsDir(root)

    def run_name(request: Request, key: str = "run") -> str:
        name = request.query_params.get(key, "")
        runs.run(name)  # NotFound -> 404
        return name

    async def page(request: Request) -> Response:
        return _static("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise data.NotFound(name)
        return _static(name)

    async def api_runs(request: Request) -> Response:
        rows = await run_in_threadpool(lambda: _summaries(runs, runs.runs()))
        return _json({"root": root.name or str(root), "runs": rows})

    async def api_run(request: Request) -> Response:
        name = run_name(request, "name")
        return _json(await run_in_threadpool(data.run_details, runs, name))

    async def api_features(request: Request) -> Response:
        name = run_name(request)
        index = _int(request.query_params.get("index", "0"), "index")
        return _json(await run_in_threadpool(models.feature_maps, runs.run(name), index))

    async def api_predict(request: Request) -> Response:
        name = run_name(request)
        top_k = _int(request.query_params.get("top_k", "5"), "top_k")
        if text_runs.is_text_run(runs.run(name)):  # the body is the text to classify
            body = await _read_limited(request, text_runs.MAX_TEXT_BYTES, "the text to classify (UTF-8)")
            return _json(await run_in_threadpool(text_runs.predict_text, runs.run(name), body, top_k))
        body = await _read_limited(request, models.MAX_UPLOAD_BYTES)
        return _json(await run_in_threadpool(models.predict, runs.run(name), body, top_k))

    async def files(request: Request) -> Response:
        path = runs.resolve(request.path_params["path"])
        run = path.parent if path.parent.name != PLOTS_DIR else path.parent.parent
        if not path.is_file() or not data.is_run(run) or path.name.startswith("."):
            raise data.NotFound(request.path_params["path"])
        return FileResponse(path, headers=FILE_HEADERS)

    async def events(request: Request) -> Response:
        name = request.query_params.get("run") or None
        if name is not None:  # may not exist yet: `train --dashboard` prints the URL first
            runs.resolve(name, must_exist=False)
        return StreamingResponse(
            _event_stream(runs, name, poll_seconds),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/runs", _api(api_runs)),
        Route("/api/run", _api(api_run)),
        Route("/api/events", _api(events)),
        Route("/api/features", _api(api_features)),
        Route("/api/predict", _api(api_predict), methods=["POST"]),
        Route("/files/{path:path}", files),
    ]
    handlers: Any = {
        data.NotFound: lambda request, exc: _json({"error": "not found"}, 404),
        models.NoWeights: lambda request, exc: _json({"error": str(exc)}, 409),
        models.NoData: lambda request, exc: _json({"error": str(exc)}, 409),
        models.BadImage: lambda request, exc: _json({"error": str(exc)}, 400),
        HTTPException: lambda request, exc: _json({"error": exc.detail}, exc.status_code),
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.runs = runs
    return app


#: Errors the app's exception handlers answer themselves (with their own status).
_HANDLED = (data.NotFound, models.NoWeights, models.NoData, models.BadImage, HTTPException)


def _api(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` with any unexpected error answered as JSON 500 (the page shows ``error``)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _HANDLED:
            raise
        except Exception as exc:
            message = f"{request.url.path} failed: {type(exc).__name__}: {exc}"
            print(f"cnnlab dashboard: error: {message}", file=sys.stderr, flush=True)
            return _json({"error": message}, 500)

    return guarded


def _static(name: str) -> Response:
    text = resources.files("cnnlab.dashboard").joinpath("static", name).read_bytes()
    return Response(text, media_type=STATIC[name], headers=HEADERS)


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status, headers={"Cache-Control": "no-store"})


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HTTPException(400, f"`{what}` must be an int. Received: {text!r}") from None


async def _read_limited(request: Request, limit: int, what: str = "a PNG or JPEG image") -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    too_large = HTTPException(413, f"upload too large: at most {limit} bytes ({limit // 1024} KiB)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    if not body:
        raise HTTPException(400, f"the request body must be {what}; it was empty")
    return bytes(body)


def _summaries(runs: data.RunsDir, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        try:
            rows.append(data.run_summary(runs, name))
        except data.NotFound:  # removed since it was listed
            continue
    return rows


def _sse(event: str, value: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(value, separators=(',', ':'))}\n\n"


async def _event_stream(runs: data.RunsDir, name: str | None, poll: float) -> AsyncIterator[str]:
    """``runs`` when any run's files change, ``run`` when run ``name``'s do (first: both).

    A run that does not exist yet is ``pending`` until it does; one that disappears is ``gone``.
    """

    def look() -> tuple[Any, Any]:
        listing = tuple((n, data.signature(runs.root / n)) for n in runs.runs())
        one = data.signature(runs.root / name) if name else None
        return listing, one

    seen: tuple[Any, Any] = (None, None)
    quiet, existed = 0.0, False
    yield "retry: 1000\n\n"
    while True:
        now = await anyio.to_thread.run_sync(look)
        if now[0] != seen[0]:
            rows = await anyio.to_thread.run_sync(_summaries, runs, [n for n, _ in now[0]])
            yield _sse("runs", {"runs": rows})
            quiet = 0.0
        if name and now[1] != seen[1]:
            try:
                details = await anyio.to_thread.run_sync(data.run_details, runs, name)
            except data.NotFound:
                if existed:  # the run folder was removed
                    yield _sse("gone", {"run": name})
                    return
                if seen[1] is None:
                    yield _sse("pending", {"run": name})
            else:
                existed = True
                yield _sse("run", details)
            quiet = 0.0
        seen = now
        if quiet >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            quiet = 0.0
        await anyio.sleep(poll)
        quiet += poll
