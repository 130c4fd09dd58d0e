"""Kill test at small scale: benchmarks/kill_test.py SIGKILLs every long-running script at seeded random
points (10 kills: 2 each of eval_agent, produce_reward, train_agent, generate_data, quality_assessment), resumes
it, and compares with an uninterrupted run (see its docstring). The three independent chains run side by side."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_killed_scripts_resume_to_the_uninterrupted_outputs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("kill_test", ROOT / "benchmarks" / "kill_test.py")
    kill_test = importlib.util.module_from_spec(spec)
    sys.modules["kill_test"] = kill_test            # its dataclasses look their module up
    spec.loader.exec_module(kill_test)
    rc = kill_test.main(["--work", str(tmp_path / "kill"), "--kills", "10", "--seed", "1", "--rounds", "3", "--quick",
                         "--parallel", "--kill", "eval,reward,train,qadata,quality"])
    out = capsys.readouterr().out
    assert rc == 0, out
    kills = [ln for ln in out.splitlines() if "SIGKILL after" in ln]
    assert len(kills) >= 10, out
    for script in ("eval_agent.py", "produce_reward.py", "train_agent.py", "generate_data.py", "quality_assessment.py"):
        assert f"{script}: " in out and any(ln.startswith(script) for ln in kills), script
        assert any(ln.startswith(f"{script}:") and ln.endswith("resumed: same outputs") for ln in out.splitlines())
