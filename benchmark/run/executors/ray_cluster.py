"""The Ray executor: training jobs and cells run as Ray tasks on a local instance or a cluster.

What crosses the network: the frozen job and cell descriptions, the environment (device, profile,
data directory), checkpoints (weights on the CPU), test points and given defenses
(``benchmark.evaluate``'s models: their state dicts and the code that builds them,
``benchmark.run.in_memory``) through Ray's object store, and the records that come back.  Workers
write nothing: the driver saves every checkpoint and record as it arrives, so the store stays
consistent and resumable whatever the workers do.  A worker that trains loads the dataset from its
own data directory, once per worker process.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import torch

from benchmark.config.run_config import RunConfig
from benchmark.run import in_memory
from benchmark.run.build import Build, worker_build
from benchmark.run.driver import Driver
from benchmark.run.environment import Environment, configure_worker
from benchmark.run.evaluation import CellOutcome, Points, evaluate_cell, evaluate_clean
from benchmark.run.plan import Cell, CleanEvaluation, Plan, TrainingJob
from benchmark.run.progress import Reporter
from benchmark.run.training import TrainedDefense, load_cached, train
from benchmark.store.checkpoints import Checkpoint
from foundation.errors import BenchError

INSTALL = 'pip install -e ".[ray]"'
#: How often Ray retries a task whose worker process died (an exception raised by the task is not retried).
TASK_RETRIES = 3
#: The leaderboard is rewritten as cells land, at most this often (seconds), so a long run shows partial results.
LEADERBOARD_EVERY_S = 30.0

#: Restored defenses of this worker process, by checkpoint key (a worker evaluates many cells of one defense).
_RESTORED: dict[str, TrainedDefense] = {}


def _restored(job: TrainingJob, checkpoint: Checkpoint, env: Environment, build: Build) -> TrainedDefense:
    if job.key not in _RESTORED:
        if len(_RESTORED) >= 4:
            _RESTORED.pop(next(iter(_RESTORED)))
        _RESTORED[job.key] = TrainedDefense.restore(job, checkpoint, env, build)
    return _RESTORED[job.key]


def _build(env: Environment, norm: str, models: bytes | None) -> Build:
    return worker_build(env.profile.name, env.dataset, norm, in_memory.installed(models))


def _train_task(
    job: TrainingJob,
    env: Environment,
    norm: str,
    threads: int,
    models: bytes | None,
    *dependencies: Checkpoint,
) -> Checkpoint:
    configure_worker(threads)
    build = _build(env, norm, models)
    pairs = zip(job.dependencies, dependencies, strict=True)
    trained = {dep.spec.name: _restored(dep, ckpt, env, build).defense for dep, ckpt in pairs}
    return train(job, env, trained, Reporter(False), build)


def _clean_task(
    job: CleanEvaluation,
    training: TrainingJob,
    checkpoint: Checkpoint,
    points: Points,
    env: Environment,
    norm: str,
    threads: int,
    models: bytes | None,
) -> dict[str, Any]:
    configure_worker(threads)
    return evaluate_clean(job, _restored(training, checkpoint, env, _build(env, norm, models)), points, env)


def _cell_task(
    cell: Cell,
    training: TrainingJob,
    checkpoint: Checkpoint,
    clean: dict[str, Any],
    points: Points,
    env: Environment,
    norm: str,
    threads: int,
    surrogate: TrainingJob | None,
    surrogate_checkpoint: Checkpoint | None,
    keep_adversarials: bool = False,
    models: bytes | None = None,
) -> CellOutcome:
    configure_worker(threads)
    build = _build(env, norm, models)
    surrogate_defense = None if surrogate is None else _restored(surrogate, surrogate_checkpoint, env, build).defense
    trained = _restored(training, checkpoint, env, build)
    attack = build.attack(cell.attack)
    return evaluate_cell(
        cell, attack, trained, clean, points, env, surrogate_defense, keep_adversarials=keep_adversarials
    )


#: The start of an HTTP/2 connection (the client preface, then an empty SETTINGS frame): a gRPC server, as Ray's
#: GCS and its client server are, answers it with a SETTINGS frame of its own.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4
PROBE_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, on an address where no gRPC server answers (nothing listens, or something that
    is not Ray), instead of Ray's minutes of retries and pages of log lines; a Ray Client address
    (``ray://HOST:PORT``) is checked at its host and port."""
    host, _, port = address.partition("://")[2].rpartition(":") if "://" in address else address.rpartition(":")
    try:
        connection = socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT_S)
    except ValueError:
        raise BenchError(f"--ray-address {address!r} is not HOST:PORT (nor ray://HOST:PORT, nor auto)") from None
    except OSError as error:
        raise BenchError(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); start it with "
            "`ray start --head`, or check --ray-address"
        ) from None
    with connection:
        try:
            connection.sendall(HTTP2_PREFACE)
            frame = connection.recv(9)
        except OSError:  # silent (timed out) or closed on us
            frame = b""
    if len(frame) < 4 or frame[3] != HTTP2_SETTINGS:
        raise BenchError(
            f"{address} answers, but not as a Ray cluster (no gRPC server there); check --ray-address "
            "(`ray start --head` prints the address to use)"
        )


