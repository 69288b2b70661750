"""What runs cost, on the command line: `outpaint --dry-run` (the plan and its estimate, nothing sent),
the daily limit checked for the whole batch of files before the first is sent, `spend` (today, this
month, the limit, recent entries: the same data as GET /cloud_outpaint/spend) and `cache` (its size;
--clear empties it). The folder is the user's cache folder (core/cost_state.py)."""

from __future__ import annotations

import json
import sys

from ..core import cost_state
from ..core.errors import InputError
from .exits import EXIT_OK, EXIT_USAGE, PROG, UsageError


def _money(value) -> str:
    return "price not set" if value is None else f"CNY {value:.2f}"


def preview(plan, sources) -> tuple[list[str], dict]:
    """One line per file and the totals of the plan, from each file's cache keys; nothing is sent."""
    from ..core import imagecodec

    lines, totals = [], {"jobs": 0, "cached": 0, "resumed": 0, "paid": 0, "estimate_cny": 0.0}
    unit = "task" if plan.vendor == "dashscope" else "request"
    guard = None
    for index, source in enumerate(sources):
        try:
            image = imagecodec.decode_image(source.path.read_bytes(), exif_transpose=True)
            file_guard = plan.cost_guard(image, index)
        except (OSError, imagecodec.DecodeError, InputError) as exc:  # the run reports this file failed too
            lines.append(f"{source.path}: fails before anything is sent, left out of the plan: {exc}")
            continue
        guard, row = file_guard, file_guard.plan()
        for name in ("jobs", "cached", "resumed", "paid"):
            totals[name] += row[name]
        if totals["estimate_cny"] is not None:
            totals["estimate_cny"] = None if row["estimate_cny"] is None else totals["estimate_cny"] + row["estimate_cny"]
        lines.append(f"{source.path}: {row['jobs']} {unit}(s): {row['cached']} from cache, {row['resumed']} "
                     f"resumed, {row['paid']} to pay ({_money(row['estimate_cny'])})")
    totals["price_cny"] = guard.price if guard is not None else None
    totals["guard"] = guard
    return lines, totals


def check_limit(totals: dict) -> None:
    """The daily limit for the whole batch of files (UsageError: nothing was sent)."""
    guard = totals["guard"]
    if guard is None or not guard.active or totals["paid"] == 0:
        return
    batch = dict(guard.plan(), paid=totals["paid"], cached=totals["cached"], estimate_cny=totals["estimate_cny"])
    try:
        guard.check_budget(plan=batch)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def settings() -> cost_state.CostSettings:
    """The prices, the daily limit and the cache cap, read once before any file is prepared."""
    try:
        cost_state.cache_cap_bytes()
        return cost_state.load()
    except InputError as exc:  # a malformed CLOUD_OUTPAINT_* variable
        raise UsageError(str(exc)) from None


def dry_run(plan, sources) -> int:
    lines, totals = preview(plan, sources)
    where = "the sandbox (offline, free)" if plan.backend == "sandbox" else plan.credentials.base_url
    total = (f"total: {totals['jobs']} call(s), {totals['cached']} from cache, {totals['resumed']} resumed, "
             f"{totals['paid']} to pay" + (f" at {_money(totals['price_cny'])} each" if totals['price_cny'] is not None
                                           else " (price not set)") + f": estimate {_money(totals['estimate_cny'])}")
    out = [f"dry run: nothing is sent. {plan.vendor} {plan.mode} via {where}", *lines, total]
    report = _report()
    limit = report["limit_cny"]
    out.append(f"today: {_money(report['today_cny'])} spent; daily limit: "
               f"{'none' if limit is None else _money(limit)}")
    try:
        check_limit(totals)
    except UsageError as exc:
        out.append(f"this run would be refused: {str(exc).removeprefix('refused: ')}")
        sys.stdout.write("\n".join(out) + "\n")
        return EXIT_USAGE
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def _report() -> dict:
    try:
        return cost_state.report()
    except InputError as exc:  # a malformed CLOUD_OUTPAINT_* variable
        raise UsageError(str(exc)) from None


def cmd_spend(args) -> int:
    report = _report()
    if args.json:
        sys.stdout.write(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        return EXIT_OK
    limit = report["limit_cny"]
    prices = report["prices"]
    today = (f"today: {_money(report['today_cny'])} (requests: Volcengine {report['requests_today']['volc']}, "
             f"DashScope {report['requests_today']['dashscope']})")
    cache = (f"cache: {report['cache']['entries']} result(s), {report['cache']['bytes'] / 2**20:.1f} MiB"
             + ("" if report["cache"]["enabled"] else f" (off: {cost_state.CACHE_VAR}=off)"))
    volc_price = "not set" if prices["volc"] is None else f"{_money(prices['volc'])} per request"
    lines = [today,
             f"this month: {_money(report['month_cny'])}",
             f"daily limit: {'none' if limit is None else _money(limit)}",
             f"prices: Volcengine {volc_price}, DashScope {_money(prices['dashscope'])} per image",
             cache,
             f"folder: {cost_state.state_dir()}"]
    if report["entries"]:
        lines.append(f"recent ({min(len(report['entries']), args.last)} of the last 50, newest first):")
        for e in report["entries"][:args.last]:
            lines.append(f"  {e['time']}  {e['vendor']:<9}  {e['kind']} {e['id']}  {e['images']} image(s)  "
                         f"{_money(e.get('cost_cny'))}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def cmd_cache(args) -> int:
    if args.clear:
        sys.stdout.write(f"cleared {cost_state.clear_cache()} cached result(s) from {cost_state.state_dir()}\n")
        return EXIT_OK
    cache = _report()["cache"]
    sys.stdout.write(f"{cache['entries']} cached result(s), {cache['bytes'] / 2**20:.1f} MiB in "
                     f"{cost_state.state_dir() / 'cache'}" + ("" if cache["enabled"] else " (the cache is off)")
                     + f"\n(`{PROG} cache --clear` empties it)\n")
    return EXIT_OK
