"""The runner: the suite's matrix as cells, run in this process, worker processes or on Ray."""
