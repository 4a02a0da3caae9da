"""Reading and writing trace files, block by block, with errors that name file and line.

Two formats are read, told apart by their header:

* the **strait-sim trace** (CSV, optionally gzip-compressed, or Parquet), meant to be
  written by hand or by ``strait-sim workload generate``. Columns (order free):

  ==============  ========  =============================================================
  column          required  meaning
  ==============  ========  =============================================================
  ``arrival_s``   yes       arrival time in seconds, >= 0, non-decreasing
  ``model``       no        model name (must be in the profile)
  ``priority``    no        ``high`` or ``low`` (also ``hp``/``lp``, ``0``/``1``)
  ``deadline_ms`` no        deadline relative to arrival, milliseconds, > 0
  ``deadline_s``  no        absolute deadline in seconds, > arrival_s (not with the above)
  ``items``       no        items (inputs) in the request, whole number >= 1 (default 1)
  ``tokens``      no        a size, used only by the ``tokens`` model mapping
  ==============  ========  =============================================================

  Columns left out are filled by the workload's rules (mix, HP share, SLO, items).
* the **Azure LLM inference trace** as published (``TIMESTAMP`` like
  ``2023-11-16 18:15:46.6805900``, ``ContextTokens``, ``GeneratedTokens``): times become
  seconds after the file's first timestamp, ``ContextTokens`` the ``tokens`` column.

Reading is streamed (pandas ``chunksize``, pyarrow ``iter_batches``) so that traces larger
than memory replay fine. Every check reports the file and the 1-based line as an editor
shows it (header = line 1) for CSV, or the 1-based row for Parquet.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.errors import UserError
from strait_sim.requests import PRIORITY_NAMES, RequestChunk

READ_BLOCK = 65536
MAX_LINE_BYTES = 1 << 20  # a trace line is tens of bytes; one this long is not a trace

STRAIT_COLUMNS = ("arrival_s", "model", "priority", "deadline_ms", "deadline_s", "items",
                  "tokens")
AZURE_TIME = "TIMESTAMP"
AZURE_TOKENS = "ContextTokens"
AZURE_COLUMNS = (AZURE_TIME, AZURE_TOKENS, "GeneratedTokens")
WRITE_COLUMNS = ("arrival_s", "model", "priority", "deadline_s", "items")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
DESCRIPTION_KEY = b"strait_sim.workload"

# pandas < 3 parses floats exactly only when asked; pandas 3 always does (and deprecates
# the argument). Exact parsing is what makes a written trace read back bit-identical.
_EXACT_FLOATS: dict = ({"float_precision": "round_trip"}
                       if int(pd.__version__.split(".")[0]) < 3 else {})

_PRIORITY_CODES = {"high": 0, "hp": 0, "h": 0, "0": 0, "low": 1, "lp": 1, "l": 1, "1": 1}


class TraceError(UserError):
    """A trace file problem, located: ``file, line N, column 'c': message``."""

    def __init__(self, file: str, message: str, *, line: int | None = None,
                 column: str | None = None, parquet: bool = False) -> None:
        where = str(file)
        if line is not None:
            where += f", {'row' if parquet else 'line'} {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.line = line
        self.column = column


@dataclass
class TraceBlock:
    """Consecutive validated rows of a trace; absent columns are None."""

    line: np.ndarray  # int64 line (CSV) or row (Parquet) number of each row, for errors
    time_s: np.ndarray  # float64 seconds (Azure: after the file's first timestamp)
    model: np.ndarray | None = None  # object array of str
    priority: np.ndarray | None = None  # int8
    deadline_ms: np.ndarray | None = None  # float64, relative
    deadline_s: np.ndarray | None = None  # float64, absolute
    items: np.ndarray | None = None  # int32
    tokens: np.ndarray | None = None  # int64

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    def take(self, idx: np.ndarray | slice) -> TraceBlock:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return TraceBlock(self.line[idx], self.time_s[idx], pick(self.model),
                          pick(self.priority), pick(self.deadline_ms), pick(self.deadline_s),
                          pick(self.items), pick(self.tokens))


class _LineGuard(io.RawIOBase):
    """A byte stream that stops a CSV reader at the first NUL byte or at a line longer
    than :data:`MAX_LINE_BYTES`, naming the line: a binary or sparse file (2 GiB of NUL
    bytes is one 2 GiB "line") would otherwise be buffered whole by the CSV parser."""

    def __init__(self, raw: BinaryIO, label: str, max_line: int = MAX_LINE_BYTES) -> None:
        super().__init__()
        self._raw = raw
        self._label = label
        self._max = max_line
        self._line = 1  # 1-based line of the next byte
        self._run = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._raw.read(min(len(buffer), self._max))
        n = len(data)
        if not n:
            return 0
        nul = data.find(b"\0")
        if nul >= 0:
            raise TraceError(self._label, "holds a NUL byte: a binary file, not a CSV trace",
                             line=self._line + data.count(b"\n", 0, nul))
        first = data.find(b"\n")
        if (first if first >= 0 else n) + self._run > self._max:
            raise TraceError(self._label, f"line longer than {self._max // 2**20} MiB: not "
                             "a CSV trace", line=self._line)
        if first >= 0:
            self._line += data.count(b"\n")
            self._run = n - data.rfind(b"\n") - 1
        else:
            self._run += n
        buffer[:n] = data
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_guarded(path: Path, label: str) -> io.BufferedReader:
    """The file's bytes (gunzipped for .gz) through :class:`_LineGuard`."""
    gz = str(path).lower().endswith(".gz")
    raw = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 - the caller's
    return io.BufferedReader(_LineGuard(raw, label))  # with-block closes it


