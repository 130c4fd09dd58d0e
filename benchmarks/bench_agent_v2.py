"""The v2 recommender benchmark (``python benchmarks/bench_agent.py --agent v2 ...``).

1. Collect (oracle, train split): episodes with a behaviour policy mixing the look-ahead teacher's
   choice, random, worst and linspace (agent.imitation.CollectSelector); at every decision the one-round
   look-ahead gains of ``--candidates`` random frames + ``--worst-candidates`` worst frames are recorded
   with the round's per-frame features and the true per-object J&F. One file per sample; resumes.
2. Per seed: the feature QA model (wild quality; an ensemble of ``--qa-members``) and two rankers, ``ours``
   in oracle (state built on the ground-truth quality) and in wild (on the QA model's prediction;
   ``--wild-states crossfit``: cross-fitted, each train episode's from a QA model that did not see its
   sequence, agent.imitation.crossfit_decisions), trained on the collected decisions; each an ensemble of
   ``--members`` RankNets (agent.imitation.RankEnsemble).
3. Evaluate on the val split of ``--val-data`` (a root generated with a seed not used for tuning):
   random, linspace, worst, greedy, beam (the multi-step reference) and ours, 8 rounds. random and
   linspace read no quality: their wild runs are their oracle runs (same frames, same masks).
   Prints round-AUC x100 mean +- std over seeds, the QA's in-loop figures and an ablation of ours.

Scratch and results under ``--work``; every evaluation resumes sample by sample; ``table.json`` there gathers
the figures of every run in that folder (a run adds or replaces its own rows only).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.features import F_OBJ, QA_FEATURES, V2_DEFAULT_COLUMNS  # noqa: E402
from agent.imitation import (  # noqa: E402
    FeatureQuality,
    V2Selector,
    crossfit_decisions,
    fit_feature_qa,
    load_checkpoint,
    ranker_decisions,
    save_checkpoint,
    train_ranker,
)
from agent.lookahead import BackendTap  # noqa: E402
from agent.selection import BeamSelector, GreedySelector, LinspaceSelector, RandomSelector, WorstSelector  # noqa: E402
from core.io import atomic_write_text  # noqa: E402
from datasets import davis_compat as dc  # noqa: E402
from datasets.layout import resolve  # noqa: E402
from interaction.evaluate import samples_of  # noqa: E402
from interaction.loop import run_episodes  # noqa: E402
from interaction.results import ResultsWriter  # noqa: E402
from interaction.training_runs import collect_decisions  # noqa: E402
from VOS.registry import build_backend  # noqa: E402

log = logging.getLogger("bench_agent_v2")

#: ablations of ours: name -> state columns kept (agent.features, F_V2 = 18); "full" is the default state
ABLATIONS = {
    "full": list(V2_DEFAULT_COLUMNS),                        # all but the distances and position 7..9
    "with-temporal": list(range(18)),                        # all 18, with the distances and position
    "no-confidence": [c for c in V2_DEFAULT_COLUMNS if c < 11],   # also without the backend's features 11..17
    "published-state": [0, 5],                               # [quality, times annotated] only
    "single-net": list(V2_DEFAULT_COLUMNS),                  # the default state, one RankNet, not --members
    "crossfit-qa": list(V2_DEFAULT_COLUMNS),                 # wild: trained on cross-fitted QA predictions
}
WILD_ONLY = {"crossfit-qa"}      # ablations that differ from "full" in the wild setting only


def _sd(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def collect(spec, samples, vos, work: Path, rounds: int, min_nb_nodes: int, n_random: int, n_worst: int,
            seed: int) -> list[list[dict]]:
    """The labelled decisions of ``samples`` (interaction.training_runs.collect_decisions), cached in work/collect."""
    return collect_decisions(spec, "train", samples, build_backend(vos, torch.device("cpu")), work / "collect",
                             rounds=rounds, min_nb_nodes=min_nb_nodes, seed=seed, n_random=n_random, n_worst=n_worst,
                             progress=False)


def training_decisions(episodes, kind: str, qa, *, folds: int, qa_epochs: int, seed: int,
                       qa_members: int | None, qa_features: int = F_OBJ, qa_within: float = 0.0,
                       qa_dropout: float = 0.0, qa_weight_decay: float = 1e-5) -> list[dict]:
    """The rankers' training decisions: ``oracle`` (ground-truth quality), ``in-sample`` (wild, the QA model
    trained on all of train) or ``crossfit`` (wild, agent.imitation.crossfit_decisions)."""
    if kind == "oracle":
        return ranker_decisions(episodes)
    if kind == "in-sample":
        return ranker_decisions(episodes, qa)
    return crossfit_decisions(episodes, folds=folds, qa_epochs=qa_epochs, seed=seed, qa_members=qa_members,
                              qa_features=qa_features, qa_within=qa_within, qa_dropout=qa_dropout,
                              qa_weight_decay=qa_weight_decay)


def train_variant(episodes, setting: str, abl: str, qa, *, seed: int, wild_states: str, folds: int, qa_epochs: int,
                  qa_members: int | None, rank_epochs: int, members: int, cache: dict | None = None,
                  qa_features: int = F_OBJ, qa_within: float = 0.0, qa_dropout: float = 0.0,
                  qa_weight_decay: float = 1e-5):
    """The ranker (ensemble) of ``setting`` and ablation ``abl`` (:data:`ABLATIONS`) for one seed; ``qa``: the
    seed's feature QA model (wild states); ``cache``: the training decisions of this seed, by kind."""
    cache = {} if cache is None else cache
    kind = setting if setting == "oracle" else (
        "crossfit" if abl == "crossfit-qa" or wild_states == "crossfit" else "in-sample")
    if kind not in cache:
        cache[kind] = training_decisions(episodes, kind, qa, folds=folds, qa_epochs=qa_epochs, seed=seed,
                                         qa_members=qa_members, qa_features=qa_features, qa_within=qa_within,
                                         qa_dropout=qa_dropout, qa_weight_decay=qa_weight_decay)
    n = None if abl == "single-net" or members <= 1 else members
    return train_ranker(cache[kind], epochs=rank_epochs, seed=seed, keep=ABLATIONS[abl], members=n)


