"""What the bench/ scripts share: the environment of a bench process and of the processes it
starts, the bench's own PostgreSQL database, a team of videos waiting for callbacks, child
processes, CPU time from /proc, the machine line and the figures (gaps, spread, table, report).

The scripts run as `.venv/bin/python bench/<name>.py`: this folder is first on sys.path, so
`import benchlib` finds this file, and it puts the project root next (memportal, uploads,
memories_emulator). Only the standard library is imported at module level.
"""

import json
import os
import platform
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
_SECRETS = {}


def bench_env(db_name, var_dir, **extra):
    """os.environ plus production settings without the TLS-only parts, on PostgreSQL database
    `db_name` at 127.0.0.1, files under `var_dir` (made here), one secret key and Fernet key for
    every process of the run, the default log level (INFO); `extra` is added last."""
    from cryptography.fernet import Fernet

    Path(var_dir).mkdir(parents=True, exist_ok=True)
    if not _SECRETS:
        _SECRETS.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                        MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode())
    env = {**os.environ, **_SECRETS,
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
           "DJANGO_SETTINGS_MODULE": "memportal.settings", "DJANGO_DEBUG": "false",
           "DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_COOKIES": "false",
           "DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
           "MEMPORTAL_STATIC_MANIFEST": "false", "MEMPORTAL_VAR_DIR": str(var_dir),
           "MEMPORTAL_PUBLIC_URL": "", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("MEMPORTAL_LOG_LEVEL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env=None, check=True, **kwargs):
    """subprocess.run in ROOT, output captured; a failure (with check) exits with its output."""
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
    """Django in this process with `env`; its own log lines at WARNING (children keep INFO)."""
    import logging

    import django

    os.environ.update(env)
    django.setup()
    for name in ("uploads", "memportal", "django"):
        logging.getLogger(name).setLevel(logging.WARNING)


def seed_callback_team(label, count, ready=False):
    """A team whose videos stand as an accepted relay leaves them (processing, UNPARSE, a videoNo),
    or as a PARSE leaves them (ready); returns the team and each video's callback path and videoNo."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from uploads.models import Team, Video, token_digest

    team = Team.objects.create(name=f"bench {label}", slug=f"bench-{label}")
    owner = get_user_model().objects.create_user(username=f"bench-{label}", password=secrets.token_urlsafe(16))
    videos = [Video(team=team, owner=owner, original_name=f"clip-{i}.mp4", content_type="video/mp4", size=1000,
                    sha256="0" * 64, status=Video.Status.READY if ready else Video.Status.PROCESSING,
                    remote_status="PARSE" if ready else "UNPARSE", remote_uploaded_at=timezone.now(),
                    video_no=f"VI{secrets.randbelow(10**17) + 10**17}") for i in range(count)]
    for video in videos:
        video.callback_digest = token_digest(video.callback_token)
    Video.objects.bulk_create(videos)
    return team, [{"path": v.callback_path, "video_no": v.video_no} for v in videos]


def start(argv, env, log_path, **kwargs):
    """A child process in ROOT, its output into the file `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, **kwargs)


def procfile_web_argv(env):
    """The Procfile's `web` line as argv, each ${NAME:-default} expanded with `env`."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), line[4:]))


def start_web(argv, env, log, seconds=60):
    """Start gunicorn (`argv`, in its own session) and wait until GET /healthz on its
    MEMPORTAL_BIND answers 200 with every worker booted; an invalid run if it does not."""
    import urllib.request

    proc = start(argv, env, log, start_new_session=True)
    workers = int(argv[argv.index("--workers") + 1])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{env['MEMPORTAL_BIND']}/healthz", timeout=5) as answer:
                if answer.status == 200 and len(children(proc.pid)) >= workers:
                    return proc
        except OSError:  # not listening yet, or not healthy yet (HTTPError)
            if proc.poll() is not None:
                break
        time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"invalid run: gunicorn did not start; see {log}")


def stop(proc, timeout=30):
    """SIGTERM if it still runs, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu(pid):
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postgres_pids(db_name):
    """Backends of `db_name` and PostgreSQL's own background processes (WAL writer, ...);
    other databases' backends (other people's test runs) are left out."""
    sql = ("select pid from pg_stat_activity where pid <> pg_backend_pid() and "
           f"(datname = '{db_name}' or backend_type <> 'client backend')")
    return [int(p) for p in run(["psql", *PG, "-Atc", sql, "postgres"]).stdout.split()]


def cpu_snapshot(groups):
    """CPU seconds so far of each named group of pids, of the machine, and the monotonic clock."""
    return {"at": time.monotonic(), "machine": busy_seconds(),
            **{name: {pid: proc_cpu(pid) for pid in pids} for name, pids in groups.items()}}


def cpu_spent(before, after, name):
    """CPU seconds of group `name` between two snapshots; a pid seen only after counts whole."""
    return sum(max(cpu - before[name].get(pid, 0.0), 0.0) for pid, cpu in after[name].items())


def busy_seconds():
    """The machine's busy CPU seconds so far: all but idle and iowait, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def busy_cores(seconds):
    """How many cores the machine kept busy over the next `seconds`."""
    busy0 = busy_seconds()
    time.sleep(seconds)
    return (busy_seconds() - busy0) / seconds


def machine(*tools):
    """One line: CPUs, RAM, kernel, Python, load average, then each tool's version."""
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    parts = [f"{os.cpu_count()} CPUs", f"{mem_kib / 2**20:.0f} GiB RAM", f"Linux {platform.release()}",
             f"Python {platform.python_version()}", "load " + ", ".join(f"{x:.2f}" for x in os.getloadavg())]
    for tool in tools:
        if tool == "postgres":
            parts.append("PostgreSQL " + run(["psql", *PG, "-Atc", "show server_version", "postgres"]).stdout.strip())
        else:
            answer = run([tool, "--version"], check=False)
            parts.append(" ".join((answer.stdout or answer.stderr).split()[:2]))  # "curl 7.88.1"
    return ", ".join(parts)


def gaps(times):
    """The differences between consecutive values of `times`, in order."""
    times = sorted(times)
    return [b - a for a, b in zip(times, times[1:])]


def spread(values, stats=(min, statistics.mean, max), digits=3):
    """`values` summed up by `stats` (by default "smallest / mean / largest"), as text; "-" if none."""
    return " / ".join(f"{f(values):.{digits}f}" for f in stats) if values else "-"


def table(header, rows):
    """Text lines of aligned columns: columns of figures right-aligned, words left-aligned."""
    cells = [[str(c) for c in row] for row in (header, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    right = [all(re.fullmatch(r"[-\d.,/=+%() ]+", row[i]) for row in cells[1:]) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()
            for row in cells]


def report(figures, lines, as_json):
    """The figures as JSON, or the human-readable lines."""
    print(json.dumps(figures, indent=2, default=str) if as_json else "\n".join(lines))
