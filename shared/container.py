"""The composition root: the app's services, built in one place from settings and clients.

The process builds one container lazily, on the first trigger or request that needs it (`get_container`);
each service in it is built on first use too, so importing this module loads no SDK, no policy file and
no pipeline. Tests build a container with fakes (`Container.with_fakes`) and install it (`installed`), or
`reset` the process's.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import clients
from .clock import Clock, SystemClock
from .config import RegistryRef, Settings, get_settings

if TYPE_CHECKING:
    from .cleanup import CleanupService
    from .cleanup.stamps import Stamper
    from .registry import RegistryClient
    from .retention.service import RetentionService
    from .verification import Verifier


@dataclass
class Container:
    """Settings, the client factories, and the services built from them on first use (once each)."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    registry_data: Callable[[RegistryRef], RegistryClient] = clients.registry_data
    login_server: Callable[[RegistryRef], str] = clients.login_server
    tasks_client: Callable[[str], Any] = clients.tasks_client

    @classmethod
    def with_fakes(
        cls, settings: Settings, *, verifier: Verifier | None = None, cleanup: CleanupService | None = None
    ) -> Container:
        """A container whose services are the ones given (a test's fakes); the others are built as usual."""
        built = cls(settings)
        if verifier is not None:
            built.verifier = verifier
        if cleanup is not None:
            built.cleanup = cleanup
        return built

    @functools.cached_property
    def verifier(self) -> Verifier:
        from . import telemetry
        from .policy import load_policy
        from .publisher import Publisher
        from .referrers import Attacher
        from .verdicts import VerdictStore
        from .verification import RunQueue, Verifier

        telemetry.configure()
        return Verifier(
            settings=self.settings,
            policy=load_policy(self.settings.policy_path),
            store=VerdictStore(clients.table_client()),
            registry_data=self.registry_data,
            tasks_client=self.tasks_client,
            queue=RunQueue(clients.queue_client()),
            publisher=Publisher(clients.event_publisher()),
            clock=self.clock,
            attacher=Attacher() if self.settings.attach_verdicts else None,
        )

    @functools.cached_property
    def cleanup(self) -> CleanupService:
        """Lab cleanup: plan, execute, extend, runs (shared/cleanup). Its records go to table cleanupruns."""
        from . import telemetry
        from .cleanup import RUNS_TABLE, ArmInventory, CleanupService, RunStore
        from .publisher import Publisher

        telemetry.configure()
        return CleanupService(
            settings=self.settings,
            inventory=ArmInventory(clients.resource_client, clients.lock_client),
            store=RunStore(clients.storage_table(RUNS_TABLE)),
            publisher=Publisher(clients.event_publisher()),
            clock=self.clock,
        )

    @functools.cached_property
    def stamps(self) -> Stamper:
        """Creation stamps of resource groups from resource events (shared/cleanup/stamps)."""
        from .cleanup.inventory import ArmInventory
        from .cleanup.planner import split_list
        from .cleanup.scope import subscriptions_of
        from .cleanup.stamps import Stamper

        return Stamper(
            inventory=ArmInventory(clients.resource_client, clients.lock_client),
            subscriptions=subscriptions_of(self.settings),
            creation_tags=split_list(self.settings.cleanup_creation_tags),
        )

    @functools.cached_property
    def retention(self) -> RetentionService:
        """Image retention: plan, execute, runs (shared/retention). Its records go to table retentionruns;
        the verifications in progress come from the verifier's verdict store (one query per repository)."""
        from . import telemetry
        from .policy import load_policy
        from .publisher import Publisher
        from .retention.inventory import RegistryInventory
        from .retention.records import RUNS_TABLE, RetentionStore
        from .retention.service import RetentionService

        telemetry.configure()
        verifier = self.verifier
        return RetentionService(
            settings=self.settings,
            policy=load_policy(self.settings.policy_path).retention,
            inventory=RegistryInventory(self.registry_data, lambda ref, repo: verifier.history(ref, repo)),
            store=RetentionStore(clients.storage_table(RUNS_TABLE)),
            publisher=Publisher(clients.event_publisher()),
            clock=self.clock,
        )


_current: Container | None = None
_building = threading.Lock()


def get_container() -> Container:
    """The process's container, built from settings on first use."""
    global _current
    with _building:
        if _current is None:
            _current = Container(get_settings())
        return _current


def reset() -> None:
    """Forget the container, the clients, the policy and the health answers (settings changed)."""
    global _current
    from . import health
    from .policy import load_policy

    with _building:
        _current = None
    load_policy.cache_clear()
    clients.reset()
    health.reset()


@contextlib.contextmanager
def installed(container: Container) -> Iterator[Container]:
    """Run with `container` as the process's (a test's fakes); the one before comes back after."""
    global _current
    with _building:
        before, _current = _current, container
    try:
        yield container
    finally:
        with _building:
            _current = before
