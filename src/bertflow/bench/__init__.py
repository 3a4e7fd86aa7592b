"""Benchmarks that compare our loops with the Hugging Face baselines users run (see docs/performance.md)."""
