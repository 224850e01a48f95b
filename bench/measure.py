#!/usr/bin/env python3
"""Drives the release time-service binary for bench/time-service.sh."""
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import time

BIN, DURATION = sys.argv[1], int(sys.argv[2])
CORES = os.cpu_count() or 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port):
    env = dict(os.environ, RUST_LOG="off", STAGE="bench")
    return subprocess.Popen([BIN, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_200(port, deadline):
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/time")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.0002)
    return False


def cold_start_ms(runs=30):
    samples = []
    for _ in range(runs):
        port = free_port()
        t0 = time.monotonic()
        proc = start(port)
        ok = first_200(port, t0 + 5)
        elapsed = (time.monotonic() - t0) * 1000
        proc.terminate()
        proc.wait()
        if not ok:
            sys.exit("server did not answer within 5 s")
        samples.append(elapsed)
    return statistics.median(samples), min(samples), max(samples)


def wrk(port, path):
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", "64", "-d", f"{DURATION}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50"), lat.get("99"), int(errors.group(1)) if errors else 0


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    med, lo, hi = cold_start_ms()
    print(f"cold start (spawn -> first 200): median {med:.2f} ms "
          f"(min {lo:.2f}, max {hi:.2f}; target <= 10 ms)")

    port = free_port()
    proc = start(port)
    first_200(port, time.monotonic() + 5)
    print(f"== load: wrk, 1 thread, 64 connections, {DURATION} s per path, {CORES} cores shared")
    for path in ["/time", "/time/America/New_York"]:
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        rps, p50, p99, errors = wrk(port, path)
        server_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        print(f"{path:<24} {rps:>10.0f} req/s   p50 {p50:>8}   p99 {p99:>8}   "
              f"non-2xx {errors}   server CPU {server_cpu * 100:.0f}% of one core")
    status = open(f"/proc/{proc.pid}/status").read()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    print(f"peak RSS under load: {hwm / 1024:.1f} MB (target <= 15 MB)")
    proc.terminate()
    proc.wait()


main()
