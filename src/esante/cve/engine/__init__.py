"""The CDSi-conformant recommendation engine: pure Python, no I/O in its core.

``load_supporting_data(folder)`` (loader.py, the only module that reads files) builds the immutable schedule;
``assess(data, patient, assessment_date)`` returns dose evaluations, patient series statuses and forecasts per
antigen and vaccine group. Module ↔ chapter of the CDC logic specification: dates.py (3, CALCDT), assess.py (4,
5, 9), evaluate.py (6), skip.py (6.2/7.1/7.6), forecast.py (7), select.py (8).
"""

from esante.cve.engine.assess import assess
from esante.cve.engine.dates import Duration, add_duration, parse_duration
from esante.cve.engine.loader import SupportingDataError, load_supporting_data
from esante.cve.engine.model import SupportingData
from esante.cve.engine.patient import (
    AdministeredDose,
    AntigenForecast,
    Assessment,
    DoseEvaluation,
    EvaluationReason,
    EvaluationStatus,
    Forecast,
    Observation,
    Patient,
    SeriesStatus,
    VaccineGroupForecast,
)

__all__ = [
    "AdministeredDose",
    "AntigenForecast",
    "Assessment",
    "DoseEvaluation",
    "Duration",
    "EvaluationReason",
    "EvaluationStatus",
    "Forecast",
    "Observation",
    "Patient",
    "SeriesStatus",
    "SupportingData",
    "SupportingDataError",
    "VaccineGroupForecast",
    "add_duration",
    "assess",
    "load_supporting_data",
    "parse_duration",
]
