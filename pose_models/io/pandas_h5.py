"""Read a pandas HDF5 table (``DataFrame.to_hdf``) at the array level, without unpickling anything.

``pd.HDFStore`` / ``pd.read_hdf`` unpickle two things from the file: object-dtype value blocks (stored
as PyTables ``VLArray`` of pickles) and PyTables attributes that hold Python objects (column lists,
level names). A crafted file whose pickle calls ``os.system`` runs its command on load. DeepLabCut
files are read from users, so we read them with h5py only:

- numeric value blocks and integer / string index and level arrays are read as arrays;
- an object node (``PSEUDOATOM = object``, a ``VLArray``) is refused with :class:`UnsafeFileError`;
- attributes PyTables stored as pickles (column tuples, level names, ``None``) are decoded by
  :func:`literal_pickle`, which interprets only the opcodes that build literals (None, bools, numbers,
  strings, bytes, lists, tuples, dicts, sets) and refuses every opcode that names or calls a global,
  so no code in the file can run.

Both layouts DeepLabCut writes are handled: ``format="table"`` (predictions) and ``format="fixed"``
(labelled data, whose index may be a three-level MultiIndex of image path parts).
"""

from __future__ import annotations

import pickletools
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

__all__ = ["UnsafeFileError", "literal_pickle", "read_pandas_h5"]


class UnsafeFileError(ValueError):
    """A file holds something that would run code if read the usual way (a pickled object)."""


# Opcodes that only build literal values. Everything else (GLOBAL, STACK_GLOBAL, REDUCE, BUILD,
# INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, BYTEARRAY8, NEXT_BUFFER, ...) is refused.
_LITERAL_OPS = {
    "PROTO", "FRAME", "STOP", "MARK", "NONE", "NEWTRUE", "NEWFALSE",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET", "LIST", "TUPLE", "DICT", "FROZENSET",
    "TUPLE1", "TUPLE2", "TUPLE3", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS",
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET", "POP", "POP_MARK", "DUP",
}  # fmt: skip

_SCALAR_OPS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
}  # fmt: skip

_MARK = object()


