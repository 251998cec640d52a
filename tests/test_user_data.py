"""Bring your own data: every bad file is refused with its row and column, good ones train."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlopt_core.catalog.datasets import get_dataset_spec, load_dataset, user_dataset_spec
from dlopt_core.uploads import parse
from dlopt_core.uploads.parse import (
    MAX_COLUMNS,
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    DataFileError,
    UserTable,
    load_idx,
    load_npz_arrays,
    parse_csv,
    parse_idx,
    parse_npz,
    table_from_arrays,
)
from dlopt_core.uploads.store import store_table
from dlopt_core.config import RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import Status, run


def _csv(header: str, rows: list[str], *, extra: str = "") -> bytes:
    """A header, the given rows, then enough good rows to pass the minimum."""
    width = header.count(",") + 1
    filler = [",".join(str((i + j) % 3) for j in range(width)) for i in range(12)]
    return "\n".join([header, *rows, *filler]).encode() + extra.encode()


# (file, target, words the message must hold): the row as a spreadsheet numbers it and the column.
BAD_FILES = {
    "not UTF-8": (b"a,y\n1,0\n\xe9t\xe9,1\n", "y", ["not UTF-8", "line 3"]),
    "UTF-16": ("a,y\n1,0\n".encode("utf-16"), "y", ["UTF-16"]),
    "binary": (b"a,y\n1,0\x00\n", "y", ["NUL", "line 2"]),
    "empty": (b"", "y", ["empty", "header"]),
    "blank lines only": (b"\n\n\r\n", "y", ["empty"]),
    "duplicate column": (_csv("a,b,a,y", []), "y", ["'a'", "twice", "columns 1 and 3"]),
    "empty column name": (_csv("a,,y", []), "y", ["column 2", "no name"]),
    "ragged row": (_csv("a,b,y", ["1,2,0", "1,2"]), "y", ["row 3", "2 fields", "header has 3"]),
    "extra field": (_csv("a,b,y", ["1,2,0,5"]), "y", ["row 2", "4 fields"]),
    "target missing": (_csv("a,b,y", []), "label", ["'label'", "not in the header", "'a', 'b', 'y'"]),
    "semicolons": (b"a;b;y\n1;2;0\n", "y", ["';'", "commas"]),
    "header of numbers": (_csv("1,2,3", []), "3", ["row 1", "only numbers"]),
    "only the target": (b"y\n" + b"0\n1\n" * 6, "y", ["only the target column"]),
    "too few rows": (b"a,y\n1,0\n2,1\n3,0\n", "y", ["3 data rows", "at least 10"]),
    "text in a feature": (_csv("a,b,y", ["1,2,0", "1,two,1"]), "y", ["row 3", "column 'b'", "'two'", "not a number"]),
    "empty cell": (_csv("a,b,y", ["1,,0"]), "y", ["row 2", "column 'b'", "missing value"]),
    "NA": (_csv("a,b,y", ["1,2,0", "NA,2,1"]), "y", ["row 3", "column 'a'", "'NA'", "missing value"]),
    "NaN": (_csv("a,b,y", ["nan,2,0"]), "y", ["row 2", "column 'a'", "missing value"]),
    "inf": (_csv("a,b,y", ["1,inf,0"]), "y", ["row 2", "column 'b'", "not a finite number"]),
    "minus inf": (_csv("a,b,y", ["1,-Infinity,0"]), "y", ["row 2", "column 'b'", "not a finite number"]),
    "overflows float32": (_csv("a,b,y", ["1,1e39,0"]), "y", ["row 2", "column 'b'", "too large"]),
    "missing target": (_csv("a,b,y", ["1,2,"]), "y", ["row 2", "column 'y'", "missing value"]),
    "unterminated quote": (b'a,y\n1,0\n"2,1\n', "y", ["row 3", "not well-formed"]),
    "text after a quote": (b'a,y\n1,0\n"2"x,1\n', "y", ["row 3", "not well-formed"]),
    "one class": (
        b"a,y\n" + b"".join(b"%d,cat\n" % i for i in range(12)), "y", ["column 'y'", "single class", "'cat'"]
    ),
    "constant target": (
        b"a,y\n" + b"".join(b"%d,2.5\n" % i for i in range(12)), "y", ["column 'y'", "same value (2.5)", "vary"]
    ),
    "too many classes": (
        b"a,y\n" + b"".join(b"%d,id%d\n" % (i, i) for i in range(parse.MAX_CLASSES + 1)), "y",
        ["column 'y'", f"{parse.MAX_CLASSES + 1} distinct labels"],
    ),
    "control character in a name": (_csv("a,b\x1b[31m,y", []), "y", ["column 2", "control character", "U+001B"]),
    "too many columns": (
        _csv(",".join(f"c{j}" for j in range(MAX_COLUMNS)) + ",y", []), "y", [f"{MAX_COLUMNS + 1:,} columns"]
    ),
}

FORMULAS = ["=1+2", "=HYPERLINK(\"http://x\")", "+SUM(A1:A3)", "@SUM(A1)", "-cmd|' /C calc'!A0", "\t=1", "\r5"]


def _nothing_stored(home: Path) -> bool:
    return not (home / "datasets").exists()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_its_row_and_column_and_nothing_stored(case: str, dlopt_home: Path) -> None:
    raw, target, words = BAD_FILES[case]
    with pytest.raises(DataFileError) as err:
        store_table(parse_csv(raw, target=target, source="mine.csv"))
    message = str(err.value)
    assert message.startswith("mine.csv"), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert _nothing_stored(dlopt_home)


def test_a_file_over_the_size_limit_is_refused_before_parsing(dlopt_home: Path) -> None:
    raw = b"a,y\n" + b"1,0\n" * (MAX_UPLOAD_BYTES // 4)
    with pytest.raises(DataFileError, match="MB is over the limit of 20 MB"):
        store_table(parse_csv(raw, target="y"))
    assert _nothing_stored(dlopt_home)


def test_too_many_rows_names_the_first_row_over(dlopt_home: Path) -> None:
    raw = b"a,y\n" + b"1,0\n2,1\n" * (MAX_ROWS // 2) + b"3,0\n"
    with pytest.raises(DataFileError, match=f"more than {MAX_ROWS:,} data rows \\(row {MAX_ROWS + 2} is one too many"):
        parse_csv(raw, target="y")
    assert _nothing_stored(dlopt_home)


def test_too_many_values_says_how_many_rows_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "MAX_VALUES", 40)
    with pytest.raises(DataFileError, match="over the limit of 40 values; with 2 features keep at most 20 rows"):
        parse_csv(_csv("a,b,y", [], extra="\n1,2,0" * 10), target="y")


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("where", ["feature", "label", "header"])
def test_formula_cells_are_refused_never_evaluated(formula: str, where: str, dlopt_home: Path) -> None:
    quoted = '"' + formula.replace('"', '""') + '"'
    if where == "feature":
        raw = _csv("a,b,y", ["1,2,0", f"1,{quoted},1"])
    elif where == "label":
        raw = _csv("a,b,y", ["1,2,cat", f"1,2,{quoted}"])
    else:
        raw = _csv(f"a,{quoted},y", [])
    with pytest.raises(DataFileError) as err:
        store_table(parse_csv(raw, target="y"))
    message = str(err.value)
    assert "looks like a spreadsheet formula, never evaluated" in message
    assert ("column 2" if where == "header" else "row 3") in message
    assert repr(formula)[:20] in message  # shown escaped (repr), never as the raw text
    assert _nothing_stored(dlopt_home)


def test_numbers_with_a_sign_are_numbers_not_formulas() -> None:
    table = parse_csv(_csv("a,b,y", ["+1.5,-.25,0", "-3,+2e3,1"]), target="y")
    assert table.x[:2].tolist() == [[1.5, -0.25], [-3.0, 2000.0]]


def test_a_long_cell_is_cut_short_in_the_message() -> None:
    with pytest.raises(DataFileError) as err:
        parse_csv(_csv("a,y", ["x" * 5000 + ",0"]), target="y")
    assert len(str(err.value)) < 300


def test_rows_are_counted_as_records_like_a_spreadsheet() -> None:
    # Row 3 is blank (skipped, but counted); row 4 is a quoted cell over two lines.
    raw = _csv("a,y", ["1,0", "", '"x\ny",1'])
    with pytest.raises(DataFileError, match="row 4, column 'a': 'x\\\\ny' is not a number"):
        parse_csv(raw, target="y")


def test_asking_regression_of_text_labels_names_the_row() -> None:
    raw = b"a,y\n" + b"".join(b"%d,%s\n" % (i, b"cat" if i % 2 else b"dog") for i in range(12))
    with pytest.raises(DataFileError, match="row 2 holds text \\('dog'\\); regression needs numbers"):
        parse_csv(raw, target="y", task="regression")


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(DataFileError, match="task: unknown 'cluster'"):
        parse_csv(_csv("a,y", []), target="y", task="cluster")  # type: ignore[arg-type]


def test_the_target_list_is_cut_short() -> None:
    raw = _csv(",".join(f"col{j}" for j in range(15)), [])
    with pytest.raises(DataFileError, match="'col9' and 5 more"):
        parse_csv(raw, target="y")


def test_a_data_file_error_is_a_config_error() -> None:
    # The page and the CLI catch ConfigError (the CLI exits with status 2).
    assert issubclass(DataFileError, ConfigError)


# ------------------------------------------------------------------------------- good files


def _assert_valid(table: UserTable) -> None:
    n, d = table.shape
    assert table.x.dtype == np.float32 and table.x.shape == (n, d) and np.isfinite(table.x).all()
    assert n >= parse.MIN_ROWS and len(table.feature_names) == d and table.y.shape == (n,)
    if table.task == "classification":
        assert table.y.dtype == np.int64 and len(table.classes) >= 2
        assert set(table.y.tolist()) == set(range(len(table.classes)))
    else:
        assert table.y.dtype == np.float32 and np.isfinite(table.y).all() and np.ptp(table.y) > 0
    assert table.name.startswith("user-") and len(table.sha256) == 64


def test_string_labels_are_sorted_and_numbered() -> None:
    rows = "".join(f'{i},{i / 4},"{label}"\n' for i, label in enumerate(["virginica", "setosa", "versi, color"] * 4))
    table = parse_csv(f"length, width ,species\n{rows}".encode(), target="species", source="C:\\data\\iris.csv")
    _assert_valid(table)
    assert table.task == "classification" and table.classes == ("setosa", "versi, color", "virginica")
    assert table.y[:3].tolist() == [2, 0, 1]
    assert table.feature_names == ("length", "width") and table.source == "iris.csv"
    assert table.x[:2].tolist() == [[0.0, 0.0], [1.0, 0.25]]


def test_integer_labels_are_classes_and_many_distinct_values_regress() -> None:
    labels = parse_csv(b"a,y\n" + b"".join(b"%d,%d\n" % (i, (i % 3) * 2 - 1) for i in range(12)), target="y")
    assert labels.task == "classification" and labels.classes == ("-1", "1", "3")
    counts = parse_csv(b"a,y\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30)), target="y")
    assert counts.task == "regression"  # 30 distinct integers: a quantity
    forced = parse_csv(b"a,y\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30)), target="y", task="classification")
    assert forced.task == "classification" and len(forced.classes) == 30
    binary = b"a,y\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(12))
    as_values = parse_csv(binary, target="y", task="regression")
    assert as_values.task == "regression" and as_values.y.dtype == np.float32


def test_regression_with_bom_crlf_and_blank_trailing_lines() -> None:
    body = "".join(f"{i},{i * 0.5},{i * 1.25 + 0.1}\r\n" for i in range(12))
    table = parse_csv(("\ufeffa,b,price\r\n" + body + "\r\n\r\n").encode(), target="price")
    _assert_valid(table)
    assert table.task == "regression" and table.feature_names == ("a", "b") and table.classes == ()
    assert table.y[:2].tolist() == pytest.approx([0.1, 1.35])


def test_nothing_is_written_by_parsing(dlopt_home: Path) -> None:
    parse_csv(_csv("a,b,y", []), target="y")
    assert not dlopt_home.exists()


CSV_TEXT = st.text(alphabet="0123456789,.-+eE=@\"\n\r\t ayNnf\u00e9\x00", max_size=400)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(
    st.binary(max_size=400),
    st.tuples(st.sampled_from(["", "a,y\n", "a,b,y\n", "\ufeffy,a\r\n"]), CSV_TEXT)
    .map(lambda p: (p[0] + p[1]).encode()),
    st.lists(st.lists(st.sampled_from(["1", "2.5", "-3", "", "x", "=1", "nan", '"4"', "1e40"]), min_size=1, max_size=4),
             min_size=0, max_size=30).map(lambda rows: ("a,b,y\n" + "\n".join(",".join(r) for r in rows)).encode()),
), task=st.sampled_from(["auto", "classification", "regression"]))
def test_any_bytes_give_a_valid_table_or_a_data_file_error(raw: bytes, task: str) -> None:
    try:
        table = parse_csv(raw, target="y", task=task)  # type: ignore[arg-type]
    except DataFileError as err:
        assert str(err)
    else:
        _assert_valid(table)


# ---------------------------------------------------------------------------------- idx, npz


def _idx(a: np.ndarray, code: int) -> bytes:
    big = a.astype(a.dtype.newbyteorder(">"))
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape) + big.tobytes()


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (24, 6, 5), dtype=np.uint8), np.arange(24, dtype=np.uint8) % 3


@pytest.mark.parametrize("compress", [False, True])
def test_idx_images_and_labels_load_exactly(images, compress: bool, tmp_path: Path) -> None:
    x, y = images
    paths = []
    for name, a in (("images-idx3-ubyte", x), ("labels-idx1-ubyte", y)):
        raw = _idx(a, 0x08)
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(raw) if compress else raw)
        paths.append(path)
    loaded_x, loaded_y = load_idx(paths[0]), load_idx(paths[1])
    assert loaded_x.dtype == np.uint8 and np.array_equal(loaded_x, x)
    assert loaded_y.dtype == np.uint8 and np.array_equal(loaded_y, y)


@pytest.mark.parametrize(
    ("dtype", "code"), [(np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)]
)
def test_every_idx_type_reads_back_in_native_order(dtype: type, code: int) -> None:
    a = (np.arange(60).reshape(3, 4, 5) - 30).astype(dtype)
    loaded = parse_idx(_idx(a, code))
    assert loaded.dtype == np.dtype(dtype) and np.array_equal(loaded, a)


@pytest.mark.parametrize(("raw", "words"), [
    (lambda r: r[:-1], ["cut short", "needs exactly"]),
    (lambda r: r + b"\0", ["extra bytes"]),
    (lambda r: r[:6], ["end inside the idx header"]),
    (lambda r: b"\x01" + r[1:], ["not an idx file"]),
    (lambda r: r[:2] + b"\x07" + r[3:], ["type code 0x07", "0x08 unsigned byte"]),
    (lambda r: gzip.compress(r)[:-8], ["not a readable gzip file"]),
])
def test_a_broken_idx_file_is_refused(images, raw, words: list[str], tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw(_idx(images[0], 0x08)))
    with pytest.raises(DataFileError) as err:
        load_idx(path)
    assert str(err.value).startswith("train-images-idx3-ubyte")
    for word in words:
        assert word in str(err.value)


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (MAX_UPLOAD_BYTES + 10))
    assert len(bomb) < 100_000
    with pytest.raises(DataFileError, match="decompresses to more than 20 MB"):
        parse_idx(bomb)


def _npz_bytes() -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, x=np.ones((12, 3)), y=np.array(["a", "b"] * 6))
    return out.getvalue()


GOOD_FILES = [_idx(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), 0x08), _npz_bytes()]
GOOD_FILES.append(gzip.compress(GOOD_FILES[0]))


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis folder in the repository
@given(
    base=st.sampled_from(GOOD_FILES),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3),
)
def test_damaged_idx_and_npz_files_give_arrays_or_a_data_file_error(base: bytes, cut: int, flips: list) -> None:
    raw = bytearray(base[: len(base) - cut % (len(base) + 1)] if cut % 2 else base)
    for at, value in flips:
        if raw:
            raw[at % len(raw)] = value
    for parse in (parse_idx, parse_npz):
        try:
            parsed = parse(bytes(raw))
        except DataFileError as err:
            assert str(err)
        else:
            assert all(isinstance(a, np.ndarray) for a in (parsed if isinstance(parsed, tuple) else (parsed,)))


def test_a_missing_file_is_a_data_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot be read"):
        load_idx(tmp_path / "nope.idx")


class _Payload:
    """Unpickling this makes a directory: proof of whether anything was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (str(self.marker),))