def run_eval(spec, samples, vos, out: Path, name: str, setting: str, make_selector, make_qfn, *, rounds: int,
             seed: int, min_nb_nodes: int) -> dict:
    """Evaluate one selector (resumable); returns the summary plus QA figures from the stored samples."""
    backend = build_backend(vos, torch.device("cpu"))
    tap = BackendTap(backend, gt_of=lambda s: spec.annotations(s), robot=dc.robot_for(min_nb_nodes))
    qfn = make_qfn(tap) if make_qfn else None
    selector = make_selector(tap, qfn)
    writer = ResultsWriter(out, {"method": name, "setting": setting, "seed": seed, "rounds": rounds})
    todo = [s for s in samples if not writer.done(*s)]
    t0 = time.time()
    if todo:
        run_episodes(spec, todo, "val", tap, selector, rounds, setting=setting, quality_fn=qfn,
                     min_nb_nodes=min_nb_nodes, seed=seed, on_sample=writer.add, desc=f"{name}/{setting}/s{seed}")
    s = writer.finalize(spec, "val", samples, rounds, {"method": name, "setting": setting, "seed": seed})
    records, _ = writer.load(samples)
    q, g, within, worst_hits = [], [], [], []
    for r in records:
        for x in r.rounds:
            if x.quality is not None:
                q.append(x.quality)
                g.append(x.frame_jf)
                if x.quality_pearson is not None:
                    within.append(x.quality_pearson)
            if x.next_rank is not None:
                worst_hits.append(x.next_rank < 0.2 * len(x.frame_jf))
    res = {"auc": s["auc"], "final": s["curve"]["J_AND_F"][-1],
           "rank": float(np.mean([rr["chosen_rank_relative"] for rr in s["rounds"] if "chosen_rank_relative" in rr])),
           "repeats": float(np.mean([len(x["frames"]) - len(set(x["frames"])) for x in s["samples"]])),
           "in_worst20": float(np.mean(worst_hits)) if worst_hits else float("nan"),
           "seconds": time.time() - t0 if todo else None}
    if q and setting == "wild":
        qa, ga = np.concatenate(q), np.concatenate(g)
        res["qa_pooled_pearson"] = float(np.corrcoef(qa, ga)[0, 1])
        res["qa_within_pearson"] = float(np.mean(within)) if within else float("nan")
        res["qa_mae"] = float(np.abs(qa - ga).mean())
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-data", required=True, help="DAVIS-layout root whose train split trains the models")
    ap.add_argument("--val-data", required=True, help="DAVIS-layout root whose val split is evaluated "
                    "(generated with a seed not used for tuning)")
    ap.add_argument("--vos", default="classic")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--settings", default="wild,oracle")
    ap.add_argument("--methods", default="random,linspace,worst,ours,greedy,beam")
    ap.add_argument("--ablations", default="with-temporal,no-confidence,published-state",
                    help="variants of ours ('' for none), trained and evaluated for --ablation-seeds")
    ap.add_argument("--ablation-seeds", default="first", choices=["first", "all"],
                    help="the ablations for the first of --seeds only, or for every seed")
    ap.add_argument("--pools", default="1.0", help="ours chooses among the frames of the lowest POOL share of "
                    "quality ranks, for each POOL (1.0: all frames, as `ours`; others run as ours-poolPOOL)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--train-sequences", type=int, default=0)
    ap.add_argument("--train-scribbles", default="1,2", help="initial scribbles of the train samples")
    ap.add_argument("--val-sequences", type=int, default=0)
    ap.add_argument("--val-scribbles", default="1", help="initial scribbles of the val samples")
    ap.add_argument("--candidates", type=int, default=6, help="random frames labelled per collected decision")
    ap.add_argument("--worst-candidates", type=int, default=2, help="worst frames labelled per collected decision")
    ap.add_argument("--greedy-candidates", type=int, default=8)
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--horizon", type=int, default=2)
    ap.add_argument("--beam-grid", type=int, default=4)
    ap.add_argument("--beam-worst", type=int, default=2)
    ap.add_argument("--qa-epochs", type=int, default=120)
    ap.add_argument("--rank-epochs", type=int, default=30)
    ap.add_argument("--wild-states", default="in-sample", choices=["in-sample", "crossfit"],
                    help="the wild ranker's training states: the QA model trained on all of train predicts them "
                    "(in-sample), or models that did not see the sequence (crossfit; the ablation crossfit-qa)")
    ap.add_argument("--crossfit-folds", type=int, default=3, help="folds by sequence of the cross-fitted states")
    ap.add_argument("--qa-members", type=int, default=5, help="feature QA models per ensemble "
                    "(agent.imitation.FeatureQAEnsemble; 1: one FeatureQANet)")
    ap.add_argument("--qa-features", default="image", choices=sorted(QA_FEATURES),
                    help="the feature QA model's object features: from the backend's probabilities only (probs) or "
                    "with the image evidence (image: agent.features.image_features)")
    ap.add_argument("--qa-within", type=float, default=0.0, help="weight of the feature QA model's within-video "
                    "loss (agent.imitation.train_feature_qa)")
    ap.add_argument("--qa-dropout", type=float, default=0.5, help="the feature QA model's training dropout")
    ap.add_argument("--qa-weight-decay", type=float, default=1e-5, help="the feature QA model's Adam weight decay")
    ap.add_argument("--members", type=int, default=3, help="rankers per ensemble (agent.imitation.RankEnsemble; "
                    "1: one RankNet)")
    ap.add_argument("--min-nb-nodes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/ivosw-bench-agent-v2")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    t_all = time.time()
    tspec, vspec = resolve(a.train_data), resolve(a.val_data)
    tr_scr = [int(x) for x in a.train_scribbles.split(",")]
    va_scr = [int(x) for x in a.val_scribbles.split(",")]
    train_samples = samples_of(tspec, "train", tspec.subset("train")[: a.train_sequences or None], tr_scr)
    val_samples = samples_of(vspec, "val", vspec.subset("val")[: a.val_sequences or None], va_scr)
    seeds = [int(x) for x in a.seeds.split(",")]
    settings = a.settings.split(",")
    methods = a.methods.split(",")
    ablations = [x for x in a.ablations.split(",") if x]
    ablation_seeds = set(seeds if a.ablation_seeds == "all" else seeds[:1])
    times: dict[str, float] = {}

    t0 = time.time()
    episodes = collect(tspec, train_samples, a.vos, work, a.rounds, a.min_nb_nodes, a.candidates,
                       a.worst_candidates, seed=1000)
    times["collect"] = time.time() - t0
    n_dec = sum(len(e) for e in episodes)

    t0 = time.time()
    qa_members = a.qa_members if a.qa_members > 1 else None
    models: dict[tuple[int, str], Path] = {}
    for seed in seeds:
        sdir = work / f"seed{seed}"
        qa_path = sdir / "feature_qa.pt"
        if not qa_path.exists():
            save_checkpoint(fit_feature_qa(episodes, features=QA_FEATURES[a.qa_features], within=a.qa_within,
                                           epochs=a.qa_epochs, seed=seed, members=qa_members, dropout=a.qa_dropout,
                                           weight_decay=a.qa_weight_decay), qa_path)
        models[(seed, "qa")] = qa_path
        qa = FeatureQuality(load_checkpoint(qa_path, "feature-qa"))
        cache: dict[str, list[dict]] = {}   # the training decisions of this seed, by kind
        for setting in settings:
            for abl in ["full"] + (ablations if seed in ablation_seeds else []):
                if setting != "wild" and abl in WILD_ONLY:
                    continue
                path = sdir / f"agent_v2_{setting}_{abl}.pt"
                if not path.exists():
                    net = train_variant(episodes, setting, abl, qa, seed=seed, wild_states=a.wild_states,
                                        folds=a.crossfit_folds, qa_epochs=a.qa_epochs, qa_members=qa_members,
                                        rank_epochs=a.rank_epochs, members=a.members, cache=cache,
                                        qa_features=QA_FEATURES[a.qa_features], qa_within=a.qa_within,
                                        qa_dropout=a.qa_dropout, qa_weight_decay=a.qa_weight_decay)
                    save_checkpoint(net, path, {"setting": setting, "ablation": abl, "seed": seed})
                models[(seed, f"{setting}/{abl}")] = path
    times["train"] = time.time() - t0

    def qa_maker(seed):
        return lambda tap: FeatureQuality(load_checkpoint(models[(seed, "qa")], "feature-qa"), source=tap)

    results: dict[tuple[str, str], list[dict]] = {}
    ev = dict(rounds=a.rounds, min_nb_nodes=a.min_nb_nodes)
    out = work / "results"
    t0 = time.time()
    for setting in settings:
        for method in methods:
            runs = []
            if method in ("random", "linspace"):
                # they read no quality: one run (stored under oracle) serves both settings
                mk = (lambda tap, q: RandomSelector()) if method == "random" else (lambda tap, q: LinspaceSelector())
                for seed in (seeds if method == "random" else seeds[:1]):
                    r = run_eval(vspec, val_samples, a.vos, out / "oracle" / method / f"seed{seed}", method, "oracle",
                                 mk, None, seed=seed, **ev)
                    results.setdefault((setting, method), []).append(r)
                continue
            elif method == "worst":
                if setting == "oracle":
                    runs = [(seeds[0], lambda tap, q: WorstSelector(), None)]
                else:
                    runs = [(seed, lambda tap, q: WorstSelector(), qa_maker(seed)) for seed in seeds]
            elif method in ("greedy", "beam"):
                if setting != "oracle":
                    continue
                if method == "greedy":
                    runs = [(seeds[0], lambda tap, q: GreedySelector(max_candidates=a.greedy_candidates), None)]
                else:
                    runs = [(seeds[0], lambda tap, q: BeamSelector(beam=a.beam, horizon=a.horizon, grid=a.beam_grid,
                                                                   worst=a.beam_worst, rounds=a.rounds, tap=tap), None)]
            elif method == "ours":
                for seed in seeds:
                    variants = [("full", float(x)) for x in a.pools.split(",")]
                    variants += [(abl, 1.0) for abl in (ablations if seed in ablation_seeds else [])
                                 if setting == "wild" or abl not in WILD_ONLY]
                    for abl, pool in variants:
                        path = models[(seed, f"{setting}/{abl}")]
                        def mk(tap, q, path=path, pool=pool):
                            return V2Selector(load_checkpoint(path, "agent-v2"), qa=q, tap=tap, pool=pool)
                        name = "ours" if abl == "full" else f"ours-{abl}"
                        name = name if pool >= 1.0 else f"{name}-pool{pool:g}"
                        r = run_eval(vspec, val_samples, a.vos, out / setting / name / f"seed{seed}", name, setting, mk,
                                     qa_maker(seed) if setting == "wild" else None, seed=seed, **ev)
                        results.setdefault((setting, name), []).append(r)
                continue
            for seed, mk, mq in runs:
                r = run_eval(vspec, val_samples, a.vos, out / setting / method / f"seed{seed}", method, setting, mk, mq,
                             seed=seed, **ev)
                results.setdefault((setting, method), []).append(r)
    times["evaluate"] = time.time() - t0

    print(f"\n{a.vos}: trained on {tspec.root} train ({len(train_samples)} samples, {n_dec} labelled decisions), "
          f"evaluated on {vspec.root} val ({len(val_samples)} samples), {a.rounds} rounds, seeds {seeds}; "
          f"collect {times['collect']:.0f} s, train {times['train']:.0f} s, evaluate {times['evaluate']:.0f} s "
          f"(this run; finished parts are reused), total {time.time() - t_all:.0f} s")
    print(f"{'setting':7s} {'method':24s} {'n':>2s} {'round-AUC x100':>16s} {'J&F@last x100':>15s} {'rank':>6s} "
          f"{'worst20%':>8s} {'repeats':>7s} {'QA pooled r':>11s} {'QA within r':>11s}")
    table = {}
    for (setting, method), rs in results.items():
        if not rs:
            continue
        auc = np.array([r["auc"] for r in rs]) * 100
        fin = np.array([r["final"] for r in rs]) * 100
        qp = [r["qa_pooled_pearson"] for r in rs if "qa_pooled_pearson" in r]
        qw = [r["qa_within_pearson"] for r in rs if "qa_within_pearson" in r]
        table[f"{setting}/{method}"] = {"auc": auc.tolist(), "final": fin.tolist(),
                                        "qa_pooled": qp, "qa_within": qw,
                                        "in_worst20": [r["in_worst20"] for r in rs]}
        print(f"{setting:7s} {method:24s} {len(rs):2d} {auc.mean():8.2f} +- {_sd(auc):4.2f} {fin.mean():7.2f} +- {_sd(fin):4.2f} "
              f"{np.mean([r['rank'] for r in rs]):6.3f} {np.mean([r['in_worst20'] for r in rs]):8.2f} "
              f"{np.mean([r['repeats'] for r in rs]):7.2f} "
              f"{(f'{np.mean(qp):.3f}' if qp else ''):>11s} {(f'{np.mean(qw):.3f}' if qw else ''):>11s}")
    print("rank: mean ground-truth rank of the recommended frame / (T - 1), 0 = the worst frame; worst20%: share of "
          "recommended frames among the true worst 20% of the video; QA r: Pearson of predicted vs true per-frame "
          "J&F in the loop (pooled over samples and rounds; mean within a video and round)")
    merge_table(work / "table.json", table)


def merge_table(path: Path, rows: dict) -> dict:
    """Write ``rows`` ({"setting/method": figures}) into the JSON table at ``path``, atomically, keeping the
    rows of earlier runs in the same --work that this run did not evaluate (a run of another setting or
    method adds to the table, it does not replace it); returns the merged table."""
    path = Path(path)
    table = {}
    if path.exists():
        try:
            table = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path} is not valid JSON ({e}): delete it (the results under "
                             f"{path.parent / 'results'} are kept and the next run writes it again)") from None
    table.update(rows)
    atomic_write_text(path, json.dumps(table, indent=1))
    return table


if __name__ == "__main__":
    main()
