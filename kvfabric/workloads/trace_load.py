"""The requests a trace-driven workload replays, in target time, and the mapping it records.

A trace (Mooncake JSONL or Azure CSV) is cut to a window (``trace_start_s`` +
``trace_duration_s``, or the busiest ``busiest_s``), thinned or superposed to
``trace_rate_rps``, stretched by ``time_scale`` (``traffic.trace_window.Selection``), and its
prefix-cache hits recomputed on the requests kept. Without a trace, Poisson arrivals at
``rate`` for ``duration``. Arrival times are the target fabric's: a workload multiplies them
by the dilation D before posting, like every other duration.

The window fields are trace seconds (kind ``float``), not fabric durations, so the spec's
scale rule leaves them alone.
"""

from __future__ import annotations

from typing import Any

from traffic import traces
from traffic.trace_window import Selection

from ..schema import Field, SpecIssue

FIELDS = [
    Field("trace_start_s", "float", 0.0, "window start, trace seconds after its first "
          "request", minimum=0, maximum=1e7),
    Field("trace_duration_s", "float", 0.0, "window length in trace seconds (0: to the end)",
          minimum=0, maximum=1e7),
    Field("busiest_s", "float", 0.0, "replay the busiest window of this many trace seconds "
          "instead (0: off)", minimum=0, maximum=1e7),
    Field("trace_rate_rps", "float", 0.0, "thin (or superpose) the window to this mean rate, "
          "requests per target second (0: as recorded)", minimum=0, maximum=1e7),
    Field("time_scale", "float", 1.0, "stretch the kept window's time axis (0.5: twice as "
          "fast)", minimum=1e-6, maximum=1e6),
]


def request_fields(*, max_requests: int, max_requests_limit: int, rate: float,
                   duration: str, input_tokens: int, output_tokens: int,
                   min_output_tokens: int = 1) -> list[Field]:
    """Where a workload's requests come from: a trace (with the window fields above) or
    Poisson arrivals of fixed-size requests. The defaults are the workload's own."""
    return [
        Field("trace", "str", "", "Mooncake JSONL or Azure CSV trace; empty: Poisson arrivals"),
        Field("trace_format", "choice", "mooncake", "format of workload.trace",
              choices=("mooncake", "azure")),
        *FIELDS,
        Field("max_requests", "int", max_requests, "use the first N requests (after the "
              "window and thinning)", minimum=1, maximum=max_requests_limit),
        Field("rate", "float", rate, "Poisson arrivals per second (no trace)", minimum=0.001,
              maximum=1e6),
        Field("duration", "duration", duration, "Poisson arrivals for this long (no trace)",
              minimum=1e-5, maximum=3600),
        Field("input_tokens", "int", input_tokens, "prompt tokens per request (no trace)",
              minimum=1, maximum=1 << 20),
        Field("output_tokens", "int", output_tokens, "output tokens per request (no trace)",
              minimum=min_output_tokens, maximum=1 << 20),
    ]


def selection(workload: dict[str, Any], seed: int) -> Selection:
    """The :class:`Selection` the workload's fields ask for."""
    busiest = workload["busiest_s"] or None
    start = workload["trace_start_s"] if not busiest and workload["trace_start_s"] else None
    duration = workload["trace_duration_s"] if not busiest and workload["trace_duration_s"] \
        else None
    return Selection(start_s=start, duration_s=duration, busiest_s=busiest,
                     rate_rps=workload["trace_rate_rps"] or None,
                     time_scale=workload["time_scale"], seed=seed)


def window_issue(exc: ValueError) -> SpecIssue:
    """The spec error of a trace window that yields no usable requests."""
    return SpecIssue("workload.trace", str(exc), "widen the window or check "
                     "workload.trace_start_s / trace_duration_s / busiest_s")


def load_requests(workload: dict[str, Any], seed: int, dilation: float
                  ) -> tuple[list[traces.Request], dict]:
    """(requests sorted by arrival in target seconds, the mapping to record). ``workload``
    is emulated: Poisson ``rate``/``duration`` are converted back to target units with
    ``dilation``; the trace fields are target units already."""
    if workload["trace"]:
        trace = traces.read_trace(workload["trace"], workload["trace_format"],
                                  selection=selection(workload, seed))
        requests, mapping = trace.requests, dict(trace.mapping)
    else:
        rate_rps, duration_s = workload["rate"] * dilation, workload["duration"] / dilation
        arrivals = traces.poisson_arrivals(rate_rps, duration_s=duration_s, seed=seed)
        requests = traces.requests_from_arrivals(arrivals, workload["input_tokens"],
                                                 workload["output_tokens"])
        mapping = {"source": "poisson", "rate_rps": rate_rps, "duration_s": duration_s,
                   "input_tokens": workload["input_tokens"],
                   "output_tokens": workload["output_tokens"]}
    requests = sorted(requests, key=lambda r: r.arrival_s)
    kept = requests[:workload["max_requests"]]
    mapping.update({"max_requests": workload["max_requests"], "requests_replayed": len(kept),
                    "arrivals": "target seconds; emulated = target x dilation",
                    "dilation": dilation})
    if len(kept) < len(requests):
        mapping["cut_by_max_requests"] = len(requests) - len(kept)
    return kept, mapping
