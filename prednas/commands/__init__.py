"""Subcommands of the ``prednas`` CLI: one module each (NAME, HELP, add_arguments, run)."""
