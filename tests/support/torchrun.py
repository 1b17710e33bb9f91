"""Start a job with torchrun (loopback only) and kill it, with everything it started."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import tinytorch
from support.processes import TESTS_DIR, running

SRC_DIR = pathlib.Path(tinytorch.__file__).resolve().parents[1]
DDP_TRAIN = TESTS_DIR / "support" / "ddp_train.py"


def torchrun(
    script: pathlib.Path, args: list[str], log: pathlib.Path, nproc: int = 2, cwd: pathlib.Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``torchrun --standalone --nproc_per_node=nproc script args`` in its own session.

    ``--standalone`` binds the rendezvous store to ``localhost:0``, so the kernel picks a free
    port; gloo is kept on the loopback interface. The ranks import the tinytorch this test
    imports. Output (torchrun's and the ranks') goes to ``log``; the job runs in ``cwd``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH")) if p)
    env.update(MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(variable, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",  # what the torchrun command runs, with this interpreter
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
        *args,
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )


def _table() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, process group)`` of every process now."""
    table = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def descendants(roots: set[int]) -> dict[int, int]:
    """``pid -> process group`` of ``roots`` (those still there) and all their descendants."""
    table = _table()
    found = {pid: table[pid][1] for pid in roots if pid in table}
    grew = True
    while grew:
        grew = False
        for pid, (parent, group) in table.items():
            if parent in found and pid not in found:
                found[pid] = group
                grew = True
    return found


def kill_job(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL torchrun, its ranks and their loader workers at once, as a preemption would.

    torchrun starts each rank in a session of its own, so killing torchrun's process group
    alone would leave the ranks running: every process group of the job is killed, after the
    whole tree was listed (a killed parent's children are re-parented and could not be found).

    Returns:
        every pid of the job seen (all gone when this returns, else ``AssertionError``).
    """
    seen: set[int] = {proc.pid}
    for _ in range(50):
        job = descendants(seen)
        alive = {pid: group for pid, group in job.items() if running(pid)}
        seen |= set(job)
        if not alive:
            break
        for group in set(alive.values()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    proc.wait(timeout=10)
    left = [pid for pid in seen if running(pid)]
    assert not left, f"processes of the job still running after SIGKILL: {left}"
    return sorted(seen)


def wait_for(
    proc: subprocess.Popen[bytes], files: list[pathlib.Path], log: pathlib.Path, timeout: float
) -> None:
    """Wait until every file in ``files`` exists; fail (with the job's output) if it ends first."""
    deadline = time.monotonic() + timeout
    while not all(f.exists() for f in files):
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) early:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {[f.name for f in files]} after {timeout} s:\n{tail(log)}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[bytes], log: pathlib.Path, timeout: float) -> None:
    """Wait for the job to exit 0; a job still running after ``timeout`` seconds is a hang."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the job still runs after {timeout} s (a rank waiting forever in a collective?):\n{tail(log)}"
        ) from None
    assert code == 0, f"torchrun exited {code}:\n{tail(log)}"


def tail(log: pathlib.Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
