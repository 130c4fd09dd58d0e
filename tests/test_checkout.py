"""Loading users' checkouts in isolation (VOS/_checkout.py) and ``python -m VOS check``."""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import checkout_path, needs_checkout
from VOS import __main__ as vos_main
from VOS._checkout import (
    CheckoutMissing,
    WeightsMissing,
    checkout_context,
    load_checkout,
    load_state_dict_file,
    no_downloads,
    require_checkout,
    require_weights,
)

ATNET = checkout_path("atnet")          # VOS/<Name>, else ../shared/vos-checkouts/<Name>
MANET = checkout_path("manet")
needs_atnet = needs_checkout("atnet")
needs_manet = needs_checkout("manet")


def _fake_checkout(root: Path) -> Path:
    """A checkout in miniature: generic package names, an old numpy alias evaluated at import, a
    lazy import inside a function, a top-level module that shadows nothing of ours."""
    (root / "networks").mkdir(parents=True)
    (root / "networks" / "__init__.py").write_text("")
    (root / "networks" / "net.py").write_text(
        "import numpy as np\n"
        "def zeros(n, dtype=np.int):\n"          # evaluated at import, like davisinteractive's
        "    return np.zeros(n, dtype=np.float)\n"  # used at call time
        "def lazy():\n"
        "    from networks import late\n"
        "    return late.VALUE\n")
    (root / "networks" / "late.py").write_text("VALUE = 42\n")
    (root / "config.py").write_text("NAME = 'fake'\n")
    return root


@pytest.fixture
def sentinels():
    """Stand-ins for modules of ours named like a checkout's; restored after the test."""
    saved = {n: sys.modules.get(n) for n in ("networks", "config")}
    mods = {n: types.ModuleType(n) for n in saved}
    sys.modules.update(mods)
    yield mods
    for n, m in saved.items():
        if m is None:
            sys.modules.pop(n, None)
        else:
            sys.modules[n] = m


def test_fake_checkout_is_isolated_and_keeps_working(tmp_path, sentinels):
    root = _fake_checkout(tmp_path / "Fake")
    path_before = list(sys.path)
    handle = load_checkout(root, ["networks.net", "config"])
    # our entries are back, the checkout's are gone, sys.path and numpy untouched
    assert sys.modules["networks"] is sentinels["networks"]
    assert sys.modules["config"] is sentinels["config"]
    assert "networks.net" not in sys.modules
    assert sys.path == path_before
    assert "int" not in np.__dict__ and "float" not in np.__dict__
    # the checkout's modules work: aliases through their own np, bound at import and at call time
    net = handle["networks.net"]
    assert handle["config"].NAME == "fake"
    assert Path(net.__file__).resolve().parent == (root / "networks").resolve()
    out = net.zeros(3)
    assert out.dtype == np.float64 and out.shape == (3,)
    # a lazy import needs the context; afterwards it is remembered by the handle, not sys.modules
    with checkout_context(handle):
        assert net.lazy() == 42
        with checkout_context(handle):   # re-entrant
            assert sys.modules["networks"] is handle["networks"]
    assert "networks.late" in handle and "networks.late" not in sys.modules
    assert sys.modules["networks"] is sentinels["networks"]


def test_missing_checkout_and_weights_messages(tmp_path):
    with pytest.raises(CheckoutMissing, match=r"git clone https://github\.com/yuk6heo/IVOS-ATNet VOS/ATNet"):
        require_checkout("atnet", tmp_path)
    with pytest.raises(CheckoutMissing, match=r"git clone https://github\.com/zyy-cn/IPN VOS/IPN"):
        load_checkout(tmp_path / "IPN", ["model"])
    with pytest.raises(WeightsMissing) as err:
        require_weights(tmp_path / "ATNet" / "ATNet-checkpoint.pth", "ATNet")
    assert str(tmp_path / "ATNet" / "ATNet-checkpoint.pth") in str(err.value)
    assert "see README, 'VOS networks'" in str(err.value)


def test_state_dict_file_strips_module_prefix(tmp_path):
    sd = {"module.a.weight": torch.ones(2), "module.b": torch.zeros(1)}
    torch.save(sd, tmp_path / "w.pth")
    torch.save({"state_dict": sd}, tmp_path / "w2.pth")
    for f in ("w.pth", "w2.pth"):
        got = load_state_dict_file(tmp_path / f)
        assert sorted(got) == ["a.weight", "b"]
        assert torch.equal(got["a.weight"], torch.ones(2))


def test_no_downloads_only_inside_block():
    mod = types.ModuleType("m")
    zoo = types.SimpleNamespace(load_url=lambda *_a, **_k: pytest.fail("download attempted"))
    mod.model_zoo = zoo
    with no_downloads(mod):
        assert mod.model_zoo.load_url("https://download.pytorch.org/models/x.pth") == {}
    assert mod.model_zoo is zoo


def test_check_reports_fixes(tmp_path, capsys):
    rc = vos_main.main(["check", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    for name in ("classic", "atnet", "manet", "ipn"):
        assert f"{name}:" in out
    assert "git clone https://github.com/yuk6heo/IVOS-ATNet VOS/ATNet" in out
    from VOS.atnet import ATNetBackend
    rows = ATNetBackend.check(tmp_path)
    assert [ok for _, ok, _ in rows] == [False, False, False]
    assert rows[1][2].find(str(tmp_path / "ATNet" / "ATNet-checkpoint.pth")) >= 0


@needs_atnet
def test_atnet_modules_do_not_leak(sentinels):
    from VOS.atnet import load_atnet_checkout

    handle = load_atnet_checkout(ATNET)
    assert sys.modules["networks"] is sentinels["networks"]
    assert not any(n.startswith(("networks.", "libs")) for n in sys.modules)
    assert Path(handle["networks.atnet"].__file__).resolve().is_relative_to(ATNET.resolve())
    # the stand-in correlation layer, since the CUDA package is not built here
    assert handle["networks.atnet"].Correlation.__module__ == "VOS._correlation"
    # the checkout's rasteriser runs with np.int through its own proxy
    scr = [{"path": [[0.2, 0.5], [0.8, 0.5]], "object_id": 1}]
    img = handle["libs.utils"].scribble_to_image(scr, 0, 1, prev_mask=np.zeros((16, 20)), singleimg=True)
    assert img.shape == (16, 20) and img.max() > 0.5


@needs_atnet
@needs_manet
def test_atnet_and_manet_in_one_process():
    from VOS.atnet import load_atnet_checkout
    from VOS.manet import load_manet_checkout

    a = load_atnet_checkout(ATNET)
    m = load_manet_checkout(MANET)
    name = "networks.IntVOS"
    assert a["networks"] is not m["networks"]
    assert Path(m[name].__file__).resolve().is_relative_to(MANET.resolve())
    assert Path(a["networks.atnet"].__file__).resolve().is_relative_to(ATNET.resolve())
    # each context shows its own package under the shared name, and nothing leaks after
    with checkout_context(a):
        assert importlib.import_module("networks") is a["networks"]
        with checkout_context(m):
            assert importlib.import_module("networks") is m["networks"]
        assert importlib.import_module("networks") is a["networks"]
    assert "networks" not in sys.modules or sys.modules["networks"] not in (a["networks"], m["networks"])
