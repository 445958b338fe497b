"""An embedded ClearML-API-compatible backend (API server + file server on SQLite and files).

The real, unmodified clearml SDK, clearml-serving and clearml-agent talk to it as to a ClearML server.
"""
