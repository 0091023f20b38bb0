#!/usr/bin/env python3
"""The edge side by side with nginx and Varnish: same origin, same workloads, interleaved runs.

Started by benches/run.sh (which builds the programs and installs the packages). Writes every
config under a temporary directory, starts the servers pinned to one core and the load
generators to the other, warms the caches, runs each workload round by round in the order
edge, nginx, Varnish (ceiling), and prints one Markdown table of medians with the edge's ratio
to each peer. Everything it starts is stopped on exit.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "bench.local.cdn.localhost"
LOADGEN_CORE = "0"
SERVER_CORE = "1"
# Prepended to every server and load generator command (see --nice).
PRIORITY = []
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOT_1K = "/size/1024/hot"
HOT_1M = "/size/1048576/big"
# A 100 KiB script (application/javascript) for the compression workloads (issue 16).
JS_100K = "/js/102400/app.js"
# Accept-Encoding per compression workload; nginx answers br requests with gzip (no brotli module).
CODINGS = {"js-identity": None, "js-gzip": "gzip", "js-br": "br, gzip, deflate"}
KEYS_PATH = "/size/1024/keys"
KEYS = 10_000
# Disk-tier workloads: object size and working set in multiples of the edge's memory tier
# (--disk-memory). Each runs on fresh servers whose caches hold only its working set.
DISK_SETS = {"disk-16k": (16 << 10, 10), "disk-256k": (256 << 10, 16), "disk-4m": (4 << 20, 16)}

PORT_NAMES = [
    "ORIGIN", "EDGE_HTTP", "EDGE_HTTPS", "EDGE_ADMIN", "NGINX_HTTP", "NGINX_HTTPS",
    "VARNISH_HTTP", "VARNISH_PROXY", "HITCH_HTTPS", "CEILING", "BASE_HTTP", "BASE_HTTPS", "BASE_ADMIN",
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc


def proc_children():
    """Maps each pid to its child pids."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def tree(root):
    """The pid and every descendant."""
    children = proc_children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(pids):
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / CLK_TCK


