"""Train the quality-assessment network on the maps made by generate_data.py.

    python generate_data.py && python quality_assessment.py      # built-in CPU pipeline (ResNet-18, 128 px)
    python quality_assessment.py with paper                      # published: ResNet-50, 256 px, 50 epochs
    python quality_assessment.py print_config

Holds out whole sequences for validation and reports, after every epoch, the validation Pearson and
Spearman correlation and mean absolute error of predicted vs. true J&F (log, and
``{weights_dir}/assess_net_history.{json,csv}``). The training checkpoint (model, optimiser, scheduler,
epoch) is ``{train_dir}/quality/checkpoint.pt``, rewritten atomically after every epoch; re-running the same
command resumes from it (a changed setting or QA data is refused: see its ``.run.json``). The weights are
exported to ``{weights_dir}/assess_net.pt`` after every epoch, atomically; a file there that this training
did not write (such as the published assess_net.pt) is never overwritten: the run stops and says so.

Several processes (DistributedDataParallel: gloo on CPU, nccl on GPU), the same global batch_size::

    torchrun --nproc_per_node=N quality_assessment.py with ...

Each process trains on 1/N of every batch; process 0 alone validates, logs and writes files.

Deviation from the published code: gradients are zeroed before every iteration (the published training
loop never zeroed them, so they accumulated across iterations).
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

import logging

from _experiment import new_experiment, setup_logging

ex = new_experiment("quality_assessment")


@ex.config
def config():
    backbone = "resnet18"    # resnet18 (CPU default) | resnet50 (published)
    crop_size = 128 if backbone == "resnet18" else 256   # ROI resampled to crop_size² (published: 256)
    min_size = 128           # minimum ROI side in frame pixels (published: 128)
    pretrained = False       # ImageNet init: only if the torchvision weights are cached (no download here)
    epochs = 8               # published: 50
    batch_size = 32          # published: 32
    # Published: 5e-6 for an ImageNet-initialised ResNet-50 whose gradients were never zeroed (so its
    # effective step grew with every iteration). A ResNet-18 trained from scratch with zeroed gradients
    # needs a far larger rate.
    lr = 5e-6 if backbone == "resnet50" and pretrained else 1e-3
    momentum = 0.9           # published
    weight_decay = 5e-4      # published
    gamma = 0.95             # ExponentialLR per epoch (published)
    resize = [854, 480]      # frames resized to (W, H) before augmentation (published: 854x480)
    val_fraction = 0.15      # share of sequences held out for validation
    seed = 0
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    qa_dir = f"{data_dir}/quality_assessment"   # generate_data.py's out_dir
    weights_dir = "weights"
    train_dir = "train"      # the training checkpoint: {train_dir}/quality/checkpoint.pt
    num_workers = 0          # DataLoader workers
    progress = True


@ex.named_config
def paper():
    """The published training (needs the ImageNet ResNet-50 weights in the torch hub cache)."""
    backbone = "resnet50"
    crop_size = 256
    min_size = 128
    pretrained = True
    epochs = 50
    batch_size = 32
    lr = 5e-6


@ex.main
def main(backbone, crop_size, min_size, pretrained, epochs, batch_size, lr, momentum, weight_decay, gamma, resize,
         val_fraction, seed, device, data_dir, qa_dir, weights_dir, train_dir, num_workers, progress):
    from pathlib import Path

    import torch

    from agent.qa_data import Augment, make_datasets, train_quality
    from agent.quality import QualityNet
    from agent.training import check_identity
    from core.device import resolve_device
    from core.distributed import init_from_env
    from core.identity import file_ref

    dist_info, dev = init_from_env(resolve_device(device))
    setup_logging(logging.INFO if dist_info.main else logging.WARNING)
    torch.manual_seed(seed)
    aug = Augment(resize=tuple(resize) if resize else None)
    train_set, val_set = make_datasets(qa_dir, crop_size=crop_size, min_size=min_size, val_fraction=val_fraction,
                                       seed=seed, augment=aug)
    logging.getLogger(__name__).info("QA data %s: %d training and %d validation maps", qa_dir, len(train_set),
                                     len(val_set))
    net = QualityNet(backbone, pretrained=pretrained, crop_size=crop_size, min_size=min_size)
    wdir = Path(weights_dir)
    ckpt = Path(train_dir) / "quality" / "checkpoint.pt"
    # bound to the settings and to the content of the QA data's index: another run is refused, not resumed
    ident = check_identity(ckpt, dict(backbone=backbone, crop_size=crop_size, min_size=min_size,
                                      pretrained=pretrained, batch_size=batch_size, lr=lr, momentum=momentum,
                                      weight_decay=weight_decay, gamma=gamma, resize=resize,
                                      val_fraction=val_fraction, seed=seed,
                                      qa_index=file_ref(Path(qa_dir) / "index.csv")))
    history = train_quality(net, train_set, val_set, epochs=epochs, ckpt_path=ckpt,
                            history_path=wdir / "assess_net_history.json", lr=lr, momentum=momentum,
                            weight_decay=weight_decay, gamma=gamma, batch_size=batch_size, device=dev, seed=seed,
                            num_workers=num_workers, export_path=wdir / "assess_net.pt", owner=ident,
                            progress=progress, dist_info=dist_info)
    last = history[-1] if history else {}
    if not dist_info.main:
        return last
    print(f"{wdir / 'assess_net.pt'}: epoch {last.get('epoch')}, val Pearson {last.get('val_pearson', float('nan')):.3f}, "
          f"Spearman {last.get('val_spearman', float('nan')):.3f}, MAE {last.get('val_mae', float('nan')):.3f}")
    return last


if __name__ == "__main__":
    ex.run_commandline()
