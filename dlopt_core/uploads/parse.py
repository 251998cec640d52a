"""Data sets a person brings: a CSV table, idx files (the MNIST format) or an .npz of arrays.

Everything is checked here, on the server, before anything is stored: a bad file raises
:class:`DataFileError`, whose message names the row (numbered as a spreadsheet shows it, the
header is row 1) and the column, the value and what is allowed. Cell text is never evaluated,
and appears in messages only through :func:`shown` (``repr``, cut short), so no message
carries a formula or a control character back out. :mod:`dlopt_core.uploads.store` keeps a
checked :class:`UserTable`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import lzma
import math
import os
import re
import struct
import unicodedata
import zipfile
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

# The page and the CLI catch ConfigError for every bad input, uploads included (the CLI exits
# with status 2).
from dlopt_core.errors import ConfigError, shown

Task = Literal["classification", "regression"]
Arrays = tuple[np.ndarray, np.ndarray]
# n_samples x n_features of any data set, generated or uploaded. 2,000,000 float64 values are
# 16 MB; making, splitting and standardising a set holds about four copies at once (~64 MB) and
# the float32 tensors on the device take 8 MB, so several users can load one at the same time.
# It is the largest n_samples (200,000) at the default 10 features.
MAX_VALUES = 2_000_000
# An uploaded set's name: ``user-`` and 12 hex digits of its content (UserTable.name).
USER_NAME = re.compile(r"user-[0-9a-f]{12}")

TaskChoice = Literal["auto", "classification", "regression"]

# An upload is read whole into memory and parsed into Python objects row by row; 20 MB of
# CSV is about 2 million short numbers, MAX_VALUES, the same bound as a generated set.
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_COLUMNS = 1_000
MAX_ROWS = 200_000  # data rows, the header not counted; the largest generated set's n_samples
# The validation split takes 20%: with fewer than 10 rows it holds one or two samples, and
# its curve says nothing.
MIN_ROWS = 10
MAX_IDX_DIMENSIONS = 4  # an idx array: labels (1), images (3), or images with channels (4)
# A numeric target of integers with at most this many distinct values reads as class labels
# (0/1, 1..10); more, or any fraction, reads as a quantity to regress.
MAX_AUTO_CLASSES = 20
MAX_CLASSES = 100  # output units; an id column chosen as target by mistake would make thousands
MAX_NAME_CHARS = 200  # a column name or class label: it is shown in forms, legends and logs

_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the tensors are float32: 1e39 would be inf
# Plain decimal numbers only: Python's float() also takes "1_000", "infinity" and non-ASCII
# digits, which a spreadsheet would not read as the same number.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_MISSING = {"", "-", "na", "n/a", "#n/a", "nan", "null", "none"}
_INFINITE = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "+nan", "-nan"}
# What makes a spreadsheet evaluate a cell (OWASP's CSV injection list): "=", "+", "@", a
# "-" not starting a number, and a tab or carriage return in front of any of them.
_FORMULA_START = ("=", "+", "@", "-")
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
# idx type codes (http://yann.lecun.com/exdb/mnist/): the data that follows is big-endian.
_IDX_TYPES = {
    0x08: (">u1", "unsigned byte"),
    0x09: (">i1", "signed byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}


class DataFileError(ConfigError):
    """An uploaded file cannot be used; the message says where (row, column) and why."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == is elementwise
