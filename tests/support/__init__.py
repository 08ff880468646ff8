"""Helpers of the tests alone: in-process apps, the browser, sample rows. What the benchmarks
share with the tests is in `ml.testing`."""
