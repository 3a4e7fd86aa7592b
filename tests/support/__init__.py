"""Helpers the tests share: tiny models and data, the workflow runner, a loopback Hub, a browser check."""
