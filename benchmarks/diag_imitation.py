"""Leave-sequences-out diagnostics of the v2 agent's training data (cheap: no backend runs).

    python benchmarks/diag_imitation.py /tmp/v2/bench_comp      # the --work folder of bench_agent.py --agent v2

On the decisions collected by ``bench_agent.py --agent v2`` (``<work>/collect/*.pkl``), 3 folds by sequence:
the feature QA model's accuracy on held-out sequences, and the one-round gain that the ranker, the
ground-truth worst frame (not yet annotated) and a random candidate give up against the best labelled
candidate (J&F points, mean per decision).
"""
import glob
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.imitation import FeatureQuality, qa_training_set, ranker_decisions, train_feature_qa, train_ranker  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    root = sys.argv[1]
    files = sorted(glob.glob(root + '/collect/*.pkl'))
    eps = [pickle.load(open(f, 'rb')) for f in files]
    n = len(eps)
    # folds by sequence: the episodes of one sequence (its initial scribbles, <seq>__<scribble>.pkl) share a fold
    seq_of = [Path(f).name.split('__')[0] for f in files]
    fold_of = {q: i % 3 for i, q in enumerate(sorted(set(seq_of)))}
    folds = [[i for i, q in enumerate(seq_of) if fold_of[q] == k] for k in range(3)]
    regret = {"ranker": [], "worst-gt": [], "random": [], "best": []}
    qa_pooled, qa_within = [], []
    for k, test in enumerate(folds):
        train = [eps[i] for i in range(n) if i not in test]
        x, y = qa_training_set(train)
        qa = FeatureQuality(train_feature_qa(x, y, epochs=60, seed=0))
        for i in test:
            for d in eps[i]:
                p = qa.predict(d["obj_feats"]).mean(1); g = d["gt_quality"]
                qa_pooled.append((p, g)); qa_within.append(np.corrcoef(p, g)[0, 1] if g.std() > 0 else np.nan)
        net = train_ranker(ranker_decisions(train), epochs=30, seed=0)
        for d, raw in zip(ranker_decisions([eps[i] for i in test]), [r for i in test for r in eps[i]]):
            with torch.no_grad():
                sc = net(torch.as_tensor(d["state"])[None])[0].numpy()
            c, g = d["candidates"], d["gains"]
            regret["ranker"].append(g.max() - g[np.argmax(sc[c])])
            regret["worst-gt"].append(g.max() - g[np.argmin(raw["gt_quality"][c] + 10 * (raw["counts"][c] > 0))])
            regret["random"].append(g.max() - g.mean())
            regret["best"].append(g.max())
    P = np.concatenate([p for p, _ in qa_pooled]); G = np.concatenate([g for _, g in qa_pooled])
    print(f"{root}: {n} episodes, {sum(len(e) for e in eps)} decisions, 3-fold by sequence")
    print(f"QA (feature model): pooled r {np.corrcoef(P, G)[0,1]:.3f}, mean within-video r {np.nanmean(qa_within):.3f}, MAE {np.abs(P-G).mean():.3f}")
    for k, v in regret.items():
        print(f"  mean one-round gain given up vs the best labelled candidate, {k:9s}: {np.mean(v)*100:.2f} J&F points" if k != "best" else f"  mean best candidate gain: {np.mean(v)*100:.2f}")


if __name__ == "__main__":
    main()
