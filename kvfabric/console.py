"""``kvfabric shell SPEC``: a prompt on a live fabric, as Mininet's CLI gives one.

``h1 ping -c1 h2`` runs in h1's namespace with host names turned into addresses; ``nodes``,
``links``, ``routes``, ``ports``/``port``, ``queues``/``watch``, ``workload``, ``capture`` show and
drive the fabric through the Python API (kvfabric/network.py). Ctrl-C stops only the command
that is running (or the current line at the prompt); ``exit`` or Ctrl-D tears the fabric down
and writes the run folder; SIGTERM does the same and exits 130.
"""

from __future__ import annotations

import cmd
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

from fabriccore.processes import stop_groups

from .lock import FabricBusy
from .network import Network, WorkloadError
from .progress import Progress
from .results import ResultsUnwritable
from .signals import EXIT_INTERRUPTED, Interrupted, SignalGuard

#: How long a command interrupted by Ctrl-C has to exit (SIGINT, as a terminal sends it)
#: before it is killed.
INTERRUPT_GRACE_S = 3.0


class WorkloadProgress(Progress):
    """A background workload's progress, kept for ``workload status`` instead of drawn over
    the prompt."""

    def __init__(self) -> None:
        super().__init__(stream=open(os.devnull, "w"))
        self.last = ""

    def update(self, phase: str, detail: str = "") -> None:
        self.last = phase + (f": {detail}" if detail else "")


class FabricConsole(cmd.Cmd):
    prompt = "kvfabric> "

    def __init__(self, net: Network, stdout=None):
        super().__init__(stdout=stdout)
        self.net = net
        self.workload_progress = WorkloadProgress()

    def _print(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def emptyline(self) -> bool:
        return False  # an empty line does nothing (cmd.Cmd would repeat the last command)

    def onecmd(self, line: str) -> bool:
        try:
            return super().onecmd(line)
        except (ValueError, LookupError, WorkloadError, OSError) as exc:
            self._print(f"*** {exc}")
        except Exception as exc:  # a failed command must not end the session
            self._print(f"*** {type(exc).__name__}: {exc}")
        return False

    # -- commands on nodes -----------------------------------------------------------------
    def default(self, line: str) -> bool:
        words = shlex.split(line)
        if words and words[0] in self.net.topo.nodes():
            if len(words) == 1:
                self._print(f"*** give a command to run on {words[0]}, e.g. "
                            f"{words[0]} ip addr")
                return False
            self._foreground(words[0], self.net.resolve(words[1:]))
            return False
        self._print(f"*** unknown command {words[0] if words else line!r}: "
                    "type help, or NODE COMMAND (e.g. h1 ping -c1 h2)")
        return False

    def _foreground(self, node: str, argv: list[str]) -> None:
        """Run argv on node with the terminal as its output; Ctrl-C sends it SIGINT (as a
        terminal would: ping prints its summary) and kills it if it does not exit."""
        proc = self.net[node].popen(argv, stdin=subprocess.DEVNULL)
        try:
            proc.wait()
        except Interrupted:  # SIGTERM (a KeyboardInterrupt too): ends the shell, not the command
            raise
        except KeyboardInterrupt:
            stop_groups([proc], INTERRUPT_GRACE_S, first=signal.SIGINT)
            self._print("^C: command interrupted")
        finally:
            if proc.poll() is None:  # SIGTERM unwinding the shell: the command goes first
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ValueError):
                self.net.fabric.processes.remove(proc)
        if proc.returncode not in (0, -signal.SIGINT):
            self._print(f"*** exit {proc.returncode}")

    # -- the fabric ------------------------------------------------------------------------
    def do_nodes(self, _arg: str) -> None:
        """nodes: every node with its role and address"""
        for node in self.net.nodes:
            self._print(f"{node.name:8} {node.role:7} {node.ip or ''}")

    def do_links(self, _arg: str) -> None:
        """links: every link, its interfaces and rate"""
        for plan in self.net.fabric.plans:
            self._print(f"{plan.a.node}:{plan.a.ifname} <-> {plan.b.node}:{plan.b.ifname}  "
                        f"{plan.rate_bps / 1e6:g} Mbit/s  buffer {plan.buffer_bytes} B")

    do_net = do_links

    def do_routes(self, arg: str) -> None:
        """routes [NODE]: the routing table of NODE (default: every node); for an OVS
        switch, its OpenFlow rules"""
        from topologies.openflow import bridge_name

        names = arg.split() or self.net.topo.nodes()
        for name in names:
            node = self.net[name]
            self._print(f"-- {name}")
            if node.netns is None:
                argv = ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge_name(name)]
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            else:
                proc = node.run(["ip", "route", "show"])
            self._print((proc.stdout + proc.stderr).rstrip())

    def do_ports(self, arg: str) -> None:
        """ports [NODE]: every port (of NODE) with its counters"""
        self._print(f"{'port':16} {'peer':6} {'Mbit/s':>7} {'tx bytes':>12} {'rx bytes':>12} "
                    f"{'drops':>6} {'queued B':>9}")
        for port in self._ports(arg):
            row = port.port.stats()
            self._print(f"{port.node + ':' + port.ifname:16} {port.peer_node:6} "
                        f"{port.rate_bps / 1e6:7g} {row['tx_bytes']:12} {row['rx_bytes']:12} "
                        f"{row['drops']:6} {row['backlog_bytes']:9}")

    def do_port(self, arg: str) -> None:
        """port NODE PEER: every counter of NODE's port to PEER (queue depth, ECN marks,
        PFC pauses per class and priority)"""
        words = arg.split()
        if len(words) != 2:
            self._print("*** usage: port NODE PEER, e.g. port l1 h1")
            return
        for key, value in self.net.port(*words).counters().items():
            self._print(f"{key:16} {value}")

    def do_queues(self, arg: str) -> None:
        """queues [NODE]: live queue depth, ECN marks and PFC pauses per port"""
        self._print(f"{'port':16} {'peer':6} {'queued bytes by class':32} {'marks':>7} "
                    f"{'pauses tx/rx':>12} paused")
        for port in self._ports(arg):
            depth = " ".join(f"{k}={v}" for k, v in port.queue_depth().items())
            marks = sum(port.ecn_marks().values())
            pfc = port.pauses().values()
            sent = sum(p["pause_sent"] for p in pfc)
            received = sum(p["pause_received"] for p in pfc)
            paused = "yes" if any(p["paused"] for p in pfc) else "-"
            self._print(f"{port.node + ':' + port.ifname:16} {port.peer_node:6} {depth:32} "
                        f"{marks:7} {f'{sent}/{received}':>12} {paused}")

    def do_watch(self, arg: str) -> None:
        """watch [NODE]: queues, every second, until Ctrl-C"""
        try:
            while True:
                self._print(time.strftime("-- %H:%M:%S"))
                self.do_queues(arg)
                time.sleep(1.0)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            self._print("^C")

    def _ports(self, arg: str):
        names = arg.split()
        for name in names:
            self.net[name]  # KeyError for a name that is not a node
        return [p for p in self.net.ports if not names or p.node in names]

    # -- workload, capture, exit -------------------------------------------------------------
    def do_workload(self, arg: str) -> None:
        """workload start|stop|status|wait: the spec's workload, in the background"""
        action = arg.strip() or "status"
        if action == "start":
            self.net.ctx.progress = self.workload_progress
            self.net.start_workload()
            self._print(f"workload {self.net.spec.workload['kind']} started")
        elif action == "stop":
            self.net.stop_workload()
            self._print(f"workload {self.net.workload_state}")
        elif action == "wait":
            self.net.wait_workload()
            self._print(f"workload {self.net.workload_state}")
        elif action == "status":
            self._print(f"workload {self.net.workload_state}"
                        + (f" ({self.workload_progress.last})"
                           if self.workload_progress.last else ""))
        else:
            self._print("*** usage: workload start|stop|status|wait")

    def do_capture(self, arg: str) -> None:
        """capture NODE-PEER: tcpdump NODE's end of the link into the run folder"""
        node, sep, peer = arg.strip().partition("-")
        if not sep:
            self._print("*** usage: capture NODE-PEER, e.g. capture h1-l1")
            return
        self._print(f"capturing into {self.net.capture(node, peer)}")

    def do_exit(self, _arg: str) -> bool:
        """exit: tear the fabric down and leave (also quit, Ctrl-D)"""
        return True

    do_quit = do_exit

    def do_EOF(self, _arg: str) -> bool:  # noqa: N802 (cmd.Cmd's name for Ctrl-D)
        self._print()
        return True


