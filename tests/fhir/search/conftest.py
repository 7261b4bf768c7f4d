"""Fixtures of the search tests."""

from __future__ import annotations

import pytest
from search_kit import SearchKit

from esante.db.engine import Database


@pytest.fixture
async def kit(database: Database) -> SearchKit:
    return SearchKit(database)