class UserTable:
    """A checked data set from a file, ready to store.

    ``x`` is float32 (rows, features), images flattened (``image_shape`` keeps their shape
    for the CNN). ``y`` holds int64 class indices into ``classes`` for classification,
    float32 values for regression. ``sha256`` is of the uploaded bytes (CSV) or of the
    checked arrays (:func:`table_from_arrays`).
    """

    x: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]  # original labels, sorted; () for regression
    source: str
    sha256: str
    target: str  # the target column (CSV), "y" for arrays
    image_shape: tuple[int, int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, features)``."""
        return int(self.x.shape[0]), int(self.x.shape[1])

    @property
    def name(self) -> str:
        """The data set's name: ``user-`` and 12 hex digits of the content, target and task.

        The same file with another target (or task) is another data set.
        """
        key = f"{self.sha256}\n{self.target}\n{self.task}".encode()
        return f"user-{hashlib.sha256(key).hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------- CSV


def parse_csv(
    raw: bytes, *, target: str, task: TaskChoice = "auto", source: str = "upload.csv"
) -> UserTable:
    """Read a CSV upload: a header row of names, then numbers; ``target`` is the column to predict.

    ``task="auto"`` reads a target holding any text, or integers with at most
    :data:`MAX_AUTO_CLASSES` distinct values, as class labels, and anything else as a
    quantity to regress. UTF-8 with or without a BOM; ``,`` separates fields, ``"`` quotes.
    Nothing is stored: see :func:`store_table`.

    Raises:
        DataFileError: the first problem found, naming its row and column.
    """
    source = _clean_source(source)
    _check_task(task)
    _check_size(len(raw), source)
    _check_widths(raw, source)
    text = _decode(raw, source)
    records = _records(text, source)
    try:
        header_row, header = next(records)
    except StopIteration:
        raise DataFileError(
            f"{source}: the file is empty; expected a header row of column names, then data rows"
        ) from None
    names = _header(header, header_row, source)
    t = _target_index(names, target, source)
    features = tuple(n for j, n in enumerate(names) if j != t)
    if not features:
        raise DataFileError(
            f"{source}: the header holds only the target column {shown(names[t])}; "
            "at least one feature column is needed"
        )
    d, m = len(features), len(names)
    where_target = f"{source}, target column {shown(names[t])}"
    values = array("d")
    labels: list[str] = []
    numeric_target = array("d")
    first_text: tuple[int, str] | None = None  # the first row whose target is text, not a number
    n = 0
    for row, fields in records:
        if len(fields) != m:
            raise DataFileError(
                f"{source}: row {row} has {len(fields)} field{'s' * (len(fields) != 1)}, the header has {m}"
            )
        n += 1
        if n > MAX_ROWS:
            raise DataFileError(f"{source}: more than {MAX_ROWS:,} data rows (row {row} is one too many)")
        if n * d > MAX_VALUES:
            raise DataFileError(
                f"{source}: {d:,} features x {n:,} rows (at row {row}) is over the limit of "
                f"{MAX_VALUES:,} values; with {d:,} features keep at most {MAX_VALUES // d:,} rows"
            )
        for j, cell in enumerate(fields):
            try:
                if j != t:
                    values.append(_feature_cell(cell))
                    continue
                label, number = _target_cell(cell)
            except _CellProblem as problem:  # the location is built only here: it costs a repr
                raise DataFileError(f"{source}, row {row}, column {shown(names[j])}: {problem}") from None
            labels.append(label)
            if number is None:
                first_text = first_text or (row, label)
            else:
                numeric_target.append(number)
    if n < MIN_ROWS:
        raise DataFileError(f"{source}: {n} data row{'s' * (n != 1)}; at least {MIN_ROWS} are needed")
    if first_text and task == "regression":
        raise DataFileError(
            f"{where_target}: row {first_text[0]} holds text ({shown(first_text[1])}); "
            "regression needs numbers in every row (choose classification or auto)"
        )
    y_values: np.ndarray | list[str] = labels if first_text else np.frombuffer(numeric_target, np.float64)
    resolved, y, classes = _encode_target(y_values, task=task, where=where_target)
    x = np.frombuffer(values, np.float64).reshape(n, d).astype(np.float32)
    return UserTable(
        x=x, y=y, task=resolved, feature_names=features, classes=classes, source=source,
        sha256=hashlib.sha256(raw).hexdigest(), target=names[t],
    )


def csv_column_names(raw: bytes, *, source: str = "upload.csv") -> list[str]:
    """The names in a CSV's header row (to offer a target), read without parsing the rest.

    Raises:
        DataFileError: the file is over the size limit or a line is far too wide to be a table.
    """
    source = _clean_source(source)
    _check_size(len(raw), source)
    _check_widths(raw, source)
    first = raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    try:
        return [name.strip() for name in next(csv.reader([first]), [])]
    except csv.Error as err:
        raise DataFileError(f"{source}: row 1 is not well-formed CSV ({err})") from None


def _check_widths(raw: bytes, source: str) -> None:
    """Refuse a line with far more fields than :data:`MAX_COLUMNS` before the CSV reader makes
    a Python string of each (a 17 MB line of 9 million empty fields took ~500 MB to refuse).
    Twice the limit in commas: quoted text may hold a few."""
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if (commas := line.count(b",")) >= 2 * MAX_COLUMNS:
            raise DataFileError(
                f"{source}: line {number} holds {commas:,} commas; at most {MAX_COLUMNS:,} columns are allowed"
            )


def _decode(raw: bytes, source: str) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataFileError(f"{source}: the file is UTF-16 text; save it as CSV UTF-8")
    try:
        text = raw.decode("utf-8-sig")  # -sig: Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFileError(
            f"{source}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); save it as CSV UTF-8"
        ) from None
    if (nul := text.find("\0")) >= 0:
        line = text[:nul].count("\n") + 1
        raise DataFileError(f"{source}: a NUL character on line {line}; a CSV file is text, this looks binary")
    return text


def _records(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """``(row, fields)`` for each non-blank record; ``row`` counts records as a spreadsheet does.

    A quoted field may hold a line break, so a row is a record, not a line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row = 0
    while True:
        row += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataFileError(f"{source}: row {row} is not well-formed CSV ({err})") from None
        if fields:  # a blank line: skipped, but counted, as a spreadsheet shows it
            yield row, fields


