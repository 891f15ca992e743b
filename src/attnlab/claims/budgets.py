"""Two budgets' ledgers side by side: which verdicts differ, how, and which comparisons moved.

The quick and the full budget must never give opposite verdicts (``holds`` against ``refuted``) for
one claim: the quick one is what a newcomer's ``make reproduce`` prints. Every other difference is
allowed and reported: ``undecided`` at quick where the full budget's seeds and training decide, or a
part of a claim (a secondary comparison) that only one budget settles. The rows name the comparisons
whose outcome differs, from each claim's ``measured["decisions"]``, so the reader sees where the two
budgets' evidence parted, not only that their words did.
"""

from __future__ import annotations

OPPOSITE = frozenset({"holds", "refuted"})
DECIDED = ("holds", "refuted", "caveat")


def kind(quick: str, full: str) -> str:
    """How two verdicts for one claim relate: ``same``, ``opposite`` (holds against refuted, never
    allowed), ``decided at full`` (undecided at quick), or ``differs`` (any other pair)."""
    if quick == full:
        return "same"
    if {quick, full} == OPPOSITE:
        return "opposite"
    if quick == "undecided" and full in DECIDED:
        return "decided at full"
    return "differs"


def _outcomes(claim: dict) -> dict[str, str]:
    return {d["comparison"]: d["outcome"] for d in (claim.get("measured") or {}).get("decisions", [])}


def differences(quick: list[dict], full: list[dict]) -> list[dict]:
    """One row per claim in both ledgers whose verdicts differ: ``id``, ``quick``, ``full``, ``kind`` and
    ``moved``, the comparisons whose outcome differs (``[name, quick outcome, full outcome]``; ``—`` where
    one budget does not make that comparison)."""
    q = {c["id"]: c for c in quick}
    rows = []
    for f in full:
        c = q.get(f["id"])
        if c is None or c["verdict"] == f["verdict"]:
            continue
        oq, of = _outcomes(c), _outcomes(f)
        moved = [[name, oq.get(name, "—"), of.get(name, "—")] for name in [*oq, *(n for n in of if n not in oq)]
                 if oq.get(name) != of.get(name)]
        rows.append({"id": f["id"], "quick": c["verdict"], "full": f["verdict"], "kind": kind(c["verdict"], f["verdict"]),
                     "moved": moved})
    return rows


def opposite(quick: list[dict], full: list[dict]) -> list[str]:
    """The IDs of claims the two budgets answer oppositely (must be empty)."""
    return [r["id"] for r in differences(quick, full) if r["kind"] == "opposite"]


def side_by_side_markdown(quick: list[dict], full: list[dict], columns: int = 2) -> str:
    """Every claim of both ledgers with its quick and its full verdict, ``columns`` (ID, quick, full) groups to
    a row so that the 26 claims fit one screen; an ID whose verdicts differ carries a dagger."""
    q = {c["id"]: c["verdict"] for c in quick}
    cells = [(f["id"] + (" †" if q[f["id"]] != f["verdict"] else ""), q[f["id"]], f["verdict"])
             for f in full if f["id"] in q]
    per = -(-len(cells) // columns)  # rows, the claims running down each group in ledger order
    lines = ["| " + " | ".join(["ID | quick | full"] * columns) + " |", "|" + "---|" * (3 * columns)]
    for i in range(per):
        row = [cells[j * per + i] if j * per + i < len(cells) else ("", "", "") for j in range(columns)]
        lines.append("| " + " | ".join(" | ".join(c) for c in row) + " |")
    return "\n".join(lines) + "\n\n† the verdicts differ; the table below says how."


def differences_markdown(rows: list[dict], compared: int) -> str:
    """The rows as a markdown table, with one line that says how many claims were compared."""
    if not rows:
        return f"Quick and full agree on all {compared} claims run at both budgets."
    n_opp = sum(r["kind"] == "opposite" for r in rows)
    head = (f"{len(rows)} of {compared} claims differ between the budgets; "
            + (f"**{n_opp} opposite (holds against refuted)**." if n_opp else "none is opposite (holds against refuted)."))
    lines = [head, "", "| ID | quick | full | how | comparisons whose outcome differs (quick → full) |",
             "|---|---|---|---|---|"]
    for r in rows:
        moved = "; ".join(f"{name.replace('|', '/')}: {a} → {b}" for name, a, b in r["moved"]) or "—"
        lines.append(f"| {r['id']} | {r['quick']} | {r['full']} | {r['kind']} | {moved} |")
    return "\n".join(lines)
