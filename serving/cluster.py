"""Disaggregated and colocated serving clusters on one event loop.

Disaggregated: P prefill instances and D decode instances. A request is routed to a prefill
instance at arrival; when its KV is ready the router picks a decode instance with memory for
it (the request waits, holding its KV on the prefill side, until one has: Mooncake and vLLM's
PD connectors allocate decode blocks before the KV moves), and the :class:`TransferPort`
moves the blocks the decode instance lacks; decoding starts when the port says they arrived.

Colocated: P + D instances, each running both phases (same GPUs, same profile), so prefill
chunks and decode steps share iterations and interfere.

Both are driven by :func:`serve`, which schedules the arrivals and runs the loop; a live
driver can instead call :meth:`Cluster.arrive` from its own events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from traffic.kvcache import KvModel
from traffic.traces import Request

from .events import EventLoop
from .instance import Instance, Job
from .metrics import RequestRecord, Slo, summarise
from .profiles import InstanceProfile
from .routing import Router, transfer_tokens
from .transfer import KvTransfer, TransferPort

MODES = ("disaggregated", "colocated")
TRANSFER_MODES = ("whole", "layerwise")


@dataclass(frozen=True)
class ClusterConfig:
    """``cache_blocks``: prefix-cache blocks per instance (None: the instance's KV capacity
    in blocks); ``colocated_instances`` (None: prefill + decode, the same GPUs);
    ``transfer_mode``: ``whole`` (the KV moves when the prefill ends) or ``layerwise`` (it
    starts with the prefill, layer by layer, and the last layer leaves when it ends)."""

    profile: InstanceProfile
    kv_model: KvModel
    prefill_instances: int
    decode_instances: int
    policy: str = "kv_aware"
    block_tokens: int = 512
    cache_blocks: int | None = None
    load_weight: float = 1.0
    colocated_instances: int | None = None
    transfer_mode: str = "whole"

    def __post_init__(self) -> None:
        if self.prefill_instances <= 0 or self.decode_instances <= 0:
            raise ValueError("need at least one prefill and one decode instance")
        if self.transfer_mode not in TRANSFER_MODES:
            raise ValueError(f"transfer_mode must be one of {TRANSFER_MODES}")

    def gpus(self, mode: str) -> int:
        if mode == "colocated" and self.colocated_instances:
            return self.colocated_instances * self.profile.gpus
        return (self.prefill_instances + self.decode_instances) * self.profile.gpus

    def instance_cache_blocks(self) -> int:
        if self.cache_blocks is not None:
            return self.cache_blocks
        return self.profile.kv_capacity_tokens // self.block_tokens


@dataclass
class ServingRun:
    mode: str
    config: ClusterConfig
    records: list[RequestRecord]
    instances: dict[str, int] = field(default_factory=dict)  # iterations per instance

    def summary(self, slo: Slo | None = None) -> dict:
        return {"mode": self.mode, "policy": self.config.policy,
                "gpus": self.config.gpus(self.mode), **summarise(self.records, slo)}


class Cluster:
    """One cluster of ``mode`` on ``loop``; records accumulate in :attr:`records`."""

    def __init__(self, mode: str, config: ClusterConfig, loop: EventLoop,
                 transfer: TransferPort | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "disaggregated" and transfer is None:
            raise ValueError("disaggregated serving needs a TransferPort (the fabric's times)")
        self.mode, self.config, self.loop, self.transfer = mode, config, loop, transfer
        self.router = Router(config.policy, config.load_weight)
        self.records: list[RequestRecord] = []
        self._awaiting_decode: deque[Job] = deque()
        self._layerwise = config.transfer_mode == "layerwise"
        self._in_flight: dict[int, KvTransfer] = {}  # layerwise transfers started
        self._prefilled_ids: set[int] = set()
        self._arrived_early: dict[int, Instance] = {}
        # layerwise: chunks computed before their transfer started, and how many computed
        # tokens a started transfer still skips (the decode instance holds them already)
        self._early_chunks: dict[int, list[tuple[int, float, float]]] = {}
        self._skip_tokens: dict[int, int] = {}
        blocks, bt = config.instance_cache_blocks(), config.block_tokens
        if mode == "colocated":
            count = config.colocated_instances or (config.prefill_instances
                                                   + config.decode_instances)
            self.front = [Instance(f"colocated{i}", "colocated", config.profile, loop,
                                   cache_blocks=blocks, block_tokens=bt) for i in range(count)]
            self.decoders: list[Instance] = []
        else:
            self.front = [Instance(f"prefill{i}", "prefill", config.profile, loop,
                                   cache_blocks=blocks, block_tokens=bt,
                                   on_prefill_started=self._prefill_started,
                                   on_chunk=self._chunk, on_prefilled=self._prefilled)
                          for i in range(config.prefill_instances)]
            self.decoders = [Instance(f"decode{i}", "decode", config.profile, loop,
                                      cache_blocks=blocks, block_tokens=bt,
                                      on_finished=self._decode_finished)
                             for i in range(config.decode_instances)]

    def arrive(self, index: int, request: Request) -> RequestRecord:
        """Request ``index`` arrives now."""
        record = RequestRecord(index, self.loop.now_s, request.input_tokens,
                               request.output_tokens)
        self.records.append(record)
        instance = self.router.pick_prefill(request, self.front)
        record.prefill_instance = instance.name
        if self.mode == "colocated":
            record.decode_instance = instance.name
        instance.submit(Job(request, record))
        return record

    def _prefill_started(self, job: Job) -> None:
        if self._layerwise:
            self._awaiting_decode.append(job)
            self._dispatch()

    def _chunk(self, job: Job, tokens: int, start_s: float, duration_s: float) -> None:
        if not self._layerwise:
            return
        index = job.record.index
        if index in self._in_flight:
            self._send_layers(self._in_flight[index], tokens, start_s, duration_s)
        else:  # no decode instance yet: these layers leave when the transfer starts
            self._early_chunks.setdefault(index, []).append((tokens, start_s, duration_s))

    def _send_layers(self, transfer: KvTransfer, tokens: int, start_s: float,
                     duration_s: float) -> None:
        """Hand the port the part of a computed chunk that the decode instance lacks."""
        skipped = min(self._skip_tokens.get(transfer.request_index, 0), tokens)
        if skipped:
            self._skip_tokens[transfer.request_index] -= skipped
        if tokens - skipped:
            self.transfer.layers(self.loop, transfer, tokens - skipped, start_s, duration_s)

    def _start_layerwise(self, job: Job, transfer: KvTransfer) -> None:
        """A layerwise transfer has started: the transferred tokens that the prefill does
        not compute (held in its prefix cache) are ready now; the computed ones the decode
        instance holds are skipped (the prefill computes the prompt's last tokens); chunks
        computed while the request waited for a decode instance are handed over now."""
        computed = max(1, job.request.input_tokens - job.record.cached_tokens)
        self._skip_tokens[transfer.request_index] = max(0, computed - transfer.tokens)
        if transfer.tokens > computed:
            self.transfer.layers(self.loop, transfer, transfer.tokens - computed,
                                 self.loop.now_s, 0.0)
        for chunk in self._early_chunks.pop(transfer.request_index, []):
            self._send_layers(transfer, *chunk)

    def _prefilled(self, job: Job) -> None:
        if not self._layerwise:
            self._awaiting_decode.append(job)
            self._dispatch()
            return
        index = job.record.index
        self._prefilled_ids.add(index)
        if index in self._in_flight:
            self._skip_tokens.pop(index, None)
            self.transfer.source_ready(self.loop, self._in_flight.pop(index))
        if index in self._arrived_early:  # a port that reported before the last layer
            self._start_decode(job, self._arrived_early.pop(index))

    def _decode_finished(self, _job: Job) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand ready KV caches to decode instances, first come first served."""
        while self._awaiting_decode:
            job = self._awaiting_decode[0]
            decoder = self.router.pick_decode(job.request, self.decoders)
            if decoder is None:
                if job.kv_tokens > self.config.profile.kv_capacity_tokens:
                    raise ValueError(f"request {job.record.index} needs {job.kv_tokens} KV "
                                     "tokens, more than any decode instance holds")
                return  # backpressure: wait for a decode to finish
            self._awaiting_decode.popleft()
            decoder.reserve(job)
            tokens = transfer_tokens(job.request, decoder)
            record = job.record
            record.decode_instance = decoder.name
            record.transfer_tokens = tokens
            record.transfer_bytes = self.config.kv_model.bytes_for_tokens(tokens)
            record.transfer_start_s = self.loop.now_s
            transfer = KvTransfer(record.index, record.prefill_instance, decoder.name, tokens,
                                  record.transfer_bytes, self._layerwise,
                                  self.config.kv_model.num_layers)
            self.transfer.start(self.loop, transfer,
                                lambda job=job, decoder=decoder: self._arrived(job, decoder))
            if self._layerwise:
                self._start_layerwise(job, transfer)
                if record.index in self._prefilled_ids:  # memory came after the prefill
                    self._skip_tokens.pop(record.index, None)
                    self.transfer.source_ready(self.loop, transfer)
                else:
                    self._in_flight[record.index] = transfer

    def _arrived(self, job: Job, decoder: Instance) -> None:
        job.record.transfer_end_s = self.loop.now_s
        if self._layerwise and job.record.index not in self._prefilled_ids:
            self._arrived_early[job.record.index] = decoder
            return
        self._start_decode(job, decoder)

    def _start_decode(self, job: Job, decoder: Instance) -> None:
        self._prefilled_ids.discard(job.record.index)
        decoder.cache.insert(job.request.block_ids)
        decoder.start_decode(job)

    def iterations(self) -> dict[str, int]:
        return {i.name: i.iterations for i in (*self.front, *self.decoders)}


def serve(requests: Sequence[Request], mode: str, config: ClusterConfig,
          transfer: TransferPort | None = None, *, until_s: float = float("inf")) -> ServingRun:
    """Replay ``requests`` (at their ``arrival_s``) through a new cluster of ``mode``."""
    loop = EventLoop()
    cluster = Cluster(mode, config, loop, transfer)
    for index, request in enumerate(requests):
        loop.schedule(request.arrival_s,
                      lambda index=index, request=request: cluster.arrive(index, request))
    loop.run(until_s)
    return ServingRun(mode, config, cluster.records, cluster.iterations())
