"""The web page's server: a small ASGI app (Starlette) over one :class:`annotate.session.Session`.

Long work (opening a video, a round, undo, save, export) runs in one worker thread; the page polls
``GET /api/status`` for its stage and progress, so the page never waits on a request that computes.
One session at a time: this is a local, single-user tool (it binds to 127.0.0.1 by default).

Routes: ``/`` the page; ``GET /api/status``; ``GET /api/frame/{t}.jpg?overlay=0|1``;
``GET /api/mask/{t}.png`` (DAVIS-palette ids at the video's size); ``PUT /api/upload?name=``
(the raw file as the body); ``POST /api/open`` {path, objects, backend, method} (a video file, a folder of
frames, or a workspace folder); ``POST /api/run`` {frame, strokes: [{path, object_id}]}; ``POST /api/undo``;
``POST /api/method`` {method}; ``POST /api/save`` {dir?}; ``POST /api/export`` {dir?}. Every error comes back
as ``{"error": message}`` (HTTP 400 for bad input, 409 while a job runs) and in the status's ``job``.
"""
from __future__ import annotations

import logging
import re
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from annotate.export import palette_png_bytes
from annotate.session import METHODS, Session
from core.errors import InputError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
JPEG_QUALITY = 88
JPEG_CACHE = 256


@dataclass
class Job:
    id: str
    kind: str
    state: str = "running"          # running | done | error
    stage: str = "queued"
    fraction: float = 0.0
    message: str = ""
    result: Any = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    expected: float | None = None    # seconds the job should take (the last round's), for the progress bar

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "stage": self.stage,
                "fraction": round(self.fraction, 3), "message": self.message, "result": self.result,
                "elapsed": round((self.ended or time.time()) - self.started, 3),
                "expected": None if self.expected is None else round(self.expected, 3)}


class Controller:
    """Holds the session and runs one job at a time in a worker thread."""

    def __init__(self, weights_dir: str = "weights", device: str = "auto", root: str | Path = "workspaces",
                 out_root: str | Path = "out", backend_options: dict | None = None) -> None:
        self.weights_dir = weights_dir
        self.device = device
        self.root = Path(root)
        self.out_root = Path(out_root)
        self.backend_options = backend_options or {}
        self.session: Session | None = None
        self.job: Job | None = None
        self.version = 0                 # bumps whenever the masks change (the page's image cache key)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate-worker")
        self.lock = threading.Lock()
        self._jpegs: OrderedDict[tuple, bytes] = OrderedDict()

    # -- jobs -----------------------------------------------------------------------------
    def busy(self) -> bool:
        return self.job is not None and self.job.state == "running"

    def submit(self, kind: str, fn: Callable[[Job], Any]) -> Job:
        with self.lock:
            if self.busy():
                raise BusyError(f"{self.job.kind} is still running; wait for it to finish")
            job = Job(uuid.uuid4().hex[:8], kind)
            self.job = job
        self.pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        try:
            job.result = fn(job)
            job.state, job.stage, job.fraction = "done", "done", 1.0
        except (InputError, ValueError, FileNotFoundError) as e:
            job.state, job.message = "error", str(e)
        except Exception as e:   # a bug: say so, keep the session as it was
            log.error("job %s failed:\n%s", job.kind, traceback.format_exc())
            job.state, job.message = "error", f"internal error in {job.kind}: {type(e).__name__}: {e}"
        finally:
            job.ended = time.time()

    def require(self) -> Session:
        if self.session is None:
            raise InputError("no video open: open a video file, a folder of frames or a workspace first")
        return self.session

    def status(self) -> dict:
        s = self.session
        return {"session": s.status() if s is not None else None, "job": self.job.to_json() if self.job else None,
                "version": self.version, "methods": list(METHODS)}

    # -- actions (run in the worker) --------------------------------------------------------
    def open(self, job: Job, path: str, objects: int, backend: str, method: str) -> dict:
        job.stage = "reading the video"
        p = Path(path).expanduser()
        if (p / "workspace.json").is_file():
            s = Session.load(p, weights_dir=self.weights_dir, device=self.device)
        else:
            s = Session.open(p, objects, backend=backend, method=method, weights_dir=self.weights_dir,
                             device=self.device, backend_options=self.backend_options)
        self.session = s
        self.version += 1
        return {"opened": s.video.source}

    def run_round(self, job: Job, frame: int, strokes: list) -> dict:
        s = self.require()
        if s.rounds:
            job.expected = sum(s.rounds[-1].timings.values())

        def progress(stage: str, frac: float) -> None:
            job.stage, job.fraction = stage, frac

        r = s.add_scribbles(strokes, frame=frame, progress=progress)
        self.version += 1
        return {"round": r.index, "frame": r.frame, "timings": r.timings,
                "recommendation": r.recommendation.to_json()}

    def undo(self, job: Job) -> dict:
        s = self.require()
        job.stage = "undoing"
        s.undo()
        self.version += 1
        return {"rounds": len(s.rounds)}

    def set_method(self, job: Job, method: str) -> dict:
        s = self.require()
        if method not in METHODS:
            raise InputError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
        s.method = method
        if s.rounds:
            return s.recommend(method).to_json()
        return {"method": method}

    def save(self, job: Job, directory: str | None) -> dict:
        s = self.require()
        job.stage = "saving"
        ws = Path(directory) if directory else self.root / s.name
        s.save(ws)
        return {"workspace": str(ws.resolve())}

    def export(self, job: Job, directory: str | None) -> dict:
        from annotate.export import plot_quality

        s = self.require()
        out = Path(directory) if directory else self.out_root / s.name
        job.stage, job.fraction = "mask PNGs", 0.1
        s.export_masks(out / "masks")
        job.stage, job.fraction = "overlay video", 0.6
        s.export_overlay(out / "overlay.mp4")
        s.write_quality_csv(out / "quality.csv")
        rec = s.recommendation
        plot_quality(out / "quality.png", s.quality, s.annotated, rec.frame if rec else None, title=s.name)
        return {"out": str(out.resolve())}

    # -- frames ----------------------------------------------------------------------------
    def frame_jpeg(self, t: int, overlay: bool) -> bytes:
        """JPEG of frame ``t`` (masks overlaid or not); the last JPEG_CACHE images are kept (scrubbing back and
        forth while a round runs then costs no encoding)."""
        s = self.require()
        if not 0 <= t < s.num_frames:
            raise InputError(f"frame {t} is outside the video (0..{s.num_frames - 1})")
        key = (id(s), self.version, t, bool(overlay and s.masks is not None))
        data = self._jpegs.get(key)
        if data is None:
            rgb = s.overlay(t) if overlay else s.video.frames[t]
            _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            data = buf.tobytes()
            self._jpegs[key] = data
            while len(self._jpegs) > JPEG_CACHE:
                self._jpegs.popitem(last=False)
        return data


