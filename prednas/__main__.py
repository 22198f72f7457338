import sys

from prednas.cli import main

sys.exit(main())
