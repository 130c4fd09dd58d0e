"""The annotation web page for your own video, served locally: ``python app.py`` (or ``make app``).

Opens http://127.0.0.1:8765 by default (printed at start). Open a video (server path or upload), scribble
with a brush per object and one for the background, run, see the masks, the predicted quality of every
frame and the recommended next frame; undo, save the workspace, export masks. See README, "Your own video".
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

DEFAULTS = {"host": "127.0.0.1", "port": 8765, "weights_dir": "weights", "device": "auto",
            "workspaces": "workspaces", "out": "out", "open": None, "objects": 1}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["print_config"]:
        print(json.dumps(DEFAULTS, indent=1))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=DEFAULTS["host"])
    p.add_argument("--port", type=int, default=DEFAULTS["port"])
    p.add_argument("--weights-dir", default=DEFAULTS["weights_dir"], help="holds agent.pt and assess_net.pt")
    p.add_argument("--device", default=DEFAULTS["device"], help="auto | cpu | cuda")
    p.add_argument("--workspaces", default=DEFAULTS["workspaces"], help="where Save writes and uploads go")
    p.add_argument("--out", default=DEFAULTS["out"], help="where Export writes")
    p.add_argument("--open", default=DEFAULTS["open"], help="a video, folder of frames or workspace to open at start")
    p.add_argument("--objects", type=int, default=DEFAULTS["objects"], help="objects of the video given with --open")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import uvicorn

    from annotate.web import Controller, create_app

    controller = Controller(args.weights_dir, args.device, args.workspaces, args.out)
    if args.open:
        controller.submit("open", lambda job: controller.open(job, args.open, args.objects, "classic", "ours"))
    config = uvicorn.Config(create_app(controller), host=args.host, port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    print(f"IVOS-W annotation page: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
