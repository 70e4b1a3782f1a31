"""Exact block scoring for the question's own forward.

Representatives (Quest bounds, mean keys, centroids) estimate a block's
attention cheaply enough to run for every generated token, but on real text
they keep only 72-85% of the attention mass dense attention puts on the
document, and the needle answers showed it. The question is different: it
runs once per question, so its queries can afford to meet every candidate
key exactly (one read of the candidates' keys per layer, far less than a
dense prefill), the way RetrievalAttention computes attention where the KV
lives. The resulting selection is what the answer's tokens then start from.
"""
from __future__ import annotations

import torch
from torch import Tensor

ROW_CHUNK = 64      # query rows per softmax: bounds the [rows, tokens] temporary


def exact_token_mass(q: Tensor, keys: Tensor, valid: Tensor, sink_keys: Tensor,
                     sink_valid: Tensor) -> Tensor:
    """Attention mass [kv_heads, n_tokens] each candidate token receives,
    summed over the query rows, in a softmax over sinks and all candidates.

    q [H, rows, D] and keys [H, n_tokens, D] (each head's own candidate
    blocks, one after another) rotated consistently or both left unrotated;
    valid [H, n_tokens]; sink_keys [H, S, D], sink_valid [S].
    """
    H, N, D = keys.shape
    keys, sinks = keys.float(), sink_keys.float()
    mask = torch.cat([sink_valid.expand(H, -1), valid], dim=1)[:, None, :]   # [H, 1, S + N]
    scale = D ** -0.5
    total = torch.zeros(H, N, dtype=torch.float32, device=keys.device)
    for r0 in range(0, q.shape[1], ROW_CHUNK):
        rows = q[:, r0:r0 + ROW_CHUNK].float()
        logits = torch.cat([rows @ sinks.transpose(1, 2), rows @ keys.transpose(1, 2)], 2)
        probs = torch.softmax(logits.mul_(scale).masked_fill_(~mask, float("-inf")), dim=-1)
        total += probs[:, :, sinks.shape[1]:].sum(1)
    return total


def exact_block_mass(q: Tensor, keys: Tensor, valid: Tensor, sink_keys: Tensor,
                     sink_valid: Tensor, block: int) -> Tensor:
    """Attention mass [kv_heads, n_blocks] each candidate block receives
    (`exact_token_mass` summed per block)."""
    mass = exact_token_mass(q, keys, valid, sink_keys, sink_valid)
    return mass.view(mass.shape[0], -1, block).sum(-1)


def spill_to_neighbours(token_mass: Tensor, block: int, edge: int, adjacent: Tensor) -> Tensor:
    """Block scores [H, n_blocks] from token masses [H, n_blocks * block]: a
    block's own mass plus the mass on the `edge` nearest tokens of the blocks
    next to it, where `adjacent` [n_blocks - 1] says block i + 1 directly
    follows block i in the document.

    A fact cut by a block edge ("... number for Lisbon is 99|19138.") has its
    attention on one side; counting the neighbours' edges lets the other
    side in too. Without it the needle answers showed exactly that: the
    right number with its first digit wrong, or another needle's tail."""
    H = token_mass.shape[0]
    tm = token_mass.view(H, -1, block)
    score = tm.sum(-1)
    if edge <= 0 or tm.shape[1] < 2:
        return score
    adj = adjacent.to(tm.dtype)
    head, tail = tm[..., :edge].sum(-1), tm[..., block - edge:].sum(-1)
    out = score.clone()
    out[:, 1:] += tail[:, :-1] * adj
    out[:, :-1] += head[:, 1:] * adj
    return out
