"""Properties of the engine on arbitrary histories with the CDC schedule: it never fails, and its forecasts are
consistent (FORECASTDT-5/-6: recommended and past-due never before the earliest date, which is empty only where
no FORECASTDTCAN-1 date exists; a forecast exactly when the series is not complete)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esante.cve.engine import (
    AdministeredDose,
    Observation,
    Patient,
    SeriesStatus,
    SupportingData,
    assess,
    load_supporting_data,
)
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def cdc() -> SupportingData:
    return load_supporting_data(shared_data("cdsi", "supporting-data-4.64"))


@st.composite
def histories(draw: st.DrawFn, cvxs: list[str], codes: list[str]) -> tuple[Patient, date]:
    birth = date(1940, 1, 1) + timedelta(days=draw(st.integers(0, 31_000)))
    age_days = draw(st.integers(0, 30_000))
    on = birth + timedelta(days=age_days)
    doses = tuple(
        AdministeredDose(birth + timedelta(days=draw(st.integers(0, age_days))), draw(st.sampled_from(cvxs)))
        for _ in range(draw(st.integers(0, 7)))
    )
    observations = tuple(Observation(draw(st.sampled_from(codes))) for _ in range(draw(st.integers(0, 2))))
    return Patient(birth, draw(st.sampled_from(["F", "M", "U"])), doses, observations), on


def test_arbitrary_histories(cdc: SupportingData) -> None:
    cvxs = sorted(cdc.cvx_map)
    codes = sorted(cdc.observations)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(histories(cvxs, codes))
    def check(case: tuple[Patient, date]) -> None:
        patient, on = case
        result = assess(cdc, patient, on)
        for group in result.vaccine_groups:
            assert (group.forecast is not None) == (group.status is SeriesStatus.NOT_COMPLETE)
            f = group.forecast
            if f is not None and f.earliest is not None:
                assert f.recommended is not None and f.recommended >= f.earliest
                assert f.past_due is None or f.past_due >= f.earliest
            elif f is not None:  # 7.5: no candidate earliest date; in 4.64 only ACWY 2-23 month's dose 4 has none
                assert group.vaccine_group == "Meningococcal"
            if f is not None:
                assert f.dose_number is None or f.dose_number >= 1
        for antigen in result.antigens:
            for evaluation in antigen.evaluations:
                assert 0 <= evaluation.dose_index < len(patient.doses)
                assert patient.doses[evaluation.dose_index].date_administered == evaluation.date_administered

    check()
