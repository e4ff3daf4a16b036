"""Suite-wide setup: parallel workers (pytest-xdist, `make test` runs two) pick loopback
ports from disjoint ranges, so nodes of two tests running at once never pick the same port."""

import os

from devnet.layout import PICKED_PORTS_MIN, PORT_RANGE_ENV, picking_range


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in a worker only
    if worker is None or PORT_RANGE_ENV in os.environ:
        return
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    low, high = picking_range()
    if high - low < 1000 * count:
        low, high = PICKED_PORTS_MIN, 32768
    share = (high - low) // count
    index = int(worker.removeprefix("gw"))
    os.environ[PORT_RANGE_ENV] = f"{low + index * share}-{low + (index + 1) * share}"