def test_an_npz_holding_a_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([_Payload(marker)] * 12, dtype=object), y=np.arange(12))
    never = "evil.npz, array 'x': holds Python objects \\(a pickle\\), which are never loaded"
    with pytest.raises(DataFileError, match=never):
        load_npz_arrays(path)
    assert not marker.exists()


def test_npz_arrays_load_exactly_and_keys_are_named(tmp_path: Path) -> None:
    x, y = np.random.default_rng(1).normal(size=(12, 3)), np.array(["a", "b"] * 6)
    path = tmp_path / "data.npz"
    np.savez_compressed(path, features=x, labels=y)
    loaded_x, loaded_y = load_npz_arrays(path, x_key="features", y_key="labels")
    assert np.array_equal(loaded_x, x) and np.array_equal(loaded_y, y)
    with pytest.raises(DataFileError, match="no array 'x' \\(arrays: 'features', 'labels'\\)"):
        load_npz_arrays(path)


def test_an_npy_header_promising_more_than_it_holds_is_refused() -> None:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    member.write(b"\0" * 16)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x.npy", member.getvalue())
        z.writestr("y.npy", member.getvalue())
    with pytest.raises(DataFileError, match="declares shape \\(1000000000000,\\)"):
        parse_npz(archive.getvalue())


@pytest.mark.parametrize(("raw", "words"), [
    (b"hello", ["not an .npz archive"]),
    (b"\x93NUMPY\x01\x00", ["a single .npy array", "np.savez"]),
    (b"PK\x03\x04broken", ["not a readable .npz archive"]),
])
def test_a_file_that_is_no_npz_is_refused(raw: bytes, words: list[str]) -> None:
    with pytest.raises(DataFileError) as err:
        parse_npz(raw, source="a.npz")
    assert all(w in str(err.value) for w in words)


