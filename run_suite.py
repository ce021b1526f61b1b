#!/usr/bin/env python3
"""rcsuite command line. `python run_suite.py --help` lists the subcommands."""

import sys

from suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
