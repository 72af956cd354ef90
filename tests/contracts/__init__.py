"""Contract suites: the behaviour every adapter of a port shares, as classes that each
adapter's test module subclasses with its own fixture (see tests/contracts/storage.py)."""
