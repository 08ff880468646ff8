"""Helpers shared by the tests and the benchmarks: real processes (moto S3, `fraudctl serve`),
a small HTTP client, the test keys, hostile inputs, and promoting a bundle the way `fraudctl
promote` does. Only 127.0.0.1; every process started here is stopped by PID.

Part of the repository, not of the package: the wheel and the images leave it out
(pyproject.toml), and nothing in `ml` or `service` imports it (.importlinter).
"""
