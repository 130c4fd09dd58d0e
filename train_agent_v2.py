"""Train the v2 recommender (``eval_agent.py with method=ours agent=v2``) by imitation of the look-ahead teacher.

    python train_agent_v2.py                    # classic backend on the synthetic train split
    python train_agent_v2.py with vos=classic dataset=composite epochs=30
    python train_agent_v2.py print_config

1. Collect: one oracle episode per train sample (whole video, ``rounds`` rounds) with a behaviour policy
   mixing the teacher's choice, random, worst and linspace; at every decision the one-round look-ahead
   gains of ``candidates`` random + ``worst_candidates`` worst frames are simulated and recorded
   (interaction.training_runs.collect_decisions). Kept per sample in {train_dir}/agent_v2_decisions/;
   re-running the same command resumes there (other settings are refused, see its run.json).
2. Train (agent.imitation, seconds to minutes): the feature QA model (an ensemble of ``qa_members``)
   -> {weights_dir}/feature_qa.pt, and one
   ranker ensemble (``members`` RankNets) per setting -> {weights_dir}/agent_v2_oracle.pt (state on the
   ground-truth quality) and {weights_dir}/agent_v2_wild.pt (state on the feature QA model's prediction; or
   cross-fitted over ``crossfit_folds`` folds by sequence, agent.imitation.crossfit_decisions).
   Each file is written atomically.
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

import os

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("train_agent_v2")


@ex.config
def config():
    vos = "classic"          # VOS backend of the collected episodes: classic | atnet | manet | ipn
    dataset = "synthetic"    # davis | ytbvos | synthetic | composite | path to a DAVIS-layout root
    split = "train"
    scribbles = [1, 2]       # initial scribble files of each sequence used as samples
    rounds = 8               # rounds per collected episode
    candidates = 6           # random frames whose look-ahead gain is labelled per decision
    worst_candidates = 2     # ... plus this many lowest-J&F frames not annotated yet
    collect_seed = 1000      # the behaviour policy's generator (as benchmarks/bench_agent_v2.py)
    seed = 0                 # initialisation and order of the feature QA model and the rankers
    epochs = 30              # ranker epochs over the collected decisions
    crossfit_folds = 0       # wild ranker's states: 0, the QA model's predictions on train (in-sample); N >= 2,
                             # from models that did not see the sequence, N folds (agent.imitation.crossfit_decisions)
    members = 3              # rankers per setting, from seeds seed*members+i, averaged (agent.imitation.RankEnsemble)
    qa_epochs = 120          # feature QA model epochs
    qa_members = 5           # feature QA models, from seeds seed*qa_members+i, averaged (FeatureQAEnsemble)
    qa_features = "image"    # the feature QA model's object features: "image" (the backend's probabilities and the
                             # frames' evidence, agent.features.image_features) or "probs" (the probabilities only)
    qa_within = 0.0          # weight of its within-video loss (agent.imitation.train_feature_qa)
    qa_dropout = 0.5         # its training dropout after each hidden layer
    qa_weight_decay = 1e-5   # its Adam weight decay
    device = "auto"          # the backend's device (the v2 nets are tiny and train on the CPU)
    threads = 1              # torch CPU threads
    data_dir = "data"
    train_dir = "train"
    weights_dir = "weights"
    agent_v2_oracle = os.path.join(weights_dir, "agent_v2_oracle.pt")
    agent_v2_wild = os.path.join(weights_dir, "agent_v2_wild.pt")
    feature_qa_weights = os.path.join(weights_dir, "feature_qa.pt")
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    sequences = None         # optional list of sequence names (default: the whole split)
    vos_options = {}         # passed to the backend
    progress = True


@ex.main
def main(vos, dataset, split, scribbles, rounds, candidates, worst_candidates, collect_seed, seed, epochs,
         crossfit_folds, members, qa_epochs, qa_members, qa_features, qa_within, qa_dropout, qa_weight_decay, device,
         threads, data_dir, train_dir, agent_v2_oracle, agent_v2_wild, feature_qa_weights, min_nb_nodes, sequences, vos_options, progress):
    from pathlib import Path

    import torch

    from agent.features import QA_FEATURES as features
    from agent.imitation import (
        FeatureQuality,
        crossfit_decisions,
        fit_feature_qa,
        ranker_decisions,
        save_checkpoint,
        train_ranker,
    )
    from core.device import resolve_device
    from core.identity import check_identity
    from datasets.layout import resolve
    from interaction.evaluate import checked_samples_of
    from interaction.training_runs import collect_decisions
    from VOS.registry import build_backend, canonical

    setup_logging()
    if qa_features not in features:
        raise ValueError(f"qa_features must be one of {sorted(features)}, got {qa_features!r}")
    torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    spec = resolve(dataset, data_dir)
    wanted = {int(s) for s in scribbles}
    # clear errors for an empty split or a missing file, then the samples of the chosen scribble files
    samples = [s for s in checked_samples_of(spec, split, sequences) if s[1] in wanted]
    if not samples:
        raise ValueError(f"no samples: scribbles {list(scribbles)} of split '{split}' of {spec.root} do not exist")
    out = Path(train_dir) / "agent_v2_decisions"
    check_identity(out / "run.json", dict(vos=canonical(vos), vos_options=dict(vos_options), dataset=spec.name,
                                          split=split, samples=[list(s) for s in samples], rounds=rounds,
                                          candidates=candidates, worst_candidates=worst_candidates,
                                          collect_seed=collect_seed, min_nb_nodes=min_nb_nodes),
                   has_outputs=out.is_dir() and any(out.glob("*.pkl")), what=str(out),
                   fix=f"choose another train_dir, or delete {out} to collect again with the new settings")
    backend = build_backend(canonical(vos), dev, **dict(vos_options))
    episodes = collect_decisions(spec, split, samples, backend, out, rounds=rounds, min_nb_nodes=min_nb_nodes,
                                 seed=collect_seed, n_random=candidates, n_worst=worst_candidates, progress=progress)
    decisions = sum(len(e) for e in episodes)
    if not decisions:
        raise ValueError(f"no decisions collected from {len(samples)} samples: rounds must be at least 2")
    qa_members = int(qa_members) if int(qa_members) > 1 else None
    qa = fit_feature_qa(episodes, features=features[qa_features], within=float(qa_within), epochs=qa_epochs, seed=seed,
                        members=qa_members, dropout=float(qa_dropout), weight_decay=float(qa_weight_decay))
    trained = {"vos": canonical(vos), "dataset": spec.name, "split": split, "seed": seed, "decisions": decisions}
    save_checkpoint(qa, feature_qa_weights, trained)
    for setting, path in (("oracle", agent_v2_oracle), ("wild", agent_v2_wild)):
        if setting == "oracle":
            dec = ranker_decisions(episodes)
        elif int(crossfit_folds) >= 2:
            dec = crossfit_decisions(episodes, folds=int(crossfit_folds), qa_epochs=qa_epochs, seed=seed,
                                     qa_members=qa_members, qa_features=features[qa_features],
                                     qa_within=float(qa_within), qa_dropout=float(qa_dropout),
                                     qa_weight_decay=float(qa_weight_decay))
        else:
            dec = ranker_decisions(episodes, FeatureQuality(qa))
        net = train_ranker(dec, epochs=epochs, seed=seed, members=int(members) if int(members) > 1 else None)
        save_checkpoint(net, path, dict(trained, setting=setting))
    print(f"{agent_v2_oracle}, {agent_v2_wild}, {feature_qa_weights}: trained on {decisions} labelled decisions "
          f"of {len(samples)} samples ({spec.name} {split})")
    return decisions


if __name__ == "__main__":
    ex.run_commandline()
