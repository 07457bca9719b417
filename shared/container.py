"""The composition root: the app's services, built in one place from settings and clients.

The process builds one container lazily, on the first trigger or request that needs it (`get_container`);
each service in it is built on first use too, so importing this module loads no SDK, no policy file and
no pipeline. Tests build a container with fakes and install it (`installed`), or `reset` the process's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import clients
from .config import RegistryRef, Settings, get_settings

if TYPE_CHECKING:
    from .cleanup import CleanupService
    from .clock import Clock
    from .registry import RegistryClient
    from .verification import Verifier


class Container:
    """Settings, the client factories, and the services built from them (once each). A service given to
    the constructor is used as it is: that is how tests put a fake in."""

    def __init__(
        self,
        settings: Settings,
        *,
        verifier: Verifier | None = None,
        cleanup: CleanupService | None = None,
        clock: Clock | None = None,
        registry_data: Callable[[RegistryRef], RegistryClient] = clients.registry_data,
        login_server: Callable[[RegistryRef], str] = clients.login_server,
        tasks_client: Callable[[str], Any] = clients.tasks_client,
    ) -> None:
        self.settings = settings
        self._verifier = verifier
        self._cleanup = cleanup
        self._clock = clock
        self.registry_data = registry_data
        self.login_server = login_server
        self.tasks_client = tasks_client
        self._lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            from .clock import SystemClock

            self._clock = SystemClock()
        return self._clock

    @property
    def verifier(self) -> Verifier:
        with self._lock:
            if self._verifier is None:
                self._verifier = self._build_verifier()
            return self._verifier

    @property
    def cleanup(self) -> CleanupService:
        """Lab cleanup: plan, execute, extend, runs (shared/cleanup). Its records go to table cleanupruns."""
        with self._lock:
            if self._cleanup is None:
                self._cleanup = self._build_cleanup()
            return self._cleanup

    def _build_verifier(self) -> Verifier:
        from . import telemetry
        from .policy import load_policy
        from .publisher import Publisher
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
        )

    def _build_cleanup(self) -> CleanupService:
        from . import telemetry
        from .cleanup import RUNS_TABLE, CleanupService, RunStore
        from .publisher import Publisher

        telemetry.configure()
        return CleanupService(
            settings=self.settings,
            resource_client=clients.resource_client,
            lock_client=clients.lock_client,
            store=RunStore(clients.storage_table(RUNS_TABLE)),
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
