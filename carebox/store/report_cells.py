"""Reports read from report_cells and conversation_facts: sums of cells for whole local days, the period's edge
days and the `now`-dependent figures from facts, exact percentiles by walks along an index (LIMIT 2 OFFSET k)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from carebox import reports
from carebox.store.report_facts import SUM_COLUMNS, cell_sums, facts

Grouped = dict[Any, tuple[dict[str, Any], dict[int, float], dict[int, float]]]
MIN_MAX = {"net_min": min, "net_max": max}
# the cell sums as SQL over conversation_facts rows (for the period's edge days)
EDGE_SUMS = ", ".join(str(c.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
                      + f" AS {c.name}" for c in cell_sums(facts))


def stamp(at: datetime) -> str:
    """A UTC instant as SQLite stores it (carebox.models.UTCDateTime), for comparisons in plain SQL."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@dataclass(frozen=True, slots=True)
class Grouping:
    """How one breakdown reads: the cells dimension and its key, the facts column, the walk index prefix."""

    cell_dim: str
    cell_key: str
    fact_key: str
    index: str

    @staticmethod
    def of(name: str | None) -> Grouping:
        """The grouping of a breakdown name (None = totals; "day", "week", "how" for trends and the heatmap)."""
        if name is None:
            return Grouping("", "''", "''", "all")
        if name == "day":
            return Grouping("", "day", "day", "day")
        if name == "week":
            return Grouping("", "day - (day + 3) % 7", "week", "week")
        if name == "how":
            return Grouping("how", "CAST(value AS INTEGER)", "how", "how")
        return Grouping(name, "value", name, name)


@dataclass(frozen=True, slots=True)
class Window:
    """The period and incident filter as SQL over facts (exact) and over cells (whole local days)."""

    facts_sql: str
    facts_params: tuple[Any, ...]
    cells_sql: str
    cells_params: tuple[Any, ...]
    edge_sql: str | None  # facts rows of the edge days inside the period (None: no edges)
    edge_params: tuple[Any, ...]

    @staticmethod
    def of(since: datetime | None, until: datetime | None, exclude_incidents: bool, plan: reports.LocalTimePlan) -> Window:
        """Whole days strictly inside the period come from cells; the days around each edge (local time can
        step back an hour) from facts, compared with the instants themselves."""
        inc = ["inc = 0"] if exclude_incidents else []
        if since is None and until is None:
            where = " AND ".join(inc) or "1"
            return Window(where, (), where, (), None, ())
        full, full_p, exact, exact_p, edges = [], [], [], [], set()
        if since is not None:
            d0 = reports.local_seconds(plan, since) // reports.DAY_S
            full.append("day > ?")
            full_p.append(d0 + 1)
            exact.append("first_at >= ?")
            exact_p.append(stamp(since))
            edges |= {d0 - 1, d0, d0 + 1}
        if until is not None:
            d1 = reports.local_seconds(plan, until) // reports.DAY_S
            full.append("day < ?")
            full_p.append(d1 - 1)
            exact.append("first_at < ?")
            exact_p.append(stamp(until))
            edges |= {d1 - 1, d1, d1 + 1}
        days = ", ".join(str(d) for d in sorted(edges))
        edge = " AND ".join([f"day IN ({days})", *exact, *inc])
        full_sql = " AND ".join([*full, *inc])
        facts_sql = f"(({' AND '.join(full)}) OR (day IN ({days}) AND {' AND '.join(exact)}))"
        return Window(" AND ".join([facts_sql, *inc]), (*full_p, *exact_p), full_sql, tuple(full_p),
                      edge, tuple(exact_p))


def _merge(into: dict[Any, dict[str, Any]], key: Any, row: dict[str, Any]) -> None:
    have = into.get(key)
    if have is None:
        into[key] = dict(row)
        return
    for name, value in row.items():
        if value is None:
            continue
        if have[name] is None:
            have[name] = value
        elif name in MIN_MAX:
            have[name] = MIN_MAX[name](have[name], value)
        else:
            have[name] += value


