"""The run folder: where each result lives, its record schemas, typed reading and writing."""