def _header(fields: list[str], row: int, source: str) -> list[str]:
    if len(fields) > MAX_COLUMNS:
        raise DataFileError(f"{source}: {len(fields):,} columns; at most {MAX_COLUMNS:,} are allowed")
    names = [f.strip() for f in fields]
    if all(_NUMBER.fullmatch(n) for n in names):
        raise DataFileError(
            f"{source}: row {row} holds only numbers ({shown(', '.join(names))}); "
            "the first row must name the columns"
        )
    seen: dict[str, int] = {}
    for j, (cell, name) in enumerate(zip(fields, names, strict=True), start=1):
        where = f"{source}, row {row} (the header), column {j}"
        if not name:
            raise DataFileError(f"{where}: no name; every column needs a name in the header")
        if problem := _text_problem(cell, name):
            raise DataFileError(f"{where}: the name {shown(cell)} {problem}")
        if name in seen:
            raise DataFileError(
                f"{source}, row {row} (the header): the column name {shown(name)} appears twice "
                f"(columns {seen[name]} and {j}); names must be distinct"
            )
        seen[name] = j
    return names


def _target_index(names: list[str], target: str, source: str) -> int:
    wanted = target.strip() if isinstance(target, str) else target
    if wanted in names:
        return names.index(wanted)
    listed = ", ".join(shown(n, limit=30) for n in names[:10])
    more = f" and {len(names) - 10:,} more" if len(names) > 10 else ""
    hint = ""
    if len(names) == 1 and (sep := next((s for s in (";", "\t", "|") if s in names[0]), None)):
        hint = f"; the header seems to use {sep!r} between names: save the file with commas"
    raise DataFileError(
        f"{source}: target column {shown(target)} is not in the header (columns: {listed}{more}){hint}"
    )


class _CellProblem(Exception):
    """What is wrong with one cell; the caller adds its row and column."""


def _feature_cell(cell: str) -> float:
    """The number in ``cell``; :class:`_CellProblem` says why there is none."""
    text = cell.strip()
    if cell[:1] not in ("\t", "\r") and _NUMBER.fullmatch(text):
        return _float32(text)
    raise _CellProblem(f"{shown(cell)} {_not_a_number(cell)}")


def _target_cell(cell: str) -> tuple[str, float | None]:
    """The label text and, when it is a plain number, its value."""
    text = cell.strip()
    if cell[:1] not in ("\t", "\r") and _NUMBER.fullmatch(text):
        return text, _float32(text)
    if text.lower() in _MISSING or text.lower() in _INFINITE:
        raise _CellProblem(f"{shown(cell)} {_not_a_number(cell)}")
    if problem := _text_problem(cell, text):
        raise _CellProblem(f"the label {shown(cell)} {problem}")
    return text, None


def _float32(text: str) -> float:
    number = float(text)
    if abs(number) > _FLOAT32_MAX:  # finite in float64, inf in the float32 tensors
        raise _CellProblem(f"{shown(text)} is too large (float32 holds up to 3.4e38)")
    return number


