"""Runs ACR Task steps for real: buildah builds and pushes, podman runs.

A bounded pool of agents takes runs from a queue. Each run streams its log to a
sink (an append blob, as ACR's log link) and ends Succeeded, Failed, Timeout,
Canceled or Error with the message ACR would give.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .netns import HostSide
from .taskfile import BuildArgs, Step, Task, TaskError, parse_build

log = logging.getLogger("devstack.executor")

RUNC = "/usr/sbin/runc"
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000")
TERMINAL = frozenset({"Succeeded", "Failed", "Canceled", "Error", "Timeout"})  # a run ends in one of these
# What ACR's token service answers a client it does not authorize, as docker/podman print it.
UNAUTHORIZED = (
    "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information."
)
FROM_LINE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class SourceRegistryTask(Task):
    """A task with how its run logs in to its own registry (credentials.sourceRegistry): `denied` says
    why it may not pull from or push to it (ABAC mode without the caller's identity), None if it may."""

    denied: str | None = None


class LogSink(Protocol):
    def write(self, text: str) -> None: ...

    async def close(self, status: str) -> None: ...


@dataclass(frozen=True)
class OutputImage:
    registry: str
    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class RegistryLogin:
    """How a run logs in to its registry's login server, as an ACR Tasks agent does: a token for that
    registry alone (ACR's refresh token, presented with the null GUID user as `az acr login
    --expose-token` documents), over TLS it verifies with `ca_cert`."""

    username: str
    password: str
    ca_cert: Path


@dataclass
class RunJob:
    run_id: str
    registry_name: str
    login_server: str
    task: Task
    timeout: int
    log: LogSink
    on_status: Callable[[str, dict[str, object]], Awaitable[None]]
    prepare_source: Callable[[Path], Awaitable[None]] | None = None
    # None: the run has no login (the unit tests' runs); every pull and push then goes out anonymous.
    login: RegistryLogin | None = None
    # Loopback ports the run may reach (its login server, the blob-download link), from a network
    # namespace of its own (see devstack/netns.py); None: the machine's network (the unit tests' runs).
    reachable_ports: tuple[int, ...] | None = None
    network: HostSide | None = None
    canceled: bool = False
    started: float = 0.0
    output_images: list[OutputImage] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    container: str | None = None
    store: Path | None = None  # the run's own image store (see Executor._buildah)
    runroot: Path | None = None  # its run state: short, podman refuses a runroot over 50 characters


class StepFailed(Exception):
    def __init__(self, message: str, status: str = "Failed") -> None:
        super().__init__(message)
        self.status = status


def _users(path: Path) -> list[int]:
    """Processes whose command line names `path`: the container's conmon, and the `podman container
    cleanup` it starts once the container has exited, which still writes to the store after
    `podman run` has returned."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


async def drop_store(store: Path, wait: float = 30.0) -> None:
    """Remove a run's image store once no process uses it (bounded by `wait`). A build or push killed
    mid-way (cancel, timeout) leaves the overlay driver's mounts behind, which would make the directory
    impossible to remove: unmount them first, deepest first, lazily (nothing uses them any more)."""
    deadline = time.monotonic() + wait
    users = _users(store)
    while users and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        users = _users(store)
    if users:
        log.warning("store %s still used by %s after %.0f s; removing it anyway", store, users, wait)
    prefix = str(store.resolve()) + "/"
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [point for point in (line.split()[1] for line in mounts) if point.startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        umount = await asyncio.create_subprocess_exec("umount", "-l", point)
        await umount.wait()
    shutil.rmtree(store, ignore_errors=True)
    if store.exists():
        log.warning("store %s could not be removed whole", store)


# Each tool a run needs and the Debian package that has it (unshare, nsenter and ip: the run's network).
TOOLS = {
    "podman": "podman",
    "buildah": "buildah",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def missing_engines() -> list[str]:
    """The Debian packages missing for a run."""
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if not os.path.exists(RUNC):
        missing.append("runc")
    return missing


def stamp() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())


class Executor:
    def __init__(self, agents: int, work_root: Path) -> None:
        self._agents = agents
        self._work_root = work_root
        self._queue: asyncio.Queue[RunJob] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._jobs: dict[str, RunJob] = {}

    def start(self) -> None:
        self._work_root.mkdir(parents=True, exist_ok=True)
        self._workers = [asyncio.create_task(self._worker(n)) for n in range(self._agents)]

    async def stop(self) -> None:
        for job in list(self._jobs.values()):
            await self.cancel(job.run_id)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def submit(self, job: RunJob) -> None:
        self._jobs[job.run_id] = job
        self._queue.put_nowait(job)

    async def cancel(self, run_id: str) -> bool:
        job = self._jobs.get(run_id)
        if job is None:
            return False
        job.canceled = True
        await self._kill(job)
        return True

    async def _worker(self, number: int) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._execute(job)
            except Exception:  # one broken run must not take its agent down
                log.exception("run %s crashed", job.run_id)
                await job.on_status("Error", {"runErrorMessage": "internal executor error"})
            finally:
                self._jobs.pop(job.run_id, None)
                self._queue.task_done()

    async def _execute(self, job: RunJob) -> None:
        if job.canceled:
            job.log.write(f"{stamp()} Run ID: {job.run_id} was canceled before it started\n")
            await job.log.close("Canceled")
            await job.on_status("Canceled", {})
            return
        job.started = time.monotonic()
        await job.on_status("Running", {})
        missing = missing_engines()
        if missing:
            message = (
                f"container engine not found: {', '.join(missing)}; install it with "
                f"'apt-get install {' '.join(missing)}'"
            )
            job.log.write(f"{stamp()} {message}\n")
            await job.log.close("Error")
            await job.on_status("Error", {"runErrorMessage": message})
            return
        workdir = Path(tempfile.mkdtemp(prefix=f"{job.run_id}-", dir=self._work_root))
        job.store = Path(tempfile.mkdtemp(prefix=f"{job.run_id}-store-", dir=self._work_root))
        job.runroot = Path(tempfile.mkdtemp(prefix=f"devstack-{job.run_id}-"))
        self._write_login(job)
        status, error = "Succeeded", ""
        try:
            if job.reachable_ports is not None:
                job.network = HostSide(job.runroot, job.reachable_ports)
                await job.network.start()
            if job.prepare_source:
                job.log.write(f"{stamp()} Downloading source code...\n")
                await job.prepare_source(workdir)
            for step in job.task.steps:
                await self._run_step(job, step, workdir)
        except StepFailed as exc:
            status, error = exc.status, str(exc)
        except TaskError as exc:
            status, error = "Failed", str(exc)
        finally:
            if job.network is not None:
                await job.network.close()
            shutil.rmtree(workdir, ignore_errors=True)
            await drop_store(job.store)
            await drop_store(job.runroot)
        if job.canceled:
            status, error = "Canceled", ""
        elapsed = time.monotonic() - job.started
        if status == "Succeeded":
            job.log.write(f"\nRun ID: {job.run_id} was successful after {elapsed:.0f}s\n")
        elif status == "Canceled":
            job.log.write(f"\nRun ID: {job.run_id} was canceled after {elapsed:.0f}s\n")
        else:
            job.log.write(f"\nRun ID: {job.run_id} failed after {elapsed:.0f}s. Error: {error}\n")
        await job.log.close(status)
        extra: dict[str, object] = {
            "outputImages": [image.__dict__ for image in job.output_images],
        }
        if error:
            extra["runErrorMessage"] = error
        await job.on_status(status, extra)

    def _remaining(self, job: RunJob) -> float:
        return job.timeout - (time.monotonic() - job.started)

    async def _run_step(self, job: RunJob, step: Step, workdir: Path) -> None:
        if job.canceled:
            raise StepFailed("canceled", "Canceled")
        remaining = self._remaining(job)
        if remaining <= 0:
            raise StepFailed(f"run timed out after {job.timeout}s", "Timeout")
        limit = min(step.timeout, remaining)
        job.log.write(
            f"{stamp()} Executing step ID: {step.id}. Timeout(sec): {step.timeout}, "
            f"Working directory: '{step.working_directory or ''}'\n"
        )
        started = time.monotonic()
        try:
            if step.kind == "build":
                await self._build(job, step, parse_build(step.args), workdir, limit)
            elif step.kind == "push":
                for image in step.args:
                    await self._push(job, image, limit)
            else:
                await self._cmd(job, step, workdir, limit)
        except StepFailed as exc:
            if step.ignore_errors and exc.status == "Failed":
                job.log.write(f"{stamp()} Step ID: {step.id} failed, ignored: {exc}\n")
                return
            raise
        job.log.write(
            f"{stamp()} Step ID: {step.id} marked as successful "
            f"(elapsed time in seconds: {time.monotonic() - started:.6f})\n"
        )

    @staticmethod
    def _write_login(job: RunJob) -> None:
        """The run's registry login, in its own store: an auth file and the CA its engines trust. Pulls
        and pushes of the run's registry go through its login server, which applies ACR's rules
        (changeable attributes, token scopes) to the run as to anyone."""
        assert job.store is not None
        certs = job.store / "certs"
        certs.mkdir(mode=0o700)
        auths: dict[str, object] = {}
        if job.login is not None:
            shutil.copyfile(job.login.ca_cert, certs / "ca.crt")
            secret = base64.b64encode(f"{job.login.username}:{job.login.password}".encode()).decode()
            auths[job.login_server] = {"auth": secret}
        descriptor = os.open(job.store / "auth.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({"auths": auths}, out)

    @staticmethod
    def _login_args(job: RunJob) -> list[str]:
        assert job.store is not None
        return ["--authfile", str(job.store / "auth.json"), "--cert-dir", str(job.store / "certs")]

    def _in_registry(self, job: RunJob, image: str) -> bool:
        return image.lower().startswith(job.login_server.lower() + "/")

    def _qualify(self, job: RunJob, image: str) -> str:
        """Image names in a DockerBuildRequest are relative to the registry."""
        return image if image.startswith(job.login_server + "/") else f"{job.login_server}/{image}"

    def _refuse(self, job: RunJob, what: str, image: str) -> None:
        """A pull or push of the run's own registry that its login does not allow: the registry's 401, as
        the engine prints it, and the step fails as the engine's exit status fails it."""
        denied = job.task.denied if isinstance(job.task, SourceRegistryTask) else None
        if denied is None:
            return
        action = "pushing" if what == "push" else "pulling"
        job.log.write(f"{stamp()} Error {action} {image}: {UNAUTHORIZED}\n")
        job.log.write(f"{stamp()} devstack: {denied}\n")
        raise StepFailed(f"failed during {what}, err: exit status 125")

    async def _build(self, job: RunJob, step: Step, build: BuildArgs, workdir: Path, limit: float) -> None:
        context = (workdir / build.context).resolve()
        dockerfile = (context / build.dockerfile).resolve()
        for path in (context, dockerfile):
            if not path.is_relative_to(workdir.resolve()):
                raise StepFailed(f"build: path '{path.name}' leaves the build context")
        if not dockerfile.is_file():
            raise StepFailed(f"build: Dockerfile '{build.dockerfile}' not found in the context")
        for base in FROM_LINE.findall(dockerfile.read_text(errors="replace")):
            if base.lower().startswith(job.login_server.lower() + "/"):
                self._refuse(job, "build", base)
        args = [*self._buildah(job), "bud", "--runtime", RUNC, *ULIMITS, *self._login_args(job)]
        args += [*self._network(job), "--layers", "-f", str(dockerfile)]
        for tag in build.tags:
            args += ["-t", tag]
        for value in build.build_args:
            args += ["--build-arg", value]
        for label in build.labels:
            args += ["--label", label]
        if build.target:
            args += ["--target", build.target]
        if build.no_cache:
            args.append("--no-cache")
        args.append(str(context))
        await self._process(job, args, limit, what="build")

    async def _push(self, job: RunJob, image: str, limit: float) -> None:
        if not self._in_registry(job, image):
            raise StepFailed(f"push: '{image}' is not in this registry ({job.login_server})")
        self._refuse(job, "push", image)
        with tempfile.NamedTemporaryFile(dir=self._work_root, suffix=".digest") as digest_file:
            job.log.write(f"{stamp()} Pushing image: {image}, attempt 1\n")
            await self._process(
                job,
                [
                    *self._buildah(job),
                    "push",
                    *self._login_args(job),
                    "--digestfile",
                    digest_file.name,
                    image,
                    f"docker://{image}",
                ],
                limit,
                what="push",
            )
            digest = Path(digest_file.name).read_text().strip()
        repository, _, tag = image[len(job.login_server) + 1 :].rpartition(":")
        job.output_images.append(OutputImage(job.login_server, repository, tag, digest))
        job.log.write(f"{image}: digest: {digest}\n")

    @staticmethod
    def _buildah(job: RunJob) -> list[str]:
        """buildah on the run's own image store, dropped with the run. Every ACR Tasks run has a machine
        of its own; sharing one store, a run's cleanup removed an image another run had just built (same
        name, or identical content and so the same image id): its push failed with "image not known"."""
        assert job.store is not None
        assert job.runroot is not None
        return [
            *Executor._enter(job),
            "buildah",
            "--root",
            str(job.store / "root"),
            "--runroot",
            str(job.runroot),
        ]

    @staticmethod
    def _enter(job: RunJob) -> list[str]:
        return job.network.enter() if job.network is not None else []

    @staticmethod
    def _network(job: RunJob) -> list[str]:
        """RUN steps and containers share the run's namespace: its own login server, nothing else local."""
        return ["--network", "host"] if job.network is not None else []

    @staticmethod
    def _podman(job: RunJob, entered: bool = True) -> list[str]:
        """podman on the run's own image store too: an image pulled by an earlier run (before its
        quarantine, say) is not there to run without a pull."""
        assert job.store is not None
        assert job.runroot is not None
        prefix = Executor._enter(job) if entered else []
        return [
            *prefix,
            "podman",
            "--runtime",
            RUNC,
            "--root",
            str(job.store / "root"),
            "--runroot",
            str(job.runroot),
        ]

    async def _cmd(self, job: RunJob, step: Step, workdir: Path, limit: float) -> None:
        image, *arguments = step.args
        in_registry = self._in_registry(job, image)
        if in_registry:
            self._refuse(job, "container", image)
        # Run ids count from dm1 in every devstack, and podman's container names are machine-wide: two
        # stacks on one machine (make run beside make test) both running dm4 collided ("the container
        # name is already in use", exit 125). The suffix keeps the name unique; the log names the step.
        name = f"{job.run_id}-{step.id}-{secrets.token_hex(4)}".replace("_", "-")
        args = [*self._podman(job), "run", "--rm", "--name", name, *ULIMITS, *self._network(job)]
        started = time.monotonic()
        if in_registry:
            # `podman run` takes no --cert-dir: pull first (a store of its own: always a real pull), then
            # run what was pulled. A pull the registry refuses fails the step as `podman run`'s would.
            await self._process(
                job, [*self._podman(job), "pull", *self._login_args(job), image], limit, "container"
            )
            args.append("--pull=never")
        for variable in (*job.task.env, *step.env):
            args += ["-e", variable]
        if step.entry_point:
            args += ["--entrypoint", step.entry_point]
        if not step.disable_working_directory_override:
            args += ["-v", f"{workdir}:/workspace", "-w", step.working_directory or "/workspace"]
        elif step.working_directory:
            args += ["-w", step.working_directory]
        args += [image, *arguments]
        job.log.write(f"{stamp()} Launching container with name: {step.id}\n")
        job.container = name
        try:
            await self._process(job, args, limit - (time.monotonic() - started), what="container")
        finally:
            job.container = None
        job.log.write(f"{stamp()} Successfully executed container: {step.id}\n")

    async def _process(
        self, job: RunJob, args: list[str], limit: float, what: str, quiet: bool = False
    ) -> None:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        job.process = process
        assert process.stdout is not None

        async def pump() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                if not quiet:
                    job.log.write(chunk.decode("utf-8", "replace"))

        try:
            await asyncio.wait_for(asyncio.gather(pump(), process.wait()), timeout=limit)
        except TimeoutError:
            await self._kill(job)
            raise StepFailed(f"run timed out after {job.timeout}s", "Timeout") from None
        finally:
            job.process = None
        if job.canceled:
            raise StepFailed("canceled", "Canceled")
        if process.returncode != 0:
            raise StepFailed(f"failed during {what}, err: exit status {process.returncode}")

    async def _kill(self, job: RunJob) -> None:
        if job.container:
            remover = await asyncio.create_subprocess_exec(
                *self._podman(job, entered=False),
                "rm",
                "-f",
                "-t",
                "0",
                job.container,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await remover.wait()
        process = job.process
        if process and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
