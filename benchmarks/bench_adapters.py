"""Seconds per round of the published VOS networks on this machine (random weights).

    .venv/bin/python benchmarks/bench_adapters.py [--backends atnet manet ipn] [--device cpu]
        [--sizes 64x96 480x854] [--frames 6 5] [--objects 2] [--rounds 2]

For every backend whose checkout is under VOS/ (others are listed as skipped), the network is
built with random weights, saved to a temporary checkpoint laid out like the published one and
loaded through the adapter; then ``--rounds`` rounds run on a synthetic sequence of two
elongated objects with the benchmark's robot drawing the scribbles (round 1 on the middle frame,
later rounds on the worst frame by ground-truth IoU). Prints seconds per round (the adapter's
``timings``, wall clock) and the process's CPU seconds over all threads (less sensitive to other
load on the machine), for each size with its frame count (``--frames`` pairs with ``--sizes``).
Speed does not depend on the weights, so the figures hold for the real checkpoints.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import davis_compat as dc  # noqa: E402
from VOS._checkout import CHECKOUTS, checkout_context, checkout_dir  # noqa: E402
from VOS.registry import build_backend, default_min_nb_nodes  # noqa: E402


def sequence(T: int, H: int, W: int, K: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """frames (T, H, W, 3) uint8 and gt (T, H, W) uint8: K thin bars drifting across the frame."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        for k in range(1, K + 1):
            if k % 2:   # horizontal bar
                y = int(H * (0.1 + 0.25 * (k // 2))) % max(H - H // 8, 1)
                x = int(W * (0.1 + 0.02 * t))
                gt[t, y: y + max(H // 8, 3), x: x + W // 2] = k
            else:       # vertical bar
                x = int(W * (0.75 - 0.15 * (k // 2 - 1) - 0.01 * t))
                gt[t, H // 3: H // 3 + H // 2, x: x + max(W // 12, 3)] = k
    colours = rng.integers(30, 230, (K + 1, 3)).astype(np.float64)
    frames = np.clip(colours[gt] + rng.normal(0, 10, (T, H, W, 3)), 0, 255).astype(np.uint8)
    return frames, gt


# -- random-weight checkpoints laid out like the published ones ---------------------------------------
def atnet_options(tmp: Path) -> dict:
    from VOS.atnet import build_network, load_atnet_checkout

    path = tmp / "ATNet-checkpoint.pth"
    torch.save(build_network(load_atnet_checkout()).state_dict(), path)
    return {"weights": path}


def manet_options(tmp: Path, size) -> dict:
    import contextlib
    import io

    from VOS.manet import load_manet_checkout

    h = load_manet_checkout(checkout_dir("manet"))
    with checkout_context(h), contextlib.redirect_stdout(io.StringIO()):
        net = h["networks.IntVOS"].IntVOS(h["config"].cfg, h["networks.deeplab"].DeepLab(backbone="resnet"))
    path = tmp / "save_step_80000.pth"
    torch.save(net.state_dict(), path)
    return {"weights": path, "size": size}


def ipn_options(tmp: Path) -> dict:
    from VOS.ipn import load_ipn_checkout

    h = load_ipn_checkout(checkout_dir("ipn"))
    with checkout_context(h):
        net_i, net_p = h["interaction_net"].Inet(), h["propagation_net"].Pnet()
    torch.save(net_i.state_dict(), tmp / "I.pth")
    torch.save(net_p.state_dict(), tmp / "P.pth")
    return {"weights_i": tmp / "I.pth", "weights_p": tmp / "P.pth"}


def options_for(name: str, tmp: Path, H: int, W: int) -> dict:
    if name == "atnet":
        return atnet_options(tmp)
    if name == "manet":   # published: resized to 480x854; tiny frames kept at their size
        return manet_options(tmp, None if (H, W) != (480, 854) and H < 480 else (480, 854))
    if name == "ipn":
        return ipn_options(tmp)
    raise ValueError(name)


def bench(name: str, device: str, T: int, H: int, W: int, K: int, rounds: int) -> list[float]:
    frames, gt = sequence(T, H, W, K)
    robot = dc.robot_for(default_min_nb_nodes(name))
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        backend = build_backend(name, device, **options_for(name, Path(tmp), H, W))
        build = time.perf_counter() - t0
    backend.start(frames, K)
    pred = np.zeros_like(gt, dtype=np.int64)
    frame = T // 2
    secs, cpu = [], []
    for _ in range(rounds):
        scr = robot.interact("bench", pred, gt.astype(np.int64), nb_objects=K, frame=frame)
        c0 = time.process_time()
        out = backend.interact(frame, scr)
        cpu.append(time.process_time() - c0)
        secs.append(out.timings["total"])
        pred = out.masks.astype(np.int64)
        iou = dc.batched_jaccard(gt, out.masks, average_over_objects=True, nb_objects=K)
        frame = int(np.argmin(iou))
    print(f"  {name:6s} {H}x{W} T={T} K={K}: build+load {build:6.1f} s; "
          f"seconds per round: {', '.join(f'{s:.1f}' for s in secs)} "
          f"(CPU seconds, all threads: {', '.join(f'{c:.1f}' for c in cpu)})", flush=True)
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="*", default=["atnet", "manet", "ipn"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="*", default=["64x96", "480x854"])
    ap.add_argument("--frames", nargs="*", type=int, default=[6, 5])
    ap.add_argument("--objects", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if len(args.frames) != len(args.sizes):
        ap.error("--frames needs one count per --sizes entry")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for name in args.backends:
        root = checkout_dir(name)
        if not root.is_dir():
            print(f"  {name:6s} skipped: no checkout ({CHECKOUTS[name].clone_command()})")
            continue
        for size, T in zip(args.sizes, args.frames, strict=True):
            H, W = (int(v) for v in size.lower().split("x"))
            try:
                bench(name, args.device, T, H, W, args.objects, args.rounds)
            except Exception as exc:   # one broken adapter must not hide the others' figures
                print(f"  {name:6s} {H}x{W}: failed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
