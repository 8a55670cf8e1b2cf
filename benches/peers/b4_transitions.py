"""B4 peer: the bench deal flow (5 gated transitions) with the `transitions` library.

`transitions` keeps state in memory only. Two runs: `memory` (D0, nothing stored)
and `fsync` (the record's fields and state written as JSON to its own file and
fsynced after every transition, before the next one: D2 like Stagecraft's, but
without an event log, indexes or atomicity across files).
Usage: b4_transitions.py RECORDS REPEATS MODE OUT_DIR -> one result line.
"""

import json
import os
import resource
import sys
import time
from importlib.metadata import version

from transitions import Machine

STAGES = ["lead", "qualified", "proposal", "negotiation", "contract", "won"]


class Deal:
    def __init__(self, n: int) -> None:
        self.fields = {"amount": 880000 + n, "contact": "王经理", "discount": 0.1,
                       "signed_at": "2026-11-02"}

    # The same gates as crates/bench/pack/bench-deal.flow.yaml.
    def gate_0(self) -> bool:
        return self.fields["amount"] > 0

    def gate_1(self) -> bool:
        return bool(self.fields.get("contact"))

    def gate_2(self) -> bool:
        return self.fields["amount"] < 10_000_000

    def gate_3(self) -> bool:
        return self.fields["discount"] <= 0.3

    def gate_4(self) -> bool:
        return bool(self.fields.get("signed_at"))


TRANSITIONS = [
    {"trigger": "advance", "source": STAGES[i], "dest": STAGES[i + 1], "conditions": f"gate_{i}"}
    for i in range(5)
]


def main() -> None:
    records, repeats, mode, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.makedirs(out, exist_ok=True)

    def persist(deal: Deal, n: int) -> None:
        data = json.dumps({"state": deal.state, "fields": deal.fields}).encode()
        fd = os.open(os.path.join(out, f"deal-{n}.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    # One machine for all deals, each deal added as a model (the library's way to
    # drive many objects with one definition).
    machine = Machine(model=None, states=STAGES, transitions=TRANSITIONS, initial="lead",
                      auto_transitions=False)
    rates = []
    refused = 0
    for _ in range(repeats):
        started = time.perf_counter()
        for n in range(records):
            deal = Deal(n)
            machine.add_model(deal)
            if mode == "fsync":
                persist(deal, n)
            for _ in range(5):
                if not deal.advance():
                    refused += 1
                if mode == "fsync":
                    persist(deal, n)
            if deal.state != "won":
                refused += 1
            machine.remove_model(deal)
        rates.append(records * 5 / (time.perf_counter() - started))
    if refused:
        sys.exit(f"transitions: {refused} refusals")
    print(json.dumps({
        "bench": "B4", "subject": f"transitions ({mode})",
        "what": "gated transitions" + (", JSON state written + fsynced after each" if mode == "fsync" else ", in memory"),
        "unit": "transitions/s", "values": rates, "higher_is_better": True,
        "durability": "D2" if mode == "fsync" else "D0",
        "size": f"{records} deals × 5 transitions × {repeats}",
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "extra": {"version": version("transitions")},
    }))


if __name__ == "__main__":
    main()