def _sums(conn: sa.Connection, g: Grouping, w: Window) -> dict[Any, dict[str, Any]]:
    """Cell sums per key over the whole days, plus the edge days from facts."""
    out: dict[Any, dict[str, Any]] = {}
    cols = ", ".join(f"{'min' if c == 'net_min' else 'max' if c == 'net_max' else 'sum'}({c}) AS {c}" for c in SUM_COLUMNS)
    inc = "sum(CASE WHEN inc = 1 THEN conversations ELSE 0 END) AS in_incident"
    sql = (f"SELECT {g.cell_key} AS k, {cols}, {inc} FROM report_cells WHERE dim = ? AND {w.cells_sql} "
           f"GROUP BY {g.cell_key}")
    for row in conn.exec_driver_sql(sql, (g.cell_dim, *w.cells_params)).mappings():
        _merge(out, row["k"], {c: row[c] for c in (*SUM_COLUMNS, "in_incident")})
    if w.edge_sql is not None:
        sql = f"SELECT {g.fact_key} AS k, {EDGE_SUMS}, sum(inc) AS in_incident FROM conversation_facts WHERE {w.edge_sql} GROUP BY k"
        for row in conn.exec_driver_sql(sql, w.edge_params).mappings():
            _merge(out, row["k"], {c: row[c] for c in (*SUM_COLUMNS, "in_incident")})
    return out


def _counts(conn: sa.Connection, g: Grouping, w: Window, col: str, param: str) -> dict[Any, int]:
    """Per key, the facts rows whose `col` is after `param` (the few recent ones, along the `col` index)."""
    sql = (f"SELECT {g.fact_key} AS k, count(*) FROM conversation_facts INDEXED BY ix_cf_{col} WHERE {col} > ? "
           f"AND {w.facts_sql} GROUP BY {g.fact_key}")
    return dict(conn.exec_driver_sql(sql, (param, *w.facts_params)).all())


def _customers(conn: sa.Connection, g: Grouping, w: Window) -> dict[Any, int]:
    """Distinct customers per key: one ordered pass along the (key, customer) index."""
    ix = f"ix_cf_{g.index}_customer_id"
    pair = "customer_id" if g.index == "all" else f"{g.fact_key}, customer_id"
    sql = (f"SELECT {g.fact_key} AS k, count(*) FROM (SELECT DISTINCT {pair} FROM conversation_facts "
           f"INDEXED BY {ix} WHERE {w.facts_sql}) GROUP BY k")
    return dict(conn.exec_driver_sql(sql, w.facts_params).all())


def walk(conn: sa.Connection, g: Grouping, w: Window, col: str, key: Any, n: int,
         quantiles: Iterable[float]) -> dict[int, float]:
    """The values at the ranks linear interpolation reads, each by `LIMIT 2 OFFSET k` along the (key, col)
    index from the nearer end: no sort, O(k) index entries."""
    picks: dict[int, float] = {}
    ix = f"ix_cf_{g.index}_{col}"
    match = "" if g.index == "all" else f"{g.fact_key} = ? AND "
    head = (key,) if g.index != "all" else ()
    for q in quantiles:
        lo, hi = reports.quantile_ranks(n, q)
        if lo in picks and hi in picks:
            continue
        ascending = lo - 1 <= n - hi
        sql = (f"SELECT {col} FROM conversation_facts INDEXED BY {ix} WHERE {match}{col} IS NOT NULL AND "
               f"{w.facts_sql} ORDER BY {col} {'ASC' if ascending else 'DESC'} LIMIT 2 OFFSET ?")
        rows = [r[0] for r in conn.exec_driver_sql(sql, (*head, *w.facts_params, lo - 1 if ascending else n - hi))]
        ranks = (lo, lo + 1) if ascending else (hi, hi - 1)
        picks.update({r: v for r, v in zip(ranks, rows, strict=False) if 1 <= r <= n})
    return picks


def _agg(sums: dict[str, Any], pending: int, undecided: int, customers: int | None) -> dict[str, Any]:
    """The aggregate row reports.figures reads, from cell sums and the `now` corrections."""
    def mean(total: str, count: str) -> float | None:
        return sums[total] / sums[count] if sums[count] and sums[total] is not None else None

    net_min, net_max = sums["net_min"], sums["net_max"]
    return {
        "conversations": sums["conversations"], "answered": sums["answered"],
        "network": net_min if net_min == net_max else "several",
        "n_wall": sums["n_wall"], "wall_mean": mean("wall_sum", "n_wall"),
        "n_business": sums["n_business"], "business_mean": mean("business_sum", "n_business"),
        "sla_met": sums["met"], "sla_breached": sums["late"] + sums["open_contract"] - pending,
        "within_exp": sums["within"], "exp_decided": sums["conversations"] - undecided,
        "off_arrivals": sums["off"], "off_answered": sums["off_answered"], "off_wait_s": sums["off_wait"],
        "wait_total_s": sums["wall_sum"], "wait_outside_s": sums["wait_outside"], "customers": customers,
        "sentiment_open": mean("sent_open_sum", "sent_open_n"), "sentiment_close": mean("sent_last_sum", "sent_last_n"),
        "resolved": sums["resolved"], "resolution_mean": mean("resolution_sum", "resolved"),
        "in_incident": sums["in_incident"],
    }


