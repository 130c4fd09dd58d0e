"""FlowNet2's correlation layer in plain torch (any device), for ATNet's local transfer module.

ATNet ships FlowNet2's CUDA correlation package (``networks/correlation_package.zip``), which
does not build against current PyTorch and never runs on CPU. This is the same computation,
written from the kernel's definition (``correlation_forward`` in FlowNet2's
``correlation_cuda_kernel.cu``):

    both inputs zero-padded by ``pad_size``; for output pixel (oy, ox):
    y1 = oy * stride1 + max_displacement,  x1 = ox * stride1 + max_displacement
    for displacement (tj, ti) in [-r, r]^2, r = max_displacement // stride2:
        out[n, (tj + r) * (2r + 1) + (ti + r), oy, ox] =
            sum_{j, i in [-k, k], c} in1[n, c, y1 + j, x1 + i] * in2[n, c, y1 + tj*stride2 + j, x1 + ti*stride2 + i]
            / (kernel_size^2 * C),           k = (kernel_size - 1) // 2
    output size: ceil((H + 2 pad - 2 (max_displacement + k)) / stride1) per axis.

``corr_multiply`` is accepted and ignored, as in the CUDA kernel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def correlation(in1: torch.Tensor, in2: torch.Tensor, pad_size: int, kernel_size: int,
                max_displacement: int, stride1: int = 1, stride2: int = 1) -> torch.Tensor:
    """in1, in2: (N, C, H, W) float. Returns (N, (2r+1)^2, H', W') with r = max_displacement // stride2."""
    if in1.shape != in2.shape:
        raise ValueError(f"correlation inputs differ in shape: {tuple(in1.shape)} vs {tuple(in2.shape)}")
    n, c, h, w = in1.shape
    k = (kernel_size - 1) // 2
    md = max_displacement
    r = md // stride2
    side = 2 * r + 1
    out_h = math.ceil((h + 2 * pad_size - 2 * (md + k)) / stride1)
    out_w = math.ceil((w + 2 * pad_size - 2 * (md + k)) / stride1)
    if out_h <= 0 or out_w <= 0:
        raise ValueError("correlation: input too small for this displacement and padding")
    # extra zero margin so that every window below stays inside the tensor (the CUDA kernel
    # assumes it; with kernel_size 1 and pad_size >= max_displacement the margin is unused)
    extra = k + max(0, md - pad_size) + r * stride2
    p = pad_size + extra
    a = F.pad(in1, (p, p, p, p))
    b = F.pad(in2, (p, p, p, p))
    y0 = x0 = md + extra            # position of output (0, 0) in the padded tensors
    span_y = (out_h - 1) * stride1 + 1
    span_x = (out_w - 1) * stride1 + 1
    out = in1.new_zeros((n, side * side, out_h, out_w))
    norm = float(kernel_size * kernel_size * c)
    for tj in range(-r, r + 1):
        for ti in range(-r, r + 1):
            acc = None
            for j in range(-k, k + 1):
                for i in range(-k, k + 1):
                    ya, xa = y0 + j, x0 + i
                    yb, xb = ya + tj * stride2, xa + ti * stride2
                    prod = (a[:, :, ya:ya + span_y:stride1, xa:xa + span_x:stride1]
                            * b[:, :, yb:yb + span_y:stride1, xb:xb + span_x:stride1]).sum(1)
                    acc = prod if acc is None else acc + prod
            out[:, (tj + r) * side + (ti + r)] = acc / norm
    return out


class Correlation(nn.Module):
    """Drop-in for FlowNet2's ``Correlation`` module (same constructor), pure torch.

    ``cuda_impl``: optional callable with the CUDA package's ``CorrelationFunction.apply``
    signature, used when the inputs are on a CUDA device.
    """

    def __init__(self, pad_size: int = 0, kernel_size: int = 0, max_displacement: int = 0,
                 stride1: int = 1, stride2: int = 2, corr_multiply: int = 1, cuda_impl=None) -> None:
        super().__init__()
        self.pad_size = pad_size
        self.kernel_size = kernel_size
        self.max_displacement = max_displacement
        self.stride1 = stride1
        self.stride2 = stride2
        self.corr_multiply = corr_multiply
        self.cuda_impl = cuda_impl

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> torch.Tensor:
        if self.cuda_impl is not None and input1.is_cuda:
            return self.cuda_impl(input1, input2, self.pad_size, self.kernel_size, self.max_displacement,
                                  self.stride1, self.stride2, self.corr_multiply)
        return correlation(input1, input2, self.pad_size, max(self.kernel_size, 1), self.max_displacement,
                           self.stride1, self.stride2)
