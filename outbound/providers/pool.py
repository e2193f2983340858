"""A bounded pool of sending threads, each with its own SDK client, so connections stay open between requests.

The SDKs' clients are not made to be shared between threads (they keep the
last request and response on themselves), and a client per request would open
a new TCP (and TLS) connection every time. One client per sending thread gives
both: requests run side by side, and each thread reuses its kept-alive
connection for every request it makes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import requests
import urllib3.exceptions

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")


class SendPool(Generic[C]):
    """Up to `size` threads calling a provider, each with the client `make_client` gives it on first use.

    `make_client` must not hold on to the provider that owns the pool, so the
    provider can be collected and its threads ended (see `close`).
    """

    def __init__(self, size: int, make_client: Callable[[], C], name: str) -> None:
        self.size = max(1, int(size))
        self._make_client = make_client
        self._name = name
        self._local = threading.local()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def client(self) -> C:
        """The calling thread's client, made on its first call."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
        return client

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over `items`, at most `size` at a time, results in the order of `items`.

        With one item or a pool of one, `fn` runs in the calling thread: no thread hand-off for nothing.
        """
        items = list(items)
        if len(items) <= 1 or self.size == 1:
            return [fn(item) for item in items]
        return list(self._pool().map(fn, items))

    def close(self) -> None:
        """Let the sending threads end once idle; the pool starts new ones if used again."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=self._name)
            return self._executor


def read_environment_once(session: requests.Session, url: str) -> None:
    """Settle the proxy and CA bundle settings the environment gives for `url` on the session, then stop
    the session from reading the environment again: requests otherwise walks every environment variable
    twice per request (a sixth of a request's time on the client). Changes to the environment after the
    session was made are not seen; sessions live as long as their sending thread."""
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"] or {})
    session.verify = settings["verify"]
    if settings["cert"] is not None:
        session.cert = settings["cert"]
    session.trust_env = False


def may_have_arrived(exc: requests.exceptions.RequestException) -> bool:
    """False only when the connection was never made, so the provider cannot have seen the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])
        # NewConnectionError (refused, unresolvable) is a ConnectTimeoutError in urllib3 2.
        return not isinstance(reason, urllib3.exceptions.ConnectTimeoutError)
    return True
