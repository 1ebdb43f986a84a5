"""Simulated nodes: the hidden truth the router never reads.

A :class:`SimNode` serves ``max_concurrency`` jobs at once and queues up to
``max_queue`` more (then answers 429; places kept from anonymous requests while it has
lately had a keyed one, :func:`LLM_Mesh.core.priority.admits`, as a real node). A slot
that frees goes to the waiter
:func:`LLM_Mesh.core.priority.next_waiter` names (keyed requests before anonymous
ones, with its anti-starvation bound: the same code as ``node/admission.py``, called
through the module so it cannot drift into a copy); a waiter the gateway cancels
leaves the line at once, as a real node's does. A job's time to first token and
generation speed come from the node's own (secret) ``ttft_s`` and
``tokens_per_s`` with log-normal jitter, or a fixed ``slow_latency_s`` while a
scenario has slowed the node down. A killed node refuses connections and
drops the jobs it had; a paused node answers 503 (``unavailable``) at once. A node with an
``answer_status`` (a broken or hostile one: 302, 204, 299...) answers every request with
that HTTP status at once; the gateway decides what it is, as the real one does
(``core/failover.status_outcome``). The node reports back only through :class:`Job`
callbacks and heartbeats, which is all a real gateway gets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core import priority
from LLM_Mesh.simulator.events import EventLoop

__all__ = ["CANCELLED", "Job", "SimNode"]

QUEUED, RUNNING, FINISHED, CANCELLED = 0, 1, 2, 3


class Job(priority.Waiter):
    """One attempt of one request on one node. ``on_first``/``on_end`` are the gateway's;
    ``keyed``: the request's class, ``since``: when it joined the node's line, ``started``:
    when it got a slot (virtual clock)."""

    __slots__ = ("handle", "node", "on_end", "on_first", "request", "started", "state", "tokens")

    def __init__(
        self,
        request: Any,
        node: SimNode,
        tokens: int,
        on_first: Callable[[Job], None],
        on_end: Callable[[Job, str | int], None],
        handle: Any,
        keyed: bool = False,
    ) -> None:
        super().__init__(keyed, 0.0)
        self.request = request
        self.node = node
        self.tokens = tokens
        self.on_first = on_first
        self.on_end = on_end
        self.handle = handle
        self.state = QUEUED
        self.started = -1.0  # never: an answer_status node answers without a slot


class SimNode:
    __slots__ = (
        "active",
        "alive",
        "answer_status",
        "fail_prob",
        "keyed_at",
        "loop",
        "max_concurrency",
        "max_queue",
        "node_id",
        "paused",
        "queue",
        "region",
        "rng",
        "rtt_s",
        "running",
        "slow_latency_s",
        "tokens_per_s",
        "ttft_s",
    )

    def __init__(
        self,
        node_id: str,
        loop: EventLoop,
        rng: random.Random,
        *,
        ttft_s: float,
        tokens_per_s: float,
        max_concurrency: int = 4,
        max_queue: int = 8,
        fail_prob: float = 0.0,
        rtt_s: float = 0.005,
        region: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.loop = loop
        self.rng = rng
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.fail_prob = fail_prob
        self.rtt_s = rtt_s
        self.region = region
        self.alive = True
        self.paused = False  # paused / draining: refuses with 503, like a real node
        self.answer_status: int | None = None  # answers every request with this status
        self.slow_latency_s: float | None = None
        self.running = 0
        self.active: dict[Job, None] = {}
        self.queue: list[Job] = []  # in the order they came
        self.keyed_at: float | None = None  # its last keyed request (core/priority.py)

    @property
    def queued(self) -> int:
        return len(self.queue)

    def submit(self, job: Job) -> None:
        """A request reaches the node (or fails to connect)."""
        if not self.alive:
            self.loop.after(self.rtt_s, _end, (job, "connect_error"))
            return
        if self.paused:
            self.loop.after(self.rtt_s, _end, (job, "unavailable"))
            return
        if self.answer_status is not None:
            self.loop.after(self.rtt_s, _end, (job, self.answer_status))
            return
        now = self.loop.now
        if job.keyed:
            self.keyed_at = now
        keep = priority.keeps_places(self.keyed_at, now)
        if self.running < self.max_concurrency:
            self._start(job)
        elif priority.admits(
            len(self.queue),
            sum(1 for j in self.queue if not j.keyed),
            self.max_queue,
            keyed=job.keyed,
            keep=keep,
        ):
            job.since = self.loop.now
            self.queue.append(job)
        else:
            job.state = FINISHED
            self.loop.after(self.rtt_s, _end_now, (job, "overloaded"))

    def cancel(self, job: Job) -> None:
        """The gateway closed the connection: the node stops generating."""
        if job.state == RUNNING:
            job.state = CANCELLED
            self.active.pop(job, None)
            self._free()
        elif job.state == QUEUED:
            job.state = CANCELLED
            if job in self.queue:  # it leaves the line (node/admission.py's _drop)
                self.queue.remove(job)

    def kill(self) -> None:
        self.alive = False
        for job in list(self.queue):
            if job.state == QUEUED:
                job.state = FINISHED
                self.loop.after(0.0, _end_now, (job, "server_error"))
        for job in self.active:
            job.state = FINISHED
            self.loop.after(0.0, _end_now, (job, "server_error"))
        self.queue.clear()
        self.active.clear()
        self.running = 0

    def _start(self, job: Job) -> None:
        job.state = RUNNING
        job.started = self.loop.now
        self.running += 1
        self.active[job] = None
        if self.slow_latency_s is not None:
            first = self.slow_latency_s * 0.5
            total = self.slow_latency_s
        else:
            jitter = self.rng.lognormvariate(0.0, 0.25)
            first = self.ttft_s * jitter
            total = first + job.tokens / self.tokens_per_s * jitter
        self.loop.after(first, _first, job)
        self.loop.after(total, _done, job)

    def _free(self) -> None:
        self.running -= 1
        queue = self.queue
        while queue and self.running < self.max_concurrency:
            i = priority.next_waiter(queue, self.loop.now)
            priority.pass_over(queue, i)
            self._start(queue.pop(i))


def _first(job: Job) -> None:
    if job.state == RUNNING:
        job.on_first(job)


def _done(job: Job) -> None:
    if job.state != RUNNING:
        return
    node = job.node
    job.state = FINISHED
    node.active.pop(job, None)
    node._free()
    failed = node.fail_prob > 0.0 and node.rng.random() < node.fail_prob
    job.on_end(job, "server_error" if failed else "success")


def _end(arg: tuple[Job, str | int]) -> None:
    job, outcome = arg
    if job.state in (QUEUED, RUNNING):
        job.state = FINISHED
        job.on_end(job, outcome)


def _end_now(arg: tuple[Job, str]) -> None:
    job, outcome = arg
    if job.state != CANCELLED:
        job.on_end(job, outcome)
