"""One serving instance: an iteration-level scheduler over its prefill queue and decode batch.

Roles: ``prefill`` (disaggregated prefill pool: prefill iterations only), ``decode``
(disaggregated decode pool: decode steps only) and ``colocated`` (both phases share the
instance: each iteration runs the decode batch plus up to ``colocated_chunk_tokens`` of
prefill, Sarathi-style chunked prefill, so a long prompt slows every decode step it shares).

Each iteration is built when the previous one ends (continuous batching, as vLLM and SGLang
schedule): decode sequences take one step, queued prompts take their next chunk in arrival
order. A colocated or decode instance reserves each request's full KV (prompt + output tokens)
when admitting it; a request that does not fit waits (memory backpressure), first come first
served. A prompt's prefix-cache hit is looked up when its first chunk is scheduled; at least
one token is always computed (the one whose logits give the first output token).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from traffic.traces import Request

from .events import EventLoop
from .metrics import RequestRecord
from .prefix_cache import PrefixCache
from .profiles import InstanceProfile

ROLES = ("prefill", "decode", "colocated")


@dataclass
class Job:
    """A request in flight: what is left to compute and what it holds."""

    request: Request
    record: RequestRecord
    prefill_left: int = -1  # -1: prefix cache not looked up yet
    decode_left: int = 0
    context_tokens: int = 0
    first_token_pending: bool = True

    @property
    def kv_tokens(self) -> int:
        return self.request.input_tokens + self.request.output_tokens


class Instance:
    """An instance named ``name`` driven by ``loop``; ``on_prefill_started(job)`` is called
    when a job's first prefill chunk is scheduled, ``on_chunk(job, tokens, start_s,
    duration_s)`` for every chunk as its iteration is scheduled (its layers are computed one
    after the other over that iteration), ``on_prefilled(job)`` when a prefill-role job's KV
    is complete and ``on_finished(job)`` when a job's last token is out."""

    def __init__(self, name: str, role: str, profile: InstanceProfile, loop: EventLoop, *,
                 cache_blocks: int = 0, block_tokens: int = 512,
                 on_prefill_started: Callable[[Job], None] | None = None,
                 on_chunk: Callable[[Job, int, float, float], None] | None = None,
                 on_prefilled: Callable[[Job], None] | None = None,
                 on_finished: Callable[[Job], None] | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.name, self.role, self.profile, self.loop = name, role, profile, loop
        self.cache = PrefixCache(cache_blocks)
        self.block_tokens = block_tokens
        self.on_prefill_started = on_prefill_started or (lambda job: None)
        self.on_chunk = on_chunk or (lambda job, tokens, start_s, duration_s: None)
        self.on_prefilled = on_prefilled or (lambda job: None)
        self.on_finished = on_finished or (lambda job: None)
        self.waiting: deque[Job] = deque()  # colocated: not admitted for lack of memory
        self.prefill_queue: deque[Job] = deque()
        self.running: list[Job] = []
        self.reserved_tokens = 0
        self.busy = False
        self.iterations = 0

    # --- load, as routers see it -------------------------------------------------------
    @property
    def queued_prefill_tokens(self) -> int:
        return sum(j.prefill_left if j.prefill_left >= 0 else j.request.input_tokens
                   for j in (*self.waiting, *self.prefill_queue))

    def uncached_tokens(self, request: Request) -> int:
        hit = self.cache.match(request.block_ids) * self.block_tokens
        return max(1, request.input_tokens - hit)

    def can_reserve(self, tokens: int) -> bool:
        return self.reserved_tokens + tokens <= self.profile.kv_capacity_tokens

    # --- work arriving -------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """A new request to prefill (prefill and colocated roles)."""
        if self.role == "decode":
            raise ValueError(f"{self.name} is a decode instance: use start_decode")
        if job.kv_tokens > self.profile.kv_capacity_tokens:
            raise ValueError(f"request {job.record.index} needs {job.kv_tokens} KV tokens, "
                             f"more than {self.name} holds ({self.profile.kv_capacity_tokens})")
        (self.waiting if self.role == "colocated" else self.prefill_queue).append(job)
        self._kick()

    def reserve(self, job: Job) -> None:
        """Hold ``job``'s KV here until it finishes (decode role, before its transfer)."""
        self.reserved_tokens += job.kv_tokens

    def start_decode(self, job: Job) -> None:
        """``job``'s KV has arrived (decode role): it joins the next decode step."""
        job.decode_left = job.request.output_tokens
        job.context_tokens = job.request.input_tokens
        self.running.append(job)
        self._kick()

    # --- iterations ----------------------------------------------------------------------
    def _admit(self) -> None:
        while self.waiting and self.can_reserve(self.waiting[0].kv_tokens):
            job = self.waiting.popleft()
            self.reserved_tokens += job.kv_tokens
            self.prefill_queue.append(job)

    def _kick(self) -> None:
        if self.busy:
            return
        self._admit()
        batch = self.running[:self.profile.max_batch]
        budget = self.profile.prefill_batch_tokens
        if self.role == "colocated" and self.profile.colocated_chunk_tokens is not None:
            budget = self.profile.colocated_chunk_tokens
        chunks: list[tuple[Job, int]] = []
        started: list[Job] = []
        for job in self.prefill_queue:
            if budget <= 0:
                break
            if job.prefill_left < 0:
                hit_tokens = self.cache.match(job.request.block_ids) * self.block_tokens
                job.record.cached_tokens = max(0, min(hit_tokens, job.request.input_tokens - 1))
                job.prefill_left = max(1, job.request.input_tokens - job.record.cached_tokens)
                job.record.prefill_start_s = self.loop.now_s
                started.append(job)
            take = min(job.prefill_left, budget)
            chunks.append((job, take))
            budget -= take
        if not batch and not chunks:
            return
        duration = self.profile.decode_step_s(len(batch), sum(j.context_tokens for j in batch))
        duration += self.profile.prefill_s(sum(take for _, take in chunks))
        self.busy = True
        self.iterations += 1
        self.loop.after(duration, lambda: self._end_iteration(batch, chunks))
        for job in started:
            self.on_prefill_started(job)
        for job, take in chunks:
            self.on_chunk(job, take, self.loop.now_s, duration)

    def _end_iteration(self, batch: list[Job], chunks: list[tuple[Job, int]]) -> None:
        now = self.loop.now_s
        for job in batch:
            job.context_tokens += 1
            job.decode_left -= 1
            if job.first_token_pending:
                job.first_token_pending = False
                job.record.first_token_s = now
            if job.decode_left <= 0:
                self._finish(job)
        for job, take in chunks:
            job.prefill_left -= take
            if job.prefill_left > 0:
                continue
            self.prefill_queue.remove(job)
            job.record.prefill_end_s = now
            self.cache.insert(job.request.block_ids)
            if self.role == "prefill":
                self.on_prefilled(job)
                continue
            # colocated: the prefill pass gives the first output token
            job.first_token_pending = False
            job.record.first_token_s = now
            job.decode_left = job.request.output_tokens - 1
            job.context_tokens = job.request.input_tokens + 1
            if job.decode_left > 0:
                self.running.append(job)
            else:
                self._finish(job)
        self.busy = False
        self._kick()

    def _finish(self, job: Job) -> None:
        job.record.finish_s = self.loop.now_s
        if job in self.running:
            self.running.remove(job)
        self.reserved_tokens -= job.kv_tokens
        self.on_finished(job)