def _chunks_or_long_row(reader: Iterable[pd.DataFrame], path: Path, label: str,
                        n_columns: int) -> Iterator[pd.DataFrame]:
    """The reader's chunks; a row with more fields than the header (which pandas would
    cut short with only a warning) becomes an error naming its line."""
    it = iter(reader)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            try:
                df = next(it)
            except StopIteration:
                return
            except pd.errors.ParserWarning:
                line = _first_long_row(path, label, n_columns)
                raise TraceError(label, f"more fields than the header's {n_columns}",
                                 line=line) from None
        yield df


def _first_long_row(path: Path, label: str, n_columns: int) -> int | None:
    """1-based line of the first row with more than ``n_columns`` fields (streamed)."""
    import csv

    with open_guarded(path, label) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
        rows = csv.reader(text)
        for row in rows:
            if len(row) > n_columns:
                return rows.line_num
    return None


def is_parquet(path: Path | str) -> bool:
    return str(path).lower().endswith(PARQUET_SUFFIXES)


class TraceReader:
    """Streams a trace file as validated :class:`TraceBlock` s.

    Opening reads only the header (to learn the format); :meth:`blocks` reads the rows and
    may be called again for another pass.
    """

    def __init__(self, path: Path | str, *, label: str | None = None,
                 block_rows: int = READ_BLOCK) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        self.block_rows = block_rows
        self.parquet = is_parquet(self.path)
        if not self.path.exists():
            raise TraceError(self.label, "trace file not found")
        if not self.path.is_file():
            raise TraceError(self.label, "is not a file")
        self.columns = self._read_header()
        dup = next((c for i, c in enumerate(self.columns) if c in self.columns[:i]), None)
        if dup is not None:  # first: a duplicated name also misleads the checks below
            raise TraceError(self.label, f"duplicated column '{dup}'", line=1)
        if AZURE_TIME in self.columns:
            self.format = "azure"
        elif "arrival_s" in self.columns:
            self.format = "strait"
            unknown = [c for c in self.columns if c not in STRAIT_COLUMNS]
            if unknown:
                raise TraceError(self.label, f"unknown column '{unknown[0]}'; a strait-sim "
                                 f"trace has {', '.join(STRAIT_COLUMNS)}", line=1)
            if "deadline_ms" in self.columns and "deadline_s" in self.columns:
                raise TraceError(self.label, "give deadline_ms (relative) or deadline_s "
                                 "(absolute), not both", line=1)
        else:
            raise TraceError(self.label, f"missing column 'arrival_s' (or '{AZURE_TIME}' for "
                             "an Azure trace)", line=1)

    # -- header --------------------------------------------------------------------------
    def _read_header(self) -> list[str]:
        """The column names as the file spells them.

        A CSV header is read as a data row: pandas renames a repeated name in a header
        (``arrival_s,arrival_s`` -> ``arrival_s.1``), and an error would then name a
        column the file does not have. An empty name becomes ``Unnamed: i`` as pandas
        named it before (an Azure trace with a trailing comma reads as it did).
        """
        if self.parquet:
            import pyarrow.parquet as pq

            try:
                schema = pq.read_schema(self.path)
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise TraceError(self.label, f"not a readable Parquet file: "
                                 f"{_first_line(exc)}") from None
            return [str(n).strip() for n in schema.names]
        try:
            with open_guarded(self.path, self.label) as fh:
                head = pd.read_csv(fh, header=None, nrows=1, dtype=str, na_filter=False,
                                   encoding="utf-8-sig", skip_blank_lines=False)
        except pd.errors.EmptyDataError:
            # the body is read with its blank lines kept (their numbers stay true), so the
            # header must be line 1: say so, not "0 fields" at the first data line
            with open_guarded(self.path, self.label) as fh:
                blank_first = bool(fh.read(65536).strip())
            if blank_first:
                raise TraceError(self.label, "blank; the header (the column names) must be "
                                 "the first line", line=1) from None
            raise TraceError(self.label, "file is empty (no header)") from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise _csv_error(self.label, exc) from None
        return [str(c).strip() or f"Unnamed: {i}" for i, c in enumerate(head.iloc[0])]

    @property
    def has_model(self) -> bool:
        return self.format == "strait" and "model" in self.columns

    @property
    def has_priority(self) -> bool:
        return self.format == "strait" and "priority" in self.columns

    @property
    def has_items(self) -> bool:
        return self.format == "strait" and "items" in self.columns

    @property
    def has_deadline(self) -> bool:
        return self.format == "strait" and ("deadline_ms" in self.columns
                                            or "deadline_s" in self.columns)

    @property
    def has_tokens(self) -> bool:
        return (AZURE_TOKENS if self.format == "azure" else "tokens") in self.columns

    # -- rows ----------------------------------------------------------------------------
    def _frames(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Raw frames with each row's line (CSV) or row (Parquet) number."""
        if self.parquet:
            import pyarrow.parquet as pq

            try:
                pf = pq.ParquetFile(self.path)
                row = 1
                for batch in pf.iter_batches(batch_size=self.block_rows):
                    df = batch.to_pandas()
                    df.columns = [str(c).strip() for c in df.columns]
                    yield df, np.arange(row, row + len(df), dtype=np.int64)
                    row += len(df)
            except TraceError:
                raise
            except Exception as exc:
                raise TraceError(self.label, f"not a readable Parquet file: "
                                 f"{_first_line(exc)}") from None
            return
        text_cols = {c: str for c in self.columns
                     if c in ("model", "priority", AZURE_TIME)}
        try:
            # index_col=False: a row with more fields than the header is an error, never
            # a silent shift of its first field into the index
            with open_guarded(self.path, self.label) as fh:
                reader = pd.read_csv(fh, header=0, names=self.columns, dtype=text_cols,
                                     encoding="utf-8-sig", index_col=False,
                                     chunksize=self.block_rows, keep_default_na=False,
                                     na_values=[""], skip_blank_lines=False,
                                     skipinitialspace=True, **_EXACT_FLOATS)
                for df in _chunks_or_long_row(reader, self.path, self.label,
                                              len(self.columns)):
                    lines = df.index.to_numpy(dtype=np.int64) + 2
                    blank = df.isna().all(axis=1).to_numpy()
                    if blank.any():  # blank lines are allowed and skipped
                        df, lines = df[~blank], lines[~blank]
                    yield df, lines
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise _csv_error(self.label, exc) from None

    def blocks(self) -> Iterator[TraceBlock]:
        """Validated blocks in file order; raises :class:`TraceError` at the first bad row."""
        last_time = -np.inf
        origin: int | None = None
        total = 0
        for df, lines in self._frames():
            if not len(df):
                continue
            total += len(df)
            if self.format == "azure":
                ns = self._timestamps(df[AZURE_TIME], lines)
                if origin is None:
                    origin = int(ns[0])
                time_s = (ns - origin) / 1e9
                time_col = AZURE_TIME
            else:
                time_s = self._floats(df["arrival_s"], lines, "arrival_s")
                neg = time_s < 0
                if neg.any():
                    i = int(np.flatnonzero(neg)[0])
                    raise self._err(f"arrival time must be >= 0, got {_show(time_s[i])}",
                                    lines[i], "arrival_s")
                time_col = "arrival_s"
            prev = np.concatenate(([last_time], time_s[:-1]))
            back = time_s < prev
            if back.any():
                i = int(np.flatnonzero(back)[0])
                raise self._err("arrival times are not sorted: this row is earlier than the "
                                "one before it", lines[i], time_col)
            last_time = float(time_s[-1])
            block = TraceBlock(lines, np.asarray(time_s, dtype=np.float64))
            if self.format == "azure":
                if AZURE_TOKENS in self.columns:
                    block.tokens = self._ints(df[AZURE_TOKENS], lines, AZURE_TOKENS, 0)
            else:
                self._strait_columns(df, lines, block)
            yield block
        if total == 0:
            raise TraceError(self.label, "holds no requests (header only)")

    def _strait_columns(self, df: pd.DataFrame, lines: np.ndarray, block: TraceBlock) -> None:
        cols = self.columns
        if "model" in cols:
            block.model = self._strings(df["model"], lines, "model")
        if "priority" in cols:
            block.priority = self._priorities(df["priority"], lines)
        if "deadline_ms" in cols:
            d = self._floats(df["deadline_ms"], lines, "deadline_ms")
            self._require(d > 0, d, lines, "deadline_ms", "relative deadline must be > 0 ms")
            block.deadline_ms = d
        if "deadline_s" in cols:
            d = self._floats(df["deadline_s"], lines, "deadline_s")
            self._require(d > block.time_s, d, lines, "deadline_s",
                          "absolute deadline must be after arrival_s")
            block.deadline_s = d
        if "items" in cols:
            block.items = self._ints(df["items"], lines, "items", 1).astype(np.int32)
        if "tokens" in cols:
            block.tokens = self._ints(df["tokens"], lines, "tokens", 0)

    # -- column parsers ------------------------------------------------------------------
    def _err(self, message: str, line: int, column: str) -> TraceError:
        return TraceError(self.label, message, line=int(line), column=column,
                          parquet=self.parquet)

    def _require(self, ok: np.ndarray, vals: np.ndarray, lines: np.ndarray, column: str,
                 message: str) -> None:
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise self._err(f"{message}, got {_show(vals[i])}", lines[i], column)

    def _empty_check(self, col: pd.Series, lines: np.ndarray, column: str) -> None:
        empty = col.isna().to_numpy()
        if empty.any():
            raise self._err("empty value", lines[int(np.flatnonzero(empty)[0])], column)

    def _floats(self, col: pd.Series, lines: np.ndarray, column: str) -> np.ndarray:
        self._empty_check(col, lines, column)
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col):
            vals = col.to_numpy(dtype=np.float64)
        else:
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise self._err(f"not a number: {_show(col.iloc[i])}", lines[i], column)
            vals = np.array([float(str(v)) for v in col], dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self._err(f"not a finite number: {_show(col.iloc[i])}", lines[i], column)
        return vals

    def _ints(self, col: pd.Series, lines: np.ndarray, column: str, floor: int) -> np.ndarray:
        vals = self._floats(col, lines, column)
        frac = vals != np.round(vals)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise self._err(f"not a whole number: {_show(col.iloc[i])}", lines[i], column)
        low = vals < floor
        if low.any():
            i = int(np.flatnonzero(low)[0])
            raise self._err(f"must be >= {floor}, got {_show(col.iloc[i])}", lines[i], column)
        big = vals > np.iinfo(np.int32).max
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise self._err(f"too large: {_show(col.iloc[i])}", lines[i], column)
        return vals.astype(np.int64)

    def _strings(self, col: pd.Series, lines: np.ndarray, column: str) -> np.ndarray:
        self._empty_check(col, lines, column)
        vals = col.astype(str).str.strip()
        empty = (vals == "").to_numpy()
        if empty.any():
            raise self._err("empty value", lines[int(np.flatnonzero(empty)[0])], column)
        return vals.to_numpy(dtype=object)

    def _priorities(self, col: pd.Series, lines: np.ndarray) -> np.ndarray:
        names = self._strings(col, lines, "priority")
        codes = pd.Series(names).str.lower().map(_PRIORITY_CODES)
        bad = codes.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self._err(f"priority must be 'high' or 'low', got {names[i]!r}", lines[i],
                            "priority")
        return codes.to_numpy(dtype=np.int8)

    def _timestamps(self, col: pd.Series, lines: np.ndarray) -> np.ndarray:
        self._empty_check(col, lines, AZURE_TIME)
        ts = pd.to_datetime(col.astype(str).str.strip(), format="ISO8601", errors="coerce")
        bad = ts.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self._err(f"not a timestamp like 2023-11-16 18:15:46.6805900: "
                            f"{_show(col.iloc[i])}", lines[i], AZURE_TIME)
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _show(value: object) -> str:
    """A cell as the user wrote it: strings quoted, numbers plain (no numpy repr)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_error(label: str, exc: BaseException) -> TraceError:
    found = _FIELDS.search(str(exc))
    if found:
        want, line, saw = found.groups()
        return TraceError(label, f"expected {want} fields, found {saw}", line=int(line))
    return TraceError(label, f"not a readable CSV file: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- writing ---------------------------------------------------------------------------


def check_output_path(path: Path | str) -> None:
    """Only formats the reader reads back exactly may be written."""
    name = str(path).lower()
    if not name.endswith(PARQUET_SUFFIXES + CSV_SUFFIXES):
        raise UserError(f"{path}: a trace file must end in .csv, .csv.gz or .parquet")


def written_by_strait_sim(path: Path | str) -> bool | None:
    """Whether an existing file is a trace :func:`write_trace` wrote (its exact columns);
    None when there is no such file. ``--overwrite`` replaces only those."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names) == list(WRITE_COLUMNS)
        opener = gzip.open if str(path).lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            return fh.read(200).split(b"\n", 1)[0] == ",".join(WRITE_COLUMNS).encode()
    except Exception:  # unreadable, not gzip, not Parquet: not ours
        return False


def _frame(chunk: RequestChunk) -> pd.DataFrame:
    return pd.DataFrame({
        "arrival_s": chunk.arrival_s,
        "model": np.asarray(chunk.models, dtype=object)[chunk.model],
        "priority": np.asarray(PRIORITY_NAMES, dtype=object)[chunk.priority],
        "deadline_s": chunk.deadline_s,
        "items": chunk.items,
    })


def write_trace(path: Path | str, chunks: Iterable[RequestChunk],
                description: dict | None = None) -> int:
    """Write a request stream as a strait-sim trace, atomically; return the row count.

    Columns: arrival_s, model, priority, deadline_s (absolute, so that reading it back
    gives bit-identical deadlines), items. Floats are written in their shortest exact
    form, so the CSV reads back identical too. A Parquet file also keeps ``description``
    (the workload that made it) in its metadata.
    """
    check_output_path(path)
    count = 0
    with atomic_path(path) as tmp:
        if is_parquet(path):
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([("arrival_s", pa.float64()), ("model", pa.string()),
                                ("priority", pa.string()), ("deadline_s", pa.float64()),
                                ("items", pa.int32())])
            if description is not None:
                schema = schema.with_metadata({DESCRIPTION_KEY: json.dumps(description)})
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for chunk in chunks:
                    if len(chunk):
                        writer.write_table(pa.Table.from_pandas(_frame(chunk), schema=schema,
                                                                preserve_index=False))
                        count += len(chunk)
        else:
            with open(tmp, "wb") as raw:
                gz = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                      if str(path).lower().endswith(".gz") else None)
                text = io.TextIOWrapper(gz or raw, encoding="utf-8", newline="")
                text.write(",".join(WRITE_COLUMNS) + "\n")
                for chunk in chunks:
                    if len(chunk):
                        _frame(chunk).to_csv(text, header=False, index=False,
                                             lineterminator="\n")
                        count += len(chunk)
                text.flush()
                text.detach()
                if gz is not None:
                    gz.close()
        public_mode(tmp)
    return count


def public_mode(path: Path | str) -> None:
    """Give a finished output the usual permissions (0666 minus the umask): the atomic
    temporary file was created private (0600), which a shared trace must not stay."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only
    be read by setting it, which races with other threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_description(path: Path | str) -> dict | None:
    """The workload description kept in a Parquet trace written by :func:`write_trace`."""
    if not is_parquet(path):
        return None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    raw = meta.get(DESCRIPTION_KEY)
    return json.loads(raw) if raw else None