def test_arrays_are_checked_like_csv_cells() -> None:
    x, y = np.ones((12, 2)), np.arange(12) % 2
    x[7, 1] = np.nan
    with pytest.raises(DataFileError, match="arrays, x\\[7, 1\\]: nan is not a finite"):
        table_from_arrays(x, y, source="arrays")
    with pytest.raises(DataFileError, match="y: a single class \\('0'\\)"):
        table_from_arrays(np.ones((12, 2)), np.zeros(12), source="arrays")
    with pytest.raises(DataFileError, match="5 rows; at least 10"):
        table_from_arrays(np.ones((5, 2)), np.arange(5), source="arrays")
    with pytest.raises(DataFileError, match="y: shape \\(11,\\); expected \\(12,\\)"):
        table_from_arrays(np.ones((12, 2)), np.arange(11), source="arrays")
    with pytest.raises(DataFileError, match="y\\[3\\]: the label '=1' looks like a spreadsheet formula"):
        table_from_arrays(np.ones((12, 2)), np.array(["a", "b", "c", "=1"] * 3), source="arrays")


def test_images_keep_their_shape(images) -> None:
    x, y = images
    gray = table_from_arrays(x, y, source="digits.idx")
    assert gray.image_shape == (1, 6, 5) and gray.shape == (24, 30) and gray.classes == ("0", "1", "2")
    assert np.array_equal(gray.x[3], x[3].reshape(-1).astype(np.float32))
    colour = table_from_arrays(np.stack([x, x, x], axis=1), y, source="rgb.npz")
    assert colour.image_shape == (3, 6, 5) and colour.shape == (24, 90)


