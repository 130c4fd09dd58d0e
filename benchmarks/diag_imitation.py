"""Leave-sequences-out diagnostics of the v2 agent's training data (cheap: no backend runs).

    python benchmarks/diag_imitation.py /tmp/v2/bench_comp      # the --work folder of bench_agent.py --agent v2
    python benchmarks/diag_imitation.py /tmp/v2/bench_comp --qa-only --qa-features image --qa-within 1 --qa-members 5

On the decisions collected by ``bench_agent.py --agent v2`` (``<work>/collect/*.pkl``), 3 folds by sequence:
the feature QA model's accuracy on held-out sequences, and the one-round gain that the ranker, the
ground-truth worst frame (not yet annotated) and a random candidate give up against the best labelled
candidate (J&F points, mean per decision).
"""
import argparse
import glob
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.features import F_OBJ, QA_FEATURES, image_features  # noqa: E402
from agent.imitation import (  # noqa: E402
    FeatureQuality,
    decision_masks,
    qa_training_set,
    ranker_decisions,
    train_feature_qa,
    train_ranker,
)


def recompute_image_features(episodes, root: str) -> None:
    """Replace the image evidence of each decision (object features F_OBJ..) by today's image_features."""
    from datasets.layout import resolve

    spec = resolve(root)
    frames = {}
    for ep in episodes:
        for d in ep:
            seq = d["sequence"]
            if seq not in frames:
                frames = {seq: spec.frames(seq)}
            K = d["obj_feats"].shape[1]
            img = image_features(frames[seq], decision_masks(d), d["annotated"], K)
            d["obj_feats"] = np.concatenate([np.asarray(d["obj_feats"])[..., :F_OBJ], img], axis=-1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", help="the --work folder of bench_agent.py --agent v2 (its collect/*.pkl)")
    ap.add_argument("--qa-only", action="store_true", help="the QA model's figures only (no rankers)")
    ap.add_argument("--qa-features", default="probs", choices=sorted(QA_FEATURES),
                    help="the QA model's object features: from the probabilities only, or with the image evidence")
    ap.add_argument("--qa-within", type=float, default=0.0, help="weight of the within-video loss")
    ap.add_argument("--qa-members", type=int, default=1)
    ap.add_argument("--qa-dropout", type=float, default=0.0, help="training dropout of the feature QA model")
    ap.add_argument("--qa-weight-decay", type=float, default=1e-5, help="its Adam weight decay")
    ap.add_argument("--qa-epochs", type=int, default=60)
    ap.add_argument("--recompute", metavar="ROOT", help="recompute the image evidence of every decision from its "
                    "stored masks and the frames of the DAVIS-layout ROOT the episodes were collected on (to try a "
                    "changed agent.features.image_features without collecting again)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = a.work
    nf = QA_FEATURES[a.qa_features]
    files = sorted(glob.glob(root + '/collect/*.pkl'))
    eps = [pickle.load(open(f, 'rb')) for f in files]
    if a.recompute:
        recompute_image_features(eps, a.recompute)
    n = len(eps)
    # folds by sequence: the episodes of one sequence (its initial scribbles, <seq>__<scribble>.pkl) share a fold
    seq_of = [Path(f).name.split('__')[0] for f in files]
    fold_of = {q: i % 3 for i, q in enumerate(sorted(set(seq_of)))}
    folds = [[i for i, q in enumerate(seq_of) if fold_of[q] == k] for k in range(3)]
    regret = {"ranker": [], "worst-gt": [], "random": [], "best": []}
    qa_pooled, qa_within, worst20 = [], [], []
    for test in folds:
        train = [eps[i] for i in range(n) if i not in test]
        x, y, g = qa_training_set(train, nf, groups=True)
        qa = FeatureQuality(train_feature_qa(x, y, epochs=a.qa_epochs, seed=0, groups=g, within=a.qa_within,
                                             dropout=a.qa_dropout, weight_decay=a.qa_weight_decay,
                                             members=a.qa_members if a.qa_members > 1 else None))
        for i in test:
            for d in eps[i]:
                p = qa.predict(d["obj_feats"]).mean(1)
                g = d["gt_quality"]
                qa_pooled.append((p, g))
                qa_within.append(np.corrcoef(p, g)[0, 1] if g.std() > 0 else np.nan)
                worst20.append(float(g[int(np.argmin(p + 10 * (d["counts"] > 0)))] <= np.quantile(g, 0.2)))
        if a.qa_only:
            continue
        net = train_ranker(ranker_decisions(train), epochs=30, seed=0)
        for d, raw in zip(ranker_decisions([eps[i] for i in test]), [r for i in test for r in eps[i]], strict=True):
            with torch.no_grad():
                sc = net(torch.as_tensor(d["state"])[None])[0].numpy()
            c, g = d["candidates"], d["gains"]
            regret["ranker"].append(g.max() - g[np.argmax(sc[c])])
            regret["worst-gt"].append(g.max() - g[np.argmin(raw["gt_quality"][c] + 10 * (raw["counts"][c] > 0))])
            regret["random"].append(g.max() - g.mean())
            regret["best"].append(g.max())
    P = np.concatenate([p for p, _ in qa_pooled])
    G = np.concatenate([g for _, g in qa_pooled])
    print(f"{root}: {n} episodes, {sum(len(e) for e in eps)} decisions, 3-fold by sequence")
    print(f"QA (feature model, {a.qa_features}, within {a.qa_within:g}, dropout {a.qa_dropout:g}, weight decay "
          f"{a.qa_weight_decay:g}, {a.qa_members} members): pooled r "
          f"{np.corrcoef(P, G)[0,1]:.3f}, mean within-video r {np.nanmean(qa_within):.3f}, MAE {np.abs(P-G).mean():.3f}, "
          f"predicted worst not annotated among the true worst 20 % {np.mean(worst20):.0%}")
    for k, v in regret.items() if not a.qa_only else []:
        print(f"  mean one-round gain given up vs the best labelled candidate, {k:9s}: {np.mean(v)*100:.2f} J&F points" if k != "best" else f"  mean best candidate gain: {np.mean(v)*100:.2f}")


if __name__ == "__main__":
    main()