def _not_a_number(cell: str) -> str:
    """Why a feature cell is not a number: missing, infinite, a formula, or text."""
    text = cell.strip().lower()
    if cell[:1] not in ("\t", "\r"):
        if text in _MISSING:
            return "is a missing value; every cell needs a number (fill or drop the row)"
        if text in _INFINITE:
            return "is not a finite number; every cell needs a finite number"
    if _formula_like(cell):
        return "looks like a spreadsheet formula, never evaluated; cells hold plain numbers"
    return "is not a number; feature columns hold numbers only (encode categories as numbers)"


def _formula_like(cell: str) -> bool:
    if cell[:1] in ("\t", "\r"):
        return True
    text = cell.strip()
    # Numbers are read before this is asked, so "-5" and "-.5" never get here as cells.
    return text[:1] in _FORMULA_START and not (text[:1] == "-" and text[1:2].isdigit())


def _text_problem(cell: str, text: str) -> str | None:
    """Why a column name or label cannot be kept as text, or None."""
    if _formula_like(cell):
        return "looks like a spreadsheet formula, never evaluated; change it"
    if len(text) > MAX_NAME_CHARS:
        return f"is {len(text):,} characters long; at most {MAX_NAME_CHARS} are allowed"
    if hidden := next((c for c in text if unicodedata.category(c) in ("Cc", "Cf")), None):
        return f"holds an invisible control character (U+{ord(hidden):04X}); remove it"
    return None


# ------------------------------------------------------------------------- targets and checks


def _encode_target(
    values: np.ndarray | list[str], *, task: TaskChoice, where: str
) -> tuple[Task, np.ndarray, tuple[str, ...]]:
    """``(task, y, classes)``: labels sorted and numbered 0..k-1, or float32 values."""
    if isinstance(values, list):  # text labels: classes whatever was asked, unless regression
        if task == "regression":
            raise DataFileError(f"{where}: holds text labels; regression needs numbers (choose classification)")
        uniques, y = np.unique(np.array(values, dtype=str), return_inverse=True)
        classes = tuple(str(u) for u in uniques)
    else:
        uniques, y = np.unique(values, return_inverse=True)
        integers = bool(np.all(uniques == np.round(uniques)))
        if task == "regression" or (task == "auto" and not (integers and len(uniques) <= MAX_AUTO_CLASSES)):
            if len(uniques) < 2:
                raise DataFileError(
                    f"{where}: the same value ({_label(float(uniques[0]))}) in every row; "
                    "regression needs values that vary"
                )
            return "regression", values.astype(np.float32), ()
        classes = tuple(_label(float(u)) for u in uniques)
    if len(classes) < 2:
        raise DataFileError(
            f"{where}: a single class ({shown(classes[0])}) in every row; classification needs at least two"
        )
    if len(classes) > MAX_CLASSES:
        raise DataFileError(
            f"{where}: {len(classes):,} distinct labels; at most {MAX_CLASSES} classes are allowed "
            "(is it the column to predict?)"
        )
    return "classification", y.astype(np.int64).reshape(-1), classes


def _label(value: float) -> str:
    """A numeric class label as text: ``3`` for 3.0, the shortest round-trip form otherwise."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _check_task(task: object) -> None:
    if task not in ("auto", "classification", "regression"):
        raise DataFileError(f"task: unknown {shown(task)} (allowed: auto, classification, regression)")


def _check_size(size: int, source: str) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise DataFileError(
            f"{source}: {size / 2**20:,.1f} MB is over the limit of {MAX_UPLOAD_BYTES // 2**20} MB"
        )


def _check_rows(n: int, d: int, source: str) -> None:
    if n < MIN_ROWS:
        raise DataFileError(f"{source}: {n} rows; at least {MIN_ROWS} are needed")
    if n > MAX_ROWS:
        raise DataFileError(f"{source}: {n:,} rows; at most {MAX_ROWS:,} are allowed")
    if n * d > MAX_VALUES:
        raise DataFileError(
            f"{source}: {n:,} rows x {d:,} features = {n * d:,} values is over the limit of "
            f"{MAX_VALUES:,}; with {d:,} features keep at most {MAX_VALUES // d:,} rows"
        )


def _clean_source(source: str) -> str:
    """The file's own name, without folders or invisible characters: it becomes a label."""
    name = re.split(r"[/\\]", str(source))[-1]
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C")).strip()
    return name[:100] or "upload"


