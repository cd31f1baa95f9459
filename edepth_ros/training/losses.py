"""Training losses: scale-invariant log loss (SILog), the KL terms (in network.text_vae) and a
confidence loss that teaches the confidence head "is this pixel within 10% of the truth".

Both are means of per-image terms, so a batch split over DDP ranks gives exactly the loss and the
gradient of the whole batch on one process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def valid_mask(gt: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    return torch.isfinite(gt) & (gt > min_depth) & (gt < max_depth)


def _per_image_mean(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = mask.flatten(1).to(x.dtype)
    n = m.sum(1)
    return (x.flatten(1) * m).sum(1) / n.clamp_min(1), n > 0


def silog_loss(log_pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, lambd: float = 0.85) -> torch.Tensor:
    """BTS/WorDepth SILog per image, 10 * sqrt(mean(d^2) - lambda * mean(d)^2), d = log pred - log gt,
    averaged over the images that have ground truth (0 with a graph when none has)."""
    d = torch.where(mask, log_pred.float() - torch.log(torch.where(mask, gt.float(), torch.ones_like(gt))), 0.0)
    mean_d, has = _per_image_mean(d, mask)
    mean_d2, _ = _per_image_mean(d * d, mask)
    per_image = 10.0 * torch.sqrt((mean_d2 - lambd * mean_d.pow(2)).clamp_min(1e-8))
    if not bool(has.any()):  # summed in float32: an fp16 (AMP) sum of a whole batch overflows, and inf * 0 is NaN
        return log_pred.float().sum() * 0.0
    return per_image[has].mean()


def confidence_loss(conf_logit: torch.Tensor, log_pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                    tolerance: float = 0.1) -> torch.Tensor:
    """BCE of the confidence head against 1[|pred - gt| / gt < tolerance] (prediction detached), per image."""
    safe_gt = torch.where(mask, gt.float(), torch.ones_like(gt))
    rel = (torch.exp(log_pred.detach().float()) - safe_gt).abs() / safe_gt
    target = (rel < tolerance).float()
    bce = F.binary_cross_entropy_with_logits(conf_logit.float(), target, reduction="none")
    per_image, has = _per_image_mean(bce, mask)
    if not bool(has.any()):
        return conf_logit.float().sum() * 0.0
    return per_image[has].mean()
