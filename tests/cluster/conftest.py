"""A real one-node SLURM cluster on localhost for the cluster tests (issue 18).

The session fixture :func:`slurm` starts, in a temporary folder, its own ``munged`` (own key and
socket), ``slurmctld`` and ``slurmd`` with a generated ``slurm.conf`` (one node: this host,
``CPUs=8`` announced with ``SlurmdParameters=config_overrides`` so that two one-CPU array jobs
or one two-task job fit on a small machine; no accounting, no cgroups; ``cred_expire=5`` so a
requeued job starts again after seconds, not the default two minutes), points ``SLURM_CONF`` of
this process (and so of every job and client it starts) at that file, and stops the daemons (by
the pids it started) at the end. Nothing outside the temporary folder is touched.

Without the Debian packages ``slurm-wlm`` and ``munge`` the tests are skipped, except under
``CI=true``, where the fixture installs them with ``apt-get`` (``.ci/run`` runs these tests).
Without the ``[cluster]`` extra (``hydra-submitit-launcher``) they are skipped, and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ensure_installed() -> None:
    if all(shutil.which(b) for b in DAEMONS):
        return
    if not _ci():
        pytest.skip("no local SLURM: apt-get install slurm-wlm munge (CI=true installs them)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "slurm-wlm", "munge"], check=True, env=env)
    missing = [b for b in DAEMONS if not shutil.which(b)]
    assert not missing, f"installed slurm-wlm and munge, still missing: {missing}"


def _ensure_launcher() -> None:
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        if _ci():
            raise
        pytest.skip('no hydra-submitit-launcher: pip install -e ".[cluster]"')


class LocalSlurm:
    """The running cluster: ``conf`` (its ``slurm.conf``), ``root`` (its folder), ``node`` and helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.socket = root / "munge.socket"
        self.procs: list[subprocess.Popen] = []
        self.munged_pid: int | None = None

    # --- start / stop --------------------------------------------------------------------------------
    def start(self) -> LocalSlurm:
        root = self.root
        for sub in ("state", "spool", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        key = root / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}", "--force"], check=True)
        os.chmod(key, 0o400)
        subprocess.run(["munged", "--force", f"--socket={self.socket}", f"--key-file={key}",
                        f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                        f"--seed-file={root / 'munged.seed'}"], check=True)
        self.munged_pid = int(self._wait_for(lambda: (root / "munged.pid").is_file()
                                             and (root / "munged.pid").read_text().strip(), 20, "munged"))
        ctld_port, slurmd_port = _free_ports(2)
        mem_mb = max(1024, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2)
        self.conf.write_text("\n".join([
            "ClusterName=pc3dtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket},cred_expire=5",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "JobRequeue=1",
            "ReturnToService=2",
            "KillWait=30",
            "SlurmdTimeout=60",
            "InactiveLimit=0",
            "MinJobAge=300",
            "SlurmdParameters=config_overrides",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs=8 RealMemory={mem_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
            "",
        ]))
        os.environ["SLURM_CONF"] = str(self.conf)
        log = open(root / "log" / "daemons.out", "ab")  # noqa: SIM115 (closed by the process' end)
        for cmd in (["slurmctld", "-D", "-i", "-f", str(self.conf)], ["slurmd", "-D", "-f", str(self.conf)]):
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
            time.sleep(1.0)
        self._wait_for(self._node_ready, 90, "the node to become idle")
        return self

    def _node_ready(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; see {self.root / 'log'}")
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip().rstrip("*") in ("idle", "mixed", "allocated")

    def _wait_for(self, what, timeout: float, name: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = what()
            if value:
                return value
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {name}; logs in {self.root / 'log'}:\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*")):
            lines = f.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        if self.procs:
            subprocess.run(["scancel", "--full", f"--nodelist={self.node}"], capture_output=True)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        if self.munged_pid:
            try:
                os.kill(self.munged_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.munged_pid = None

    # --- helpers for the tests ---------------------------------------------------------------------------
    def jobs(self) -> list[tuple[str, str]]:
        """``[(job id, state)]`` of the queue (pending and running jobs)."""
        out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True)
        return [tuple(line.split()[:2]) for line in out.stdout.splitlines() if line.strip()]

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as ``{key: value}`` (e.g. ``Restarts``, ``JobState``)."""
        out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True)
        info = {}
        for tok in out.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                info.setdefault(k, v)
        return info


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running one-node SLURM cluster (see the module docstring); ``SLURM_CONF`` points at it."""
    _ensure_installed()
    _ensure_launcher()
    old = os.environ.get("SLURM_CONF")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
