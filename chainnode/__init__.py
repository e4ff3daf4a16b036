"""chainnode: a permissioned consortium blockchain node (PBFT, SM2/SM3, LevelDB, sandboxed
Python contracts), packaged by responsibility. docs/architecture.md draws the packages,
the directions in which they may import each other and the path of a transaction through
them; each package's docstring says what it owns and, in its "May import:" line, which
packages it may use (tests/test_architecture.py holds them to it).
"""