# --------------------------------------------------------------------------- store and load


def _iris_like(n: int = 40) -> bytes:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        label = ["red", "green", "blue"][i % 3]
        a, b = rng.normal(i % 3, 0.3), rng.normal(-(i % 3), 0.3)
        rows.append(f"{a:.4f},{b:.4f},{label}")
    return ("a,b,colour\n" + "\n".join(rows) + "\n").encode()


def test_store_is_idempotent_and_loads_by_name(dlopt_home: Path) -> None:
    table = parse_csv(_iris_like(), target="colour", source="colours.csv")
    name = store_table(table)
    folder = dlopt_home / "datasets"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert sorted(stamps) == [f"{name}.json", f"{name}.npz"]  # no temporary file left
    assert store_table(parse_csv(_iris_like(), target="colour", source="colours.csv")) == name
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps

    meta = json.loads((folder / f"{name}.json").read_text())
    assert meta["classes"] == ["blue", "green", "red"] and meta["shape"] == [40, 2]
    assert meta["sha256"] == table.sha256 and meta["image_shape"] is None
    spec = get_dataset_spec(name)
    assert spec.label == "your data: colours.csv" and spec.task == "classification" and spec.n_samples == 40
    assert "40 rows, 2 features, 3 classes (blue, green, red)" in spec.description
    data = load_dataset(name, {}, val_fraction=0.25, split_seed=0, device=torch.device("cpu"))
    assert (len(data.x_train), len(data.x_val), data.n_classes, data.n_features) == (30, 10, 3, 2)
    assert data.image_shape is None
    labels = torch.cat([data.y_train, data.y_val]).sort().values
    assert torch.equal(labels, torch.from_numpy(np.sort(table.y)))


