"""Birth dates drawn from an age pyramid at a reference date, and the sex ratio by age."""

from __future__ import annotations

import random
from datetime import date, timedelta

from esante.synth.weighted import Weighted


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class BirthDates:
    """Draws a birth date: an age band by its share, then a day uniformly within the band."""

    def __init__(self, bands: tuple[tuple[int, int, float], ...], reference: date) -> None:
        self.reference = reference
        intervals = []
        for first_age, last_age, share in bands:
            earliest = _years_before(reference, last_age + 1) + timedelta(days=1)
            latest = _years_before(reference, first_age)
            intervals.append(((earliest.toordinal(), latest.toordinal()), share))
        self._bands = Weighted(intervals)

    def draw(self, rng: random.Random) -> date:
        low, high = self._bands.pick(rng)
        return date.fromordinal(rng.randint(low, high))

    def age(self, birth: date) -> int:
        ref = self.reference
        return ref.year - birth.year - ((ref.month, ref.day) < (birth.month, birth.day))


def female_share(age: int) -> float:
    """Slightly fewer women among the young, more among the old (longer life expectancy)."""
    if age < 60:
        return 0.49
    if age < 75:
        return 0.52
    if age < 85:
        return 0.58
    return 0.66
