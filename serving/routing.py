"""Placing requests on instances: round-robin, least-loaded, and KV-aware.

KV-aware routing follows NVIDIA Dynamo's KV router and Mooncake's Conductor (FAST'25,
sec. 5): each candidate is scored by the work the request would cost there, the tokens its
prefix cache does not already hold, plus the work already queued; the lowest score wins, so a
long cached prefix attracts a request until the instance's queue outweighs it. On the decode
side the score is the tokens that would cross the fabric (those the decode instance's cache
lacks) plus the KV tokens it already holds. ``load_weight`` scales the load term (Dynamo's
``kv_overlap_score_weight`` plays the inverse role).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from traffic.traces import Request

from .instance import Instance

POLICIES = ("round_robin", "least_loaded", "kv_aware")


class Router:
    """Picks prefill (or colocated) instances at arrival and decode instances when a KV is
    ready; ``None`` from :meth:`pick_decode` means no decode instance has memory for it."""

    def __init__(self, policy: str, load_weight: float = 1.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.policy, self.load_weight = policy, load_weight
        self._next_prefill = itertools.count()
        self._next_decode = itertools.count()

    def pick_prefill(self, request: Request, instances: Sequence[Instance]) -> Instance:
        if self.policy == "round_robin":
            return instances[next(self._next_prefill) % len(instances)]
        if self.policy == "least_loaded":
            return min(instances, key=lambda i: (i.queued_prefill_tokens, i.reserved_tokens))
        return min(instances, key=lambda i: (
            i.uncached_tokens(request) + self.load_weight * i.queued_prefill_tokens,
            i.reserved_tokens))

    def pick_decode(self, request: Request, instances: Sequence[Instance]) -> Instance | None:
        need = request.input_tokens + request.output_tokens
        fits = [i for i in instances if i.can_reserve(need)]
        if not fits:
            return None
        if self.policy == "round_robin":
            for _ in range(len(instances)):
                candidate = instances[next(self._next_decode) % len(instances)]
                if candidate in fits:
                    return candidate
        if self.policy == "least_loaded":
            return min(fits, key=lambda i: i.reserved_tokens)
        return min(fits, key=lambda i: (
            transfer_tokens(request, i) + self.load_weight * i.reserved_tokens))


def transfer_tokens(request: Request, decode: Instance) -> int:
    """Tokens of ``request``'s KV that ``decode`` does not hold yet."""
    held = decode.cache.match(request.block_ids) * decode.block_tokens
    return max(0, request.input_tokens - held)
