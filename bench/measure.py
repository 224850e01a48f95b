#!/usr/bin/env python3
"""Drives the release time-service binary for bench/time-service.sh.

Load runs give the server one core and wrk the other (taskset), so each
side's CPU use says which of them limits throughput: wrk runs one thread,
so its ceiling is 100% of its core; the server runs one thread too
(current_thread runtime). Whichever is closer to 100% is the bottleneck.

If nginx is installed, the same load against nginx answering a constant
200 on the same core gives the loopback ceiling: what wrk and the kernel
manage when the server does almost nothing.
"""
import http.client
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN, DURATION = sys.argv[1], int(sys.argv[2])
# The cores this process may use (a container's cpuset may not start at 0).
ALLOWED = sorted(os.sched_getaffinity(0))
CORES = len(ALLOWED)
PATHS = ["/time", "/time/America/New_York"]
TCK = os.sysconf("SC_CLK_TCK")


def pinned(which, argv):
    """argv pinned to the first (0) or second (1) allowed core, when there
    are two to share."""
    if CORES >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(ALLOWED[which])] + argv
    return argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port, core=None):
    # Request logging off: the bench measures serving, not log formatting.
    env = dict(os.environ, RUST_LOG="off", STAGE="bench")
    argv = [BIN, "--port", str(port)]
    return subprocess.Popen(argv if core is None else pinned(core, argv), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_200(port, deadline, path="/time"):
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.0002)
    return False


def startup_ms(runs=30):
    """Local process start-up: spawn of the local server to its first 200 on
    loopback (a fresh process each run; not a Lambda cold start, which adds
    the sandbox, the zip download and the runtime API)."""
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


def cpu_ticks(pid):
    """(user, system) clock ticks the process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def load(port, path, server_pid):
    """wrk on core 1 against a server on core 0; returns a result dict."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    user0, sys0 = cpu_ticks(server_pid)
    t0 = time.monotonic()
    out = subprocess.run(
        pinned(1, ["wrk", "-t", "1", "-c", "64", "-d", f"{DURATION}s", "--latency",
                   f"http://127.0.0.1:{port}{path}"]),
        check=True, capture_output=True, text=True).stdout
    elapsed = time.monotonic() - t0
    user1, sys1 = cpu_ticks(server_pid)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # CPU shares over wrk's own run ("N requests in 8.00s"), not its start-up.
    ran = re.search(r"requests in ([\d.]+)(m?s)", out)
    if ran:
        elapsed = float(ran.group(1)) / (1000 if ran.group(2) == "ms" else 1)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    per_request = 1e6 / (rps * elapsed * TCK)
    return {
        "rps": rps, "p50": lat.get("50"), "p99": lat.get("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "server_cpu": (user1 - user0 + sys1 - sys0) / TCK / elapsed,
        "user_us": (user1 - user0) * per_request,
        "kernel_us": (sys1 - sys0) * per_request,
        "wrk_cpu": ((after.ru_utime + after.ru_stime)
                    - (before.ru_utime + before.ru_stime)) / elapsed,
    }


def report(name, r):
    bottleneck = "wrk" if r["wrk_cpu"] > r["server_cpu"] else "server"
    print(f"{name:<24} {r['rps']:>8.0f} req/s   p50 {r['p50']:>8}   p99 {r['p99']:>8}   "
          f"non-2xx {r['errors']}")
    print(f"{'':<24} server CPU {r['server_cpu'] * 100:.0f}% of its core "
          f"({r['user_us']:.1f} us own code + {r['kernel_us']:.1f} us kernel per request), "
          f"wrk CPU {r['wrk_cpu'] * 100:.0f}% of its core -> bottleneck: {bottleneck}")


def nginx_worker(master):
    """The pid of the nginx worker under `master` (the one serving), or None."""
    for task in os.listdir(f"/proc/{master}/task"):
        try:
            children = open(f"/proc/{master}/task/{task}/children").read().split()
        except OSError:
            continue
        if children:
            return int(children[0])
    return None


def nginx_reference():
    """The same load against nginx returning a constant 200, or None."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        print("loopback ceiling: skipped (apt-get install -y nginx-light to measure it)")
        return None
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; error_log stderr crit; pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {prefix}; proxy_temp_path {prefix};
  fastcgi_temp_path {prefix}; uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
  server {{ listen 127.0.0.1:{port};
    location / {{ default_type application/json;
      return 200 '{{"timeZone":"America/New_York","time":"2026-11-26T10:07:14-05:00","utcOffset":"-05:00","abbreviation":"EST","epochMillis":1795705634823}}'; }} }} }}
""")
        proc = subprocess.Popen(pinned(0, [nginx, "-c", conf, "-p", prefix]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not first_200(port, time.monotonic() + 5):
                print("loopback ceiling: skipped (nginx did not start)")
                return None
            worker = nginx_worker(proc.pid)
            if worker is None:
                print("loopback ceiling: skipped (no nginx worker process found)")
                return None
            r = load(port, "/time", worker)
            report("nginx, constant 200", r)
            return r["rps"]
        finally:
            proc.terminate()
            proc.wait()


def main():
    med, lo, hi = startup_ms()
    print(f"local start-up (spawn -> first 200 of the local server): median {med:.2f} ms "
          f"(min {lo:.2f}, max {hi:.2f}; target <= 10 ms)")

    port = free_port()
    proc = start(port, core=0)
    if not first_200(port, time.monotonic() + 5):
        proc.terminate()
        sys.exit("server did not answer within 5 s (is taskset allowed to pin it?)")
    print(f"== load: wrk, 1 thread, 64 connections, {DURATION} s per path; "
          f"server and wrk pinned to a core each ({CORES} cores allowed)")
    results = {}
    for path in PATHS:
        results[path] = load(port, path, proc.pid)
        report(path, results[path])
    status = open(f"/proc/{proc.pid}/status").read()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    proc.terminate()
    proc.wait()
    print(f"peak RSS under load: {hwm / 1024:.1f} MB (target <= 15 MB)")

    ceiling = nginx_reference()
    if ceiling:
        for path in PATHS:
            print(f"{path:<24} {results[path]['rps'] / ceiling * 100:.0f}% of the loopback ceiling")


main()
