"""The building blocks: ``Entity``, ``Feature`` and ``FeatureView``.

A view's table is ``features.<name>_v<version>``, partitioned by ``feature_date``. Each row says
what the features were at the end of ``feature_date`` (event time) and carries ``available_at``,
the moment the row could be known (the day closes, then the daily job runs), so that training-set
joins can refuse values from the future.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import textwrap
import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakecart.errors import ConfigError

FEATURE_DATE = "feature_date"
AVAILABLE_AT = "available_at"

# The silver tables a view can be computed from (``FeatureView.source``). Clickstream events are the
# default; a shop may send only order lines (with the catalogue) and planned promotions.
EVENTS_SOURCE = "silver.events"
ORDER_LINES_SOURCE = "silver.order_lines"
PROMOTIONS_SOURCE = "silver.promotions"
SOURCES = (EVENTS_SOURCE, ORDER_LINES_SOURCE, PROMOTIONS_SOURCE)

# How fingerprints are computed. 1: the transform's own source only (helpers it called were not
# covered). 2: the transform and every function or class of the lakecart package it reaches, with
# the module constants they read. The registry records the scheme with each row, so a row of an
# older scheme whose logic still matches is re-recorded by ``apply`` rather than blocked.
FINGERPRINT_SCHEME = 2
_PROJECT = "lakecart"


@dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Feature:
    """One feature column, declared once: its name, type and meaning, and how the transform's last
    step computes it (``column()``), so the schema and the computation cannot drift apart."""

    name: str
    dtype: str  # a Spark SQL type name
    description: str
    # The suite's lower bound for numeric features (counts, rates, prices); None: no bound.
    min_value: float | None = 0.0
    # The column from the transform's aggregated frame (a function, so that declaring a view needs
    # no Spark session); None: the aggregated column of the same name.
    expr: Callable[[], Column] | None = None

    def column(self) -> Column:
        """The feature computed, cast to its declared type and named: the one place it is written."""
        return (self.expr() if self.expr is not None else F.col(self.name)).cast(self.dtype).alias(self.name)


def select_features(frame: DataFrame, keys: Sequence[str], features: Sequence[Feature]) -> DataFrame:
    """A transform's last step: the keys, ``feature_date``, ``available_at`` and every feature as
    declared, in the declared order."""
    return frame.select(*keys, FEATURE_DATE, AVAILABLE_AT, *[f.column() for f in features])


# transform(source, start, end) -> one row per key and feature_date in [start, end]; ``source`` is the
# view's silver table (order lines arrive joined with the catalogue's category, category_levels, brand)
Transform = Callable[[DataFrame, date, date], DataFrame]


@dataclass(frozen=True)
class Tiles:
    """A view computed in two steps: ``partials`` summarises the source rows of each day on its own
    (one row per key and ``day``, nothing read from another day), and ``combine`` builds the view's
    rows for ``[start, end]`` from the partials of the days its windows reach.

    Materialisation keeps each day's partials as a *tile* (``tiles.<view>_v<n>``), recomputed only
    when that day's source files change, so a daily run summarises one new day instead of the whole
    lookback. The view's transform is ``combine(partials(source), start, end)``: both paths run the
    same code."""

    partials: Callable[[DataFrame], DataFrame]
    combine: Transform
    day: str = "event_date"  # the partials' day column: the source's partition column

    def transform(self) -> Transform:
        partials, combine = self.partials, self.combine

        def tiled(source: DataFrame, start: date, end: date) -> DataFrame:
            return combine(partials(source), start, end)

        tiled.__qualname__ = f"{partials.__qualname__}+{combine.__qualname__}"
        tiled.__module__ = combine.__module__
        tiled.tiles = self  # type: ignore[attr-defined]  # ``dataclasses.replace`` passes it back
        return tiled


@dataclass(frozen=True)
class FeatureView:
    name: str
    version: int
    entity: Entity
    features: tuple[Feature, ...]
    ttl: timedelta
    owner: str
    description: str
    # How the rows are computed: ``transform(source, start, end)``, or ``tiles`` (partials per day and
    # their combination; the transform is then derived from them). Exactly one of the two.
    transform: Transform = None  # type: ignore[assignment]
    tiles: Tiles | None = None
    # How many days of source history one output day needs (the longest window).
    lookback_days: int = 0
    # The silver table the transform reads (one of ``SOURCES``).
    source: str = EVENTS_SOURCE
    # How many days after an output day the source is read: records planned ahead (promotions),
    # known-in-advance features. 0: nothing after the output day.
    lead_days: int = 0

    # Fingerprints this version had before a refactor that kept every row the same (splitting a
    # transform into tiles, say), shown equal on the same inputs: a registry row or training set that
    # recorded one of them is re-recorded by ``apply``, not blocked. Metadata: not in the fingerprint.
    refactored_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.tiles is not None and getattr(self.transform, "tiles", None) is self.tiles:
            object.__setattr__(self, "transform", None)  # derived from the tiles (a copy by ``replace``)
        if (self.transform is None) == (self.tiles is None):
            raise ConfigError(f"{self.table_name}: declare either a transform or tiles, not both or neither")
        if self.tiles is not None:
            if self.lead_days:
                raise ConfigError(f"{self.table_name}: tiles read no days ahead (lead_days must be 0)")
            object.__setattr__(self, "transform", self.tiles.transform())
        if self.source not in SOURCES:
            raise ConfigError(f"{self.table_name}: unknown source {self.source!r}; sources: {', '.join(SOURCES)}")
        if self.lookback_days < 0 or self.lead_days < 0:
            raise ConfigError(f"{self.table_name}: lookback_days and lead_days cannot be negative")

    @property
    def table_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def qualified_name(self) -> str:
        return f"features.{self.table_name}"

    @property
    def tile_table(self) -> str | None:
        """``tiles.<name>_v<version>``: where materialisation keeps the view's per-day partials;
        None for a view without tiles."""
        return f"tiles.{self.table_name}" if self.tiles is not None else None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.entity.keys, FEATURE_DATE, AVAILABLE_AT, *(f.name for f in self.features))

    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def schema(self) -> str:
        """The table's schema as a Spark DDL string (keys are strings)."""
        columns = [f"{k} string" for k in self.entity.keys] + [f"{FEATURE_DATE} date", f"{AVAILABLE_AT} timestamp"]
        return ", ".join(columns + [f"{f.name} {f.dtype}" for f in self.features])

    def definition(self) -> dict:
        """What the registry records: everything that defines the view's table and its values,
        including the digests of the code that computes them (``code``) and how the fingerprint
        was computed (``fingerprint_scheme``), so that a plan can name the function that changed.
        ``source`` and ``lead_days`` appear only when they differ from their defaults, so views declared
        before they existed keep their definition and fingerprint."""
        definition = {
            "name": self.name,
            "version": self.version,
            "table": self.qualified_name,
            "entity": self.entity.name,
            "keys": list(self.entity.keys),
            "schema": self.schema,
            "ttl_seconds": int(self.ttl.total_seconds()),
            "lookback_days": self.lookback_days,
            "owner": self.owner,
            "description": self.description,
            "transform": f"{self.transform.__module__}.{self.transform.__qualname__}",
            "fingerprint_scheme": FINGERPRINT_SCHEME,
            "code": self.code_digests(),
        }
        if self.source != EVENTS_SOURCE:
            definition["source"] = self.source
        if self.lead_days:
            definition["lead_days"] = self.lead_days
        return definition

    def code_digests(self) -> dict[str, str]:
        """What runs when the view is computed: ``module.qualname`` of the transform and of every
        project function or class it reaches -> a digest of its source, and ``module.NAME`` of each
        constant they read -> its value (see ``code_digests``); and ``feature <name>`` -> a digest
        of the code of that feature's expression, which ties each expression (a shared lambda with
        other captured columns) to the feature it computes."""
        computes = (self.tiles.partials, self.tiles.combine) if self.tiles is not None else (self.transform,)
        digests = code_digests(*computes, *(f.expr for f in self.features if f.expr is not None))
        for f in self.features:
            if f.expr is not None:
                expr = json.dumps(code_digests(f.expr), sort_keys=True)
                digests[f"feature {f.name}"] = hashlib.sha256(expr.encode()).hexdigest()[:16]
        return dict(sorted(digests.items()))

    def fingerprint(self) -> str:
        """Changes when the schema, keys, time-to-live, lookback or the code that computes the view
        change: the transform and, transitively, the project helpers and constants it uses
        (ownership and descriptions are metadata: editing them is not a new version)."""
        logic = {k: v for k, v in self.definition().items() if k not in ("owner", "description")}
        return hashlib.sha256(json.dumps(logic, sort_keys=True).encode()).hexdigest()[:16]


