"""Statistics computed from stored records: tables, minimal-norm statistics, effects and the verdict."""
