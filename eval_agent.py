"""Evaluate a frame-selection method with a VOS backend on a DAVIS-layout benchmark.

    python eval_agent.py with vos=classic dataset=synthetic setting=oracle method=worst
    python eval_agent.py with vos=classic setting=wild method=ours agent=v2   # the v2 agent (train_agent_v2.py)
    python eval_agent_atnet.py with paper setting=wild dataset=davis method=ours  # the published agent only
    python eval_agent.py print_config

Writes results/{VOS}/{setting}/{dataset}/{method}/summary.json (the v2 agent: .../ours-v2/); re-running
the same command after an interruption resumes where it stopped.
"""
from __future__ import annotations

import os
import sys

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("eval_agent")


@ex.config
def config():
    vos = "classic"          # VOS backend: classic | atnet | manet | ipn
    setting = "oracle"       # oracle (ground-truth quality) | wild (QA network's quality)
    dataset = "synthetic"    # davis | ytbvos | synthetic | path to a DAVIS-layout root
    split = "val"            # train | val | trainval
    method = "worst"         # random | linspace | worst | greedy (oracle only) | ours
    rounds = 8               # interactions per sample
    seed = 0                 # random method and any stochastic part
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    train_dir = "train"
    weights_dir = "weights"
    results_dir = "results"
    agent = "published"      # method=ours: published (the paper's MDP and DQN, agent.pt) | v2 (train_agent_v2.py; results under ours-v2)
    paper = False            # set by `with paper`: the published agent only (a v2 checkpoint is refused)
    agent_weights = os.path.join(weights_dir, "agent.pt" if agent == "published" else f"agent_v2_{setting}.pt")
    feature_qa_weights = os.path.join(weights_dir, "feature_qa.pt")   # agent=v2, wild: its quality (train_agent_v2.py)
    qa_weights = os.path.join(weights_dir, "assess_net.pt")
    qa_batch_size = 16
    qa_record = True         # wild: run the QA net even for methods that ignore it (random, linspace), to record its accuracy
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    sequences = None         # optional list of sequence names (default: the whole split)
    greedy_candidates = 0    # greedy: try all frames (0) or this many evenly spaced ones
    vos_options = {}         # passed to the backend, e.g. {"weights": "path/to/ckpt.pth"}
    progress = True
    workers = 1              # samples in parallel: 1 = this process (no Ray); N = N Ray workers (README, "Scale")
    ray_address = None       # join a running Ray cluster ("auto" or host:port) instead of starting one
    gpus_per_worker = 1.0    # share of a GPU per worker when the device is CUDA


@ex.named_config
def paper():
    """The published evaluation: ``ours`` is the published agent (weights/agent.pt layout), 8 rounds."""
    paper = True
    agent = "published"
    rounds = 8


@ex.main
def main(_config, vos, setting, dataset, split, method, rounds, seed, device, data_dir, agent, paper, agent_weights,
         feature_qa_weights, qa_weights, qa_batch_size, qa_record, min_nb_nodes, sequences, greedy_candidates,
         vos_options, results_dir, progress, workers, ray_address, gpus_per_worker):
    import functools

    from core.device import resolve_device
    from datasets.layout import resolve
    from interaction.evaluate import evaluate
    from interaction.factory import build_eval_parts, describe, method_dir, results_path
    from interaction.parallel import Fanout
    from VOS.registry import canonical

    setup_logging()
    dev = resolve_device(device)
    spec = resolve(dataset, data_dir)
    build = functools.partial(build_eval_parts, canonical(vos), str(dev), method, setting, agent_weights, qa_weights,
                              qa_batch_size, qa_record, greedy_candidates, dict(vos_options), agent=agent,
                              feature_qa_weights=feature_qa_weights, paper=bool(paper))
    backend, selector, quality_fn = build()
    fanout = Fanout.from_config(workers, ray_address, gpus_per_worker, dev)
    out_dir = results_path(results_dir, vos, setting, spec.name, method_dir(method, agent))
    identity = dict(vos=canonical(vos), setting=setting, dataset=spec.name, split=split, method=method,
                    rounds=rounds, seed=seed, min_nb_nodes=min_nb_nodes,
                    sequences=list(sequences) if sequences else None,
                    greedy_candidates=greedy_candidates if method == "greedy" else None, window=None)
    if method_dir(method, agent) != method:
        identity["agent"] = agent    # only then: the published agent's run.json keeps its keys (old runs resume)
    summary = evaluate(spec, split, backend, selector, out_dir, setting=setting, rounds=rounds, seed=seed,
                       min_nb_nodes=min_nb_nodes, quality_fn=quality_fn, sequences=sequences,
                       identity=identity, config=dict(_config, device=str(dev)), progress=progress,
                       fanout=fanout, build=build)
    print(f"{out_dir}/summary.json: {describe(summary)}")
    return summary["auc"]


def run_with_vos(vos: str, argv: list[str] | None = None) -> None:
    """The paper's per-network commands: ``python eval_agent_atnet.py with setting=... `` is
    ``eval_agent.py`` with ``vos`` preset (an explicit ``vos=`` given by the user still wins)."""
    argv = list(sys.argv if argv is None else argv)
    if "with" in argv:
        argv.insert(argv.index("with") + 1, f"vos={vos}")
    else:
        argv += ["with", f"vos={vos}"]
    ex.run_commandline(argv)


if __name__ == "__main__":
    ex.run_commandline()