def interact(net: Network, guard: SignalGuard) -> None:
    """The prompt loop. SIGINT raises KeyboardInterrupt (caught by the command that runs, or
    here at the prompt); SIGTERM ends the loop through the guard (Interrupted, a subclass of
    KeyboardInterrupt that every Ctrl-C handler here lets through)."""
    owner = os.getpid()

    def on_sigint(signum, _frame):
        if os.getpid() != owner:  # a forked netlink helper: die as by default
            os._exit(128 + signum)
        raise KeyboardInterrupt

    console = FabricConsole(net)
    net.progress.done(f"fabric up in {net.timings.get('bringup_s', 0.0):.1f} s")
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with guard.interruptible():
            console.intro = (f"kvfabric shell: {net.spec.name}, {net.fabric.mode} "
                             f"{type(net.topo).__name__} with {len(net.topo.host_names())} "
                             f"hosts; run folder {net.run_dir}\nType help, or NODE COMMAND "
                             "(e.g. h1 ping -c1 h2). exit or Ctrl-D tears the fabric down.")
            while True:
                try:
                    console.cmdloop()
                    return
                except Interrupted:
                    raise
                except KeyboardInterrupt:
                    console.intro = None
                    console._print("^C")
    finally:
        signal.signal(signal.SIGINT, previous)


def run_shell(spec, results_root, guard: SignalGuard, capture: str | None = None) -> int:
    """Build spec's fabric, open the prompt, tear down; the exit code of ``kvfabric shell``."""
    net = Network(spec, results_root=results_root, capture=capture, guard=guard)
    try:
        with net:
            interact(net, guard)
    except Interrupted as exc:
        print(f"\nkvfabric shell: {exc}: fabric torn down", file=sys.stderr)
    except (FabricBusy, ResultsUnwritable):
        raise  # nothing was built: the command's exit codes 3 and 1 say why
    except Exception as exc:
        print(f"kvfabric shell: {type(exc).__name__}: {exc}", file=sys.stderr)
    outcome = net.outcome
    if outcome is None:  # nothing was built (the lock or the run folder failed)
        return EXIT_INTERRUPTED if guard.interrupted else 1
    print(f"{outcome.status.upper()}: results in {outcome.run_dir}")
    if outcome.summary.get("error"):
        print(f"  {outcome.summary['error']}")
    return EXIT_INTERRUPTED if guard.interrupted else outcome.exit_code
