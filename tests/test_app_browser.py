"""The web page end to end in a real browser: Debian's Chromium, headless, driven by playwright.

Starts ``app.py`` on localhost, opens the 8-frame clip of test_annotate, draws strokes with the mouse, runs
a round, and checks on the page's own pixels that the masks are overlaid and that the recommended frame is
shown and reachable with one key. Screenshots go to the test's folder (and to $APP_SCREENSHOT_DIR if set).
Skips with the install command where Chromium or playwright is missing (never ``playwright install``).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
from PIL import Image

from tests.test_annotate import H, T, W, boxes, clip_frames, weights

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get update && apt-get install -y chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install playwright==1.65.2 "
                               "(it drives the system Chromium; no `playwright install`)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package with `{INSTALL}` (make test does, as root)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    """app.py in a subprocess on a free port, with random QA and agent weights (so the timeline has a curve)."""
    clip = tmp_path / "clip"
    clip.mkdir()
    for t, f in enumerate(clip_frames()[0]):
        Image.fromarray(f).save(clip / f"{t:05d}.png")
    wd = weights(tmp_path)
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--weights-dir", str(wd),
                             "--device", "cpu", "--workspaces", str(tmp_path / "ws"), "--out", str(tmp_path / "out")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url + "api/status", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"app.py did not start:\n{proc.stdout.read()}")
            time.sleep(0.2)
    yield url, clip, tmp_path
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def canvas_pixel(page, x: float, y: float) -> list[int]:
    """RGB of the frame canvas at (x, y) in video pixels (W x H)."""
    return page.evaluate("([x, y]) => Array.from(document.getElementById('view').getContext('2d')"
                         ".getImageData(x, y, 1, 1).data.slice(0, 3))", [x, y])


def drag(page, box: dict, points: list[tuple[float, float]]) -> None:
    """Draw one stroke through ``points`` (video pixels) with the mouse."""
    sx, sy = box["width"] / W, box["height"] / H
    page.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=6)
    page.mouse.up()


def test_page_scribble_run_masks_and_recommendation(server, tmp_path):
    url, clip, _ = server
    shots = [tmp_path / "shots"] + ([Path(os.environ["APP_SCREENSHOT_DIR"])] if os.environ.get("APP_SCREENSHOT_DIR") else [])
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                   args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.goto(url)
            page.fill("#path", str(clip / "missing.mp4"))      # bad input: the server's message in the page
            page.click("#open")
            page.wait_for_function("document.getElementById('msg').className === 'error'", timeout=10000)
            assert "no such file" in page.inner_text("#msg")
            page.fill("#path", str(clip))
            page.fill("#objects", "2")
            page.click("#open")
            page.wait_for_function("document.getElementById('frame-count').textContent === '7'", timeout=15000)
            page.locator("#brushes button").nth(2).wait_for()

            # bad input: run with no stroke -> the server's message in the page, nothing lost
            page.click("#run")
            page.wait_for_function("document.getElementById('msg').className === 'error'", timeout=10000)
            assert "no stroke" in page.inner_text("#msg")

            box = page.locator("#view").bounding_box()
            (o1, o2) = boxes(0)
            page.keyboard.press("1")
            drag(page, box, [(o1[2] + 3, (o1[0] + o1[1]) / 2), (o1[3] - 4, (o1[0] + o1[1]) / 2)])
            page.keyboard.press("2")
            drag(page, box, [((o2[2] + o2[3]) / 2, o2[0] + 3), ((o2[2] + o2[3]) / 2, o2[1] - 4)])
            page.keyboard.press("0")
            drag(page, box, [(5, H - 4), (50, H - 4), (55, H - 20)])
            assert "3 stroke(s) on frame 0" in page.inner_text("#pending")
            # a pixel of object 2 off its stroke, before the round: the clip's blue
            probe = ((o2[2] + o2[3]) / 2 + 3, (o2[0] + o2[1]) / 2)
            before = canvas_pixel(page, *probe)
            assert before[2] > 150 and before[1] < 90

            page.keyboard.press("Enter")
            page.wait_for_selector("#rec-frame", timeout=20000)
            rec = int(page.inner_text("#rec-frame"))
            assert 0 <= rec < T
            status = page.evaluate("fetch('/api/status').then(r => r.json())")
            assert status["session"]["recommendation"]["frame"] == rec and status["session"]["rounds"] == 1
            assert status["session"]["recommendation"]["method"] == "ours" and len(status["session"]["quality"]) == T
            # the masks are overlaid: object 2's pixel is tinted towards DAVIS green (0, 128, 0)
            page.wait_for_function(f"(() => {{ const d = document.getElementById('view').getContext('2d')"
                                   f".getImageData({probe[0]}, {probe[1]}, 1, 1).data; return d[1] > 70 && d[2] < 160; }})()",
                                   timeout=10000)
            after = canvas_pixel(page, *probe)
            assert after[1] > before[1] + 25 and after[2] < before[2] - 50
            bg = canvas_pixel(page, 30, 45)     # background stays untinted
            assert abs(bg[1] - 140) < 30 and bg[0] < 100
            # the timeline marks the recommended frame in red
            tl = page.evaluate("(() => { const c = document.getElementById('timeline'); const m = 12;"
                               f" const x = Math.round(m + {rec} / {T - 1} * (c.width - 2 * m));"
                               " return Array.from(c.getContext('2d').getImageData(x, 3, 1, 1).data.slice(0, 3)); })()")
            assert tl[0] > 180 and tl[1] < 80
            for d in shots:
                d.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(d / "app.png"))

            page.keyboard.press("r")
            page.wait_for_function(f"document.getElementById('frame-no').textContent === '{rec}'", timeout=5000)
            page.keyboard.press("Shift+ArrowLeft")
            assert page.inner_text("#frame-no") == "0"
            page.keyboard.press("ArrowRight")
            assert page.inner_text("#frame-no") == "1"

            page.click("#save")
            page.wait_for_function("document.getElementById('msg').textContent.includes('workspace saved')",
                                   timeout=10000)
            page.click("#export")
            page.wait_for_function("document.getElementById('msg').textContent.includes('written to')", timeout=15000)
            out = tmp_path / "out" / "clip"
            assert len(list((out / "masks").glob("*.png"))) == T and (out / "overlay.mp4").is_file()

            page.keyboard.press("u")
            page.wait_for_function("document.getElementById('rec').dataset.frame === ''", timeout=10000)
            # reopening the saved workspace brings the round back
            page.fill("#path", str(tmp_path / "ws" / "clip"))
            page.click("#open")
            page.wait_for_function(f"document.getElementById('rec').dataset.frame === '{rec}'", timeout=15000)

            # upload: the clip as an mp4 file from the browser
            mp4 = tmp_path / "upload.mp4"
            writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
            for f in clip_frames()[0][:5]:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            writer.release()
            page.set_input_files("#upload", str(mp4))
            page.wait_for_function("document.getElementById('frame-count').textContent === '4'", timeout=15000)
            assert "upload.mp4" in page.inner_text("#msg")
        finally:
            ctx.close()
    assert (tmp_path / "shots" / "app.png").stat().st_size > 10_000
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
