"""National identifiers and their check digits (pure functions, no I/O): reused by accounts, the MPI and the HPD."""
