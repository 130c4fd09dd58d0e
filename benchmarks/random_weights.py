"""Save random-weight checkpoints of ATNet, MANet and IPN in their published layouts.

For smoke-testing the adapters end to end without the real weights (none can be downloaded here):

    python benchmarks/random_weights.py --out /tmp/rw
    python eval_agent_ipn.py with dataset=/tmp/tiny setting=oracle method=worst device=cpu \\
        "vos_options={'weights_i': '/tmp/rw/I.pth', 'weights_p': '/tmp/rw/P.pth'}"

Prints the ``vos_options`` to pass for each network. Nothing is downloaded while building.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.hub  # noqa: E402
import torch.utils.model_zoo  # noqa: E402

from VOS._checkout import checkout_context, checkout_dir, no_downloads  # noqa: E402


def atnet(out: Path, root: Path | None = None) -> dict:
    from VOS.atnet import build_network, load_atnet_checkout

    net = build_network(load_atnet_checkout(root))
    torch.save(net.state_dict(), out / "ATNet-checkpoint.pth")
    return {"weights": str(out / "ATNet-checkpoint.pth")} | ({"checkout": str(root)} if root else {})


def manet(out: Path, root: Path | None = None) -> dict:
    from VOS.manet import load_manet_checkout

    h = load_manet_checkout(root or checkout_dir("manet"))
    with checkout_context(h), torch.no_grad():
        net = h["networks.IntVOS"].IntVOS(h["config"].cfg, h["networks.deeplab"].DeepLab(backbone="resnet"))
    torch.save(net.state_dict(), out / "save_step_80000.pth")
    return {"weights": str(out / "save_step_80000.pth"), "size": None} | ({"checkout": str(root)} if root else {})


def ipn(out: Path, root: Path | None = None) -> dict:
    from VOS.ipn import load_ipn_checkout

    h = load_ipn_checkout(root or checkout_dir("ipn"))
    with checkout_context(h):
        nets = {"I": h["interaction_net"].Inet(), "P": h["propagation_net"].Pnet()}
    for k, net in nets.items():
        torch.save({"module." + n: v for n, v in net.state_dict().items()}, out / f"{k}.pth")
    return {"weights_i": str(out / "I.pth"), "weights_p": str(out / "P.pth")} | ({"checkout": str(root)} if root else {})


def save_random_weights(name: str, out: Path | str, root: Path | str | None = None, seed: int = 0) -> dict:
    """Random weights of network ``name`` built from the checkout at ``root`` (default VOS/<Name>) with
    downloads refused, saved under ``out`` in the published layout; returns the backend's options."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with no_downloads(torch.hub, torch.utils.model_zoo):
        return {"atnet": atnet, "manet": manet, "ipn": ipn}[name](out, Path(root) if root else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--networks", default="atnet,manet,ipn")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.networks.split(","):
        opts = save_random_weights(name, out)
        print(f"{name}: \"vos_options={opts!r}\"")


if __name__ == "__main__":
    main()
