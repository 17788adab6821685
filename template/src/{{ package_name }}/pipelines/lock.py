"""The retraining lock: one run at a time, across processes and pods that share `logs/`.

The lock is a folder of numbered generations (`1.json`, `2.json`, ...). Taking it means creating
the next generation with O_EXCL while the newest one is released or abandoned: whatever the
race, on one host or over NFS, exactly one contender creates it. A generation is written only by
the process holding it and never deleted while it can matter, so there is no moment where two
contenders both see a stale lock, both remove it and both re-create it.

The holder records its host, pid and a lease (`expires`), and renews the lease while it runs
(`heartbeat`). A lease not renewed for `monitoring.retrain_lease_s` is abandoned: its pod died.
On the holder's own host (same pid namespace) a dead pid is seen at once, without waiting.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..console import console
from ..errors import ProjectError

KEEP_GENERATIONS = 8  # older ones are deleted by the next holder
MAX_HEARTBEAT_S = 60.0


def _pid_namespace() -> str:
    """Which pid namespace this process lives in: pids compare only within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: the host name alone tells
        return ""


@dataclass(frozen=True)
class Holder:
    host: str
    pid_namespace: str
    pid: int
    token: str
    since: float
    expires: float
    released: bool = False


class RetrainLock:
    """A lease-based lock in `folder`; `host` defaults to this machine's (a pod's) name."""

    def __init__(self, folder: Path, lease_s: float, host: str | None = None) -> None:
        self.folder = folder
        self.lease_s = lease_s
        self.host = host or socket.gethostname()
        self._namespace = _pid_namespace()
        self._mine: tuple[int, Holder] | None = None  # the generation this object holds

    # Taking and giving back ------------------------------------------------------------------

    def acquire(self, pid: int | None = None) -> bool:
        """Take the lock unless a live holder has it; never waits."""
        newest, record = self._newest()
        if newest and not self._free(newest, record):
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        holder = Holder(
            host=self.host,
            pid_namespace=self._namespace,
            pid=pid or os.getpid(),
            token=uuid.uuid4().hex,
            since=now,
            expires=now + self.lease_s,
        )
        try:
            fd = os.open(self._file(newest + 1), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another contender took this generation first
            return False
        try:
            os.write(fd, json.dumps(asdict(holder)).encode())
        finally:
            os.close(fd)
        self._mine = (newest + 1, holder)
        self._prune(newest + 1)
        return True

    def hand_over(self, pid: int) -> None:
        """The background run `pid` now holds the lock (it renews and releases it)."""
        newest, record = self._newest()
        if self._mine and newest == self._mine[0] and record and record.released:
            return  # the run was quicker: it already finished and released the lock
        self._rewrite(pid=pid, expires=time.time() + self.lease_s)

    def adopt(self) -> bool:
        """In the run a trigger started: take over the lock it holds for us (or our parent)."""
        newest, record = self._newest()
        mine = (
            isinstance(record, Holder)
            and not record.released
            and self._same_host(record)
            and record.pid in (os.getpid(), os.getppid())
        )
        if not mine:
            return False
        self._mine = (newest, record)
        self._rewrite(pid=os.getpid(), expires=time.time() + self.lease_s)
        return True

    def renew(self) -> bool:
        """Push the lease's expiry on; False once another holder broke it (we were too slow)."""
        if self._mine is None:
            return False
        self._rewrite(expires=time.time() + self.lease_s)
        newest, _ = self._newest()
        return newest == self._mine[0]

    def release(self) -> None:
        if self._mine is not None:
            self._rewrite(released=True)
            self._mine = None

    @contextmanager
    def heartbeat(self, interval: float | None = None) -> Iterator[None]:
        """Hold the lock for the block, renewing its lease; release it at the end."""
        every = interval or min(MAX_HEARTBEAT_S, self.lease_s / 4)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                try:
                    if not self.renew():
                        console.print(f"[red]Retraining lock lost:[/] {self.folder} moved on.")
                        return
                except OSError as exc:  # a full or flaky volume: retry on the next beat
                    console.print(f"[yellow]Warning:[/] cannot renew {self.folder}: {exc}")

        thread = threading.Thread(target=beat, name="retrain-lock-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.release()

    # Looking -------------------------------------------------------------------------------

    def holder(self) -> Holder | None:
        """The live holder, None when the lock is free (released, abandoned or never taken)."""
        newest, record = self._newest()
        if not newest or self._free(newest, record):
            return None
        return record if isinstance(record, Holder) else None

    def running(self) -> bool:
        """A run holds the lock and is alive (or its lease is fresh)."""
        newest, record = self._newest()
        return bool(newest) and not self._free(newest, record)

    def _free(self, generation: int, record: Holder | None) -> bool:
        if record is None:  # just created, being written (or torn): its file's age tells
            try:
                written = self._file(generation).stat().st_mtime
            except FileNotFoundError:
                return True
            return written + self.lease_s <= time.time()
        if record.released or record.expires <= time.time():
            return True
        return self._same_host(record) and not _alive(record.pid)

    def _same_host(self, record: Holder) -> bool:
        return record.host == self.host and record.pid_namespace == self._namespace

    # Files ---------------------------------------------------------------------------------

    def _newest(self) -> tuple[int, Holder | None]:
        """The newest generation's number (0: none yet) and its record (None: unreadable)."""
        if self.folder.is_file():
            raise ProjectError(
                f"{self.folder} is a lock file of an older version of this project: delete it "
                "once no retraining runs (the lock is now a folder)."
            )
        numbers = [int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()]
        if not numbers:
            return 0, None
        newest = max(numbers)
        try:
            raw = json.loads(self._file(newest).read_text())
            return newest, Holder(**raw)
        except (OSError, ValueError, TypeError):
            return newest, None

    def _file(self, generation: int) -> Path:
        return self.folder / f"{generation}.json"

    def _rewrite(self, **changes: object) -> None:
        """Replace our generation's record in one rename: readers see the old or the new one."""
        if self._mine is None:
            raise ProjectError(f"This process holds no retraining lock in {self.folder}.")
        generation, holder = self._mine
        updated = replace(holder, **changes)  # type: ignore[arg-type]
        # Unique: the trigger's hand-over and the run's adoption may write at the same moment.
        partial = self.folder / f".{generation}.{uuid.uuid4().hex}.tmp"
        partial.write_text(json.dumps(asdict(updated)))
        partial.replace(self._file(generation))
        self._mine = (generation, updated)

    def _prune(self, newest: int) -> None:
        for path in self.folder.glob("*.json"):
            if path.stem.isdigit() and int(path.stem) <= newest - KEEP_GENERATIONS:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:  # our own finished child is a zombie until reaped: reap it, it is gone
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