def threads(pids):
    tids = []
    for pid in pids:
        try:
            tids.extend(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return tids


def pin(pids, core):
    """Pins every thread of `pids` to `core`; returns the names of those that had left it."""
    moved = set()
    for tid in threads(pids):
        try:
            if os.sched_getaffinity(tid) != {int(core)}:
                with open(f"/proc/{tid}/comm") as f:
                    moved.add(f.read().strip())
                os.sched_setaffinity(tid, {int(core)})
        except OSError:
            pass
    return moved


def memory_kib(pids, field):
    """Sum of `field` (Pss or Rss) from smaps_rollup, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    """One process tree under test (several for hitch + Varnish)."""

    def __init__(self, name, label, argv_list, http_port=None, https_port=None, env=None):
        self.name = name
        self.label = label
        self.argv_list = argv_list
        self.http_port = http_port
        self.https_port = https_port
        self.env = env
        self.procs = []

    def start(self, workdir):
        for i, argv in enumerate(self.argv_list):
            out = open(os.path.join(workdir, f"{self.name}.{i}.log"), "w")
            env = dict(os.environ, **(self.env or {}))
            self.procs.append(subprocess.Popen(
                PRIORITY + ["taskset", "-c", SERVER_CORE] + argv, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=workdir))

    def pids(self):
        pids = []
        for p in self.procs:
            pids.extend(tree(p.pid))
        return pids

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- plain HTTP helpers


def get(port, path, conn=None, accept_encoding=None):
    """One GET with the bench Host; returns (status, headers, body length)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": HOST}
    if accept_encoding:
        headers["Accept-Encoding"] = accept_encoding
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    if conn is None:
        c.close()
    return r.status, dict(r.getheaders()), len(body)


def http_body(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    body = c.getresponse().read()
    c.close()
    return body.decode()


def fill_keys(port, keys):
    """Fetches `keys` distinct objects (misses, then stored) over one keep-alive connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(keys):
        status, _, _ = get(port, f"{KEYS_PATH}?v={n}", c)
        if status != 200:
            raise RuntimeError(f"fill: status {status} for ?v={n}")
    c.close()


def fill_set(port, origin_port, path, objects, conns=2):
    """Fetches every object of a disk working set, pass after pass, until a whole pass reaches
    the origin no more (every object cached); returns the passes it took. (The edge drops
    disk writes while its writers are busy: objects evicted from memory before they reached
    disk are fetched again by the next pass.)"""

    def worker(first, failures):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for n in range(first, objects, conns):
                status, _, _ = get(port, f"{path}?v={n}", c)
                if status != 200:
                    failures.append(f"status {status} for ?v={n}")
                    return
        finally:
            c.close()

    for attempt in range(1, 11):
        before = int(http_body(origin_port, "/__count"))
        failures = []
        workers = [threading.Thread(target=worker, args=(i, failures)) for i in range(conns)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if failures:
            raise RuntimeError(f"fill of {path}: {failures[0]}")
        fetched = int(http_body(origin_port, "/__count")) - before
        if attempt > 1 and fetched == 0:
            return attempt
        log(f"fill of {path} on port {port}: pass {attempt} fetched {fetched} objects")
        time.sleep(2)  # background writers (the edge's disk tier) catch up
    raise RuntimeError(f"fill of {path}: the origin still saw requests after {attempt} passes")


# ---------------------------------------------------------------- load generators


def run_loadgen(argv, timeout):
    """Runs a load generator pinned to the load core; returns (stdout, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(PRIORITY + ["taskset", "-c", LOADGEN_CORE] + argv, capture_output=True, text=True,
                       timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.stdout, cpu


def wrk(url, duration, conns, script="report.lua", extra_headers=(), env=None):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
            "-s", os.path.join(HERE, "wrk", script), "-H", f"Host: {HOST}"]
    for h in extra_headers:
        argv += ["-H", h]
    argv.append(url)
    if env:
        os.environ.update(env)
    out, lg_cpu = run_loadgen(argv, duration + 60)
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    f = dict(kv.split("=") for kv in line.split()[1:])
    secs = int(f["duration_us"]) / 1e6
    return {
        "requests": int(f["requests"]), "seconds": secs, "bytes": int(f["bytes"]),
        "p50_ms": int(f["p50_us"]) / 1000, "p99_ms": int(f["p99_us"]) / 1000,
        "errors": int(f["errors"]) + int(f["non2xx"]), "loadgen_cpu": lg_cpu,
    }


def h2load(url, port, duration, conns, streams, logdir):
    logfile = os.path.join(logdir, "h2load.log")
    argv = ["h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{duration}", "--warm-up-time=1",
            f"--connect-to=127.0.0.1:{port}", f"--log-file={logfile}", url]
    out, lg_cpu = run_loadgen(argv, duration + 60)
    done = errors = 0
    secs = None
    total_bytes = 0
    for l in out.splitlines():
        l = l.strip()
        if l.startswith("finished in"):
            secs = float(l.split()[2].rstrip("s,"))
        elif l.startswith("requests:"):
            parts = l.split()
            done = int(parts[7])  # "N succeeded"
            errors = int(parts[9]) + int(parts[11]) + int(parts[13])
        elif l.startswith("traffic:"):
            total_bytes = int(l.split()[2].strip("()"))
        elif l.startswith("status codes:"):
            non2xx = sum(int(x.split()[0]) for x in l.split(":", 1)[1].split(",")[1:])
            errors += non2xx
    if secs is None:
        raise RuntimeError(f"h2load printed no result:\n{out}")
    latencies = []
    with open(logfile) as f:
        for l in f:
            cols = l.split()
            if len(cols) >= 3:
                latencies.append(int(cols[2]))
    os.unlink(logfile)
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000 if latencies else 0
    return {
        "requests": done, "seconds": secs, "bytes": total_bytes,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors, "loadgen_cpu": lg_cpu,
    }


# ---------------------------------------------------------------- workloads


class Workload:
    def __init__(self, key, title, servers, unit, run, disk_set=None):
        self.key = key
        self.title = title
        self.servers = servers  # names, in run order
        self.unit = unit  # "req/s" or "MB/s"
        self.run = run  # (server, duration, workdir) -> result dict
        self.disk_set = disk_set  # (path, objects): a disk-tier workload, on its own servers


def workloads(ports, args):
    def plain(path, conns=64, script="report.lua", headers=(), env=None):
        return lambda s, d, w: wrk(f"http://127.0.0.1:{s.http_port}{path}", d, conns, script, headers, env)

    def tls_h1(path, headers=()):
        return lambda s, d, w: wrk(f"https://127.0.0.1:{s.https_port}{path}", d, 64, "report.lua", headers)

    def tls_h2(path):
        return lambda s, d, w: h2load(f"https://{HOST}{path}", s.https_port, d, args.h2_conns, args.h2_streams, w)

    keys_env = {"BENCH_PATH": KEYS_PATH, "BENCH_KEYS": str(KEYS)}
    plain_peers = ["edge", "baseline", "nginx", "varnish"]
    tls_peers = ["edge", "baseline", "nginx"] + (["hitch"] if not args.no_hitch else [])
    disk = []
    memory_bytes = parse_size(args.disk_memory)
    for key, (size, factor) in DISK_SETS.items():
        objects = factor * memory_bytes // size
        path = f"/size/{size}/disk"
        env = {"BENCH_PATH": path, "BENCH_KEYS": str(objects)}
        disk.append(Workload(
            key, f"disk-tier hits: {objects:,} distinct {size >> 10:,} KiB objects ({factor}x the edge's "
                 f"{args.disk_memory} memory tier; files in the page cache), HTTP/1.1, 64 conns",
            plain_peers, "req/s", plain(path, script="keys.lua", env=env), disk_set=(path, objects)))
    return [
        Workload("h1-1k", "hot 1 KiB hits, HTTP/1.1 keep-alive, 64 conns", plain_peers + ["ceiling"],
                 "req/s", plain(HOT_1K)),
        Workload("h1-1m", "hot 1 MiB hits, HTTP/1.1 keep-alive, 64 conns", plain_peers, "MB/s",
                 plain(HOT_1M)),
        Workload("keys", f"{KEYS:,} distinct 1 KiB keys (?v=N, all cached), HTTP/1.1, 64 conns",
                 plain_peers + ["ceiling"], "req/s", plain(KEYS_PATH, script="keys.lua", env=keys_env)),
        Workload("tls-h1", "HTTPS hot 1 KiB hits, HTTP/1.1 keep-alive, 64 conns", tls_peers, "req/s",
                 tls_h1(HOT_1K)),
        Workload("tls-h2", f"HTTPS hot 1 KiB hits, HTTP/2, {args.h2_conns} conns x {args.h2_streams} streams",
                 tls_peers, "req/s", tls_h2(HOT_1K)),
        Workload("tls-new", "new TLS handshakes/s (TLS 1.3, P-256, 1 request per connection), 64 conns",
                 tls_peers, "req/s", tls_h1(HOT_1K, headers=("Connection: close",))),
    ] + [
        Workload(key, f"hot 100 KiB script, " + (f"Accept-Encoding: {coding}" if coding else "no Accept-Encoding")
                 + " (nginx: gzip on, compressing every response), HTTP/1.1, 64 conns",
                 ["edge", "baseline", "nginx"], "req/s",
                 plain(JS_100K, headers=(f"Accept-Encoding: {coding}",) if coding else ()))
        for key, coding in CODINGS.items()
    ] + disk


def parse_size(text):
    """Bytes in "64MiB", "1GiB" or a plain number."""
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, scale in units.items():
        if text.endswith(unit):
            return int(text[:-len(unit)]) * scale
    return int(text)


def measure(server, workload, duration, workdir, origin_port):
    count0 = int(http_body(origin_port, "/__count"))
    pids = server.pids()
    moved = pin(pids, SERVER_CORE)  # threads started since (thread pools) must stay on it too
    if moved:
        log(f"{server.name}: re-pinned {', '.join(sorted(moved))} to core {SERVER_CORE}")
    cpu0, t0 = cpu_seconds(pids), time.time()
    r = workload.run(server, duration, workdir)
    cpu1, t1 = cpu_seconds(pids), time.time()
    if not server.alive():
        raise RuntimeError(f"{server.name} died during {workload.key}")
    r["server_cpu"] = cpu1 - cpu0
    r["origin_requests"] = int(http_body(origin_port, "/__count")) - count0
    r["wall"] = t1 - t0
    r["rps"] = r["requests"] / r["seconds"]
    r["mbps"] = r["bytes"] / r["seconds"] / 1e6
    r["cpu_us_per_req"] = 1e6 * r["server_cpu"] / max(1, r["requests"])
    return r


# ---------------------------------------------------------------- memory and herd


def memory_test(server, port):
    """PSS growth of the tree while filling KEYS distinct 1 KiB objects, and RSS after."""
    pids = server.pids()
    time.sleep(1)
    pss0 = memory_kib(pids, "Pss")
    fill_keys(port, KEYS)
    time.sleep(2)  # let background housekeeping (moka, Varnish expiry) settle
    pids = server.pids()
    pss1 = memory_kib(pids, "Pss")
    return {
        "pss_before_kib": pss0, "pss_after_kib": pss1,
        "rss_after_kib": memory_kib(pids, "Rss"),
        "bytes_per_object": (pss1 - pss0) * 1024 / KEYS,
    }


def herd_test(server, port, ports, tag):
    """200 concurrent cold requests for one URL (the origin answers after 300 ms)."""
    path = f"/slow/herd-{server.name}-{tag}"
    before = int(http_body(ports["ORIGIN"], "/__count"))
    out, _ = run_loadgen(["h2load", "--h1", "-t1", "-n200", "-c200", "-m1",
                          f"--connect-to=127.0.0.1:{port}", f"http://{HOST}{path}"], 60)
    after = int(http_body(ports["ORIGIN"], "/__count"))
    ok = next((l.split()[7] for l in out.splitlines() if l.strip().startswith("requests:")), "?")
    return {"origin_requests": after - before, "succeeded": ok}


# ---------------------------------------------------------------- report


def fmt_num(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(ours, theirs):
    if ours is None or theirs in (None, 0):
        return "–"
    return f"{ours / theirs:.2f}x"


def table(results, memory, herd, wls, baseline):
    """One Markdown table: medians per server, and the edge's ratio to each peer."""
    cols = [("edge", "edge")] + ([("baseline", "edge before")] if baseline else []) + [
        ("nginx", "nginx"), ("varnish", "Varnish"), ("ceiling", "hyper ceiling")]
    peers = [("nginx", "edge/nginx"), ("varnish", "edge/Varnish"), ("ceiling", "edge/ceiling")] + (
        [("baseline", "edge/before")] if baseline else [])
    head = ["workload", "metric"] + [c[1] for c in cols] + [p[1] for p in peers]
    rows = []

    def row(title, metric, vals, show=fmt_num):
        rows.append([title, metric] + [show(vals.get(c)) for c, _ in cols] +
                    [ratio(vals.get("edge"), vals.get(p)) for p, _ in peers])

    def med(wl, name, field):
        runs = results.get(wl.key, {}).get(name)
        return statistics.median(r[field] for r in runs) if runs else None

    for wl in wls:
        vcol = "hitch" if "hitch" in wl.servers else "varnish"
        names = {"edge": "edge", "baseline": "baseline", "nginx": "nginx", "varnish": vcol, "ceiling": "ceiling"}
        title = wl.title + (" (Varnish behind hitch: it has no TLS)" if vcol == "hitch" else "")
        if wl.key.startswith("tls") and "hitch" not in wl.servers:
            title += " (Varnish has no TLS)"
        main = "mbps" if wl.unit == "MB/s" else "rps"
        for metric, field in ((wl.unit, main), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
                              ("CPU µs/req", "cpu_us_per_req")):
            vals = {c: med(wl, names[c], field) for c, _ in cols if names[c] in wl.servers}
            row(title if metric == wl.unit else "", metric, vals)
    if memory:
        pick = lambda key, scale=1: {n: m[key] / scale for n, m in memory.items()}
        row(f"memory after caching {KEYS:,} 1 KiB objects", "RSS MiB", pick("rss_after_kib", 1024))
        row("", "PSS growth bytes/object", pick("bytes_per_object"))
    if herd:
        counts = {n: " / ".join(str(h["origin_requests"]) for h in hs) for n, hs in herd.items()}
        rows.append(["200 concurrent cold requests, one URL (origin answers in 300 ms)", "origin requests"] +
                    [counts.get(c, "–") for c, _ in cols] + ["–" for _ in peers])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- main


def render(src, dst, values):
    with open(os.path.join(HERE, "conf", src)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    with open(dst, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, help="directory holding edge, bench-origin, bench-ceiling")
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured run (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per server and workload (default 3)")
    ap.add_argument("--only", default="", help="comma-separated workload keys (h1-1k,h1-1m,keys,tls-h1,tls-h2,tls-new,"
                                        "disk-16k,disk-256k,disk-4m,js-identity,js-gzip,js-br)")
    ap.add_argument("--servers", default="edge,nginx,varnish,hitch,ceiling", help="servers to run")
    ap.add_argument("--no-hitch", action="store_true", help="skip Varnish behind hitch on HTTPS rows")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-herd", action="store_true")
    ap.add_argument("--h2-conns", type=int, default=64)
    ap.add_argument("--h2-streams", type=int, default=4)
    ap.add_argument("--port-base", type=int, default=18000)
    ap.add_argument("--baseline-bin", help="an edge binary from an earlier commit, run as 'edge before'")
    ap.add_argument("--json", help="also write every run's figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--edge-disk", default="10GiB",
                    help='the edge\'s cache.disk ("0": memory tier only, as for the memory-per-object figure)')
    ap.add_argument("--disk-memory", default="64MiB",
                    help="the edge's memory tier on the disk-tier workloads (their working sets are 10-16x it)")
    ap.add_argument("--varnish-file", default="2G", help="Varnish's file storage on the disk-tier workloads")
    ap.add_argument("--nice", type=int, default=0,
                    help="run servers and load generators at nice -N (root), ahead of other work on a shared machine")
    args = ap.parse_args()

    os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # the harness itself stays off the server core
    if args.nice:
        PRIORITY.extend(["nice", "-n", str(-args.nice)])
    load_before = os.getloadavg()
    if os.cpu_count() < 2:
        sys.exit("needs at least 2 cores (load generator and servers on different ones)")
    ports = {name: args.port_base + i for i, name in enumerate(PORT_NAMES)}
    busy = [p for p in ports.values() if not port_free(p)]
    if busy:
        sys.exit(f"ports in use: {busy} (pick another --port-base)")
    wanted = set(args.servers.split(","))
    if args.no_hitch:
        wanted.discard("hitch")

    workdir = tempfile.mkdtemp(prefix="edge-bench-")
    os.chmod(workdir, 0o755)  # nginx workers and Varnish's child drop privileges
    values = dict(ports, DIR=workdir, EDGE_DISK=args.edge_disk, EDGE_MEMORY="1GiB", EDGE_MAX_OBJECT="16MiB")
    servers = {}

    def cleanup(*_):
        for s in reversed(list(servers.values())):
            s.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run(args, ports, values, workdir, servers, wanted, load_before)
    finally:
        cleanup()


def make_servers(args, ports, values, workdir, tag):
    """The servers under test, configured for a phase (`tag`: "" for the memory phase, the
    workload key for a disk-tier one). Configs are rendered under `workdir`."""
    bins = args.bin_dir
    suffix = f"-{tag}" if tag else ""
    render("edge.toml", f"{workdir}/edge{suffix}.toml", values)
    render("nginx.conf", f"{workdir}/nginx{suffix}.conf", values)
    storage = f"file,{values['CACHE_DIR']}/varnish.bin,{args.varnish_file}" if tag else "malloc,1G"
    defs = {
        "edge": Server("edge", "edge", [[f"{bins}/edge", "serve", "--config", f"{workdir}/edge{suffix}.toml"]],
                       ports["EDGE_HTTP"], ports["EDGE_HTTPS"], env={"RUST_LOG": "warn"}),
        "nginx": Server("nginx", "nginx", [["nginx", "-p", workdir, "-c", f"{workdir}/nginx{suffix}.conf"]],
                        ports["NGINX_HTTP"], ports["NGINX_HTTPS"]),
        "varnish": Server("varnish", "Varnish", [[
            "varnishd", "-F", "-n", f"{workdir}/varnish{suffix}", "-f", f"{workdir}/varnish.vcl",
            "-a", f"127.0.0.1:{ports['VARNISH_HTTP']}", "-a", f"127.0.0.1:{ports['VARNISH_PROXY']},PROXY",
            "-s", storage, "-p", "feature=+http2"]], ports["VARNISH_HTTP"]),
        "ceiling": Server("ceiling", "hyper ceiling", [[f"{bins}/bench-ceiling", "--listen",
                                                         f"127.0.0.1:{ports['CEILING']}"]], ports["CEILING"]),
    }
    if args.baseline_bin:
        # The same config on its own ports and its own disk directory (the tier locks it).
        base_cache = os.path.join(values["CACHE_DIR"], "baseline")
        os.makedirs(base_cache, exist_ok=True)
        base_values = dict(values, EDGE_HTTP=ports["BASE_HTTP"], EDGE_HTTPS=ports["BASE_HTTPS"],
                           EDGE_ADMIN=ports["BASE_ADMIN"], CACHE_DIR=base_cache)
        render("edge.toml", f"{workdir}/baseline{suffix}.toml", base_values)
        defs["baseline"] = Server("baseline", "edge before",
                                  [[args.baseline_bin, "serve", "--config", f"{workdir}/baseline{suffix}.toml"]],
                                  ports["BASE_HTTP"], ports["BASE_HTTPS"], env={"RUST_LOG": "warn"})
    return defs


def start_servers(defs, names, workdir, servers):
    for name in names:
        servers[name] = defs[name]
        servers[name].start(workdir)
        wait_port(servers[name].http_port)


def stop_servers(servers, names):
    for name in names:
        if name in servers:
            servers.pop(name).stop()


def run_rounds(args, wl, servers, workdir, ports, results):
    order = [n for n in wl.servers if n in servers]
    wl.servers = order
    for name in order:  # warm-up run: connections, TLS session state, caches
        measure(servers[name], wl, 1, workdir, ports["ORIGIN"])
    for rnd in range(args.rounds):
        for name in order:
            r = measure(servers[name], wl, args.duration, workdir, ports["ORIGIN"])
            results.setdefault(wl.key, {}).setdefault(name, []).append(r)
            log(f"{wl.key:8} round {rnd + 1} {name:8} {r['rps']:>10,.0f} req/s {r['mbps']:>8,.1f} MB/s "
                f"p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms  server {r['cpu_us_per_req']:.1f} µs/req "
                f"(core {100 * r['server_cpu'] / r['wall']:.0f}%)  loadgen core "
                f"{100 * r['loadgen_cpu'] / r['wall']:.0f}%  errors {r['errors']}  "
                f"origin requests {r['origin_requests']}")


def run(args, ports, values, workdir, servers, wanted, load_before):
    bins = args.bin_dir
    # One certificate for every TLS server: ECDSA P-256, for the edge's names and 127.0.0.1.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "7", "-subj", f"/CN={HOST}",
                    "-addext", "subjectAltName=DNS:*.local.cdn.localhost,DNS:localhost,IP:127.0.0.1",
                    "-keyout", f"{workdir}/key.pem", "-out", f"{workdir}/cert.pem"],
                   check=True, capture_output=True)
    with open(f"{workdir}/hitch.pem", "w") as f:
        f.write(open(f"{workdir}/key.pem").read() + open(f"{workdir}/cert.pem").read())
    render("varnish.vcl", f"{workdir}/varnish.vcl", values)
    render("hitch.conf", f"{workdir}/hitch.conf", values)

    origin = subprocess.Popen(["taskset", "-c", LOADGEN_CORE, f"{bins}/bench-origin", "--listen",
                               f"127.0.0.1:{ports['ORIGIN']}"], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=open(f"{workdir}/origin.log", "w"))
    servers["origin"] = Server("origin", "origin", [])
    servers["origin"].procs.append(origin)
    wait_port(ports["ORIGIN"])

    if args.baseline_bin:
        wanted.add("baseline")
    wls = workloads(ports, args)
    if args.only:
        keep = set(args.only.split(","))
        wls = [w for w in wls if w.key in keep]
    memory_wls = [w for w in wls if w.disk_set is None]
    disk_wls = [w for w in wls if w.disk_set is not None]
    memory = {}
    herd = {}
    results = {}
    phase_names = [n for n in ("edge", "baseline", "nginx", "varnish", "ceiling")
                   if n in wanted or (n == "varnish" and "hitch" in wanted)]

    if memory_wls or not (args.skip_memory and args.skip_herd):
        defs = make_servers(args, ports, dict(values, CACHE_DIR=workdir), workdir, "")
        start_servers(defs, [n for n in phase_names if n in defs], workdir, servers)
        if "hitch" in wanted and "varnish" in servers:
            # hitch + the Varnish tree: CPU and memory of both count.
            hitch = Server("hitch", "Varnish (hitch)", [["hitch", f"--config={workdir}/hitch.conf"]],
                           None, ports["HITCH_HTTPS"])
            hitch.start(workdir)
            wait_port(ports["HITCH_HTTPS"])
            varnish = servers["varnish"]
            hitch_pids = hitch.pids
            hitch.pids = lambda: hitch_pids() + varnish.pids()
            hitch.alive = lambda: all(p.poll() is None for p in hitch.procs + varnish.procs)
            servers["hitch"] = hitch
        caches = [n for n in ("edge", "baseline", "nginx", "varnish") if n in servers]
        log(f"servers up: {', '.join(servers)} (workdir {workdir})")

        # Warm: the hot objects, twice each, and check the second is a hit.
        for name in caches:
            s = servers[name]
            for path in (HOT_1K, HOT_1M):
                get(s.http_port, path)
                status, headers, length = get(s.http_port, path)
                if status != 200:
                    raise RuntimeError(f"{name}: {path} answered {status}")
            for coding in CODINGS.values():
                get(s.http_port, JS_100K, accept_encoding=coding)
                status, headers, length = get(s.http_port, JS_100K, accept_encoding=coding)
                if status != 200:
                    raise RuntimeError(f"{name}: {JS_100K} ({coding}) answered {status}")
                fields = {k.lower(): v for k, v in headers.items()}
                log(f"{name}: {JS_100K} with Accept-Encoding {coding}: "
                    f"{fields.get('content-encoding', 'identity')}, {length:,} bytes, "
                    f"Cache-Status {fields.get('cache-status', '-')}")
            log(f"{name}: hot objects cached")

        if not args.skip_memory:
            for name in caches:
                memory[name] = memory_test(servers[name], servers[name].http_port)
                log(f"{name}: memory {memory[name]}")
        else:
            for name in caches:
                fill_keys(servers[name].http_port, KEYS)

        if not args.skip_herd:
            for tag in range(2):
                for name in caches:
                    herd.setdefault(name, []).append(herd_test(servers[name], servers[name].http_port, ports, tag))
            log(f"herd: {herd}")

        for wl in memory_wls:
            run_rounds(args, wl, servers, workdir, ports, results)
        stop_servers(servers, ["hitch", "edge", "baseline", "nginx", "varnish", "ceiling"])

    # Disk-tier workloads: fresh servers per workload (the edge with a small memory tier,
    # Varnish on file storage), caches filled with the working set only, removed after.
    removing = []
    for wl in disk_wls:
        path, objects = wl.disk_set
        cache_dir = os.path.join(workdir, f"cache-{wl.key}")
        os.makedirs(cache_dir)
        os.chmod(cache_dir, 0o777)  # nginx workers and Varnish's child drop privileges
        phase_values = dict(values, CACHE_DIR=cache_dir, EDGE_MEMORY=args.disk_memory,
                            EDGE_MAX_OBJECT=f"{min(16, parse_size(args.disk_memory) >> 20)}MiB")
        defs = make_servers(args, ports, phase_values, workdir, wl.key)
        names = [n for n in phase_names if n in defs and n in wl.servers]
        start_servers(defs, names, workdir, servers)
        for name in names:
            started = time.time()
            passes = fill_set(servers[name].http_port, ports["ORIGIN"], path, objects)
            log(f"{name}: {objects:,} objects of {path} cached in {passes} passes "
                f"({time.time() - started:.0f}s)")
        for t in removing:  # no removal competes with the measured runs
            t.join()
        run_rounds(args, wl, servers, workdir, ports, results)
        stop_servers(servers, names)
        # Removed while the next workload fills (tens of thousands of files: minutes on a busy
        # disk), done before its measured runs.
        removing.append(threading.Thread(target=shutil.rmtree, args=(cache_dir, True)))
        removing[-1].start()
    for t in removing:
        t.join()

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "memory": memory, "herd": herd}, f, indent=1)
    print(table(results, memory, herd, wls, "baseline" in wanted))
    print(f"\n{args.rounds} rounds x {args.duration}s each, medians; servers pinned to core {SERVER_CORE}, "
          f"load generators to core {LOADGEN_CORE}{f', nice -{args.nice}' if args.nice else ''}; "
          f"load average before the run {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
