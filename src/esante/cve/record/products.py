"""The vaccine product table: GTIN of a pack → product name, manufacturer (MVX), CVX and antigens.

Package data (``cve/data/products.json``, replaceable with the ``cve_products_file`` setting). The packaged GTINs
are ILLUSTRATIVE (``gtin_status``): see the file's ``notice`` and docs/cve.md. The loader checks each row (a GTIN
with a valid check digit, once; a CVX; known fields) so a bad table stops the start-up instead of mis-recording
a vaccination later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from esante.cve.engine.model import normalize_cvx
from esante.cve.record.gs1 import valid_gtin

__all__ = ["Product", "ProductTable", "ProductTableError", "load_products"]


class ProductTableError(ValueError):
    """The product table cannot be used (unreadable, or a row is wrong)."""


@dataclass(frozen=True)
class Product:
    gtin: str  # GTIN-14
    name: str
    manufacturer: str
    mvx: str | None
    cvx: str  # as written in the table (e.g. "08"); compare with normalize_cvx
    antigens: tuple[str, ...]
    route: str | None = None  # HL7 v3 RouteOfAdministration code (IM, SQ, PO)
    gtin_status: str = "illustrative"  # "illustrative" | "verified"


@dataclass(frozen=True)
class ProductTable:
    products: tuple[Product, ...]

    def by_gtin(self, gtin: str) -> Product | None:
        wanted = gtin.strip().zfill(14)
        return next((p for p in self.products if p.gtin == wanted), None)

    @property
    def cvx_codes(self) -> frozenset[str]:
        return frozenset(normalize_cvx(p.cvx) for p in self.products)


def _product(row: Any, index: int) -> Product:
    if not isinstance(row, dict):
        raise ProductTableError(f"product #{index + 1} is not an object")
    gtin = str(row.get("gtin", "")).strip().zfill(14)
    if not valid_gtin(gtin):
        raise ProductTableError(f"product #{index + 1}: GTIN {row.get('gtin')!r} is not a GTIN-14 with its check digit")
    cvx = str(row.get("cvx", "")).strip()
    name = str(row.get("name", "")).strip()
    if not cvx or not name:
        raise ProductTableError(f"product #{index + 1} ({gtin}) needs a name and a cvx")
    status = str(row.get("gtin_status", "illustrative"))
    if status not in ("illustrative", "verified"):
        raise ProductTableError(f"product #{index + 1} ({gtin}): gtin_status must be illustrative or verified")
    antigens = row.get("antigens") or []
    if not isinstance(antigens, list) or not all(isinstance(a, str) for a in antigens):
        raise ProductTableError(f"product #{index + 1} ({gtin}): antigens must be a list of names")
    mvx = row.get("mvx")
    route = row.get("route")
    return Product(
        gtin=gtin,
        name=name,
        manufacturer=str(row.get("manufacturer", "")).strip(),
        mvx=str(mvx).strip() if mvx else None,
        cvx=cvx,
        antigens=tuple(antigens),
        route=str(route) if route else None,
        gtin_status=status,
    )


def load_products(path: str | Path | None = None) -> ProductTable:
    """The table at ``path``, or the packaged one."""
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = resources.files("esante.cve").joinpath("data/products.json").read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ProductTableError(f"cannot read the vaccine product table: {exc}") from exc
    rows = document.get("products") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise ProductTableError("the vaccine product table needs a 'products' list")
    products = tuple(_product(row, i) for i, row in enumerate(rows))
    gtins = [p.gtin for p in products]
    duplicates = sorted({g for g in gtins if gtins.count(g) > 1})
    if duplicates:
        raise ProductTableError(f"the vaccine product table lists GTIN {duplicates[0]} more than once")
    return ProductTable(products)