# --------------------------------------------------------------------------- idx, npz, arrays


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed or not; see :func:`parse_idx`."""
    path = Path(path)
    return parse_idx(read_upload_file(path), source=path.name)


def parse_idx(raw: bytes, *, source: str = "upload.idx") -> np.ndarray:
    """The array in idx bytes: two zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian int32, then the values, big-endian.

    Gzip-compressed bytes (``.gz``, as MNIST is published) are recognised by their magic
    bytes. The length must be exactly what the header declares.

    Raises:
        DataFileError: not idx, an unknown type code, or a length that does not match.
    """
    source = _clean_source(source)
    _check_size(len(raw), source)
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(raw, source)
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise DataFileError(
            f"{source}: not an idx file: it starts with {shown(raw[:4].hex(' '))}; "
            "an idx file starts with 00 00, a type code and the number of dimensions"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        allowed = ", ".join(f"0x{c:02X} {name}" for c, (_, name) in _IDX_TYPES.items())
        raise DataFileError(f"{source}: idx type code 0x{code:02X} is unknown (allowed: {allowed})")
    if ndim == 0:
        raise DataFileError(f"{source}: the idx header declares 0 dimensions; at least 1 is needed")
    if ndim > MAX_IDX_DIMENSIONS:  # NumPy holds at most 64: it failed without naming the file
        raise DataFileError(
            f"{source}: the idx header declares {ndim} dimensions; at most {MAX_IDX_DIMENSIONS} are read "
            "(labels have 1, images 3: count, height, width)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(
            f"{source}: {len(raw)} bytes end inside the idx header ({ndim} dimensions need {header} bytes)"
        )
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if any(size < 0 for size in dims):
        raise DataFileError(f"{source}: the idx header declares a negative dimension {dims}")
    dtype, type_name = np.dtype(_IDX_TYPES[code][0]), _IDX_TYPES[code][1]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        why = "it is cut short" if len(raw) < expected else "extra bytes follow the data"
        raise DataFileError(
            f"{source}: {len(raw):,} bytes, but its header ({' x '.join(map(str, dims))} {type_name}s) "
            f"needs exactly {expected:,}; {why}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_upload_file(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes, refused over :data:`MAX_UPLOAD_BYTES` without reading it whole.

    The size on disk is checked first; a file that does not know its size (a pipe, a device
    such as ``/dev/zero``) is read only one byte past the limit.
    """
    path = Path(path)
    try:
        _check_size(path.stat().st_size, path.name)  # before reading it into memory
        with path.open("rb") as f:
            raw = f.read(MAX_UPLOAD_BYTES + 1)
    except OSError as err:
        raise DataFileError(f"{path}: cannot be read ({err.strerror or err})") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise DataFileError(f"{path.name}: more than {MAX_UPLOAD_BYTES // 2**20} MB, the limit")
    return raw


