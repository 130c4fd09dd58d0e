"""Samples on Ray workers give what one process gives, and a killed run resumes (interaction.parallel).

One Ray test only (each start of a local Ray instance costs seconds on a small machine)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interaction.parallel import Fanout

ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, results: Path, **cfg):
    from eval_agent import ex

    run = ex.run(config_updates=dict(dataset=str(root), results_dir=str(results), rounds=3, progress=False,
                                     device="cpu", **cfg))
    return run.result


def _summary(results: Path) -> dict:
    (path,) = results.glob("*/oracle/*/worst/summary.json")
    return json.loads(path.read_text())


def _comparable(s: dict) -> dict:
    """What a run decides: curve, AUC, per-sample curves, frames and ranks, per-round chosen ranks
    (timings and davisinteractive's time-based AUC depend on the wall clock)."""
    rounds = [{k: v for k, v in r.items() if not k.startswith("seconds_")} for r in s["rounds"]]
    return {"auc": s["auc"], "curve": s["curve"], "final": s["final"], "samples": s["samples"], "rounds": rounds}


def test_fanout_settings():
    assert Fanout().serial and not Fanout(workers=2).serial and not Fanout(ray_address="auto").serial
    assert Fanout.from_config(2, None, 0.5, "cpu").gpus_per_worker == 0.0
    assert Fanout.from_config(2, None, 0.5, "cuda:0").gpus_per_worker == 0.5
    with pytest.raises(ValueError, match="workers"):
        Fanout(workers=0)


@pytest.mark.slow
def test_two_workers_equal_one_and_resume_after_the_driver_is_killed(tiny_davis, tmp_path):
    had_ray = "ray" in sys.modules
    _run(tiny_davis.root, tmp_path / "serial")
    if not had_ray:
        assert "ray" not in sys.modules, "workers=1 must not import Ray"
    serial = _summary(tmp_path / "serial")
    assert serial["num_samples"] == 6

    # a 2-worker driver, killed (SIGKILL, with the local Ray processes it started) once a sample is stored
    out = tmp_path / "fan"
    cmd = [sys.executable, "eval_agent.py", "with", f"dataset={tiny_davis.root}", f"results_dir={out}", "rounds=3",
           "progress=False", "device=cpu", "workers=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and not list(out.glob("**/samples/*.json")):
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = list(out.glob("**/samples/*.json"))
    assert 1 <= len(stored) < 6, f"{len(stored)} samples stored before the kill"
    assert not list(out.glob("**/summary.json"))
    before = {p: p.stat().st_mtime_ns for p in stored}

    # one local Ray instance for the rest (a start costs seconds)
    from interaction.parallel import _start_ray

    ray, _ = _start_ray(Fanout(workers=2))
    try:
        _resume_with_a_dying_worker(tiny_davis, tmp_path, out, stored, before, serial)
        _training_files_equal_serial(tiny_davis, tmp_path)
    finally:
        ray.shutdown()


def _resume_with_a_dying_worker(tiny_davis, tmp_path, out, stored, before, serial):
    """Rerun with 2 workers, one of which dies in its first round: only the missing samples run, the
    dead worker's sample runs again, and the summary is the serial one."""
    import functools

    from datasets.layout import resolve
    from interaction.evaluate import evaluate
    from interaction.factory import build_eval_parts
    from tests.helpers import parts_dying_once

    spec = resolve(str(tiny_davis.root), "data")
    args = ("classic", "cpu", "worst", "oracle", "weights/agent.pt", "weights/assess_net.pt")
    backend, selector, _ = build_eval_parts(*args)
    marker = tmp_path / "died"
    (method_dir,) = out.glob("*/oracle/*/worst")
    evaluate(spec, "val", backend, selector, method_dir, setting="oracle", rounds=3, seed=0, min_nb_nodes=4,
             progress=False, fanout=Fanout(workers=2), build=functools.partial(parts_dying_once, str(marker), *args),
             identity=json.loads((method_dir / "run.json").read_text()))
    assert marker.exists(), "no worker died"
    assert {p: p.stat().st_mtime_ns for p in stored} == before, "stored samples were run again"
    assert _comparable(_summary(out)) == _comparable(serial)


def _training_files_equal_serial(tiny_davis, tmp_path):
    """reward.csv rows (3 samples x 2 epochs on windows) and the QA maps with their index (2 samples):
    the same bytes from 2 workers as from one process."""
    import functools

    from interaction.evaluate import samples_of
    from interaction.factory import build_episode_parts
    from interaction.qa_runs import generate_qa_data
    from interaction.training_runs import collect_episodes

    samples = samples_of(tiny_davis, "val", ["bars-a"])
    fan = Fanout(workers=2)
    for name, method in (("serial", None), ("fan", "random")):
        backend = build_episode_parts("classic", "cpu", "random")[0]
        kw = dict(fanout=fan, build=functools.partial(build_episode_parts, "classic", "cpu", method)) if method else {}
        collect_episodes(tiny_davis, "val", samples, backend, tmp_path / name / "reward.csv", epochs=2, rounds=3,
                         window=4, min_nb_nodes=4, seed=3, progress=False, **kw)
        if method:
            kw["build"] = functools.partial(build_episode_parts, "classic", "cpu", "worst")
        generate_qa_data(tiny_davis, "val", backend, tmp_path / name / "qa", rounds=2, scribbles=[1],
                         progress=False, **kw)
    a, b = tmp_path / "serial", tmp_path / "fan"
    assert (a / "reward.csv").read_bytes() == (b / "reward.csv").read_bytes()
    assert len((a / "reward.csv").read_text().splitlines()) == 1 + 2 * len(samples) * 2
    maps = sorted(p.relative_to(a / "qa") for p in (a / "qa").rglob("*.png"))
    assert maps and maps == sorted(p.relative_to(b / "qa") for p in (b / "qa").rglob("*.png"))
    assert all((a / "qa" / m).read_bytes() == (b / "qa" / m).read_bytes() for m in maps)
    assert (a / "qa" / "index.csv").read_bytes() == (b / "qa" / "index.csv").read_bytes()
