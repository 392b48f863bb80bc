"""Ranger: RAdam + Lookahead + gradient centralization, the update rule of the optimizer StyleCLIP's
mapper coach uses by default (its mapper/training/ranger.py, "version 20.4.11"), written anew.

Per parameter p with gradient g, at step t (1-based), with the official defaults
β1 0.95, β2 0.999, eps 1e-5, Lookahead α 0.5 every k = 6 steps, RAdam threshold 5:
  - gradient centralization: when g has more than `gc_min_dim` dimensions (1: fully connected and
    conv weights; 3 with gc_conv_only: conv weights only), g ← g − mean of g over all but dim 0;
  - m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²;
  - ρ∞ = 2/(1 − β2) − 1,  ρt = ρ∞ − 2t·β2ᵗ/(1 − β2ᵗ);
  - ρt > 5: p ← p − lr · r / (1 − β1ᵗ) · m / (√v + eps), r = √((1 − β2ᵗ)(ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)ρt(ρ∞ − 2)));
    else:   p ← p − lr / (1 − β1ᵗ) · m   (momentum SGD while the variance estimate is unreliable);
  - (weight decay, off by default: p ← p − wd·lr·p before the update);
  - every k steps: slow ← slow + α·(p − slow), p ← slow (slow starts as p before the first step).
The scalars are computed in Python floats in the official order. State per parameter: step (int),
exp_avg, exp_avg_sq, slow_buffer: a plain optimizer state_dict, so a checkpoint resumes exactly.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


class Ranger(Optimizer):
    def __init__(self, params, lr: float = 1e-3, alpha: float = 0.5, k: int = 6, n_sma_threshold: float = 5,
                 betas: tuple = (0.95, 0.999), eps: float = 1e-5, weight_decay: float = 0.0, use_gc: bool = True,
                 gc_conv_only: bool = False):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"invalid Lookahead alpha: {alpha}")
        if k < 1:
            raise ValueError(f"invalid Lookahead k: {k}")
        if not lr > 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not eps > 0:
            raise ValueError(f"invalid eps: {eps}")
        defaults = dict(lr=lr, alpha=alpha, k=k, n_sma_threshold=n_sma_threshold, betas=tuple(betas), eps=eps,
                        weight_decay=weight_decay, use_gc=use_gc, gc_min_dim=3 if gc_conv_only else 1)
        super().__init__(params, defaults)

    @staticmethod
    def _step_size(t: int, beta1: float, beta2: float, threshold: float) -> tuple:
        """(adaptive?, step size) for step t."""
        beta2_t = beta2 ** t
        n_sma_max = 2 / (1 - beta2) - 1
        n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
        if n_sma > threshold:
            rect = (1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2)
            return True, math.sqrt(rect) / (1 - beta1 ** t)
        return False, 1.0 / (1 - beta1 ** t)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["slow_buffer"] = p.detach().clone()
                if group["use_gc"] and grad.dim() > group["gc_min_dim"]:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                adaptive, step_size = self._step_size(t, beta1, beta2, group["n_sma_threshold"])
                if group["weight_decay"] != 0:
                    p.add_(p, alpha=-group["weight_decay"] * lr)
                if adaptive:
                    p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size * lr)
                else:
                    p.add_(exp_avg, alpha=-step_size * lr)
                if t % group["k"] == 0:
                    slow = state["slow_buffer"]
                    slow.add_(p - slow, alpha=group["alpha"])
                    p.copy_(slow)
        return loss
