"""Tests of the synthetic population generator (esante.synth)."""
