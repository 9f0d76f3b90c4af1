"""A per-instance prefix cache of KV blocks, least recently used out first.

Blocks are named by ids (Mooncake's ``hash_ids``: one per 512-token block, chained so that a
block id implies its whole prefix). A request reuses only the leading run of its blocks the
instance holds, as vLLM's automatic prefix caching and SGLang's radix cache do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """``capacity_blocks`` block ids (0: caches nothing)."""

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 0:
            raise ValueError(f"capacity_blocks cannot be negative, got {capacity_blocks}")
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def match(self, block_ids: Sequence[int]) -> int:
        """How many leading blocks of ``block_ids`` are held (no side effect)."""
        hits = 0
        while hits < len(block_ids) and block_ids[hits] in self._blocks:
            hits += 1
        return hits

    def insert(self, block_ids: Sequence[int]) -> None:
        """Hold ``block_ids`` (touching the ones already held), evicting the least recently
        used beyond the capacity."""
        if not self.capacity_blocks:
            return
        for block in block_ids:
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
