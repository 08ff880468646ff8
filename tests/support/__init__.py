"""Helpers shared by the tests and the benchmark: real processes (moto S3, `fraudctl serve`),
a small HTTP client, and promoting a bundle the way `fraudctl promote` does. Only 127.0.0.1;
every process started here is stopped by PID."""
