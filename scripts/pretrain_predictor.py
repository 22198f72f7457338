#!/usr/bin/env python
"""Fit a predictor on NB201 and save it; the same as ``prednas pretrain`` (same arguments)."""

from __future__ import annotations

import argparse
import logging
import sys

from prednas.commands import pretrain as cmd
from prednas.errors import PredNASError


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=cmd.HELP)
    cmd.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd.run(args)
    except PredNASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