def test_another_target_is_another_data_set() -> None:
    raw = _csv("a,b,y", [])
    assert parse_csv(raw, target="y").name != parse_csv(raw, target="b").name
    assert parse_csv(raw, target="y").name == parse_csv(raw, target=" y ").name


def test_a_crash_while_storing_leaves_no_data_set(dlopt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = parse_csv(_iris_like(), target="colour")

    def crash(f, **arrays) -> None:  # noqa: ANN001
        f.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        store_table(table)
    assert list((dlopt_home / "datasets").iterdir()) == []
    with pytest.raises(ValueError, match="not found under"):
        get_dataset_spec(table.name)


def test_an_unknown_upload_name_is_not_found(dlopt_home: Path) -> None:
    with pytest.raises(ValueError, match=f"dataset: 'user-0123456789ab' is not found under {dlopt_home / 'datasets'}"):
        user_dataset_spec("user-0123456789ab")
    with pytest.raises(ConfigError, match="'user-0123456789ab' is not found"):
        RunConfig.make(data={"name": "user-0123456789ab"})
    with pytest.raises(ValueError, match="unknown name 'user-xyz'"):
        get_dataset_spec("user-xyz")  # not an upload's name: the registry's error


def test_a_short_training_run_on_an_uploaded_csv() -> None:
    name = store_table(parse_csv(_iris_like(), target="colour"))
    config = RunConfig.make(data={"name": name}, epochs=2, batch_size=8)
    assert config.to_dict()["dataset"] == name
    records = list(run(config))
    evals = [r for r in records if r.is_eval]
    assert records[-1].status == Status.FINISHED and len(evals) == 3
    assert evals[-1].val_loss < evals[0].val_loss


def test_uploaded_images_train_the_cnn(images) -> None:
    name = store_table(table_from_arrays(*images, source="digits.idx"))
    assert get_dataset_spec(name).image_shape == (1, 6, 5)
    config = RunConfig.make(data={"name": name}, model={"name": "cnn", "params": {"channels": "4"}}, epochs=1)
    assert list(run(config))[-1].status == Status.FINISHED


def test_a_fresh_process_loads_the_data_set_by_name(dlopt_home: Path) -> None:
    name = store_table(parse_csv(_iris_like(), target="colour"))
    code = (
        "import sys, torch\n"
        "from dlopt_core.catalog.datasets import load_dataset\n"
        "d = load_dataset(sys.argv[1], {}, val_fraction=0.2, split_seed=0, device=torch.device('cpu'))\n"
        "print(d.task, len(d.x_train), len(d.x_val), d.n_classes)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, name], capture_output=True, text=True, check=True, cwd="/",
        env={**os.environ, "DLOPT_HOME": str(dlopt_home)},
    )
    assert out.stdout.split() == ["classification", "32", "8", "3"]


def test_study_storage_keeps_dlopt_home() -> None:
    from dlopt_core import home
    from dlopt_core.experiments import study_storage

    assert study_storage.dlopt_home is home.dlopt_home


def test_a_run_on_an_upload_logs_the_file_its_hash_and_shape(dlopt_home) -> None:
    from mlflow import MlflowClient

    from dlopt_core.config import ComparisonConfig
    from dlopt_core.experiments.compare import ComparisonWork
    from dlopt_core.runner.jobs import JobRegistry
    from tracking.store import settings

    raw = ("a,b,kind\n" + "\n".join(f"{i},{i % 5},{'x' if i % 2 else 'y'}" for i in range(30))).encode()
    table = parse_csv(raw, target="kind", source="plants.csv")
    name = store_table(table)
    registry = JobRegistry(1, launcher="thread")
    try:
        job = registry.submit(ComparisonWork(ComparisonConfig.make(optimizers=[{"name": "adam"}], data={"name": name}, epochs=1)))
        assert job.wait(120) and job.status == "finished", job.error
    finally:
        registry.shutdown()
    client = MlflowClient(settings().mlflow_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("dlopt-compare").experiment_id], "tags.`mlflow.parentRunId` IS NOT NULL"
    )
    tags = run.data.tags
    assert tags["data.source"] == "plants.csv" and tags["data.sha256"] == table.sha256
    assert tags["data.shape"] == "30 x 2" and tags["data.target"] == "kind"
    assert run.data.params["dataset"] == name