def grouped(conn: sa.Connection, name: str | None, w: Window, now: datetime, expectation_s: float, *,
            clocks: tuple[str, ...] = ("wall_s", "business_s"), quantiles: tuple[float, ...] = reports.QUANTILES,
            customers: bool = True, measures: bool = False) -> Grouped:
    """Aggregates and percentile picks per key of a breakdown (one group "" for totals), as
    carebox.store.reporting's direct path returns them."""
    g = Grouping.of(name)
    sums = _sums(conn, g, w)
    pending = _counts(conn, g, w, "pending_due", stamp(now))
    undecided = _counts(conn, g, w, "unanswered_at", stamp(now - timedelta(seconds=expectation_s)))
    distinct = _customers(conn, g, w) if customers else {}
    out: Grouped = {}
    for key, s in sums.items():
        if not s["conversations"]:
            continue
        agg = _agg(s, pending.get(key, 0), undecided.get(key, 0), distinct.get(key, 0) if customers else None)
        wall = walk(conn, g, w, "wall_s", key, agg["n_wall"], quantiles) if agg["n_wall"] else {}
        business = (walk(conn, g, w, "business_s", key, agg["n_business"], quantiles)
                    if agg["n_business"] and "business_s" in clocks else {})
        if measures:
            n = s["resolved"]
            agg.update(resolution_n=n, resolution_wall_mean=agg["resolution_mean"],
                       resolution_business_mean=_ratio(s["res_business_sum"], s["res_business_n"]),
                       resolution_wall_picks=walk(conn, g, w, "resolution_s", key, n, reports.QUANTILES) if n else {},
                       resolution_business_picks=(walk(conn, g, w, "res_business_s", key, s["res_business_n"],
                                                       reports.QUANTILES) if s["res_business_n"] else {}))
        out[key] = (agg, wall, business)
    if measures:
        _next_responses(conn, g, w, out, sums)
    return out


def _ratio(total: float | None, count: int) -> float | None:
    return total / count if count and total is not None else None


def _next_responses(conn: sa.Connection, g: Grouping, w: Window, out: Grouped, sums: dict[Any, dict[str, Any]]) -> None:
    """Next-response counts and means from cells; percentiles by one window query over the period's clocks
    (report_next_responses joined to facts), skipped when there are none."""
    wanted: dict[Any, int] = {}
    for key, (agg, _, _) in out.items():
        n = sums[key]["nrt_n"] or 0
        agg.update(nrt_n=n, nrt_wall_mean=_ratio(sums[key]["nrt_wall_sum"], n),
                   nrt_business_mean=_ratio(sums[key]["nrt_business_sum"], n), nrt_wall_picks={}, nrt_business_picks={})
        if n:
            wanted[key] = n
    if not wanted:
        return
    ranks = sorted({r for n in wanted.values() for q in reports.QUANTILES for r in reports.quantile_ranks(n, q)})
    marks = ", ".join("?" * len(ranks))
    sql = (f"SELECT k, wall_s, business_s, r0, r1 FROM (SELECT {g.fact_key} AS k, n.wall_s, n.business_s, "
           f"row_number() OVER (PARTITION BY {g.fact_key} ORDER BY n.wall_s) AS r0, "
           f"row_number() OVER (PARTITION BY {g.fact_key} ORDER BY n.business_s) AS r1 "
           f"FROM report_next_responses AS n JOIN conversation_facts ON conversation_facts.conversation_id = "
           f"n.conversation_id WHERE {w.facts_sql}) WHERE r0 IN ({marks}) OR r1 IN ({marks})")
    for k, wall, business, r0, r1 in conn.exec_driver_sql(sql, (*w.facts_params, *ranks, *ranks)):
        if k not in wanted:
            continue
        need = {r for q in reports.QUANTILES for r in reports.quantile_ranks(wanted[k], q)}
        agg = out[k][0]
        if r0 in need:
            agg["nrt_wall_picks"][r0] = wall
        if r1 in need:
            agg["nrt_business_picks"][r1] = business