# Scheme-1 fingerprints of the views as they were before each feature column was declared once
# (commit f7dac08). That change rewrote the transforms' last step without changing a value or a
# type (the same rows and schema on a 1500-event log with late, anonymous and unpriced events;
# tests/features/test_views.py), so rows and manifests recorded with these are re-recorded, not blocked.
SCHEME_1_BEFORE_FEATURE_SPECS = {
    "user_activity_v1": "3d81a1da24656098",
    "user_activity_v2": "39e4b375c4371794",
    "user_sequences_v1": "92dead0cb9033aba",
    "user_category_affinity_v1": "a0ab805d8b80b77c",
    "item_popularity_v1": "3830e8417d1ce181",
    "item_popularity_v2": "e06c0fc9340ecce4",
    "session_summary_v1": "2a581573f9198636",
}


def legacy_fingerprints(view: FeatureView) -> set[str]:
    """The scheme-1 fingerprints that mean the same logic as ``view`` today."""
    known = SCHEME_1_BEFORE_FEATURE_SPECS.get(view.table_name)
    return {legacy_fingerprint(view), *([known] if known else [])}


def legacy_fingerprint(view: FeatureView) -> str:
    """The scheme-1 fingerprint (the transform's own source only), to recognise registry rows and
    manifests recorded before scheme 2: if it still matches, the logic they recorded is unchanged."""
    scheme_2 = ("owner", "description", "fingerprint_scheme", "code")
    logic = {k: v for k, v in view.definition().items() if k not in scheme_2}
    logic["source"] = view.source  # scheme 1 recorded the (never honoured) source field
    try:
        logic["code"] = inspect.getsource(view.transform)
    except (OSError, TypeError):
        logic["code"] = view.transform.__code__.co_code.hex()
    return hashlib.sha256(json.dumps(logic, sort_keys=True).encode()).hexdigest()[:16]