def literal_pickle(data: bytes) -> Any:
    """Decode a pickle that holds only literals (lists, tuples, dicts, strings, numbers, None).

    This never calls :mod:`pickle`: the opcodes are walked with :func:`pickletools.genops` and a small
    stack machine builds the value, so nothing in ``data`` can import or call anything.

    Raises
    ------
    UnsafeFileError
        If the pickle uses any opcode that names a global or calls something (i.e. holds an object).
    ValueError
        If ``data`` is not a well-formed pickle.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise ValueError("pickle: MARK expected")

    try:
        ops = list(pickletools.genops(data))
    except Exception as exc:  # genops raises ValueError and assorted others on garbage
        raise ValueError(f"expected a pickled literal, got unreadable bytes ({exc})") from exc
    for op, arg, _pos in ops:
        name = op.name
        if name not in _LITERAL_OPS:
            raise UnsafeFileError(f"expected plain data, got a pickled object (opcode {name}); refusing to load it")
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "MARK":
            stack.append(_MARK)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name in _SCALAR_OPS:
            stack.append(arg)  # genops decodes the argument (protocol-0 "I01"/"I00" to True/False too)
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name == "FROZENSET":
            stack.append(frozenset(pop_mark()))
        elif name == "DICT":
            items = pop_mark()
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "APPEND":
            value = stack.pop()
            stack[-1].append(value)
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif name == "SETITEMS":
            items = pop_mark()
            for key, value in zip(items[::2], items[1::2], strict=True):
                stack[-1][key] = value
        elif name == "ADDITEMS":
            items = pop_mark()
            stack[-1].update(items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
    if len(stack) != 1:
        raise ValueError("pickle: expected one value at STOP")
    return stack[0]


def _attr(node: h5py.HLObject, key: str, default: Any = None) -> Any:
    """An attribute as PyTables would return it, with pickled ones decoded as literals only."""
    if key not in node.attrs:
        return default
    value = node.attrs[key]
    if isinstance(value, h5py.Empty):
        return ""
    if isinstance(value, np.bytes_ | bytes):
        raw = bytes(value)
        # PyTables pickles non-numpy attributes; like PyTables, treat bytes ending in "." as a pickle
        # when they parse as one, else as a string.
        if raw.endswith(b"."):
            try:
                return literal_pickle(raw)
            except UnsafeFileError:
                raise
            except ValueError:
                pass
        return raw.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _refuse_objects(group: h5py.Group, path: Path) -> None:
    """Refuse the file if any node under ``group`` stores pickled Python objects."""

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset):
            atom = _attr(obj, "PSEUDOATOM")
            if atom == "object" or (_attr(obj, "CLASS") == "VLARRAY" and obj.dtype.kind == "O"):
                raise UnsafeFileError(
                    f"{path}: expected numeric or text arrays, got pickled Python objects in {group.name}/{name}; "
                    "refusing to load it (a pickle can run code)"
                )

    group.visititems(visit)


def _decode_array(values: np.ndarray, kind: str, path: Path, where: str) -> np.ndarray:
    if values.dtype.kind == "S":
        return np.array([v.decode("utf-8") for v in values.ravel()], dtype=object).reshape(values.shape)
    if values.dtype.kind == "O":
        raise UnsafeFileError(f"{path}: expected numeric or text arrays, got objects in {where}; refusing it")
    if kind in ("integer", "float", "") or values.dtype.kind in "iuf":
        return values
    raise ValueError(f"{path}: expected an integer, float or string index in {where}, got kind {kind!r}")


def _read_axis(group: h5py.Group, key: str, path: Path) -> pd.Index:
    """One fixed-format axis (``axis0``, ``axis1``, ``block0_items``): regular or MultiIndex."""
    variety = _attr(group, f"{key}_variety", "regular")
    if variety == "multi":
        n_levels = int(_attr(group, f"{key}_nlevels"))
        levels, codes, names = [], [], []
        for i in range(n_levels):
            node = group[f"{key}_level{i}"]
            levels.append(_decode_array(node[()], _attr(node, "kind", ""), path, f"{key}_level{i}"))
            names.append(_attr(node, "name"))
            codes.append(np.asarray(group[f"{key}_label{i}"][()], dtype=np.int64))
        return pd.MultiIndex(levels=levels, codes=codes, names=names)
    if variety != "regular":
        raise ValueError(f"{path}: expected a regular or multi axis {key}, got {variety!r}")
    node = group[key]
    values = _decode_array(node[()], _attr(node, "kind", ""), path, key)
    return pd.Index(values, name=_attr(node, "name"))


def _read_fixed(group: h5py.Group, path: Path) -> pd.DataFrame:
    if int(_attr(group, "ndim", 2)) != 2:
        raise ValueError(f"{path}: expected a 2-D DataFrame, got ndim {_attr(group, 'ndim')}")
    columns = _read_axis(group, "axis0", path)
    index = _read_axis(group, "axis1", path)
    out = np.full((len(index), len(columns)), np.nan)
    for b in range(int(_attr(group, "nblocks", 0))):
        items = _read_axis(group, f"block{b}_items", path)
        values = group[f"block{b}_values"][()]
        if values.dtype.kind not in "iufb":
            raise ValueError(f"{path}: expected numeric values in block {b}, got dtype {values.dtype}")
        if values.shape != (len(index), len(items)):
            values = values.T  # older pandas stored the block item-major
        if values.shape != (len(index), len(items)):
            raise ValueError(f"{path}: block {b} has shape {values.shape}, expected {(len(index), len(items))}")
        positions = columns.get_indexer(items)
        if np.any(positions < 0):
            raise ValueError(f"{path}: block {b} names columns the frame does not have")
        out[:, positions] = values
    return pd.DataFrame(out, index=index, columns=columns)


def _read_table(group: h5py.Group, path: Path) -> pd.DataFrame:
    table = group["table"]
    non_index = _attr(group, "non_index_axes") or []
    if len(non_index) != 1 or non_index[0][0] != 1:
        raise ValueError(f"{path}: expected one column axis in the table, got {non_index!r}")
    column_values = list(non_index[0][1])
    info = _attr(group, "info") or {}
    col_info = info.get(1, {}) if isinstance(info, dict) else {}
    if col_info.get("type") == "MultiIndex" or (column_values and isinstance(column_values[0], tuple)):
        columns: pd.Index = pd.MultiIndex.from_tuples(column_values, names=col_info.get("names"))
    else:
        columns = pd.Index(column_values, name=col_info.get("names", [None])[0])
    data = table[()]
    index_kind = _attr(table, "index_kind", "integer")
    index_values = _decode_array(np.asarray(data["index"]), index_kind, path, "index")
    if index_kind == "datetime64":
        raise ValueError(f"{path}: expected an integer or string index, got datetime64")
    index = pd.Index(index_values, name=(info.get("index", {}) or {}).get("names", [None])[0])
    out = np.full((len(index), len(columns)), np.nan)
    for block in _attr(group, "values_cols") or []:
        kind = _attr(table, f"{block}_kind")
        block_values = np.asarray(data[block])
        if block_values.dtype.kind not in "iufb":
            raise ValueError(f"{path}: expected numeric values in {block}, got dtype {block_values.dtype}")
        block_values = block_values.reshape(len(index), -1)
        items = pd.MultiIndex.from_tuples(kind) if isinstance(columns, pd.MultiIndex) else pd.Index(kind)
        positions = columns.get_indexer(items)
        if np.any(positions < 0) or len(positions) != block_values.shape[1]:
            raise ValueError(f"{path}: {block} names columns the table does not have")
        out[:, positions] = block_values
    return pd.DataFrame(out, index=index, columns=columns)


def read_pandas_h5(path: str | Path, key: str | None = None) -> pd.DataFrame:
    """Read one DataFrame written by ``DataFrame.to_hdf`` (fixed or table format), numeric values only.

    Parameters
    ----------
    path
        The ``.h5`` file.
    key
        Which stored frame; default: the only one.

    Raises
    ------
    UnsafeFileError
        If the file holds pickled objects (an object column or a pickled attribute that is not a
        plain literal): nothing from it is unpickled.
    ValueError
        If the file is not a pandas HDF5 table of numeric values, or holds several and no ``key``.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        frames = {k: f[k] for k in f if isinstance(f[k], h5py.Group) and "pandas_type" in f[k].attrs}
        if key is None:
            if len(frames) != 1:
                raise ValueError(f"{path}: expected one pandas table, got {sorted(frames) or 'none'}")
            key = next(iter(frames))
        key = key.strip("/")
        if key not in frames:
            raise ValueError(f"{path}: expected a pandas table under {key!r}, got {sorted(frames)}")
        group = frames[key]
        _refuse_objects(group, path)
        pandas_type = _attr(group, "pandas_type")
        readers = {"frame": _read_fixed, "frame_table": _read_table}
        if pandas_type not in readers:
            raise ValueError(f"{path}: expected a DataFrame (pandas_type frame or frame_table), got {pandas_type!r}")
        try:
            return readers[pandas_type](group, path)
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            # The attributes are the file's, decoded as any literal: one of the wrong type or shape (a list
            # where pandas writes a dict, a missing node) is the file's fault, said as such.
            raise ValueError(
                f"{path}: expected the layout DataFrame.to_hdf writes, got {type(exc).__name__}: {exc}"
            ) from exc
