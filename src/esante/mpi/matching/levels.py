"""Comparison levels: what a comparator says about one trait of two records.

A comparator answers with a named level, never a raw similarity: the Fellegi-Sunter model learns how much each level
weighs (its m and u probabilities), and an identity-vigilance agent reads "birth date: transposed" more easily than
"0.83". Every field's levels are ordered from the strongest agreement to ``different``; ``missing`` (a trait absent
on either side) is always last and always weighs 0.
"""

from __future__ import annotations

EXACT = "exact"
CLOSE = "close"
PARTIAL = "partial"
SUBSET = "subset"
PHONETIC = "phonetic"
WEAK = "weak"
DIFFERENT = "different"
MISSING = "missing"
TRANSPOSED = "transposed"
TYPO = "typo"
SAME_YEAR = "same_year"
OLD_FORM = "old_form"
POSTAL_AND_CITY_CLOSE = "postal_city_close"
POSTAL_ONLY = "postal_only"
CITY_ONLY = "city_only"
STREET_ONLY = "street_only"
SAME_LOCALITY = "same_locality"
SAME_STREET = "same_street"
NEAR = "near"
STREET_ELSEWHERE = "street_elsewhere"

NAME_LEVELS = (EXACT, CLOSE, SUBSET, PARTIAL, PHONETIC, WEAK, DIFFERENT, MISSING)
DATE_LEVELS = (EXACT, PARTIAL, TRANSPOSED, TYPO, SAME_YEAR, DIFFERENT, MISSING)
SEX_LEVELS = (EXACT, DIFFERENT, MISSING)
PLACE_LEVELS = (EXACT, CLOSE, DIFFERENT, MISSING)
STREET_LEVELS = (EXACT, CLOSE, STREET_ONLY, WEAK, DIFFERENT, MISSING)
TEXT_LEVELS = (EXACT, CLOSE, WEAK, DIFFERENT, MISSING)
LOCALITY_LEVELS = (EXACT, POSTAL_AND_CITY_CLOSE, POSTAL_ONLY, CITY_ONLY, CLOSE, DIFFERENT, MISSING)
ADDRESS_LEVELS = (EXACT, CLOSE, SAME_STREET, SAME_LOCALITY, NEAR, STREET_ELSEWHERE, DIFFERENT, MISSING)
REGION_LEVELS = (EXACT, DIFFERENT, MISSING)
MATRICULE_LEVELS = (EXACT, OLD_FORM, TYPO, DIFFERENT, MISSING)
