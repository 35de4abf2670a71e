"""A realistic clinical export for the tests: an ID, a visit date, sex as F/M, smoking as never/former/current
(ordinal), age, blood pressure with its unit ("101 mmHg"), glucose with "." for missing, a count of admissions
(non-negative) and a free-text note column; a byte-order mark and Windows line endings, or the semicolon /
decimal-comma dialect. The values are related (age -> bp, glucose, admissions; smoking -> bp), so an imputer has
something to learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEVELS = ("never", "former", "current")
HEADER = ("patient_id", "visit_date", "sex", "smoker", "age", "bp", "glu", "admissions", "notes")


def clinical_rows(n: int = 240, seed: int = 0, rate: float = 0.15) -> list[list[str]]:
    """n rows of cells as text (the comma dialect), missing cells at `rate` written 'NA', '' or '.'."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(30, 80, n)
    sex = rng.integers(0, 2, n)
    smoker = np.clip(np.round((age - 30) / 25 + rng.normal(0, 0.7, n)), 0, 2).astype(int)
    bp = 80 + 0.5 * age + 4 * smoker + 3 * sex + rng.normal(0, 5, n)
    glu = 4 + 0.03 * age + rng.normal(0, 0.4, n)
    admissions = rng.poisson(np.exp(-1.5 + 0.03 * age))
    rows = []
    for i in range(n):
        cells = [
            f"P{i + 1:04d}",
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "FM"[sex[i]],
            LEVELS[smoker[i]],
            f"{age[i]:.1f}",
            f"{bp[i]:.0f} mmHg",
            f"{glu[i]:.2f}",
            str(admissions[i]),
            "" if i % 7 else "follow-up",
        ]
        for j in range(2, 8):  # the modelled columns go missing; the id, date and note stay as they are
            if rng.random() < rate:
                cells[j] = ("NA", "", ".")[(i + j) % 3]
        rows.append(cells)
    return rows


def write_export(path: Path, rows: list[list[str]], semicolon: bool = False) -> Path:
    """The rows as an export: BOM + CRLF + commas, or (semicolon) ';' with decimal commas."""
    if semicolon:
        lines = [";".join(HEADER)] + [";".join(c.replace(".", ",") if c != "." else c for c in r) for r in rows]
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    else:
        lines = [",".join(HEADER)] + [",".join(r) for r in rows]
        path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


DECLARED = [
    "+dataset.columns.smoker={type: ordinal, levels: [never, former, current]}",
    "+dataset.columns.bp={unit: mmHg, min: 0}",
    "+dataset.columns.admissions={type: count, max: 30}",
    "+dataset.columns.notes=drop",
]
