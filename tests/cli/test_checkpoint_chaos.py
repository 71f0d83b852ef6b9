"""Checkpoints survive SIGKILL at any moment (also mid-save, also with the run folder on another
filesystem), failed renames, and SIGTERM (``last.ckpt`` saved, exit status 143).

The chaos test is ``slow``; knobs (environment variables):

* ``PC3D_CHAOS_TRIALS`` (default 50): SIGKILLs; ``PC3D_CHAOS_SEED`` (default 0): their moments.
* ``PC3D_CHAOS_BASELINE=1``: run the same trials with Lightning's own ``TorchCheckpointIO`` (the
  behaviour before pc3d's plugin): the assertions then fail, which reproduces the bug.

Every trial is ``pc3d-train``'s entry point (``pc3d.cli.train.main``) in a process of its own,
forked from a server process that imported torch / Lightning / Hydra once (so that 50 trials fit
in a few minutes on one core), resuming from ``last.ckpt``; the run folder is on a tmpfs the test
mounts, the system temp dir (``TMPDIR``) a private folder on the disk.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pc3d.io import TEMP_NAME, atomic_write_text
from tests.helpers import TINY_SYNTHETIC

ROOT = Path(__file__).resolve().parents[2]


def _tiny_run(builtin: Path, out: Path) -> list[str]:
    """A tiny autoencoder run that checkpoints ``last.ckpt`` at every step and ``best-*.ckpt`` at
    every validation (every 3 steps; the previous best is removed), and never stops by itself."""
    return ["experiment=ae_synthetic", f"out={out}", f"data.synthetic.root={builtin}",
            *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
            "data.batch_size=4", "data.n_points=256", "data.num_workers=0", "trainer.max_steps=1000000",
            "trainer.max_epochs=100000", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0", "trainer.log_every_n_steps=1",
            "callbacks.last_checkpoint.every_n_train_steps=1",
            "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.save_reconstructions=null",
            "callbacks.lr_monitor=null", "test=false"]


def _env(tmpdir: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmpdir), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PC3D_LOG_DIR": str(tmpdir.parent / "logs")}


def _loadable(path: Path) -> tuple[bool, str]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure counts
        return False, f"{type(exc).__name__}: {exc}"[:300]
    if not isinstance(ckpt, dict) or not ckpt.get("state_dict"):
        return False, "no state_dict"
    return True, str(ckpt.get("global_step"))


def _exited(pid: int) -> bool:
    """True once the (not yet reaped) child ``pid`` has exited."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _temps(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if TEMP_NAME.match(p.name)) if d.is_dir() else []


# --------------------------------------------------------------------------------------------- fast


def test_plugin_writes_in_the_target_dir_and_a_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    from pc3d.callbacks.checkpoint_io import AtomicCheckpointIO, checkpoint_plugins

    io = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)
    assert _loadable(target) == (True, "1")

    renames = []
    real_replace = os.replace

    def replace(src, dst):
        renames.append((Path(src), Path(dst)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, target)
    monkeypatch.setattr(os, "replace", real_replace)
    (src, dst), = renames
    assert dst == target and src.parent == target.parent and TEMP_NAME.match(src.name), src  # staged beside it
    assert _loadable(target) == (True, "1")  # the old checkpoint is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # and no temp file is left

    # an error while serialising (e.g. a full disk mid-write) behaves the same
    def full_disk(obj, fh):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert _loadable(target) == (True, "1") and sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]

    io.remove_checkpoint(target)
    io.remove_checkpoint(target)  # a missing file is fine
    assert not target.exists()
    assert [type(p).__name__ for p in checkpoint_plugins()] == ["AtomicCheckpointIO"]
    mine = AtomicCheckpointIO()
    assert checkpoint_plugins([mine]) == [mine]  # a user's own CheckpointIO wins


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    from pc3d.callbacks.checkpoint_io import remove_stale_checkpoint_temps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".last.{dead.pid}.0123abcd.pc3d-tmp.ckpt"
    live = tmp_path / f".last.{os.getppid()}.0123abcd.pc3d-tmp.ckpt"  # a live writer's save in progress
    own = tmp_path / f".best.{os.getpid()}.89abcdef.pc3d-tmp.ckpt"  # this process at start: a reused pid
    other = tmp_path / ".last.ckpt.tmp"  # not ours
    for p in (stale, live, own, other):
        p.write_bytes(b"x")
    atomic_write_text(tmp_path / "kept.txt", "ok")
    removed = remove_stale_checkpoint_temps([tmp_path, None, tmp_path / "missing"])
    assert sorted(removed) == sorted([stale, own])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "kept.txt"])


