"""Long tests first: pytest-xdist hands tests out in collection order, and a
two-minute outage test that starts last would stretch the whole run by its
length.  Mark a test @pytest.mark.long to have it start in the first wave."""


def pytest_configure(config):
    config.addinivalue_line("markers", "long: runs for a minute or more; started first")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
