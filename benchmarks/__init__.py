"""The benchmark scripts (overhead, waiters, bulk); ``python -m benchmarks`` runs them all."""
