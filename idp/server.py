"""Running the app under gunicorn, started from ``idp serve`` / ``idp demo``."""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from idp import create_app
from idp.errors import ConfigError
from idp.services import Services
from idp.settings import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after the fork: the back-channel logout thread is the worker's own (a
        # thread does not survive a fork). Not in create_app, which tests and the CLI call freely.
        app = create_app(self._settings)
        services: Services = app.extensions["idp"]
        services.backchannel.start()
        return app


# Threads per worker: while one request waits for argon2 (on SecretHasher's own thread, without
# the GIL), the others parse, query and render, so a worker keeps a core busy hashing.
DEFAULT_THREADS = 4


# Workers when --workers is not given: two with Redis; without it, the one that can serve a login.
DEFAULT_WORKERS_WITH_REDIS = 2


def worker_count(requested: int | None, settings: Settings) -> int:
    """The gunicorn workers to run. Without IDP_REDIS_URL sessions, codes and tokens live in one
    process's memory, so a second worker would not know the codes the first one handed out."""
    if requested is None:
        return DEFAULT_WORKERS_WITH_REDIS if settings.redis_url else 1
    if requested > 1 and not settings.redis_url:
        raise ConfigError(f"--workers {requested} needs IDP_REDIS_URL: without Redis each worker keeps its own "
                          "sessions and authorization codes, so run one worker "
                          "(its threads serve requests in parallel)")
    return requested


# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). A
# request coming back from argon2 or the database waits that long for its turn when another
# thread is busy in Python; a shorter slice keeps the hashing thread and the round trips flowing.
SWITCH_INTERVAL = 0.0005


# gunicorn trusts no peer: no forwarded scheme (secure_scheme_headers), no SCRIPT_NAME/PATH_INFO
# from headers (forwarder_headers); both are emptied too, as a UNIX-socket peer is trusted whatever
# forwarded_allow_ips says.
NO_FORWARDED_TRUST: dict[str, Any] = {"forwarded_allow_ips": "", "secure_scheme_headers": {}, "forwarder_headers": ""}


def _tune_worker(worker: Any) -> None:
    if worker.cfg.threads > 1:
        sys.setswitchinterval(SWITCH_INTERVAL)


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int = DEFAULT_THREADS) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "post_worker_init": _tune_worker,
        # Each worker builds its own engine and connections after the fork.
        "preload_app": False,
        "accesslog": "-",
        # The default access log format includes the query string, which can carry codes and tokens.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
        # IDP_PROXY_HOPS alone decides which proxy headers count, and ProxyFix (create_app) is the one
        # place that reads them: gunicorn would otherwise take X-Forwarded-Proto from any peer in
        # forwarded_allow_ips (127.0.0.1 by default) even with no proxy configured.
        **NO_FORWARDED_TRUST,
        "timeout": 30,
        # Library systems make a desk's calls over one kept-alive connection, seconds apart. gunicorn's
        # default closes an idle one after 2 s, and a call sent as it closes is reset (seen in the desk
        # day test on a busy machine); 20 s outlasts a desk's pauses (idle connections cost no thread).
        "keepalive": 20,
        # gunicorn 27's control socket sits at one fixed path per user: two servers would clash.
        "control_socket_disable": True,
    }
    _Gunicorn(settings, options).run()
