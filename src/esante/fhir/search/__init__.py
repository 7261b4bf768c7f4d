"""FHIR search: parsing of search parameters and their compilation to one SQL statement."""
