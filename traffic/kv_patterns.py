"""Transfer plans for a disaggregated (xPyD) inference fabric: who sends how many bytes when.

In prefill/decode disaggregation (Mooncake, FAST'25; vLLM and SGLang PD), a prefill node
computes a request's KV cache and pushes it to the decode node that generates the output.
This module turns requests (see :mod:`traffic.traces`) and a KV model (see
:mod:`traffic.kvcache`) into :class:`Transfer` lists the emulator replays, plus the synthetic
patterns that stress a RoCE fabric: synchronized incast, elephants, and small latency-sensitive
flows mixed in.

Modelling choices
-----------------
- Each prefill node is a FIFO server computing ``prefill_tokens_per_s`` uncached tokens per
  second; cached prefix tokens cost neither compute nor (by default) transfer, as when the decode
  side already holds the shared prefix. ``cache_hit_saves_transfer=False`` ships the whole
  context instead.
- ``mode="whole"``: one transfer per NIC when prefill ends. ``mode="layerwise"``: layer i's KV
  leaves when layer i is computed, at start + (i + 1)/L of the prefill time.
- A request whose KV is fully cached produces no transfer.
- Everything random draws from ``numpy.random.default_rng(seed)``: same inputs, same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from traffic.kvcache import KvModel
from traffic.traces import Request

KIND_KV = "kv"
KIND_KV_LAYER = "kv_layer"
KIND_INCAST = "incast"
KIND_ELEPHANT = "elephant"
KIND_SMALL = "small"

MODES = ("whole", "layerwise")
PREFILL_POLICIES = ("least_loaded", "round_robin", "random")
DECODE_POLICIES = ("round_robin", "random")
OVER_CONTEXT = ("keep", "drop", "error")


@dataclass(frozen=True)
class Transfer:
    """``size_bytes`` from ``src`` to ``dst`` starting at ``start_s``.

    ``request_index`` is the request served (-1 for background traffic) and ``layer`` the
    model layer of a layer-by-layer transfer (-1 otherwise).
    """

    start_s: float
    src: str
    dst: str
    size_bytes: int
    kind: str
    request_index: int = -1
    layer: int = -1


@dataclass(frozen=True)
class Pool:
    """Node names of the prefill and decode pools."""

    prefill: tuple[str, ...]
    decode: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.prefill or not self.decode:
            raise ValueError("a pool needs at least one prefill and one decode node")
        if len(set(self.prefill + self.decode)) != len(self.prefill) + len(self.decode):
            raise ValueError("node names must be unique")

    @classmethod
    def xpyd(cls, x: int, y: int, *, prefill_prefix: str = "prefill",
             decode_prefix: str = "decode") -> Pool:
        """``x`` prefill and ``y`` decode nodes named prefill0.., decode0.."""
        return cls(tuple(f"{prefill_prefix}{i}" for i in range(x)),
                   tuple(f"{decode_prefix}{i}" for i in range(y)))

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.prefill + self.decode


def _nic_name(node: str, nic: int, nics_per_node: int) -> str:
    return node if nics_per_node == 1 else f"{node}/nic{nic}"


def _sorted(transfers: list[Transfer]) -> list[Transfer]:
    return sorted(transfers, key=lambda t: (t.start_s, t.src, t.dst, t.kind,
                                            t.request_index, t.layer))


def plan_kv_transfers(
    requests: Sequence[Request],
    pool: Pool,
    model: KvModel,
    *,
    prefill_tokens_per_s: float,
    mode: str = "whole",
    tp_size: int = 1,
    nics_per_node: int = 1,
    prefill_policy: str = "least_loaded",
    decode_policy: str = "round_robin",
    cache_hit_saves_transfer: bool = True,
    emulated_nics: Sequence[int] | None = None,
    over_context: str = "keep",
    seed: int = 0,
) -> list[Transfer]:
    """KV transfers, prefill node to decode node, for ``requests`` in arrival order.

    With ``nics_per_node > 1`` the ``tp_size`` ranks spread over NICs named ``node/nicK`` and
    NIC K of the prefill node sends to NIC K of the decode node; only the NICs in
    ``emulated_nics`` (all when None) are planned, so an emulation of NIC 0 does not build
    and drop the other shards. A replicated shard (MLA latent, KV heads fewer than ranks) is
    sent once (:meth:`KvModel.bytes_per_nic`). A request longer than the model's maximum
    context (prompt plus output) is kept (``"keep"``), dropped (``"drop"``) or an error
    (``"error"``).
    """
    if over_context not in OVER_CONTEXT:
        raise ValueError(f"over_context must be one of {OVER_CONTEXT}, got {over_context!r}")
    wanted_nics = set(range(nics_per_node) if emulated_nics is None else emulated_nics)
    if not wanted_nics <= set(range(nics_per_node)):
        raise ValueError(f"emulated_nics {sorted(wanted_nics)} outside 0..{nics_per_node - 1}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if prefill_policy not in PREFILL_POLICIES:
        raise ValueError(f"prefill_policy must be one of {PREFILL_POLICIES}")
    if decode_policy not in DECODE_POLICIES:
        raise ValueError(f"decode_policy must be one of {DECODE_POLICIES}")
    if prefill_tokens_per_s <= 0:
        raise ValueError("prefill_tokens_per_s must be positive")
    rng = np.random.default_rng(seed)
    free_at_s = [0.0] * len(pool.prefill)
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    transfers: list[Transfer] = []
    for n, index in enumerate(order):
        request = requests[index]
        if not model.fits_context(request.input_tokens + request.output_tokens):
            if over_context == "error":
                raise ValueError(f"request {index}: {request.input_tokens} + "
                                 f"{request.output_tokens} tokens exceed {model.name}'s "
                                 f"maximum context of {model.max_context_tokens}")
            if over_context == "drop":
                continue
        if prefill_policy == "least_loaded":
            # earliest start; among idle nodes the one idle longest, then the lowest index
            p = min(range(len(free_at_s)),
                    key=lambda k: (max(free_at_s[k], request.arrival_s), free_at_s[k], k))
        elif prefill_policy == "round_robin":
            p = n % len(pool.prefill)
        else:
            p = int(rng.integers(len(pool.prefill)))
        d = n % len(pool.decode) if decode_policy == "round_robin" else int(
            rng.integers(len(pool.decode)))
        uncached = max(0, request.input_tokens - request.cached_tokens)
        start_s = max(free_at_s[p], request.arrival_s)
        compute_s = uncached / prefill_tokens_per_s
        free_at_s[p] = start_s + compute_s
        tokens = uncached if cache_hit_saves_transfer else request.input_tokens
        per_nic = model.bytes_per_nic(tokens, tp_size, nics_per_node)
        for nic, size_bytes in enumerate(per_nic):
            if size_bytes == 0 or nic not in wanted_nics:
                continue
            src = _nic_name(pool.prefill[p], nic, nics_per_node)
            dst = _nic_name(pool.decode[d], nic, nics_per_node)
            if mode == "whole":
                transfers.append(Transfer(start_s + compute_s, src, dst, size_bytes, KIND_KV,
                                          index))
                continue
            layers = model.num_layers
            share, extra = divmod(size_bytes, layers)  # uneven only with sliding windows
            for layer in range(layers):
                transfers.append(Transfer(start_s + compute_s * (layer + 1) / layers, src, dst,
                                          share + (layer < extra), KIND_KV_LAYER, index, layer))
    return _sorted(transfers)


def incast(
    senders: Sequence[str],
    receiver: str,
    size_bytes: int,
    *,
    start_s: float = 0.0,
    rounds: int = 1,
    round_interval_s: float = 0.0,
    jitter_s: float = 0.0,
    seed: int = 0,
    kind: str = KIND_INCAST,
) -> list[Transfer]:
    """Synchronized incast: every sender starts ``size_bytes`` to ``receiver`` at once, in
    ``rounds`` rounds ``round_interval_s`` apart, each start delayed by U[0, ``jitter_s``).

    Chen et al. (WREN 2009) use a fixed 256 KB fragment per sender and start a round when the
    previous one finished; that barrier needs completions, so here rounds are open-loop.
    """
    if receiver in senders:
        raise ValueError("the receiver cannot also be a sender")
    if rounds <= 0 or size_bytes < 0 or jitter_s < 0 or round_interval_s < 0:
        raise ValueError("rounds must be positive; size, jitter and interval non-negative")
    rng = np.random.default_rng(seed)
    transfers = []
    for r in range(rounds):
        for sender in senders:
            jitter = rng.uniform(0.0, jitter_s) if jitter_s else 0.0
            transfers.append(Transfer(start_s + r * round_interval_s + jitter, sender, receiver,
                                      size_bytes, kind))
    return _sorted(transfers)


def kv_incast(
    pool: Pool, model: KvModel, tokens_per_sender: int, *, decode_index: int = 0, **kwargs
) -> list[Transfer]:
    """Every prefill node pushes the KV of ``tokens_per_sender`` tokens to one decode node at
    once, the pattern of a decode node collecting a synchronized batch."""
    return incast(pool.prefill, pool.decode[decode_index],
                  model.bytes_for_tokens(tokens_per_sender), **kwargs)


def elephants(
    pool: Pool,
    size_bytes: int,
    *,
    count: int,
    start_s: float = 0.0,
    spread_s: float = 0.0,
    seed: int = 0,
) -> list[Transfer]:
    """``count`` large prefill-to-decode transfers between random pairs, starting uniformly
    in [start_s, start_s + spread_s)."""
    if count < 0 or size_bytes < 0 or spread_s < 0:
        raise ValueError("count, size_bytes and spread_s must be non-negative")
    rng = np.random.default_rng(seed)
    transfers = []
    for _ in range(count):
        src = pool.prefill[int(rng.integers(len(pool.prefill)))]
        dst = pool.decode[int(rng.integers(len(pool.decode)))]
        offset = rng.uniform(0.0, spread_s) if spread_s else 0.0
        transfers.append(Transfer(start_s + offset, src, dst, size_bytes, KIND_ELEPHANT))
    return _sorted(transfers)


def small_flows(
    nodes: Sequence[str],
    *,
    rate_rps: float,
    size_bytes: int,
    duration_s: float,
    start_s: float = 0.0,
    seed: int = 0,
    kind: str = KIND_SMALL,
) -> list[Transfer]:
    """Latency-sensitive small flows (control messages, token streams): Poisson arrivals at
    ``rate_rps`` between random distinct pairs of ``nodes``."""
    if len(nodes) < 2:
        raise ValueError("small flows need at least two nodes")
    if rate_rps <= 0 or size_bytes < 0 or duration_s < 0:
        raise ValueError("rate_rps must be positive; size_bytes and duration_s non-negative")
    rng = np.random.default_rng(seed)
    transfers = []
    t = start_s
    while True:
        t += rng.exponential(1.0 / rate_rps)
        if t >= start_s + duration_s:
            break
        a, b = rng.choice(len(nodes), size=2, replace=False)
        transfers.append(Transfer(float(t), nodes[int(a)], nodes[int(b)], size_bytes, kind))
    return transfers


def mix(*plans: Sequence[Transfer]) -> list[Transfer]:
    """Merge transfer lists into one, in start order (e.g. KV elephants plus small flows)."""
    return _sorted([t for plan in plans for t in plan])