def _is_project_module(name: str) -> bool:
    return name == _PROJECT or name.startswith(f"{_PROJECT}.")


def _in_project(obj: object) -> bool:
    return _is_project_module(getattr(obj, "__module__", None) or "")


# Function or class -> its source digest. Reading and parsing source is most of a fingerprint's
# cost, and materialisation fingerprints every view for every day it considers; a loaded object's
# code does not change (editing or monkeypatching makes a new object).
_SOURCE_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _source_digest(obj: Callable | type) -> str:
    """A digest of what the source says, not how it is written: its syntax tree without comments,
    docstrings or formatting (rewording a comment is not a new version); the raw text where the
    source does not parse on its own (a lambda inside a longer expression)."""
    try:
        return _SOURCE_DIGESTS[obj]
    except (KeyError, TypeError):  # TypeError: not weakly referenceable
        pass
    digest = _digest_source(obj)
    try:
        _SOURCE_DIGESTS[obj] = digest
    except TypeError:
        pass
    return digest


def _digest_source(obj: Callable | type) -> str:
    try:
        text = _syntax(inspect.getsource(obj))
    except (OSError, TypeError):  # defined interactively or by exec: fall back to the compiled code
        code = obj.__code__
        text = f"{code.co_code.hex()}|{code.co_names}|{[c for c in code.co_consts if not inspect.iscode(c)]!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _syntax(source: str) -> str:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source.strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _constant(value: object) -> str | None:
    """A deterministic text for plain data (numbers, strings, dates, and tuples, sets or dicts of
    them); None for anything else."""
    if value is None or isinstance(value, bool | int | float | str | bytes | date | timedelta):
        return repr(value)
    if isinstance(value, tuple | list):
        parts = [_constant(v) for v in value]
        return None if None in parts else f"{type(value).__name__}({', '.join(parts)})"
    if isinstance(value, set | frozenset):
        parts = [_constant(v) for v in value]
        return None if None in parts else f"set({', '.join(sorted(parts))})"
    if isinstance(value, dict):
        parts = [(_constant(k), _constant(v)) for k, v in value.items()]
        if any(None in p for p in parts):
            return None
        return f"dict({', '.join(sorted(f'{k}: {v}' for k, v in parts))})"
    return None


