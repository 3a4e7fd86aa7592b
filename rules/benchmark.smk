# Rules for the benchmark stages (see README.md).
