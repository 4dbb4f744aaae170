"""Long tests first: pytest-xdist hands tests out in collection order, and a
two-minute outage test that starts last would stretch the whole run by its
length.  Mark a test @pytest.mark.long to have it start in the first wave.
Mark few: pytest-xdist 3.1 gives each worker its first tests in chunks
(3 of 55 with 4 workers), so three long tests put first would all go to one
worker and run one after the other."""


def pytest_configure(config):
    config.addinivalue_line("markers", "long: runs for a minute or more; started first")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
