"""The live serving driver (``serving_fabric.drive``) against a stand-in RoCE sender: a
process that speaks the sender's ``--posts stdin`` protocol and completes each message as a
FIFO link of a given rate would. No fabric: these check what the driver posts, when, and how
it turns the completions into the model's arrival times (target s = emulated s / D)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from kvfabric.workloads.serving_fabric import drive
from serving.cluster import ClusterConfig
from serving.profiles import InstanceProfile
from traffic.kvcache import preset
from traffic.traces import Request

SIMPLE = InstanceProfile("simple", prefill_tokens_per_s=1000.0, decode_base_s=0.01,
                         decode_per_seq_s=0.0, decode_per_ctx_token_s=0.0,
                         kv_capacity_tokens=100_000, prefill_batch_tokens=1000)
LLAMA8B = preset("llama-3-8b")  # 32 layers
DILATION = 0.1  # faster than real time: 2.5 target s of prefill take 0.25 s
BYTES_PER_TOKEN = 1000
RATE = 2.5e6 / 0.1  # emulated B/s: 2500 tokens' 2.5 MB in 0.1 s emulated, 1 target s

FAKE_SENDER = textwrap.dedent("""
    import json, sys, time
    rate, log = float(sys.argv[1]), open(sys.argv[2], "w")
    busy = 0.0
    print("ready", flush=True)
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "end":
            break
        qpn, size, tag = line.split()
        now = time.monotonic()
        start = max(now, busy)
        busy = start + int(size) / rate
        log.write(size + "\\n")
        log.flush()
        print(json.dumps({"tag": tag, "posted_s": now, "completed_s": busy}), flush=True)
""")


def _serve(tmp_path, mode: str, requests: list[Request]):
    log = tmp_path / f"posts-{mode}.txt"
    sender = subprocess.Popen([sys.executable, "-c", FAKE_SENDER, repr(RATE), str(log)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sender.stdout.readline() == "ready\n"
    config = ClusterConfig(SIMPLE, LLAMA8B, 1, 1, transfer_mode=mode)
    try:
        live = drive(requests, config, senders={"h2": sender},
                     host_of={"prefill0": "h2", "decode0": "h1"}, qpn=lambda src, dst: 7,
                     nic_bytes=lambda tokens: tokens * BYTES_PER_TOKEN, dilation=DILATION,
                     timeout_s=60.0)
    finally:
        sender.stdin.write("end\n")
        sender.stdin.close()
        sender.wait(timeout=10)
    return live, [int(x) for x in log.read_text().split()]


def _check_model_follows(live) -> None:
    """The model's transfer ends when the fabric's did (or when its report reached the
    driver, if that was later: ``late_s``), and decoding starts then."""
    for t, record in zip(live.transfers, live.records, strict=True):
        assert t.arrived_s - 1e-9 <= record.transfer_end_s
        assert record.transfer_end_s <= t.arrived_s + max(live.late_s, default=0.0) + 1e-9
        assert record.first_token_s == pytest.approx(record.transfer_end_s + 0.01)


def test_a_whole_transfer_is_one_message_posted_when_the_prefill_ends(tmp_path):
    live, posts = _serve(tmp_path, "whole", [Request(0.0, 2500, 2)])
    [t] = live.transfers
    assert posts == [2_500_000] and t.messages == 1
    # prefill 0 -> 2.5 target s, then 2.5 MB at RATE: 0.1 s emulated = 1.0 target s
    assert t.start_s == pytest.approx(2.5)
    assert t.arrived_s == pytest.approx(3.5, abs=0.02)
    _check_model_follows(live)


def test_a_layerwise_transfer_posts_each_layer_as_it_is_computed(tmp_path):
    live, posts = _serve(tmp_path, "layerwise", [Request(0.0, 2500, 2)])
    [t] = live.transfers
    # chunks of 1000, 1000 and 500 tokens, 32 layers each: 96 messages of their layer's bytes
    assert t.messages == len(posts) == 96 and sum(posts) == 2_500_000
    assert posts[:32] == [31_250] * 32 and posts[-32:] == [15_625] * 32
    # the transfer starts with the prefill; only the last layer's 15.6 KB (6.25 ms target)
    # is left when the prefill ends at 2.5 s (a few ms more if the link was still busy)
    assert t.start_s == 0.0
    assert 2.5 + 0.00625 - 1e-9 <= t.arrived_s <= 2.5 + 0.05
    _check_model_follows(live)


def test_layerwise_moves_only_the_tokens_the_decode_instance_lacks(tmp_path):
    """The second request shares the first's 1024-token prefix: the prefill computes its last
    512 tokens, and the decode instance, which holds the prefix, is sent only those, layer by
    layer."""
    first = Request(0.0, 1024, 2, block_ids=(1, 2))
    second = Request(5.0, 1536, 2, block_ids=(1, 2, 3))
    live, posts = _serve(tmp_path, "layerwise", [first, second])
    one, two = live.transfers
    assert one.messages == 64 and two.messages == 32  # chunks of 1000 + 24, then 512
    assert posts[-32:] == [16_000] * 32 and sum(posts) == (1024 + 512) * BYTES_PER_TOKEN
    _check_model_follows(live)
