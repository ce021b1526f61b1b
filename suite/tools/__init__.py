"""Command-line tools run with ``python -m suite.tools.<name>``; they sit above the library (nothing
in ``suite`` imports them).

- ``local_cluster``: a real two-node Ray cluster on this machine, started with ``ray start`` the way
  the README tells users to, plus a tiny sweep on it.
"""
