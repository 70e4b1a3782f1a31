"""A device pool of selected K/V blocks, refilled from pinned host memory.

The stored K/V stays in page-locked host memory; per layer the device holds
only the k blocks per KV head that the current selection needs, in k fixed
slots. Each decode step keeps the blocks that stay selected where they are
and fetches only the newly selected ones into the slots that fell out, so
consecutive tokens that mostly pick the same blocks move little over the
host link. Everything has a fixed shape (no host sync, no Python branches
on data), so a step that uses it can be captured in a CUDA graph.

On CUDA the fetch is a small Triton kernel that reads the pinned host
blocks directly over unified virtual addressing (a pinned allocation is
device-addressable at the same pointer), writing only the slots flagged for
refill; on a CPU (tests) it is a plain indexed copy.

Slots are not in document order: a block keeps its slot while it stays
selected. `slot_ranks` gives each slot's rank in document order, which is
what the reassigned RoPE positions need.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

try:                                    # Triton is there wherever CUDA is
    import triton
    import triton.language as tl
except ImportError:                     # pragma: no cover - CPU-only machines
    triton = None


def empty_resident(kv_heads: int, k: int, device: torch.device | str) -> Tensor:
    """Slot contents [kv_heads, k] of an empty pool: distinct ids that no
    selection (ids >= 0) contains, so the first refill fetches every slot."""
    return (-1 - torch.arange(k, device=device)).expand(kv_heads, k).contiguous()


def _isin_rows(a: Tensor, sorted_b: Tensor) -> Tensor:
    """Per row: which entries of a [H, k] occur in the sorted row of sorted_b [H, k]."""
    pos = torch.searchsorted(sorted_b, a).clamp(max=sorted_b.shape[-1] - 1)
    return sorted_b.gather(-1, pos) == a


def refill(resident: Tensor, sel: Tensor) -> tuple[Tensor, Tensor]:
    """New slot contents and the slots to fetch, for a selection sel [H, k]
    (sorted, distinct per row) and the current contents resident [H, k]
    (distinct per row).

    A slot whose block is still selected keeps it; the selected blocks not
    resident fill the other slots, in order. Both counts are equal because
    both rows hold k distinct ids.
    """
    big = torch.iinfo(sel.dtype).max
    kept = _isin_rows(resident, sel)                                   # slot stays
    present = _isin_rows(sel, resident.sort(-1).values)                # already there
    missing = torch.where(present, big, sel).sort(-1).values          # new ids first
    free = ~kept
    rank = (free.cumsum(-1) - 1).clamp(min=0)
    new = torch.where(free, missing.gather(-1, rank), resident)
    return new, free


def slot_ranks(sel: Tensor, resident: Tensor) -> Tensor:
    """Rank in document order [H, k] of each slot's block (sel sorted)."""
    return torch.searchsorted(sel, resident)


REFILL_KERNEL_MAX_K = 128   # the kernel compares k x k in one program per head


def refill_into(sel: Tensor, resident: Tensor, cand: "CandidateTables", blocks: Tensor,
                fetch: Tensor, base: Tensor, valid: Tensor, tok: Tensor, count: Tensor) -> None:
    """`refill` in one kernel launch per layer (CUDA): for a selection sel [H, k]
    (any order, distinct per row) update `resident` in place and write per
    slot its block id (`blocks`), whether to fetch it (`fetch`, int8), the
    position of its first token (`base`: the candidate's own position, or
    slot rank r at sinks + r*B when positions are reassigned), its valid
    tokens and its first token in the document (`valid`, `tok`); add the
    number of fetched slots to `count`. The torch path (CPU, or a k too
    large for one program) computes the same."""
    H, k = sel.shape
    c = cand
    if sel.is_cuda and triton is not None and k <= REFILL_KERNEL_MAX_K:
        _refill_kernel[(H,)](sel, resident, c.block, c.valid, c.tok, c.pos, blocks, fetch, base,
                             valid, tok, count, c.sink_tokens, K=k, KP=triton.next_power_of_2(k),
                             B=c.block_size, ORIGINAL=c.original)
        return
    ordered = sel.sort(-1).values
    new, free = refill(resident, ordered)
    resident.copy_(new)
    blocks.copy_(c.block[new])
    fetch.copy_(free)
    base.copy_(c.pos[new] if c.original
               else c.sink_tokens + c.block_size * slot_ranks(ordered, new))
    valid.copy_(c.valid[new])
    tok.copy_(c.tok[new])
    count.add_(free.sum())


@dataclass(frozen=True)
class CandidateTables:
    """Per candidate id (device tensors [n_candidates]): its block in the
    cache, valid tokens, first token in the document and own position; and
    how slots are positioned."""

    block: Tensor
    valid: Tensor
    tok: Tensor
    pos: Tensor
    original: bool          # a block keeps its candidate position (else slot rank)
    sink_tokens: int
    block_size: int


