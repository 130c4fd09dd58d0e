"""Own video, no ground truth: run scribble rounds and print the frame to annotate next.

    python recommend.py VIDEO --scribbles S1.json [S2.json ...] [--objects K] [--method ours] [--out DIR]

VIDEO is a video file (mp4/avi/mov, anything OpenCV decodes) or a folder of frames. Each scribble file
(davisinteractive format, strokes on one frame; PROTOCOL.md §2) is one round, in the order given. Writes to
DIR (default ``out/<video name>``): ``masks/00000.png ...`` (DAVIS palette, the video's own size),
``quality.csv`` (predicted quality per frame after the last round), ``quality.png`` (its timeline),
``recommendation.json``, ``overlay.mp4`` with ``--overlay``, and the workspace (``workspace/``; reopen it with
``--workspace DIR/workspace`` to add rounds). Prints the recommended frame (stdout: the frame alone with
``--quiet``). ``python recommend.py print_config`` prints the defaults.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

DEFAULTS = {"objects": 1, "method": "ours", "vos": "classic", "weights_dir": "weights", "device": "auto",
            "seed": 0, "max_side": 854, "max_pixels": 100 * 480 * 854}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file or folder of frames")
    p.add_argument("--scribbles", nargs="*", default=[], help="scribble JSON files, one round each, in order")
    p.add_argument("--objects", type=int, default=DEFAULTS["objects"], help="number of objects K (ids 1..K)")
    p.add_argument("--method", default=DEFAULTS["method"], choices=("ours", "worst", "linspace", "random"))
    p.add_argument("--vos", default=DEFAULTS["vos"], help="VOS backend (VOS/registry.py): classic, atnet, manet, ipn")
    p.add_argument("--out", default=None, help="output folder (default out/<video name>)")
    p.add_argument("--workspace", default=None, help="continue the workspace in this folder instead of starting anew")
    p.add_argument("--weights-dir", default=DEFAULTS["weights_dir"], help="holds agent.pt and assess_net.pt")
    p.add_argument("--device", default=DEFAULTS["device"], help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="for method random")
    p.add_argument("--max-side", type=int, default=DEFAULTS["max_side"], help="working size: longest side in px")
    p.add_argument("--max-pixels", type=int, default=DEFAULTS["max_pixels"], help="working size: T*h*w at most")
    p.add_argument("--overlay", action="store_true", help="also write overlay.mp4")
    p.add_argument("--quiet", action="store_true", help="print only the recommended frame")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["print_config"]:
        print(json.dumps(DEFAULTS, indent=1))
        return 0
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from tqdm.auto import tqdm

    from annotate import Session, SessionError
    from annotate.export import plot_quality
    from annotate.scribbles import ScribbleError, read_scribble_file
    from core.io import atomic_write_json

    out = Path(args.out or Path("out") / Path(args.video).stem)
    try:
        scribbles = [read_scribble_file(f) for f in args.scribbles]   # all checked before any work
        if args.workspace:
            s = Session.load(args.workspace, video=args.video, weights_dir=args.weights_dir, device=args.device,
                             method=args.method)
        else:
            s = Session.open(args.video, args.objects, backend=args.vos, method=args.method,
                             weights_dir=args.weights_dir, device=args.device, seed=args.seed,
                             max_side=args.max_side, max_pixels=args.max_pixels)
        if not scribbles and not s.rounds:
            raise SessionError("no scribble file given: pass --scribbles S.json (davisinteractive format)")
        ws = Path(args.workspace) if args.workspace else out / "workspace"
        for path, scr in tqdm(list(zip(args.scribbles, scribbles, strict=True)), desc="rounds", unit="round",
                              disable=args.quiet or len(scribbles) < 2):
            try:
                s.add_scribbles(scr)
            except SessionError as e:
                kept = f"; the {len(s.rounds)} round(s) before it are saved in {ws} (continue with --workspace {ws})" \
                    if s.rounds else ""
                raise SessionError(f"{path}: {e}{kept}") from None
            s.save(ws)   # after every round: an error in a later file loses nothing
        if scribbles:
            s.recommend(args.method)
    except (SessionError, ScribbleError) as e:
        print(f"recommend.py: error: {e}", file=sys.stderr)
        return 2
    s.save(ws)
    s.export_masks(out / "masks")
    s.write_quality_csv(out / "quality.csv")
    rec = s.recommendation
    plot_quality(out / "quality.png", s.quality, s.annotated, rec.frame,
                 title=f"{s.name}: round {len(s.rounds)}, next frame {rec.frame} ({rec.method})")
    if args.overlay:
        s.export_overlay(out / "overlay.mp4")
    atomic_write_json(out / "recommendation.json", {
        **rec.to_json(), "round": len(s.rounds), "annotated": s.annotated, "num_frames": s.num_frames,
        "video": s.video.source, "work_size": list(s.video.work_size), "full_size": list(s.video.full_size),
        "quality": s.qa_status, "agent": s.agent_status, "timings": s.rounds[-1].timings})
    if args.quiet:
        print(rec.frame)
    else:
        if rec.note:
            print(f"note: {rec.note}")
        q = s.quality
        qtxt = f", predicted quality {q[rec.frame]:.3f} (video mean {q.mean():.3f})" if q is not None else ""
        print(f"next frame: {rec.frame} (method {rec.method}{qtxt}); annotated so far {s.annotated}; "
              f"masks, quality.csv, quality.png, recommendation.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
