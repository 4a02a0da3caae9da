"""An on-disk profile bundle being measured: resumable, appended to, always valid.

Why this exists: a profile is taken in several short sessions and may be interrupted at
any time. Every unit of work (one solo (model, batch), one pair, one transfer setting)
ends with :meth:`BundleStore.flush`, which rewrites the touched tables atomically
(``write_table``) and profile.json, so that Ctrl-C or a crash leaves a bundle that
``read_bundle_dir`` accepts, holding every sample taken so far. On the next run the same
folder is opened again and units already measured are skipped (:meth:`count`).

``models.csv`` lists only models that have solo samples, so the bundle stays valid while
later models are still unmeasured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from strait_sim.errors import BundleError, UserError
from strait_sim.profile_bundle import SCHEMA, read_bundle_dir, write_meta, write_table


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()
TABLES = ("models.csv", "solo.csv", "pairs.csv", "triples.csv", "kernels.csv",
          "transfers.csv", "utilization.csv")


class BundleStore:
    """Tables of one bundle folder, held in memory as lists of row dicts."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.folder}: exists and is not a folder")
        self.meta: dict = {}
        self.rows: dict[str, list[dict]] = {t: [] for t in TABLES}
        self._dirty: set[str] = set()
        meta_path = self.folder / "profile.json"
        if meta_path.is_file():
            try:
                self.meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as exc:
                raise BundleError(f"{meta_path}", f"not valid JSON: {exc.msg}",
                                  line=exc.lineno) from None
            for t in TABLES:
                path = self.folder / t
                if path.is_file():
                    try:
                        df = pd.read_csv(path, keep_default_na=False)
                    except pd.errors.EmptyDataError:
                        continue
                    self.rows[t] = df.to_dict("records")
        elif self.folder.is_dir() and any(self.folder.iterdir()):
            raise UserError(f"{self.folder}: folder is not empty and holds no profile.json; "
                            f"choose a new --out folder")

    @property
    def exists(self) -> bool:
        return bool(self.meta)

    # -- reading -------------------------------------------------------------------------
    def count(self, table: str, **match: object) -> int:
        """Rows of ``table`` whose columns equal ``match``."""
        return sum(1 for r in self.rows[table]
                   if all(_same(r.get(k), v) for k, v in match.items()))

    def select(self, table: str, **match: object) -> list[dict]:
        return [r for r in self.rows[table] if all(_same(r.get(k), v) for k, v in match.items())]

    def frame(self, table: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows[table])

    def model_names(self) -> set[str]:
        return {str(r["model"]) for r in self.rows["models.csv"]}

    # -- writing -------------------------------------------------------------------------
    def append(self, table: str, rows: Iterable[Mapping]) -> None:
        rows = [dict(r) for r in rows]
        if not rows:
            return
        missing = [c for c in SCHEMA[table] if c not in rows[0]]
        if missing:
            raise ValueError(f"{table}: rows lack {missing}")
        self.rows[table].extend(rows)
        self._dirty.add(table)

    def ensure_model(self, row: Mapping) -> None:
        if str(row["model"]) not in self.model_names():
            self.append("models.csv", [row])

    def flush(self) -> None:
        """Write every changed table, then profile.json, each atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        for t in TABLES:
            if t in self._dirty:
                write_table(self.folder, t, pd.DataFrame(self.rows[t]))
                written.append(t)
        self._dirty.clear()
        if self.meta:
            write_meta(self.folder, self.meta)
            written.append("profile.json")
        for name in written:  # temp files are created 0600; a bundle is meant to be shared
            os.chmod(self.folder / name, _FILE_MODE)

    def validate(self) -> None:
        """Raise BundleError unless the folder is a loadable bundle (needs solo samples)."""
        read_bundle_dir(self.folder)


def _same(a: object, b: object) -> bool:
    if isinstance(b, float) or isinstance(a, float):
        try:
            return abs(float(a) - float(b)) < 1e-9  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if isinstance(b, int) and not isinstance(b, bool):
        try:
            return int(a) == b  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)
