"""What the bench/ scripts share: paths, the environment of a bench process and the processes it
starts, the bench's own PostgreSQL database, machine facts, CPU time from /proc, the memories.ai
emulator's log and state, stopping a child process, saved results and the docs section.

The scripts run as `.venv/bin/python bench/<name>.py`, so this folder is first on sys.path and
`import benchlib` finds this file. Only the standard library is imported at module level.
"""

import json
import os
import platform
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
_SECRETS = {}


# --- environment and database ------------------------------------------------------------------

def bench_env(db_name, var_dir, unset=(), **extra):
    """os.environ plus production settings without the TLS-only parts, on `db_name` at 127.0.0.1,
    with one secret key and Fernet key for this process and every process it starts. `unset` names
    variables to drop besides MEMPORTAL_LOG_LEVEL (the default level applies); `extra` is added last."""
    from cryptography.fernet import Fernet

    if not _SECRETS:
        _SECRETS.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                        MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode())
    env = {**os.environ, **_SECRETS,
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
           "DJANGO_SETTINGS_MODULE": "memportal.settings",
           "DJANGO_DEBUG": "false", "DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_COOKIES": "false",
           "DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
           "MEMPORTAL_STATIC_MANIFEST": "false", "MEMPORTAL_VAR_DIR": str(var_dir),
           "MEMPORTAL_PUBLIC_URL": "", "PYTHONUNBUFFERED": "1"}
    for name in ("MEMPORTAL_LOG_LEVEL", *unset):
        env.pop(name, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env=None, check=True, **kwargs):
    """subprocess.run in ROOT, output captured; a failure (with check) exits with the command and its output."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, **kwargs)
    if check and result.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result


def setup_database(db_name, env):
    """`db_name` dropped, created again and migrated."""
    run(["dropdb", *PG, "--if-exists", "--force", db_name])
    run(["createdb", *PG, db_name])
    run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env=env)


def django_setup(env):
    """Django in this process, with `env`; the uploads logger at WARNING here only (children keep INFO)."""
    import logging

    import django

    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    django.setup()
    logging.getLogger("uploads").setLevel(logging.WARNING)


# --- the machine -------------------------------------------------------------------------------

def machine(**extra):
    """CPUs, RAM, Python, PostgreSQL and kernel versions, then `extra`."""
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {"nproc": os.cpu_count(), "mem_gib": round(mem_kib / 1024 / 1024), "python": platform.python_version(),
            "postgres": run(["psql", *PG, "-Atc", "show server_version", "postgres"]).stdout.strip(),
            "kernel": platform.release(), **extra}


def machine_text(info):
    """machine()'s facts as the docs state them."""
    return (f"{info['nproc']} CPUs, {info['mem_gib']} GiB RAM, Linux {info['kernel']}, Python {info['python']}, "
            f"PostgreSQL {info['postgres']}")


def cpu_ticks():
    """The machine's (idle, all) CPU clock ticks so far, from /proc/stat; idle counts iowait."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def busy_seconds():
    """The machine's busy CPU seconds so far (all but idle and iowait)."""
    idle, total = cpu_ticks()
    return (total - idle) / CLK_TCK


# --- child processes ---------------------------------------------------------------------------

def start_emulator(options, env, log):
    """`manage.py memories_emulator *options` in its own process, its output in the file `log`:
    (the process, its base URL), the URL None if it exited or did not say it within 30 s."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "memories_emulator", *options],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (found := re.search(r"emulator on (http://\S+)", log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            return proc, None
        time.sleep(0.1)
    return proc, found.group(1)


def emulator_state(base_url):
    """The memories.ai emulator's record of what it received (GET /_emulator/state)."""
    with urllib.request.urlopen(base_url + "/_emulator/state", timeout=30) as answer:
        return json.load(answer)


def stop_process(proc, timeout):
    """SIGTERM if it still runs, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- results and docs --------------------------------------------------------------------------

def save_results(var_dir, results):
    (var_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))


def load_results(var_dir):
    """The last run's saved results, with its command line put back into sys.argv for the docs."""
    saved = json.loads((var_dir / "results.json").read_text())
    sys.argv[1:] = saved["argv"]
    return saved


def command_line(name):
    """How bench/<name>.py was run, as the docs show it."""
    return shlex.join([".venv/bin/python", f"bench/{name}.py", *sys.argv[1:]])


def write_section(name, text):
    """`text` between <!-- name:start --> and <!-- name:end --> in docs/benchmarks.md: in place of
    that section, or appended; the file is read right before it is written."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text}\n{end}"
    doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if start in doc and end in doc:
        doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(doc)
