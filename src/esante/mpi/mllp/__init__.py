"""HL7 v2 over MLLP for the MPI: ADT feeds (A01/A04/A08/A28/A31, A40 merge) and PDQ (QBP^Q22), see docs/mpi-mllp.md."""