def _code_names(code: types.CodeType) -> set[str]:
    """Global and attribute names a code object and the functions nested in it refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _code_names(const)
    return names


def _record(digests: dict[str, str], key: str, value: str) -> None:
    """Record ``value`` under ``key``; two closures or lambdas of the same source reached in one walk
    (``lambda w=w: ...`` in a comprehension) keep all their values, sorted."""
    previous = digests.get(key)
    values = {value} if previous is None else {*previous.split(" | "), value}
    digests[key] = " | ".join(sorted(values))


def code_digests(*roots: Callable) -> dict[str, str]:
    """The code a computation runs, as ``name -> digest``, in a deterministic order.

    Starting from ``roots`` (always included, wherever they are defined), follows every name a
    function's code refers to (its own and its nested functions' and lambdas'), resolved in the
    function's module globals, plus closure cells, ``functools.partial`` arguments and the fields of
    project dataclasses in tuples (``Feature(..., expr=lambda: ...)``): functions and
    classes of the ``lakecart`` package are digested by their source and followed in turn; plain
    constants (``WINDOWS = (7, 28)``) are recorded by value; a name resolving to a project module
    is followed through the attributes the code reads of it (``windows.fan_out``); anything outside
    the project (pyspark, the standard library) is a library, not logic, and is not followed (a
    function from outside the project bound to a global name is recorded by its qualified name).
    """
    digests: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[object] = list(roots)
    root_ids = {id(r) for r in roots}
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            stack += [obj.func, *obj.args, *obj.keywords.values()]
            continue
        if isinstance(obj, tuple | list | set | frozenset):  # e.g. a module's tuple of Feature specs
            stack += list(obj)
            continue
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            if _in_project(type(obj)):  # the class (its methods run too) and its fields
                stack += [type(obj), *(getattr(obj, f.name) for f in dataclasses.fields(obj))]
            continue
        if inspect.ismethod(obj):
            obj = obj.__func__
        if inspect.isclass(obj):
            if _in_project(obj):
                digests[f"{obj.__module__}.{obj.__qualname__}"] = _source_digest(obj)
                # Its methods, to follow what they call (their text is in the class's source; the
                # dunder methods a dataclass generates have none, and are the same for any fields).
                stack += [v for n, v in sorted(vars(obj).items()) if inspect.isfunction(v) and not n.startswith("__")]
            continue
        if not inspect.isfunction(obj) or not (_in_project(obj) or id(obj) in root_ids):
            continue
        digest = _source_digest(obj)
        # Lambdas and functions made by factories share a qualified name: their digest tells them apart.
        key = f"{obj.__module__}.{obj.__qualname__}" + (f"@{digest}" if "<" in obj.__qualname__ else "")
        digests[key] = digest
        names = _code_names(obj.__code__)
        for name in sorted(names):
            if name not in obj.__globals__:
                continue
            value = obj.__globals__[name]
            constant = _constant(value)
            if inspect.ismodule(value):
                if _is_project_module(value.__name__):
                    stack += [getattr(value, a) for a in sorted(names) if hasattr(value, a)]
            elif constant is not None:
                digests[f"{obj.__module__}.{name}"] = constant
            elif inspect.isfunction(value) and not _in_project(value):
                digests[f"{obj.__module__}.{name}"] = f"external {value.__module__}.{value.__qualname__}"
            else:
                stack.append(value)
        for free, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            constant = _constant(contents)
            if constant is not None:
                _record(digests, f"{key}.{free}", constant)
            else:
                stack.append(contents)
        defaults = {**dict(enumerate(obj.__defaults__ or ())), **(obj.__kwdefaults__ or {})}
        for position, default in defaults.items():
            constant = _constant(default)
            if constant is not None:  # lambda w=w: ... in a comprehension reads its value from here
                _record(digests, f"{key}.<default {position}>", constant)
            elif callable(default):
                stack.append(default)
    return dict(sorted(digests.items()))


def view_expectations(view: FeatureView) -> list:
    """The suite every feature view gets: keys present and unique per day, numeric features at or above
    their lower bound (counts, rates and prices never negative)."""
    import great_expectations.expectations as gxe

    keys = list(view.entity.keys)
    suite = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=k) for k in keys],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[*keys, FEATURE_DATE]),
        gxe.ExpectColumnValuesToNotBeNull(column=AVAILABLE_AT),
    ]
    suite += [
        gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min_value)
        for f in view.features
        if f.dtype in ("bigint", "int", "double") and f.min_value is not None
    ]
    return suite
