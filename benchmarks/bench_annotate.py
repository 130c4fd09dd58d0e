"""Own-video session through the web page's server: how long a round takes and how the page responds meanwhile.

    python benchmarks/bench_annotate.py --root /tmp/bench_annotate --weights-dir weights

1. A 100-frame 480p synthetic clip (``python -m datasets.synthetic --train 0 --val 1 --frames 100 --seed S``,
   written once under ``--root``), its first scribble file as the user's first round.
2. ``app.py`` in its own process (``--threads`` cores, classic backend), driven over HTTP as the page drives it:
   ``POST /api/open``, ``POST /api/run`` with the strokes, ``GET /api/status`` every 50 ms until the round's
   masks and recommendation are there. Later rounds: the davisinteractive robot scribbles, from ground truth,
   on the frame the session recommended (a stand-in for the user).
3. While each round runs, a second client asks for ``/api/status`` and a frame image (``/api/frame/{t}.jpg``)
   every 100 ms: the page's response times (median, 95th percentile, max), against the same requests idle.
4. After each round: the true J&F of the masks (against the clip's ground truth) and, with QA weights, the
   Pearson correlation of the predicted per-frame quality with the true per-frame J&F.

Prints one table; ``--screenshot PATH`` also saves the page after the last round (Debian's Chromium via
playwright, if installed).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets import davis_compat as dc  # noqa: E402
from datasets import davis_metrics  # noqa: E402
from datasets.layout import DatasetSpec, read_metadata  # noqa: E402


def http(url: str, body: dict | None = None, timeout: float = 600) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: {e.code} {e.read().decode()}") from None


def status(url: str) -> dict:
    return json.loads(http(url + "api/status"))


def wait_job(url: str, job_id: str, poll: float = 0.05) -> dict:
    while True:
        s = status(url)
        job = s["job"]
        if job["id"] == job_id and job["state"] != "running":
            if job["state"] == "error":
                raise RuntimeError(job["message"])
            return s
        time.sleep(poll)


class Prober(threading.Thread):
    """Hits /api/status and a frame image every ``period`` s until stopped; records latencies (s)."""

    def __init__(self, url: str, num_frames: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url, self.T, self.period = url, num_frames, period
        self.lat: dict[str, list[float]] = {"status": [], "frame": []}
        self.stop_event = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            t0 = time.perf_counter()
            http(self.url + "api/status")
            self.lat["status"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            http(self.url + f"api/frame/{(7 * i) % self.T}.jpg?overlay=1&v={i}")
            self.lat["frame"].append(time.perf_counter() - t0)
            i += 1
            self.stop_event.wait(self.period)

    def stop(self) -> dict[str, list[float]]:
        self.stop_event.set()
        self.join()
        return self.lat


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    v = np.asarray(values) * 1000
    return f"{np.median(v):.0f} / {np.percentile(v, 95):.0f} / {v.max():.0f} (n={len(v)})"


def true_jf(gt: np.ndarray, pred: np.ndarray, K: int) -> tuple[float, np.ndarray]:
    """Object-weighted J&F of the video and (T,) per-frame J&F averaged over objects."""
    j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=K)
    f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=K)
    return davis_metrics.object_weighted_jf(j, f), davis_metrics.jf_per_frame(j, f)


def fetch_masks(url: str, T: int) -> np.ndarray:
    return np.stack([np.array(Image.open(io.BytesIO(http(url + f"api/mask/{t}.png")))) for t in range(T)])


def make_clip(root: Path, frames: int, seed: int) -> tuple[DatasetSpec, str]:
    seq = "syn-val-000"
    if not (root / "metadata.json").is_file():
        subprocess.run([sys.executable, "-m", "datasets.synthetic", "--root", str(root), "--train", "0", "--val", "1",
                        "--frames", str(frames), "--seed", str(seed), "--min-objects", "2", "--max-objects", "2",
                        "--quiet"], cwd=ROOT, check=True)
    return DatasetSpec(root.name, root, read_metadata(root)), seq


def screenshot(url: str, path: Path, profile: Path) -> str:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright missing: no screenshot"
    if not Path("/usr/bin/chromium").is_file():
        return "no /usr/bin/chromium: no screenshot"
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path="/usr/bin/chromium", headless=True,
                                                   args=args, viewport={"width": 1300, "height": 930})
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector("#rec-frame", timeout=30000)
        page.keyboard.press("r")
        page.wait_for_timeout(1500)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
        ctx.close()
    return f"screenshot: {path}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/tmp/bench_annotate", help="where the clip is generated (once)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--seed", type=int, default=3, help="synthetic clip seed")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--method", default="ours")
    p.add_argument("--weights-dir", default="weights", help="agent.pt and assess_net.pt (missing: the named fallback)")
    p.add_argument("--threads", type=int, default=2, help="cores the server may use (OMP/torch threads)")
    p.add_argument("--screenshot", default=None, help="save the page after the last round here (PNG)")
    a = p.parse_args()

    root = Path(a.root)
    spec, seq = make_clip(root / "data", a.frames, a.seed)
    K = int(spec.sequences[seq]["num_objects"])
    gt = spec.annotations(seq).astype(np.int64)
    T = len(gt)
    first = json.loads((root / "data" / "Scribbles" / seq / "001.json").read_text())
    frames_dir = root / "data" / "JPEGImages" / "480p" / seq

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    log = open(root / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--weights-dir", a.weights_dir,
                             "--device", "cpu", "--workspaces", str(root / "ws"), "--out", str(root / "out")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                status(url)
                break
            except OSError:
                time.sleep(0.1)
        t0 = time.perf_counter()
        job = json.loads(http(url + "api/open", {"path": str(frames_dir), "objects": K, "method": a.method}))["job"]
        st = wait_job(url, job["id"])
        t_open = time.perf_counter() - t0
        sess = st["session"]
        print(f"clip {frames_dir}: {T} frames {sess['full_size'][1]}x{sess['full_size'][0]}, {K} objects, worked on at "
              f"{sess['work_size'][1]}x{sess['work_size'][0]}; opened in {t_open:.2f} s; server threads {a.threads}")
        print(f"QA: {sess['qa']}\nagent: {sess['agent']}\nmethod {a.method} -> {sess['method_used']}")
        idle = Prober(url, T)
        idle.start()
        time.sleep(3.0)
        idle_lat = idle.stop()

        robot = dc.robot_for(4)
        scribbles = first
        rows = []
        for r in range(1, a.rounds + 1):
            per = {t: s for t, s in enumerate(scribbles["scribbles"]) if s}
            frame, strokes = next(iter(per.items()))
            prober = Prober(url, T)
            prober.start()
            t0 = time.perf_counter()
            job = json.loads(http(url + "api/run", {"frame": frame, "strokes": strokes}))["job"]
            st = wait_job(url, job["id"])
            seconds = time.perf_counter() - t0
            lat = prober.stop()
            sess = st["session"]
            timings = st["job"]["result"]["timings"]
            rec = sess["recommendation"]
            masks = fetch_masks(url, T)
            jf, per_frame = true_jf(gt, masks, K)
            pearson = float("nan")
            if sess["quality"] is not None and np.std(per_frame) > 0:
                pearson = float(np.corrcoef(sess["quality"], per_frame)[0, 1])
            rows.append((r, frame, seconds, timings, lat, jf, pearson, rec))
            print(f"round {r} on frame {frame}: {seconds:.2f} s from run to masks + recommendation (backend "
                  f"{timings['backend']:.2f}, quality {timings.get('quality', 0):.2f}, recommend "
                  f"{timings.get('recommend', 0):.3f}); next frame {rec['frame']} ({rec['method']}); true J&F {jf:.3f}; "
                  f"QA Pearson vs true per-frame J&F {pearson:.3f}", flush=True)
            if r < a.rounds:
                scribbles = robot.interact(seq, masks, gt, nb_objects=K, frame=int(rec["frame"]))
                if not any(scribbles["scribbles"]):
                    print(f"the robot drew nothing on frame {rec['frame']}: stopping")
                    break

        print("\n| round | frame | s run -> masks + recommendation | backend s | QA s | true J&F | QA Pearson "
              "| /api/status ms (median / p95 / max) | frame image ms (median / p95 / max) |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| idle | | | | | | | {ms(idle_lat['status'])} | {ms(idle_lat['frame'])} |")
        for r, frame, seconds, timings, lat, jf, pearson, _ in rows:
            print(f"| {r} | {frame} | {seconds:.2f} | {timings['backend']:.2f} | {timings.get('quality', 0):.2f} | "
                  f"{jf:.3f} | {pearson:.3f} | {ms(lat['status'])} | {ms(lat['frame'])} |")
        hwm = [ln.split()[1] for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
               if ln.startswith("VmHWM")]
        if hwm:
            print(f"server peak memory (VmHWM): {int(hwm[0]) / 2**20:.2f} GB")
        if a.screenshot:
            print(screenshot(url, Path(a.screenshot), root / "profile"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


if __name__ == "__main__":
    main()