def fetch_blocks(host_k: Tensor, host_v: Tensor, pool_k: Tensor, pool_v: Tensor,
                 blocks: Tensor, fetch: Tensor) -> None:
    """Copy block blocks[h, s] of KV head h from host_k/host_v [H, n_blocks, B, D]
    into slot s of pool_k/pool_v [H, k, B, D] wherever fetch[h, s] is set."""
    if pool_k.is_cuda:
        _fetch_cuda(host_k, host_v, pool_k, pool_v, blocks, fetch)
        return
    h, s = fetch.nonzero(as_tuple=True)                 # CPU: dynamic shapes are fine
    b = blocks[h, s].to(host_k.device)
    hh = h.to(host_k.device)
    pool_k[h, s] = host_k[hh, b].to(pool_k.device, pool_k.dtype)
    pool_v[h, s] = host_v[hh, b].to(pool_v.device, pool_v.dtype)


_CHUNK = 1024        # elements per program: a 64 x 128 block is 8 programs


def _fetch_cuda(host_k, host_v, pool_k, pool_v, blocks, fetch) -> None:
    if triton is None:
        raise RuntimeError("the CUDA block fetch needs Triton")
    H, n_blocks, B, D = host_k.shape
    k = pool_k.shape[1]
    if pool_k.dtype != host_k.dtype or not (host_k.is_contiguous() and pool_k.is_contiguous()):
        raise ValueError("pool and host K/V must be contiguous and of one dtype")
    if host_k.device.type == "cpu" and not host_k.is_pinned():
        raise ValueError("host K/V must be pinned to be read by the device")
    chunk = min(_CHUNK, B * D)
    if (B * D) % chunk:
        raise ValueError(f"block of {B}x{D} elements is not a multiple of {chunk}")
    grid = (H * k, B * D // chunk)
    _fetch_kernel[grid](host_k, host_v, pool_k, pool_v, blocks, fetch, n_blocks, k,
                        BD=B * D, CHUNK=chunk)


if triton is not None:
    @triton.jit
    def _refill_kernel(sel_ptr, res_ptr, cand_block_ptr, cand_valid_ptr, cand_tok_ptr,
                       cand_pos_ptr, blocks_ptr, fetch_ptr, base_ptr, valid_ptr, tok_ptr,
                       count_ptr, sink_tokens, K: tl.constexpr, KP: tl.constexpr,
                       B: tl.constexpr, ORIGINAL: tl.constexpr):
        h = tl.program_id(0)
        i = tl.arange(0, KP)
        m = i < K
        sel = tl.load(sel_ptr + h * K + i, mask=m, other=-2)
        res = tl.load(res_ptr + h * K + i, mask=m, other=-3)
        both = m[:, None] & m[None, :]
        eq = ((res[:, None] == sel[None, :]) & both).to(tl.int32)   # [slot, selected]
        free = m & (tl.max(eq, axis=1) == 0)                        # slot's block dropped
        missing = m & (tl.max(eq, axis=0) == 0)                     # selected, not resident
        free_rank = tl.cumsum(free.to(tl.int32), 0) - 1
        # missing blocks fill the free slots in document order, as `refill` does
        smaller = (sel[None, :] < sel[:, None]) & missing[None, :] & both
        miss_rank = tl.sum(smaller.to(tl.int32), axis=1)
        pick = (free_rank[:, None] == miss_rank[None, :]) & missing[None, :] & free[:, None]
        new = tl.where(free, tl.sum(tl.where(pick, sel[None, :], 0), axis=1), res)
        rank = tl.sum(((sel[None, :] < new[:, None]) & both).to(tl.int32), axis=1)
        ok = m & (new >= 0)
        block = tl.load(cand_block_ptr + new, mask=ok, other=0)
        tl.store(valid_ptr + h * K + i, tl.load(cand_valid_ptr + new, mask=ok, other=0), mask=m)
        tl.store(tok_ptr + h * K + i, tl.load(cand_tok_ptr + new, mask=ok, other=0), mask=m)
        tl.store(res_ptr + h * K + i, new, mask=m)
        tl.store(blocks_ptr + h * K + i, block, mask=m)
        tl.store(fetch_ptr + h * K + i, free.to(tl.int8), mask=m)
        if ORIGINAL:
            base = tl.load(cand_pos_ptr + new, mask=ok, other=0)
        else:
            base = sink_tokens + rank * B
        tl.store(base_ptr + h * K + i, base, mask=m)
        tl.atomic_add(count_ptr, tl.sum(free.to(tl.int64), 0))

    @triton.jit
    def _fetch_kernel(src_k, src_v, dst_k, dst_v, blocks, fetch, n_blocks, k_slots,
                      BD: tl.constexpr, CHUNK: tl.constexpr):
        slot = tl.program_id(0)                 # h * k_slots + s
        part = tl.program_id(1)
        if tl.load(fetch + slot) != 0:
            head = slot // k_slots
            block = tl.load(blocks + slot)
            offs = part * CHUNK + tl.arange(0, CHUNK)
            src = (head * n_blocks + block).to(tl.int64) * BD + offs
            dst = slot.to(tl.int64) * BD + offs
            tl.store(dst_k + dst, tl.load(src_k + src))
            tl.store(dst_v + dst, tl.load(src_v + src))
