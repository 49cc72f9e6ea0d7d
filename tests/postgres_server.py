"""A PostgreSQL server for the tests: the one RUNNER_TEST_POSTGRES_URL names, or a throwaway
cluster started from the server binaries when they are installed.

`.ci/run` starts one with this module (`python tests/postgres_server.py start DIR` prints its
URL; `stop DIR` stops it) and exports RUNNER_TEST_POSTGRES_URL; on a developer machine with the
binaries, the tests start their own (once per pytest process, stopped at exit). Each test makes
a database of its own on the server (`fresh_database`). As root, the cluster runs as the
`postgres` user (the server refuses to run as root).
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

URL_VARIABLE = "RUNNER_TEST_POSTGRES_URL"
HOW_TO_RUN = (
    f"no PostgreSQL server for the tests: set {URL_VARIABLE}=postgresql+psycopg://USER@127.0.0.1:PORT/postgres "
    "(a role that may create databases), or install the server binaries (apt-get install postgresql) "
    "so the tests start their own; `bash .ci/run` does both"
)
START_SECONDS = 60  # pg_ctl's bound on the server's start and stop
USER = "runner"


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or the newest under /usr/lib/postgresql."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def start(folder: Path) -> str:
    """Create a cluster in `folder` and start it on 127.0.0.1 on a free port; return its URL."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError(HOW_TO_RUN)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--no-sync",
         "--locale=C", "--encoding=UTF8"],
        check=True, capture_output=True, timeout=START_SECONDS,
    )
    for _ in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -F -c max_connections=200"
        started = subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
             "-o", options, "-w", "-t", str(START_SECONDS), "start"],
            capture_output=True, text=True, timeout=START_SECONDS + 10,
        )
        if started.returncode == 0:
            return f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
    log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}{log}")


def stop(folder: Path) -> None:
    binaries = server_binaries()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if binaries is not None and (folder / "data" / "postmaster.pid").exists():
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w",
             "-t", str(START_SECONDS), "stop"], capture_output=True, timeout=START_SECONDS + 10,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@functools.cache
def server_url() -> str | None:
    """The server of this test process: the variable's, else a throwaway cluster; None when there is neither."""
    if os.environ.get(URL_VARIABLE):
        return os.environ[URL_VARIABLE]
    if server_binaries() is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        return None
    folder = Path(tempfile.mkdtemp(prefix="runner-pg-"))
    atexit.register(shutil.rmtree, folder, True)
    atexit.register(stop, folder)
    return start(folder)


def fresh_database(server: str) -> str:
    """Create an empty database on the server and return its URL (the tests never share one)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(start(where))
    else:
        stop(where)
