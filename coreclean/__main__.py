"""Run the command-line interface: ``python -m coreclean``."""

from coreclean.cli import main

raise SystemExit(main())
