"""The application's services, assembled once per process from settings and clients."""

from __future__ import annotations

import functools

from . import clients, telemetry
from .clock import SystemClock
from .config import get_settings
from .policy import load_policy
from .verdicts import Publisher, VerdictStore
from .verification import RunQueue, Verifier


@functools.cache
def verifier() -> Verifier:
    telemetry.configure()
    settings = get_settings()
    return Verifier(
        settings=settings,
        policy=load_policy(settings.policy_path),
        store=VerdictStore(clients.table_client()),
        registry_data=clients.registry_data,
        tasks_client=clients.tasks_client,
        queue=RunQueue(clients.queue_client()),
        publisher=Publisher(clients.event_publisher()),
        clock=SystemClock(),
    )


def reset() -> None:
    verifier.cache_clear()
    load_policy.cache_clear()
    clients.reset()
