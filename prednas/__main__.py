"""``python -m prednas``: the CLI, with Ctrl-C during start-up reported as one line."""

import sys

try:
    from prednas.cli import main
except KeyboardInterrupt:  # pragma: no cover - interrupted while importing the CLI itself
    print("prednas: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
