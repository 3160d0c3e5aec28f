#!/usr/bin/env python3
"""Instructions `scimgate serve` executes per request, counted by valgrind's callgrind.

Run through benches/instructions.sh (it builds release and installs valgrind). The count is
of the gateway process in user space, all its threads (the tokio worker, SQLite's, the log
writer); the kernel's part is not counted. For one binary and one sequence of requests it
comes out the same whatever else the machine is doing, so an A/B of two builds shows changes
of a per cent or two, which the wall-clock bench (benches/wire.sh) cannot on this noisy VM.
It is not a time: a memory stall or a system call counts as little.

Each build runs in turn under callgrind: the demo legacy app (the wire bench binary in its
`legacy` role) in its own process, the gateway on a SQLite file with the default profile,
logging at info, one request at a time over one keep-alive connection. Per case: 40 requests
to warm up (under callgrind the first runs of new code are slow enough to reach the mapping's
time budget), the counters zeroed, `requests` counted requests, a dump.

Runs of one build differ by a few per cent (timers and background tasks run during the
count): the builds take turns for `rounds` rounds and the medians are compared, with each
build's range.

usage: instructions.py WIRE_BENCH_BINARY REQUESTS ROUNDS NAME=SCIMGATE_BINARY [NAME=SCIMGATE_BINARY]
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOKEN = "wire-bench-token-0123456789abcdef"
LEGACY_KEY = "wire-legacy-key"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_UP = 40


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + argv


def user(tag, i):
    mail = f"u-{tag}-{i}@example.com"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": f"e-{tag}-{i}",
        "userName": mail,
        "active": True,
        "displayName": f"U {i}",
        "title": "Engineer",
        "emails": [{"primary": True, "type": "work", "value": mail}],
        "name": {"familyName": "F", "givenName": "G"},
    }


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {
            "Authorization": "Bearer " + TOKEN,
            "Content-Type": "application/scim+json",
        }

    def call(self, method, path, body, want):
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        out = resp.read()
        if resp.status != want:
            raise SystemExit(f"{method} {path}: {resp.status} {out[:300]!r}")
        return out


def control(*args):
    subprocess.run(
        ["callgrind_control", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def measure(name, binary, legacy_url, requests, scratch):
    """Instructions per request of each case, one run of `binary`; `name` is unique per run."""
    d = os.path.join(scratch, name)
    os.makedirs(d)
    config = os.path.join(d, "scimgate.toml")
    with open(config, "w") as f:
        f.write(
            # No config poll: it re-reads the configuration and profile every 2 s whatever the
            # load, and under callgrind the counted requests of a case spanned one poll or
            # none, which moved a run by up to 7k instructions per request.
            '[server]\nlisten = "127.0.0.1:0"\nconfig_poll_ms = 0\n'
            f'[auth]\ntokens = ["{TOKEN}"]\n'
            f'[store]\nurl = "sqlite://{d}/store.db"\n'
            '[log]\nlevel = "info"\n[admin]\nenabled = false\n'
            f"[profile]\nname = \"default\"\ndir = '{ROOT}'\n"
        )
    out = os.path.join(d, "callgrind.out")
    log_path = os.path.join(d, "stderr.log")
    env = dict(os.environ)
    env["SCIMGATE_BACKEND__BASE_URL"] = legacy_url
    env["SCIMGATE_BACKEND__AUTH__VALUE"] = LEGACY_KEY
    with open(log_path, "w") as log:
        gw = subprocess.Popen(
            pinned(
                0,
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    "--callgrind-out-file=" + out,
                    binary,
                    "serve",
                    "--config",
                    config,
                ],
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port = None
        for _ in range(600):
            time.sleep(0.5)
            with open(log_path, errors="replace") as f:
                m = re.search(r"serving SCIM at http://127\.0\.0\.1:(\d+)", f.read())
            if m:
                port = int(m.group(1))
                break
            if gw.poll() is not None:
                raise SystemExit(f"{name}: the gateway exited; see {log_path}")
        if port is None:
            raise SystemExit(f"{name}: the gateway did not start within 5 minutes")
        control("-i", "on", str(gw.pid))
        c = Client(port)
        ids = []
        for i in range(20):
            # Names of this build's own: the builds share one legacy app.
            rec = json.loads(c.call("POST", "/scim/v2/Users", user(f"{name}-seed", i), 201))
            ids.append(rec["id"])
        patch = lambda i: {  # noqa: E731
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "title", "value": f"T{i}"}],
        }
        cases = [
            ("GET /Users/{id}", lambda i: c.call("GET", f"/scim/v2/Users/{ids[i % 20]}", None, 200)),
            (
                "filter userName eq",
                lambda i: c.call(
                    "GET",
                    f"/scim/v2/Users?filter=userName%20eq%20%22u-{name}-seed-{i % 20}%40example.com%22",
                    None,
                    200,
                ),
            ),
            ("POST /Users", lambda i: c.call("POST", "/scim/v2/Users", user(f"{name}-post", i), 201)),
            ("PATCH title", lambda i: c.call("PATCH", f"/scim/v2/Users/{ids[i % 20]}", patch(i), 200)),
        ]
        for n, (label, run) in enumerate(cases):
            for i in range(WARM_UP):
                run(requests + i)
            control("-z", str(gw.pid))
            for i in range(requests):
                run(i)
            control("-d", f"case{n}", str(gw.pid))
        dumps = {}
        for f in os.listdir(d):
            if not f.startswith("callgrind.out"):
                continue
            with open(os.path.join(d, f), errors="replace") as fh:
                text = fh.read()
            m = re.search(r"^desc: Trigger: (?:Client Request: |dump )case(\d+)", text, re.M)
            t = re.search(r"^totals: (\d+)", text, re.M)
            if m and t:
                dumps[cases[int(m.group(1))][0]] = int(t.group(1)) / requests
        return [(label, dumps.get(label)) for label, _ in cases]
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=120)
        except subprocess.TimeoutExpired:
            gw.kill()


def main():
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    wire, requests, rounds = sys.argv[1], int(sys.argv[2]), max(1, int(sys.argv[3]))
    builds = [a.split("=", 1) for a in sys.argv[4:]]
    env = dict(os.environ)
    env["WIRE_ROLE"] = "legacy"
    legacy = subprocess.Popen(
        pinned(1, [wire]), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    scratch = tempfile.mkdtemp(prefix="scimgate-instructions-")
    try:
        line = legacy.stdout.readline().strip()
        if not line.startswith("listening at "):
            raise SystemExit(f"the legacy app did not start: {line!r}")
        legacy_url = line[len("listening at "):]
        runs = {name: [] for name, _ in builds}
        for r in range(rounds):
            for name, binary in builds:
                print(
                    f"round {r + 1}: {name} ({binary}) under callgrind, {requests} requests per case",
                    flush=True,
                )
                result = measure(f"{name}{r + 1}", binary, legacy_url, requests, scratch)
                print("  " + ", ".join(f"{label} {v:,.0f}" for label, v in result if v), flush=True)
                runs[name].append(result)
        names = [n for n, _ in builds]
        labels = [label for label, _ in runs[names[0]][0]]
        print(f"\nmedians of {rounds} round(s), instructions per request (min–max)")
        head = f"{'case':22s}" + "".join(f"{n:>30s}" for n in names)
        if len(names) == 2:
            head += f"{names[0] + ' ÷ ' + names[1]:>18s}"
        print(head)
        for i, label in enumerate(labels):
            medians = []
            row = f"{label:22s}"
            for n in names:
                vals = sorted(run[i][1] for run in runs[n] if run[i][1] is not None)
                if not vals:
                    medians.append(None)
                    row += f"{'—':>30s}"
                    continue
                med = vals[len(vals) // 2] if len(vals) % 2 else (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
                medians.append(med)
                row += f"{f'{med:,.0f} ({vals[0]:,.0f}–{vals[-1]:,.0f})':>30s}"
            if len(medians) == 2 and None not in medians:
                row += f"{medians[0] / medians[1]:18.3f}"
            print(row)
    finally:
        legacy.kill()
        keep = os.environ.get("INSTR_KEEP")
        if keep:
            # The dumps, for callgrind_annotate (one per case and run: <run>/callgrind.out.*).
            shutil.copytree(scratch, keep, dirs_exist_ok=True)
            print(f"callgrind dumps kept in {keep}")
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
