#!/usr/bin/env python3
"""Issue 20, items 1 and 2 (runaway chat templates, runners that stop progressing): cases for
bench/hostile, in its style: each a function of the live server returning (held, detail),
registered with @case("area/name"); the whole list is CASES.

bench/hostile (being written on another branch) can take them with

    sys.path.insert(0, os.path.dirname(__file__)); from hostile_cases_runner import CASES as RUNNER_CASES

Run alone, this file starts its own `resident serve` (RESIDENT_HEALTH_TIMEOUT=2s, a synthetic
model `m`) and prints one line per case, then the server's and the runners' peak memory:

    bench/hostile_cases_runner.py [--resident BIN] [--params 20M] [--only TEXT]

Each template case creates a model from `m` with the template as its TEMPLATE, chats with it once
and holds when the answer is a 400 that names the bound the template hit and the model, the
runner's peak memory stayed below its cap, and `m` answers afterwards. The figures printed are
the runner's peak (VmHWM) and the template sandbox's (the runner's child that renders).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


def _children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def _kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Peaks:
    """Samples the peak memory of the server's runners and of their children (template
    sandboxes) every 20 ms while a case runs."""

    def __init__(self, server_pid):
        self.server_pid = server_pid
        self.runner_kb = 0
        self.sandbox_kb = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for r in _children(self.server_pid):
                self.runner_kb = max(self.runner_kb, _kb(r, "VmHWM"))
                for s in _children(r):
                    self.sandbox_kb = max(self.sandbox_kb, _kb(s, "VmHWM"))
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _chat(srv, model, timeout=600):
    return srv.post("/api/chat", {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False,
                                  "options": {"num_predict": 2}}, timeout=timeout)


def _error(body):
    return body.get("error", "") if isinstance(body, dict) else str(body)


# The cap of a 20M synthetic model's runner: predicted 76 MB + 131 MB for a batch's outputs +
# the 512 MB least margin (runner_limits.h). A bigger --params raises it; the check then only says
# the runner stayed below this figure or not.
CAP_20M_KB = 718 * 1000


def template_case(name, template, bounds):
    @case("template/" + name)
    def run(srv):
        model = "tmpl-" + name
        status, body = srv.post("/api/create", {"model": model, "from": "m", "template": template, "stream": False})
        if status != 200:
            return False, f"create: {status} {body}"
        with Peaks(srv.pid) as peaks:
            t0 = time.time()
            status, body = _chat(srv, model)
            took = time.time() - t0
        error = _error(body)
        after, _ = _chat(srv, "m")
        srv.post("/api/delete", {"model": model})  # leaves the server as it found it
        problems = []
        if status != 400:
            problems.append(f"status {status}, not 400")
        if not any(b in error for b in bounds):
            problems.append(f"message names none of {bounds}")
        if f"chat template of {model}" not in error:
            problems.append("message does not name the model")
        if peaks.runner_kb > CAP_20M_KB:
            problems.append(f"runner peak {peaks.runner_kb / 1000:.0f} MB above the 20M model's cap")
        if after != 200:
            problems.append(f"the next chat on m: {after}")
        detail = (f"{status} in {took:.1f} s \"{error[:90]}\"; runner peak {peaks.runner_kb / 1000:.0f} MB "
                  f"(cap {CAP_20M_KB / 1000:.0f} MB), sandbox peak {peaks.sandbox_kb / 1000:.0f} MB")
        return not problems, ("; ".join(problems) + " -- " if problems else "") + detail
    return run


MEMORY = "needed more than"
TIME = "did not finish rendering within"
template_case("range-999999999", "{% for x in range(999999999) %}{{x}}{% endfor %}", [MEMORY, TIME])
template_case("string-times-999999999", '{{ "a" * 999999999 }}', [MEMORY])
template_case("recursive-macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ["recursed too deeply"])
template_case("nested-range-loops",
              "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", [TIME])
template_case("content-times-100000", "{% for m in messages %}{{ m.content * 100000 }}{% endfor %}", [TIME, MEMORY])


@case("template/spin-with-stop-and-same-weights")
def spin_with_stop(srv):
    """A spinning template's request, a stop of its model and a chat on `m` (the same weights)
    at once: held when all three answer (400, 200, 200) and the model is unloaded."""
    model = "tmpl-spin"
    srv.post("/api/create", {"model": model, "from": "m", "stream": False,
                             "template": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"})
    results = {}

    def run(key, fn):
        results[key] = fn()

    spin = threading.Thread(target=run, args=("spin", lambda: _chat(srv, model)))
    spin.start()
    # Its request holds the model (and renders) once /api/ps shows it active.
    srv.wait_for(lambda: any(m["name"].startswith(model + ":") and m["active_requests"] >= 1 for m in srv.ps()), limit=60)
    t0 = time.time()
    others = [threading.Thread(target=run, args=("stop", lambda: srv.post("/api/generate", {"model": model, "keep_alive": 0}))),
              threading.Thread(target=run, args=("m", lambda: _chat(srv, "m")))]
    for t in others:
        t.start()
    for t in [spin] + others:
        t.join(timeout=600)
    took = time.time() - t0
    loaded = any(m["name"].startswith(model + ":") for m in srv.ps())
    srv.post("/api/delete", {"model": model})
    got = {k: v[0] for k, v in results.items()}
    held = got == {"spin": 400, "stop": 200, "m": 200} and not loaded
    return held, f"spin {got.get('spin')}, stop {got.get('stop')}, m {got.get('m')} within {took:.1f} s; " + \
        ("still loaded" if loaded else "unloaded")


# ---- alone: a server of its own -------------------------------------------------------------------

class _Server:
    def __init__(self, resident, models, env):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.work = tempfile.mkdtemp(prefix="hostile-runner-")
        full = dict(os.environ, RESIDENT_HOST=f"127.0.0.1:{self.port}", RESIDENT_MODELS=os.path.join(self.work, "store"),
                    RESIDENT_SPARE_RUNNER="0", RESIDENT_LEARNER_STATE="off")
        full.update(env)
        self.log_path = os.path.join(self.work, "server.log")
        self.proc = subprocess.Popen([resident, "serve", "--models-dir", models], env=full,
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        end = time.time() + 60
        while time.time() < end:
            try:
                if self.call("GET", "/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def call(self, method, path, body=None, headers=None, timeout=300):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text.decode("utf-8", "replace")

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def ps(self):
        return self.call("GET", "/api/ps")[1].get("models", [])

    def alive(self):
        return self.proc.poll() is None

    def wait_for(self, condition, limit=120):
        end = time.time() + limit
        while time.time() < end:
            if condition():
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resident", default=os.path.join(ROOT, "build", "bin", "resident"))
    ap.add_argument("--params", default="20M")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    cache = os.path.expanduser("~/.cache/resident/hostile")
    os.makedirs(cache, exist_ok=True)
    gguf = os.path.join(cache, f"m-{args.params}.gguf")
    if not os.path.exists(gguf):
        subprocess.run([args.resident, "synth", gguf, "--params", args.params], check=True, stdout=subprocess.DEVNULL)
    models = tempfile.mkdtemp(prefix="hostile-models-")
    os.symlink(gguf, os.path.join(models, "m.gguf"))
    srv = _Server(args.resident, models, {"RESIDENT_HEALTH_TIMEOUT": "2s"})
    failed = 0
    with Peaks(srv.pid) as peaks:
        for name, fn in CASES:
            if args.only not in name:
                continue
            try:
                held, detail = fn(srv)
            except Exception as e:  # a case that raised failed
                held, detail = False, f"raised {e!r}"
            failed += 0 if held else 1
            print(f"{'held' if held else 'FAILED':7} {name:44} {detail}", flush=True)
    server_kb = _kb(srv.pid, "VmHWM")
    alive = srv.alive()
    srv.stop()
    print(f"server peak {server_kb / 1000:.0f} MB ({'alive' if alive else 'DIED'}), runners' peak "
          f"{peaks.runner_kb / 1000:.0f} MB, template sandboxes' peak {peaks.sandbox_kb / 1000:.0f} MB")
    return 1 if failed or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
