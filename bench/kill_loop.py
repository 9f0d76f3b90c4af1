"""Random-kill loop: runs of the installed ``kvfabric`` command killed by SIGINT, SIGTERM or
SIGKILL at random moments (bring-up, workload, teardown, analysis), one or two signals each,
over tcp_incast, roce_incast (per-host and shared senders), tcp_incast on OpenFlow, link_failure
with the controller and serving_disagg.

After every run it checks, under the fabric lock: nothing of kvfabric's is left on the host
(after SIGKILL, after the next ``kvfabric clean``, since no process can clean up after
SIGKILL), the run folder has a summary.json and report.md (SIGKILL aside), and the exit code
is 130, or the run's own 0/1 when it finished before the signal.

Run as root: ``.venv/bin/python bench/kill_loop.py [--runs 64] [--seed 1]``; exits 1 when any
run broke a rule, printing the counts either way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kvfabric.cleanup import leftovers
from kvfabric.lock import fabric_lock

KVFABRIC = str(Path(sys.executable).parent / "kvfabric")

#: (label, kvfabric run arguments, typical wall time in s over which signals are spread)
SCENARIOS = [
    ("tcp_incast", ["tcp_incast", "--set", "workload.senders=3", "--set", "workload.rounds=3",
                    "--set", "workload.block_size=64KiB"], 9.0),
    ("roce_incast", ["roce_incast", "--set", "workload.senders=3", "--set", "workload.blocks=2",
                     "--set", "workload.transports=roce-dcqcn,tcp-cubic"], 25.0),
    ("roce_shared", ["roce_incast", "--set", "workload.senders=3", "--set", "workload.blocks=2",
                     "--set", "workload.transports=roce-dcqcn",
                     "--set", "workload.sender_processes=shared"], 20.0),
    ("openflow", ["tcp_incast", "--set", "fabric.mode=openflow", "--set", "workload.senders=3",
                  "--set", "workload.rounds=3", "--set", "workload.block_size=64KiB"], 12.0),
    ("controller", ["link_failure", "--set", "workload.duration=3s", "--set",
                    "workload.fail_at=1s", "--set", "workload.restore_at=2s"], 14.0),
    ("serving", ["serving_disagg", "--set", "workload.max_requests=3",
                 "--set", "workload.input_tokens=1024"], 20.0),
]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
#: A signal this soon after exec can land before Python runs kvfabric's first line (the
#: interpreter's own start-up): the process dies by the signal with nothing built. Such runs
#: are counted apart ("before start"), not as broken.
PRESTART_S = 0.15


def _left() -> dict[str, list]:
    with fabric_lock("kill loop: leftover check", wait_s=600):
        return {k: v for k, v in leftovers().items() if v}


def one_run(rng: random.Random, label: str, args: list[str], span_s: float,
            sig: signal.Signals, root: Path) -> dict:
    delay = rng.uniform(0.0, span_s)
    second = rng.random() < 0.5 and sig != signal.SIGKILL
    # Queue behind other jobs' fabrics rather than fail busy (a signal while queued counts).
    env = {**os.environ, "KVFABRIC_LOCK_WAIT_S": "900"}
    proc = subprocess.Popen([KVFABRIC, "run", *args, "--results", str(root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    if second:
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(sig)
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if sig == signal.SIGKILL:
        # Nothing tore down: the run's endpoints live on, holding its stdout and stderr,
        # until `kvfabric clean` (as a user would run it) ends them.
        subprocess.run([KVFABRIC, "clean"], capture_output=True, text=True, timeout=300)
    out, err = proc.communicate(timeout=60)
    code = proc.returncode
    run_dirs = [d for d in root.glob("*/*") if d.is_dir()]
    summary = None
    if run_dirs and (run_dirs[0] / "summary.json").exists():
        summary = json.loads((run_dirs[0] / "summary.json").read_text())
    problems = []
    if sig == signal.SIGKILL:
        if code != -signal.SIGKILL and code not in (0, 1):
            problems.append(f"exit {code} after SIGKILL")
    elif code == -sig and not run_dirs and delay < PRESTART_S:
        pass  # killed while the interpreter started, before kvfabric's code ran: counted
    else:
        if code not in (130, 0, 1):
            problems.append(f"exit {code}")
        if run_dirs and summary is None:
            problems.append("run folder without summary.json")
        if run_dirs and not (run_dirs[0] / "report.md").exists():
            problems.append("no report.md")
        if code in (0, 1) and summary is None:
            problems.append("finished without a summary")
        if "Traceback" in err:
            problems.append("traceback: " + err[-400:])
    left = _left()
    if left:
        problems.append(f"left on the host: {left}")
        subprocess.run([KVFABRIC, "clean"], capture_output=True, text=True, timeout=300)
    return {"label": label, "signal": sig.name, "delay_s": round(delay, 2), "second": second,
            "exit": code, "status": summary and summary.get("status"),
            "folder": bool(run_dirs), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.runs):
        label, run_args, span = SCENARIOS[i % len(SCENARIOS)]
        sig = SIGNALS[(i // len(SCENARIOS)) % len(SIGNALS)] if i < 48 else rng.choice(SIGNALS)
        with tempfile.TemporaryDirectory(prefix="kvfabric-kill-") as tmp:
            row = one_run(rng, label, run_args, span, sig, Path(tmp))
        rows.append(row)
        print(f"{i + 1:3} {row['label']:11} {row['signal']:7} at {row['delay_s']:5.2f} s"
              f"{' x2' if row['second'] else '   '} exit {row['exit']:4} status "
              f"{row['status']}  {'; '.join(row['problems']) or 'ok'}", flush=True)
    bad = [r for r in rows if r["problems"]]
    no_summary = sum(1 for r in rows if r["signal"] != "SIGKILL" and r["folder"]
                     and r["status"] is None)
    with_leftovers = sum(1 for r in rows if any("left on" in p for p in r["problems"]))
    print(f"\n{len(rows)} runs: {dict(Counter(r['signal'] for r in rows))}; "
          f"statuses {dict(Counter(str(r['status']) for r in rows))}; "
          f"exit codes {dict(Counter(r['exit'] for r in rows))}")
    prestart = sum(1 for r in rows if r["signal"] != "SIGKILL" and not r["folder"]
                   and r["exit"] in (-signal.SIGINT, -signal.SIGTERM))
    print(f"runs with leftovers: {with_leftovers}; runs without a summary (SIGKILL aside): "
          f"{no_summary}; killed before kvfabric started: {prestart}; runs breaking a rule: "
          f"{len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
