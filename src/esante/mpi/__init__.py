"""The master patient index (MPI): certified identities, cross-references and identity matching."""
