"""The ``prednas`` command line.

Each subcommand is a module in :mod:`prednas.commands` defining ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Building the parser imports only those modules,
which hold argparse definitions and import their heavy dependencies (torch, scikit-learn, the
search engine) inside ``run``: help, ``--version`` and argument errors answer without them.

A :class:`~prednas.errors.PredNASError` is printed as one line on stderr with exit code 2; Ctrl-C
prints one line and exits with 130; a bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn

__all__ = ["main", "build_parser"]

#: exit code of a process stopped by Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130


def _command_modules() -> list[ModuleType]:
    import prednas.commands as pkg

    mods = [importlib.import_module(f"prednas.commands.{info.name}")
            for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_")]
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 50))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, and whose arguments may be added late."""

    _deferred: Callable[[argparse.ArgumentParser], None] | None = None

    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit code 2 (argparse's own convention)."""
        self.exit(2, f"{self.prog}: error: {message}\n")

    def defer(self, populate: Callable[[argparse.ArgumentParser], None]) -> None:
        """Call ``populate(self)`` only when this parser is used (its arguments import heavy
        code)."""
        self._deferred = populate

    def _populate(self) -> None:
        if self._deferred is not None:
            populate, self._deferred = self._deferred, None
            populate(self)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._populate()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The full ``prednas`` parser (cheap: no torch, scikit-learn or search engine)."""
    from prednas import __version__

    parser = _Parser(prog="prednas", description="Predictor-guided neural architecture search "
                     "with zero-cost proxies.")
    parser.add_argument("--version", action="version", version=f"prednas {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    state: dict[str, str] = {}
    try:
        return _main(argv, state)
    except KeyboardInterrupt:
        prog = " ".join(["prednas", *([state["command"]] if state.get("command") else [])])
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None, state: dict[str, str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    state["command"] = args.command or ""
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from prednas.errors import PredNASError  # after parsing: it imports scikit-learn

    try:
        return int(args._run(args) or 0)
    except PredNASError as exc:
        print(f"prednas {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
