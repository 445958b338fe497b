"""The embedded backend of tests/backend (one per test module, always stopped) for the integration tests."""

from tests.backend.conftest import backend  # noqa: F401  (a fixture, used by name)