def _gunzip(raw: bytes, source: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            # Read at most one byte past the limit: a small file may expand a thousandfold.
            data = f.read(MAX_UPLOAD_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{source}: not a readable gzip file ({shown(str(err))})") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataFileError(
            f"{source}: decompresses to more than {MAX_UPLOAD_BYTES // 2**20} MB, the limit"
        )
    return data


def load_npz_arrays(
    path: str | os.PathLike[str], x_key: str = "x", y_key: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an .npz archive (``np.savez(path, x=x, y=y)``); see :func:`parse_npz`."""
    path = Path(path)
    return parse_npz(read_upload_file(path), x_key=x_key, y_key=y_key, source=path.name)


def parse_npz(
    raw: bytes, *, x_key: str = "x", y_key: str = "y", source: str = "upload.npz"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from .npz bytes, read with ``allow_pickle=False``.

    An array of Python objects (stored as a pickle) is refused, never unpickled.

    Raises:
        DataFileError: not an .npz archive, a key missing, a pickle, or over the size limit.
    """
    source = _clean_source(source)
    _check_size(len(raw), source)
    if raw[:6] == _NPY_MAGIC:
        raise DataFileError(
            f"{source}: a single .npy array; save x and y together with np.savez(file, x=x, y=y)"
        )
    if raw[:4] != _ZIP_MAGIC:
        raise DataFileError(f"{source}: not an .npz archive (np.savez writes one)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    # NotImplementedError: a zip version newer than zipfile reads.
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise DataFileError(f"{source}: not a readable .npz archive ({shown(str(err))})") from None
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        for key in (x_key, y_key):
            if key not in members:
                listed = ", ".join(shown(k, limit=30) for k in list(members)[:10]) or "none"
                raise DataFileError(f"{source}: no array {shown(key)} (arrays: {listed})")
        # zipfile stops decompressing at the size a member declares: a small archive cannot
        # expand past this check.
        if (size := members[x_key].file_size + members[y_key].file_size) > MAX_UPLOAD_BYTES:
            raise DataFileError(
                f"{source}: arrays {shown(x_key)} and {shown(y_key)} hold {size / 2**20:,.1f} MB "
                f"uncompressed; the limit is {MAX_UPLOAD_BYTES // 2**20} MB"
            )
        x, y = (_npy_array(archive, members[key], f"{source}, array {shown(key)}") for key in (x_key, y_key))
    return x, y


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npy_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """The .npy array in one member, its header checked before memory is set aside for it."""
    try:
        member = archive.read(info)
    # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, NotImplementedError,
            RuntimeError, ValueError) as err:
        raise DataFileError(f"{where}: cannot be decompressed ({shown(str(err))})") from None
    f = io.BytesIO(member)
    try:
        version = np.lib.format.read_magic(f)
        if version not in _NPY_HEADERS:
            raise ValueError(f"format version {version} (1.0 and 2.0 are read)")
        shape, _, dtype = _NPY_HEADERS[version](f)
    except ValueError as err:
        raise DataFileError(f"{where}: not a readable .npy array ({shown(str(err))})") from None
    if dtype.hasobject:
        raise DataFileError(
            f"{where}: holds Python objects (a pickle), which are never loaded; "
            "save numbers (or text labels) only"
        )
    # read_array sets aside the declared shape before reading: the header may not promise
    # more than the member holds.
    needed, held = math.prod(shape) * dtype.itemsize, len(member) - f.tell()
    if needed != held:
        raise DataFileError(
            f"{where}: its header declares shape {shape} of {dtype} ({needed:,} bytes), but {held:,} bytes follow"
        )
    f.seek(0)
    return np.lib.format.read_array(f, allow_pickle=False)


def table_from_arrays(
    x: np.ndarray, y: np.ndarray, *, source: str, task: TaskChoice = "auto"
) -> UserTable:
    """A checked table from arrays: ``x`` (rows, features), images (rows, height, width) or
    (rows, channels, height, width), and ``y`` one label or value per row.

    Images are flattened and keep their ``image_shape`` so the CNN can use them. The values
    are checked as in :func:`parse_csv`: finite, enough rows, more than one class; the column
    limit applies to tables (images are bounded by the number of values).

    Raises:
        DataFileError: naming the array, the index and the value.
    """
    source = _clean_source(source)
    _check_task(task)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"{source}, x: dtype {x.dtype} is not allowed; x holds numbers")
    if y.dtype.kind not in "biufU":
        raise DataFileError(f"{source}, y: dtype {y.dtype} is not allowed; y holds numbers or text labels")
    if x.ndim not in (2, 3, 4):
        raise DataFileError(
            f"{source}, x: shape {x.shape}; expected (rows, features), (rows, height, width) "
            "or (rows, channels, height, width)"
        )
    n, d = len(x), math.prod(x.shape[1:])
    if y.shape != (n,):
        raise DataFileError(f"{source}, y: shape {y.shape}; expected ({n},), one label per row of x")
    image_shape: tuple[int, int, int] | None = None
    if x.ndim > 2:
        image_shape = (1, *x.shape[1:]) if x.ndim == 3 else tuple(x.shape[1:])  # type: ignore[assignment]
        if min(image_shape[1:]) < 2:  # the CNN pools 2x2
            raise DataFileError(f"{source}, x: images {image_shape} need a height and width of at least 2")
    elif d > MAX_COLUMNS:
        raise DataFileError(f"{source}, x: {d:,} features; at most {MAX_COLUMNS:,} are allowed")
    if d == 0:
        raise DataFileError(f"{source}, x: shape {x.shape} has no features")
    _check_rows(n, d, source)
    _check_finite(x, "x", source)
    if y.dtype.kind == "U":
        labels = [str(v) for v in y]
        for i, label in enumerate(labels):
            where = f"{source}, y[{i}]"
            if label.strip().lower() in _MISSING or label.strip().lower() in _INFINITE:
                raise DataFileError(f"{where}: {shown(label)} is a missing label")
            if problem := _text_problem(label, label):
                raise DataFileError(f"{where}: the label {shown(label)} {problem}")
        values: np.ndarray | list[str] = labels
    else:
        _check_finite(y, "y", source)
        values = y.astype(np.float64)
    resolved, y_encoded, classes = _encode_target(values, task=task, where=f"{source}, y")
    flat = x.reshape(n, d).astype(np.float32)
    digest = hashlib.sha256()
    # The checked content: the same arrays give the same data set whatever file they came in.
    digest.update(json.dumps([list(flat.shape), image_shape, resolved, classes]).encode())
    digest.update(np.ascontiguousarray(flat).tobytes())
    digest.update(np.ascontiguousarray(y_encoded).tobytes())
    return UserTable(
        x=flat, y=y_encoded, task=resolved, feature_names=tuple(f"x{j}" for j in range(d)),
        classes=classes, source=source, sha256=digest.hexdigest(), target="y", image_shape=image_shape,
    )


def upload_kind(names: Sequence[str]) -> Literal["csv", "npz", "idx"]:
    """Which reader a set of uploaded file names goes to: one CSV, one .npz, or an idx pair.

    Raises:
        DataFileError: any other combination, saying what is accepted.
    """
    lowered = [name.lower() for name in names]
    if len(lowered) == 1 and lowered[0].endswith(".csv"):
        return "csv"
    if len(lowered) == 1 and lowered[0].endswith(".npz"):
        return "npz"
    if len(lowered) == 2 and not any(name.endswith((".csv", ".npz")) for name in lowered):
        return "idx"
    listed = ", ".join(shown(n, limit=60) for n in names) or "no file"
    raise DataFileError(
        f"{listed}: give one CSV file, one .npz archive (x and y), or two idx files "
        "(images and labels, as MNIST is published)"
    )


def parse_upload(
    files: Sequence[tuple[str, bytes]], *, target: str | None = None, task: TaskChoice = "auto",
    kind: Literal["csv", "npz", "idx"] | None = None,
) -> UserTable:
    """A checked table from uploaded files ``(name, bytes)``: a CSV (``target`` names its
    column), an .npz with arrays ``x`` and ``y``, or two idx files, the images (2 or more
    dimensions) and the labels (1), in either order. ``kind`` unset: read from the names
    (:func:`upload_kind`).

    Raises:
        DataFileError: the first problem found, naming the file.
    """
    kind = kind or upload_kind([name for name, _ in files])
    if kind == "csv":
        name, raw = files[0]
        if not target:
            raise DataFileError(f"{_clean_source(name)}: choose the target column, the one to predict")
        return parse_csv(raw, target=target, task=task, source=name)
    if kind == "npz":
        name, raw = files[0]
        x, y = parse_npz(raw, source=name)
        return table_from_arrays(x, y, source=name, task=task)
    arrays = [(name, parse_idx(raw, source=name)) for name, raw in files]
    images = [(name, a) for name, a in arrays if a.ndim >= 2]
    labels = [(name, a) for name, a in arrays if a.ndim == 1]
    if len(images) != 1 or len(labels) != 1:
        shapes = ", ".join(f"{_clean_source(name)} {a.shape}" for name, a in arrays)
        raise DataFileError(f"{shapes}: an idx pair is one array of images (rows, height, width) "
                            "and one of labels (rows,)")
    source = f"{_clean_source(images[0][0])} + {_clean_source(labels[0][0])}"
    return table_from_arrays(images[0][1], labels[0][1], source=source, task=task)


def _check_finite(a: np.ndarray, what: str, source: str) -> None:
    values = a.astype(np.float64, copy=False)
    bad = ~(np.abs(values) <= _FLOAT32_MAX)  # NaN compares False: caught with inf and overflow
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad)), a.shape)
        raise DataFileError(
            f"{source}, {what}[{', '.join(map(str, index))}]: {float(values[index])!r} is not a finite "
            "float32 number; missing values and infinity are not allowed"
        )
