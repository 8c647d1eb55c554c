"""The work plan of the scoring engine: rows (prefix trees, plain rows), packing, batching, sharding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

import numpy as np

# A context with many continuations is split into tree rows with at most about this many continuation
# tokens each: masked attention costs O(row length^2), so very long rows waste more than sharing saves.
TREE_ROW_TOKENS = 512

# Tree rows shorter than this are packed side by side into lines of this many tokens (block-diagonal
# mask): no padding waste, for a little more masked attention per line.
PACK_WIDTH = 256

OnOverlong = Literal["error", "truncate"]


# --------------------------------------------------------------------------------------- work plan


@dataclass
class Row:
    """One sequence of the forward pass: a context and (tree rows) its continuation prefix tree.

    ``parents[i]`` is the token that token ``i`` follows (-1 for the first); ``positions`` are the
    position ids (depth in the tree); ``targets`` are ``(index, token, job)``: the logits at ``index``
    must predict ``token`` for job ``job``.
    """

    tokens: list[int]
    parents: list[int]
    positions: list[int]
    targets: list[tuple[int, int, int]] = field(default_factory=list)
    tree: bool = True

    def ancestors(self) -> np.ndarray:
        """``[n, n]`` bool: token i may attend to token j (j is i or one of its ancestors)."""
        n = len(self.tokens)
        allowed = np.zeros((n, n), dtype=bool)
        for i, parent in enumerate(self.parents):
            if parent >= 0:
                allowed[i] = allowed[parent]
            allowed[i, i] = True
        return allowed


def tree_row(ctx: Sequence[int], conts: Sequence[tuple[tuple[int, ...], int]]) -> Row:
    """A context followed by the prefix tree of its continuations (all but each one's last token)."""
    n_ctx = len(ctx)
    row = Row(list(ctx), list(range(-1, n_ctx - 1)), list(range(n_ctx)))
    children: dict[tuple[int, int], int] = {}  # (parent index, token) -> index
    for cont, job in conts:
        node = n_ctx - 1
        row.targets.append((node, cont[0], job))
        for j, token in enumerate(cont[:-1]):
            key = (node, token)
            if key not in children:
                children[key] = len(row.tokens)
                row.tokens.append(token)
                row.parents.append(node)
                row.positions.append(n_ctx + j)
            node = children[key]
            row.targets.append((node, cont[j + 1], job))
    return row


def plain_rows(ctx: Sequence[int], conts: Sequence[tuple[tuple[int, ...], int]]) -> list[Row]:
    """One linear sequence per distinct ``ctx + cont[:-1]``, as lm-eval runs them (no custom mask)."""
    rows: dict[tuple[int, ...], Row] = {}
    for cont, job in sorted(conts, key=lambda c: -len(c[0])):
        seq = tuple(ctx) + cont[:-1]
        # a one-token continuation is read off any row of its context (lm-eval's logits cache)
        row = rows.get(seq) or (next(iter(rows.values())) if len(cont) == 1 and rows else None)
        if row is None:
            row = rows[seq] = Row(list(seq), list(range(-1, len(seq) - 1)), list(range(len(seq))), tree=False)
        start = len(ctx) - 1
        row.targets.extend((start + j, token, job) for j, token in enumerate(cont))
    return list(rows.values())


def chunks(
    conts: list[tuple[tuple[int, ...], int]], n_ctx: int, cap: int
) -> Iterator[list[tuple[tuple[int, ...], int]]]:
    """Split a context's continuations so that each tree row stays within ``cap`` tokens."""
    chunk: list[tuple[tuple[int, ...], int]] = []
    size = n_ctx
    for cont in sorted(conts):
        extra = len(cont[0]) - 1
        if chunk and size + extra > cap:
            yield chunk
            chunk, size = [], n_ctx
        chunk.append(cont)
        size += extra
    if chunk:
        yield chunk


def batches(
    rows: list[Row], batch_size: int, max_tokens: int, pack_width: int = 0
) -> Iterator[list[list[Row]]]:
    """Group rows into forward passes of ``lines`` (sequences), longest rows first.

    A pass has ``min(batch_size, max_tokens // width)`` lines of ``width = max(longest row left,
    pack_width)`` tokens. With ``pack_width`` > 0 (tree rows, which carry their own mask) several
    rows share a line, first-fit decreasing, so padding all but disappears; otherwise one row a line.
    """
    remaining = sorted(rows, key=lambda r: -len(r.tokens))
    while remaining:
        width = max(len(remaining[0].tokens), pack_width)
        n_lines = max(1, min(batch_size, max_tokens // width))
        lines: list[list[Row]] = [[] for _ in range(n_lines)]
        free = [width] * n_lines
        smallest = len(remaining[-1].tokens)

        def fits(i: int, n: int) -> bool:
            return free[i] >= n and (pack_width > 0 or not lines[i])

        rest: list[Row] = []
        for k, row in enumerate(remaining):
            slot = next((i for i in range(n_lines) if fits(i, len(row.tokens))), None)
            if slot is None:
                rest.append(row)
                continue
            lines[slot].append(row)
            free[slot] -= len(row.tokens)
            if not any(fits(i, smallest) for i in range(n_lines)):
                rest.extend(remaining[k + 1 :])
                break
        yield [line for line in lines if line]
        remaining = rest


def assign_ranks(costs: Sequence[int], world: int) -> list[int]:
    """Balance work across processes: largest first, each to the least loaded process."""
    loads = [0] * world
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        rank = min(range(world), key=lambda r: loads[r])
        owner[i] = rank
        loads[rank] += costs[i]
    return owner


