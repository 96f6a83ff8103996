"""The REST API: app factory, dependencies, middleware and one router per domain."""