# ------------------------------------------------------------------------------ uploads of any kind


def test_an_upload_of_an_idx_pair_in_either_order_is_one_image_data_set(images) -> None:
    x, y = images
    files = [("t10k-labels-idx1-ubyte.gz", gzip.compress(_idx(y, 0x08))), ("t10k-images-idx3-ubyte", _idx(x, 0x08))]
    table = parse.parse_upload(files)
    assert table.image_shape == (1, 6, 5) and table.shape == (24, 30)
    assert table.task == "classification" and np.array_equal(table.y, y)
    assert table.source == "t10k-images-idx3-ubyte + t10k-labels-idx1-ubyte.gz"
    assert parse.parse_upload(files[::-1]).sha256 == table.sha256


def test_an_upload_of_an_npz_or_a_csv_reads_its_arrays_or_its_target() -> None:
    npz = parse.parse_upload([("my.npz", _npz_bytes())], task="classification")
    assert npz.shape == (12, 3) and npz.classes == ("a", "b")
    csv_table = parse.parse_upload([("t.csv", b"a,b,label\n" + b"1,2,x\n3,4,y\n" * 6)], target="label")
    assert csv_table.shape == (12, 2) and csv_table.target == "label"


@pytest.mark.parametrize(("files", "message"), [
    ([], "no file: give one CSV file"),
    ([("a.csv", b""), ("b.csv", b"")], "give one CSV file, one .npz archive"),
    ([("x.npz", b""), ("labels-idx1-ubyte", b"")], "give one CSV file"),
    ([("t.csv", b"a,b\n1,2\n")], "choose the target column"),
])
def test_an_upload_that_is_no_known_kind_says_what_is_accepted(files, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        parse.parse_upload(files)


def test_an_idx_pair_needs_one_image_array_and_one_label_array(images) -> None:
    x, y = images
    with pytest.raises(DataFileError, match=r"a \(24,\), b \(24,\): an idx pair is one array of images"):
        parse.parse_upload([("a", _idx(y, 0x08)), ("b", _idx(y, 0x08))])
    with pytest.raises(DataFileError, match="y: shape"):
        parse.parse_upload([("a", _idx(x, 0x08)), ("b", _idx(y[:5], 0x08))])


def test_the_cli_trains_on_an_idx_pair_and_an_npz_and_refuses_a_mix(images, tmp_path: Path, capsys) -> None:
    from dlopt_core.cli import main

    x, y = images
    (tmp_path / "imgs.gz").write_bytes(gzip.compress(_idx(x, 0x08)))
    (tmp_path / "labels.bin").write_bytes(_idx(y, 0x08))  # any names: the flag says what they are
    common = ["compare", "--optimizer", "adam", "--epochs", "1", "--no-track", "--model", "cnn", "--json"]
    assert main([*common, "--idx", str(tmp_path / "imgs.gz"), str(tmp_path / "labels.bin")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["dataset"].startswith("user-")
    np.savez(tmp_path / "arrays.data", x=x, y=y)  # np.savez appends .npz
    assert main([*common, "--npz", str(tmp_path / "arrays.data.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["dataset"] == result["config"]["dataset"]  # same content
    assert main([*common, "--npz", str(tmp_path / "arrays.data.npz"), "--csv", "x.csv"]) == 2
    assert "give one of --csv or --npz" in capsys.readouterr().err
    assert main([*common, "--npz", str(tmp_path / "arrays.data.npz"), "--target", "y"]) == 2


def test_a_line_far_too_wide_is_refused_before_the_csv_reader_splits_it() -> None:
    """A 17 MB line of 9 million empty fields once took the server from 629 MB to 1,123 MB and
    crashed the tab (its names became one selectbox). Both readers refuse it by counting commas."""
    wide = b"a" + b"," * 5_000 + b"\n" + b"1" + b",2" * 5_000 + b"\n"
    for read in (lambda raw: parse.csv_column_names(raw, source="wide.csv"),
                 lambda raw: parse_csv(raw, target="a", source="wide.csv")):
        with pytest.raises(DataFileError, match=r"wide.csv: line 1 holds 5,000 commas; at most 1,000 columns"):
            read(wide)
    assert parse.csv_column_names(b'name,"size, cm",kind\n1,2,x\n') == ["name", "size, cm", "kind"]


def test_a_huge_or_endless_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    """The CLI read a whole input before its 20 MB check (a 3 GB file reached 3.5 GB of memory,
    /dev/zero a MemoryError): the size on disk is checked first, an endless stream read 20 MB + 1."""
    sparse = tmp_path / "huge.csv"
    with sparse.open("wb") as f:
        f.truncate(3 * 2**30)  # 3 GB on paper, no blocks on disk
    with pytest.raises(DataFileError, match=r"huge.csv: 3,072.0 MB is over the limit of 20 MB"):
        parse.read_upload_file(sparse)
    with pytest.raises(DataFileError, match=r"zero: more than 20 MB, the limit"):
        parse.read_upload_file("/dev/zero")
    code = (
        "import resource, subprocess, sys\n"
        "out = subprocess.run([sys.executable, '-m', 'dlopt_core', 'compare', '--csv', sys.argv[1], '--target', 'y',"
        " '--no-track', '--optimizer', 'sgd'], capture_output=True, text=True)\n"
        "print(out.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
        "print(out.stderr)\n"
    )
    for path in (sparse, "/dev/zero"):
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
        code_line, *stderr = out.stdout.splitlines()
        returncode, peak_mb = map(int, code_line.split())
        assert returncode == 2 and "Traceback" not in out.stdout, out.stdout
        assert any("MB" in line and "limit" in line for line in stderr), stderr
        # The CLI with torch loaded takes ~0.5 GB; reading the input whole took GBs.
        assert peak_mb < 1_500, peak_mb


def test_an_idx_header_with_too_many_dimensions_is_a_named_error() -> None:
    """Issue 26: 65 declared dimensions reached NumPy's 64-dimension limit and showed an error
    id on the Data page (an unnamed message in the CLI)."""
    raw = bytes([0, 0, 0x08, 65]) + b"\0\0\0\1" * 65 + b"\7"
    with pytest.raises(DataFileError, match=r"deep.idx: the idx header declares 65 dimensions; at most 4"):
        parse_idx(raw, source="deep.idx")
