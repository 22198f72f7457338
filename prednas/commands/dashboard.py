"""``prednas dashboard RUN``: optuna-dashboard on a search run's Optuna study, live while it runs."""

from __future__ import annotations

import argparse
import logging
import sys

NAME = "dashboard"
HELP = ("serve optuna-dashboard on a search run, live while it runs (needs prednas[dashboard]; "
        "the run is only read)")
ORDER = 36
#: how often a served study catches up with the run's records (seconds)
REFRESH_SECONDS = 2.0
_INSTALL = 'pip install "prednas[dashboard]"'

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: a free one); got {port}")
    return port


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a search run directory (running or finished)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any other "
                        "makes the run readable from the network, without a login)")
    p.add_argument("--port", type=_port, default=8080,
                   help="port to listen on (default 8080; 0 picks a free one)")


def run(args) -> int:
    from prednas.errors import PredNASError

    try:
        import optuna_dashboard
    except ImportError as exc:
        raise PredNASError(f"the dashboard needs an optional extra ({exc.name or 'optuna_dashboard'}"
                           f" is not installed): {_INSTALL}") from None
    from prednas.search.study import StudyView

    view = StudyView(args.run_dir)  # reads and checks the run; writes nothing
    server = _listen(args.host, args.port)
    try:
        study = view.open()  # completes the journal only if no other process owns the run
        server.set_app(optuna_dashboard.wsgi(view.storage))
        host, port = server.server_address[:2]
        if not _is_loopback(args.host):
            print(f"prednas dashboard: warning: listening on {args.host}, not this machine only: "
                  f"anyone who can reach port {port} here can read this run (architectures, "
                  "results, notes), with no login", file=sys.stderr)
        where = f"[{host}]" if ":" in str(host) else host
        n = len(study.get_trials(deepcopy=False))
        how = ("its journal study.log" if view.source == "journal"
               else "a study built in memory from its records")
        print(f"prednas dashboard: {args.run_dir} ({n} trials so far, from {how}) at "
              f"http://{where}:{port}/dashboard/ (Ctrl-C stops)", flush=True)
        stop = _keep_current(view)
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            stop.set()
    finally:
        server.server_close()
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int):
    """A threaded WSGI server bound to ``(host, port)``, its application set later."""
    import errno
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from prednas.errors import PredNASError

    class Handler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            log.debug("%s " + format, self.address_string(), *args)

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        return Server((host, port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PredNASError(f"port {port} on {host} is in use; choose another with --port "
                               "(0 picks a free one)") from None
        raise PredNASError(f"cannot listen on {host} port {port}: "
                           f"{exc.strerror or exc}") from None


def _keep_current(view):
    """A daemon thread that catches the served study up with the run every few seconds; returns
    the event that stops it."""
    import threading

    from prednas.errors import PredNASError

    stop = threading.Event()

    def loop() -> None:
        last = None
        while not stop.wait(REFRESH_SECONDS):
            try:
                view.refresh()
                last = None
            except (PredNASError, OSError) as exc:  # say it once; the last good study stays up
                if str(exc) != last:
                    log.warning("the served study is not updated: %s", exc)
                    last = str(exc)

    threading.Thread(target=loop, name="prednas-dashboard-refresh", daemon=True).start()
    return stop