class BusyError(InputError):
    """A job is running."""


def _error(e: Exception) -> JSONResponse:
    return JSONResponse({"error": str(e)}, status_code=409 if isinstance(e, BusyError) else 400)


async def _json(request: Request) -> dict:
    try:
        data = await request.json()
    except ValueError:
        raise InputError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object")
    return data


def create_app(controller: Controller) -> Starlette:
    c = controller

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def status(request: Request) -> Response:
        return JSONResponse(c.status())

    def mask(request: Request) -> Response:
        try:
            s = c.require()
            t = int(request.path_params["t"])
            if not 0 <= t < s.num_frames:
                raise InputError(f"frame {t} is outside the video (0..{s.num_frames - 1})")
            data = palette_png_bytes(s.full_masks(t))
        except (InputError, ValueError) as e:
            return _error(e)
        return Response(data, media_type="image/png")

    def frame(request: Request) -> Response:   # sync: Starlette runs it in its thread pool
        try:
            t = int(request.path_params["t"])
            data = c.frame_jpeg(t, request.query_params.get("overlay", "1") != "0")
        except (InputError, ValueError) as e:
            return _error(e)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def upload(request: Request) -> Response:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(request.query_params.get("name", "upload.mp4")).name) or "upload.mp4"
        dest = c.root / "uploads" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with open(dest, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
                size += len(chunk)
        if size == 0:
            dest.unlink(missing_ok=True)
            return _error(InputError(f"{name}: the uploaded file is empty"))
        return JSONResponse({"path": str(dest.resolve()), "bytes": size})

    def action(kind: str, make: Callable[[dict], Callable[[Job], Any]]):
        async def handler(request: Request) -> Response:
            try:
                data = await _json(request) if kind != "undo" else {}
                job = c.submit(kind, make(data))
            except (InputError, ValueError, KeyError, TypeError) as e:
                return _error(InputError(str(e)) if isinstance(e, (KeyError, TypeError)) else e)
            return JSONResponse({"job": job.to_json()})
        return handler

    def _open(d: dict):
        path = str(d.get("path") or "").strip()
        if not path:
            raise InputError("give a path to a video file, a folder of frames or a workspace (or upload a file)")
        objects = int(d.get("objects", 1))
        return lambda job: c.open(job, path, objects, str(d.get("backend", "classic")), str(d.get("method", "ours")))

    def _run(d: dict):
        c.require()
        strokes = d.get("strokes") or []
        if "frame" not in d:
            raise InputError("the request needs the frame the strokes were drawn on")
        frame = int(d["frame"])
        return lambda job: c.run_round(job, frame, strokes)

    routes = [
        Route("/", index),
        Route("/api/status", status),
        Route("/api/frame/{t:int}.jpg", frame),
        Route("/api/mask/{t:int}.png", mask),
        Route("/api/upload", upload, methods=["PUT", "POST"]),
        Route("/api/open", action("open", _open), methods=["POST"]),
        Route("/api/run", action("round", _run), methods=["POST"]),
        Route("/api/undo", action("undo", lambda d: c.undo), methods=["POST"]),
        Route("/api/method", action("method", lambda d: (lambda job: c.set_method(job, str(d.get("method"))))),
              methods=["POST"]),
        Route("/api/save", action("save", lambda d: (lambda job: c.save(job, d.get("dir") or None))), methods=["POST"]),
        Route("/api/export", action("export", lambda d: (lambda job: c.export(job, d.get("dir") or None))),
              methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return Starlette(routes=routes)


__all__ = ["Controller", "create_app"]