@dataclass
class RayExecutor:
    address: str | None
    workers: int | None
    gpus_per_task: float

    def run(self, plan: Plan, driver: Driver, build: Build) -> None:
        """``build`` serves the driver's process; each worker process builds its own (``worker_build``)."""
        try:
            import ray
        except ImportError:
            raise BenchError(f"--executor ray needs Ray, which is not installed; install it with {INSTALL}") from None
        started_here = not ray.is_initialized()
        if started_here and self.address not in (None, "auto"):
            _check_reachable(self.address)
        if started_here:
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, ValueError) as error:  # ValueError: e.g. ray:// without the ray[client] extra
                reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
                raise BenchError(f"cannot connect to the Ray cluster at {self.address!r}: {reason}") from None
        try:
            _Session(ray, plan, driver, build, self).run()
        finally:
            if started_here:
                ray.shutdown()


class _Session:
    """One run on the cluster: submit, wait, hand results to the driver, keep ``workers`` cells in flight."""

    def __init__(self, ray: Any, plan: Plan, driver: Driver, build: Build, executor: RayExecutor) -> None:
        self.ray, self.plan, self.driver = ray, plan, driver
        cpus = int(ray.cluster_resources().get("CPU", 1))
        largest_node = max(int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"])
        self.workers = executor.workers or cpus
        # Each task takes its share of the cluster's CPUs as torch threads, within what one node has.
        self.threads = max(1, min(cpus // self.workers, largest_node))
        # A training job takes the driver's thread count, the one a local run trains with (within what one node
        # has): the count orders a training's floating-point additions, so equal counts give bit-identical weights.
        self.train_threads = max(1, min(torch.get_num_threads(), largest_node))
        gpus = executor.gpus_per_task if ray.cluster_resources().get("GPU", 0) else 0
        device = "cuda" if gpus else "cpu"
        # Workers never write the checkpoint cache (the driver does); a training job's worker reads MNIST
        # (once per process) from its own data directory; cells get their test points from the driver.
        self.env = replace(driver.env, device=device, cache_dir=None)
        self.norm = driver.config.norm
        options = {"num_cpus": self.threads, "num_gpus": gpus, "max_retries": TASK_RETRIES}
        self.train_task = ray.remote(**{**options, "num_cpus": self.train_threads})(_train_task)
        self.clean_task = ray.remote(**options)(_clean_task)
        self.cell_task = ray.remote(**options)(_cell_task)
        self.locks = ExitStack()
        self.checkpoints: dict[str, Any] = {}  # job key -> object ref of its checkpoint
        self.cleans: dict[str, Any] = {}  # clean key -> object ref of its record
        self.points: dict[tuple[int, int], Any] = {}  # (seed, n) -> object ref of the test points
        self.outstanding: dict[Any, tuple[str, Any]] = {}
        self.rewritten = time.monotonic()
        # The run's given defenses (evaluate's models), put once: every task that builds a defense takes them.
        self.models = ray.put(in_memory.shipped(build.given)) if build.given else None

    def run(self) -> None:
        with self.locks:
            try:
                for job in self.plan.jobs:
                    self._checkpoint(job)
                self.bar = self.driver.reporter.bar(len(self.plan.cells), "cells")
                deferred = self._drain(deque(self.plan.cells), wait=False)
                self._drain(deque(deferred), wait=True)
                self.bar.close()
            except BaseException:
                for ref in self.outstanding:
                    self.ray.cancel(ref, force=True)
                raise

    def _checkpoint(self, job: TrainingJob) -> None:
        """The job's checkpoint in the object store: from the cache, or trained by a task (its lock held by
        the driver until the result is saved)."""
        self.locks.enter_context(self.driver.checkpoint_lock(job))
        cached = load_cached(self.driver.cache, job, self.driver.reporter)
        if cached is not None:
            self.checkpoints[job.key] = self.ray.put(cached)
            self.driver.reporter.log(f"{job.label}: loaded cached checkpoint {job.key}")
            return
        dependencies = [self.checkpoints[dependency.key] for dependency in job.dependencies]
        ref = self.train_task.remote(job, self.env, self.norm, self.train_threads, self.models, *dependencies)
        self.checkpoints[job.key] = ref
        self.outstanding[ref] = ("train", job)
        self.driver.reporter.log(f"{job.label}: training on the cluster")

    def _points(self, seed: int, n: int) -> Any:
        """The test points in the object store (read here once): workers need no dataset to evaluate."""
        if (seed, n) not in self.points:
            self.points[(seed, n)] = self.ray.put(self.driver.env.test_points(seed, n))
        return self.points[(seed, n)]

    def _clean(self, job: CleanEvaluation) -> Any:
        if job.key not in self.cleans:
            stored = self.driver.store.get_clean(job.key)
            if stored is not None:
                self.cleans[job.key] = self.ray.put(stored)
            else:
                training, points = self.plan.job(job.defense_key), self._points(job.seed, job.n_test)
                checkpoint = self.checkpoints[job.defense_key]
                ref = self.clean_task.remote(
                    job, training, checkpoint, points, self.env, self.norm, self.threads, self.models
                )
                self.cleans[job.key] = ref
                self.outstanding[ref] = ("clean", job)
        return self.cleans[job.key]

    def _submit(self, cell: Cell, claim: ExitStack) -> None:
        clean_job = self.plan.clean(cell.clean_key)
        training, surrogate = self.plan.job(cell.defense_key), None
        if cell.surrogate_key:
            surrogate = self.plan.job(cell.surrogate_key)
        ref = self.cell_task.remote(
            cell,
            training,
            self.checkpoints[cell.defense_key],
            self._clean(clean_job),
            self._points(cell.seed, cell.n_test),
            self.env,
            self.norm,
            self.threads,
            surrogate,
            # Ray resolves object refs passed as arguments, not refs nested in other values.
            None if surrogate is None else self.checkpoints[surrogate.key],
            self.driver.config.save_adversarials,
            self.models,
        )
        self.outstanding[ref] = ("cell", claim)

    def _drain(self, queue: deque[Cell], wait: bool) -> list[Cell]:
        """Run the queued cells, ``workers`` at a time; returns those another run holds (when not waiting)."""
        deferred: list[Cell] = []
        in_flight = 0
        while queue or self.outstanding:
            while queue and in_flight < self.workers:
                cell = queue.popleft()
                claim = ExitStack()
                if claim.enter_context(self.driver.claim(cell, wait=wait)):
                    self._submit(cell, claim)
                    in_flight += 1
                else:
                    claim.close()
                    if not wait:
                        deferred.append(cell)
            if not self.outstanding:
                continue
            (done,), _ = self.ray.wait(list(self.outstanding), num_returns=1)
            kind, payload = self.outstanding.pop(done)
            result = self.ray.get(done)
            if kind == "train":
                self.driver.save_checkpoint(payload, result)
            elif kind == "clean":
                self.driver.store.write_clean(result)
            else:
                self.driver.record(result)
                payload.close()  # the cell's claim
                in_flight -= 1
                self.bar.update()
                if time.monotonic() - self.rewritten > LEADERBOARD_EVERY_S:
                    self.driver.leaderboard(partial=True)
                    self.rewritten = time.monotonic()
        return deferred


def build(config: RunConfig) -> RayExecutor:
    return RayExecutor(config.ray_address, config.workers, config.gpus_per_task)
