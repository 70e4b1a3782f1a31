"""The question's words in each candidate block: BM25 over token ids.

The filter layer's attention ranks blocks by how the model reads them, and
among look-alike facts ("the number for Lisbon is ...", "the number for
Osaka is ...") it often ranks another fact's block first; past the window,
where the best block sits next to the question, the model then answers
with that fact. The one thing that tells look-alikes apart, the rare name
the question asks about, is a lexical signal, the same one Folio's hybrid
search uses for segments. Here it is computed over the stored token ids of
the candidate blocks (no text, no tokenizer: the engine never parses
files), with inverse document frequency over the candidates, so the
template's and the question's common tokens weigh little.
"""
from __future__ import annotations

import torch
from torch import Tensor

K1 = 1.2          # BM25 term saturation; blocks have one length, so no length norm


def candidate_token_ids(ids: Tensor, block: int, edge: int, adjacent: Tensor) -> Tensor:
    """Token ids [n, edge + block + edge] of each candidate block [n, block]
    with the `edge` nearest tokens of the blocks next to it in the document
    (-1 where there is none), so a name cut by a block edge still counts,
    as the filter's attention mass counts its neighbours' edges."""
    n = ids.shape[0]
    edge = min(edge, block)
    if edge == 0:
        return ids
    pad = torch.full((n, edge), -1, dtype=ids.dtype, device=ids.device)
    before, after = pad.clone(), pad.clone()
    if n > 1:
        adj = adjacent[:, None]
        before[1:] = torch.where(adj, ids[:-1, block - edge:], -1)
        after[:-1] = torch.where(adj, ids[1:, :edge], -1)
    return torch.cat([before, ids, after], dim=1)


def bm25_scores(ids: Tensor, query: Tensor) -> Tensor:
    """BM25 score [n] of each candidate (token ids [n, L], -1 = none) for the
    query's distinct token ids, with IDF over these candidates."""
    n = ids.shape[0]
    score = torch.zeros(n, dtype=torch.float32, device=ids.device)
    for term in torch.unique(query[query >= 0]).tolist():   # one host sync, not one per term
        tf = (ids == term).sum(-1).float()
        df = (tf > 0).sum().float()         # a term in no block adds nothing (tf is 0)
        idf = torch.log1p((n - df + 0.5) / (df + 0.5))
        score += idf * tf * (K1 + 1) / (tf + K1)
    return score


FUSIONS = ("sum", "product")


def fuse(mass: Tensor, lexical: Tensor, weight: float, how: str = "sum") -> Tensor:
    """Each candidate's pick score from its attention mass and its lexical
    score, each scaled by its best candidate's. "sum" adds them, `weight`
    on the lexical side (as hybrid search mixes BM25 and embeddings): a
    block can get in on its words alone. "product" scales the mass by
    (1 + weight * lexical): only blocks the model attends to move up, so
    look-alike facts that share the question's common words are not pulled
    in beside the one it names."""
    mass = mass.float().clamp_min(0)
    lexical = lexical.float().to(mass.device)
    top_m, top_l = mass.max(), lexical.max()
    m = mass / top_m if top_m > 0 else mass
    if top_l <= 0:
        return m
    lex = lexical / top_l
    if how == "sum":
        return m + weight * lex
    if how == "product":
        return m * (1 + weight * lex)
    raise ValueError(f"lexical fusion must be one of {', '.join(FUSIONS)}, not {how!r}")
