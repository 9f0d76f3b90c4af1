"""Endpoints whose peer or stdout reader goes away (teardown stops a run's processes one after
another) end without a traceback on the user's terminal; a server keeps serving its other
connections. Run through the endpoints' real entry points, on loopback."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

from traffic.tcp_incast import REQUEST


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "traffic.tcp_incast", "serve", "--port",
                             str(port)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server never listened")


def _reset_mid_block(port: int) -> None:
    """Ask for a block far larger than the socket buffers, read a little, then reset."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(REQUEST.pack(1 << 30))
    sock.recv(65536)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST: the server's next send fails with ECONNRESET or EPIPE


def test_a_server_whose_aggregator_resets_keeps_serving_without_a_traceback():
    port = _free_port()
    server = _serve(port)
    try:
        _reset_mid_block(port)
        time.sleep(0.3)
        assert server.poll() is None, server.stderr.read()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(REQUEST.pack(1000))
            got = b""
            while len(got) < 1000:
                chunk = sock.recv(4096)
                assert chunk, "the server closed a healthy connection"
                got += chunk
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "Traceback" not in err, err


def test_an_aggregator_whose_stdout_reader_left_exits_1_quietly(tmp_path):
    port = _free_port()
    server = _serve(port)
    try:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the runner is gone before the first round's line
        fetch = subprocess.run(
            [sys.executable, "-m", "traffic.tcp_incast", "fetch", "--server",
             f"h2=127.0.0.1:{port}", "--block-bytes", "10000", "--rounds", "3",
             "--out", str(tmp_path / "flows.csv")],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=30)
        os.close(write_end)
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert fetch.returncode == 1, fetch.stderr
    assert fetch.stderr == ""