def test_sigterm_saves_last_ckpt_and_exits_143(tiny_builtin, tmp_path):
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.ckpt"
    (tmp_path / "systmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pc3d.cli.train", *_tiny_run(tiny_builtin, out)],
                            cwd=tmp_path, env=_env(tmp_path / "systmp"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ckpt.exists(), "no last.ckpt written"
        step_before = int(_loadable(ckpt)[1])
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, log[-3000:]
    ok, step = _loadable(ckpt)
    assert ok and int(step) >= step_before, (step, log[-3000:])
    assert "SIGTERM: saved" in log and "Traceback" not in log, log[-3000:]
    assert not _temps(ckpt.parent) and not list((tmp_path / "systmp").iterdir())


# --------------------------------------------------------------------------------------------- chaos

SERVER = textwrap.dedent("""
    # Fork server: imports once, then forks one pc3d-train (pc3d.cli.train.main) per request.
    import json, os, sys, traceback
    import torch, lightning, hydra, rich  # noqa: F401  (heavy imports, done once)
    import pc3d.models, pc3d.data, pc3d.callbacks, pc3d.callbacks.checkpoint_io, pc3d.cli.train  # noqa: F401

    def child(req):
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdin = open(os.devnull)
        code = 1
        try:
            if req.get("baseline"):  # Lightning's own TorchCheckpointIO (fsspec staging in TMPDIR)
                import pc3d.callbacks.checkpoint_io as cio
                cio.checkpoint_plugins = lambda plugins=None: [] if plugins is None else list(plugins)
            sys.argv = ["pc3d-train", *req["argv"]]
            pc3d.cli.train.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "run":
            pid = os.fork()
            if pid == 0:
                child(req)
            print(json.dumps({"pid": pid}), flush=True)
        elif req["cmd"] == "wait":
            _, status = os.waitpid(req["pid"], 0)
            print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
""")


class ForkServer:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (status {self.proc.wait()})")
        return json.loads(line)

    def _ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def run(self, argv: list[str], log: Path, baseline: bool) -> int:
        return self._ask(cmd="run", argv=argv, log=str(log), baseline=baseline)["pid"]

    def wait(self, pid: int) -> int:
        return self._ask(cmd="wait", pid=pid)["status"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def tmpfs(tmp_path):
    """A tmpfs mounted for the test (another filesystem than the system temp dir)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mount -t tmpfs needs root: the chaos test needs the run folder on a filesystem of its own")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({r.stderr.strip() or r.returncode}): the chaos test "
                    "needs the run folder on a filesystem of its own")
    try:
        assert os.stat(mnt).st_dev != os.stat(tmp_path).st_dev
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _tmp_listing() -> set[str]:
    """pc3d-ish names in the system temp dir (checkpoints, pc3d temp files)."""
    try:
        return {n for n in os.listdir("/tmp") if n.endswith(".ckpt") or "pc3d-tmp" in n}
    except OSError:
        return set()


@pytest.mark.slow
def test_chaos_sigkill_during_training_and_saves(tiny_builtin, tmpfs, tmp_path):
    n_trials = int(os.environ.get("PC3D_CHAOS_TRIALS", "50"))
    rng = random.Random(int(os.environ.get("PC3D_CHAOS_SEED", "0")))
    baseline = os.environ.get("PC3D_CHAOS_BASELINE", "") not in ("", "0")
    out = tmpfs / "run"
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    systmp = tmp_path / "systmp"  # the children's system temp dir, on the disk (not the tmpfs)
    systmp.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    tmp_before = _tmp_listing()
    base = _tiny_run(tiny_builtin, out)
    server = ForkServer(_env(systmp), tmp_path)

    score = {"trials": 0, "unloadable_last": 0, "unloadable_other": 0, "resume_failures": 0, "resumed": 0,
             "killed_mid_save": 0, "max_step": -1, "leaked_temps": 0, "leaked_system_tmp": 0}
    problems: list[str] = []
    startup = None  # seconds from start to the first last.ckpt (calibrates the kill window)
    try:
        for i in range(n_trials):
            resume = last.exists()
            argv = [*base, f"ckpt_path={last}"] if resume else base
            log = logs / f"trial{i:03d}.log"
            stamp = last.stat().st_mtime_ns if last.exists() else None
            t0 = time.monotonic()
            pid = server.run(argv, log, baseline)
            if startup is not None and rng.random() < 0.25:  # a kill during start-up / resume
                time.sleep(rng.uniform(0.0, startup))
            else:  # a kill while training: after this run's first save, at a random moment of the next second
                while time.monotonic() - t0 < 300:
                    if (last.exists() and last.stat().st_mtime_ns != stamp) or _exited(pid):
                        break
                    time.sleep(0.01)
                startup = time.monotonic() - t0 if startup is None else startup
                time.sleep(rng.uniform(0.0, 1.0))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = server.wait(pid)
            score["trials"] += 1
            text = log.read_text(errors="replace")
            if status not in (-signal.SIGKILL, 0) or "Traceback" in text:
                score["resume_failures"] += 1
                problems.append(f"trial {i}: status {status}\n{text[-2000:]}")
            if resume and "Restored all states from the checkpoint" in text:
                score["resumed"] += 1
            temps = _temps(ckpt_dir)
            if any(int(TEMP_NAME.match(t.name)["pid"]) == pid for t in temps):
                score["killed_mid_save"] += 1
            if last.exists():
                ok, info = _loadable(last)
                if not ok:
                    score["unloadable_last"] += 1
                    problems.append(f"trial {i}: last.ckpt ({last.stat().st_size} bytes) unloadable: {info}")
                    last.unlink()  # as a user would: resume from scratch
                else:
                    if int(info) > score["max_step"]:  # this trial saved, so it went past the start-up clean-up
                        older = [t for t in temps if int(TEMP_NAME.match(t.name)["pid"]) != pid]
                        if older:
                            problems.append(f"trial {i}: temp files of killed saves not cleaned at start: {older}")
                    score["max_step"] = max(score["max_step"], int(info))
            for p in sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []:
                if p != last and not TEMP_NAME.match(p.name) and not _loadable(p)[0]:
                    score["unloadable_other"] += 1
                    problems.append(f"trial {i}: {p.name} ({p.stat().st_size} bytes) unloadable")
                    p.unlink()

        # a last resume, not killed: it must clean up, train 2 more steps and finish
        final = [a for a in base if not a.startswith("trainer.max_steps=")]
        final += [f"trainer.max_steps={score['max_step'] + 2}", *([f"ckpt_path={last}"] if last.exists() else [])]
        log = logs / "final.log"
        status = server.wait(server.run(final, log, baseline))
        text = log.read_text(errors="replace")
        if status != 0:
            score["resume_failures"] += 1
            problems.append(f"final resume: status {status}\n{text[-3000:]}")
        ok, info = _loadable(last) if last.exists() else (False, "missing")
        if not ok or int(info) != score["max_step"] + 2:
            problems.append(f"final last.ckpt: {info} (expected step {score['max_step'] + 2})")
    finally:
        server.close()
    leaked = _temps(ckpt_dir)
    sys_leaked = sorted(str(p) for p in systmp.rglob("*") if p.is_file())
    sys_leaked += sorted(_tmp_listing() - tmp_before)
    score["leaked_temps"], score["leaked_system_tmp"] = len(leaked), len(sys_leaked)
    print("chaos scorecard:", json.dumps(score), f"startup_s={startup:.2f}")
    if leaked or sys_leaked:
        problems.append(f"leaked temp files: {[str(p) for p in leaked]} {sys_leaked[:10]}")
    assert not problems, "\n".join(problems[:10]) + f"\n{score}"
    assert score["unloadable_last"] == 0 and score["resume_failures"] == 0
    if n_trials >= 20:  # the kills did land in the middle of saves and on resumed runs
        assert score["killed_mid_save"] > 0 and score["resumed"] > 0, score
