"""B4 peer: the bench deal flow (5 gated transitions) in SpiffWorkflow, persisting
the serialized workflow after every step, written and fsynced before the next step.

The flow: lead -> qualified -> proposal -> negotiation -> contract -> won. Each stage
is a BPMN user task (a wait state, as a stage is in Stagecraft); each move is the
user task completed with the record's fields, then an exclusive gateway whose
condition is the same gate the Stagecraft pack checks (a failed gate ends the
process in a "refused" end event, which the harness counts as an error).

Usage: b4_spiff.py RECORDS REPEATS OUT_DIR -> one result line (transitions per second,
each repeat; creation and its first write are timed too, as in Stagecraft's run).
"""

import json
import os
import resource
import sys
import time
from importlib.metadata import version

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

STAGES = ["lead", "qualified", "proposal", "negotiation", "contract", "won"]
# The same gates as crates/bench/pack/bench-deal.flow.yaml, as Python expressions.
GATES = [
    "amount > 0",
    "contact is not None and contact != ''",
    "amount < 10000000",
    "discount <= 0.3",
    "signed_at is not None and signed_at != ''",
]


def bpmn() -> str:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
             'id="defs" targetNamespace="http://bpmn.io/schema/bpmn">',
             '<bpmn:process id="deal" isExecutable="true">',
             '<bpmn:startEvent id="start"/>',
             '<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="lead"/>']
    for i, stage in enumerate(STAGES[:-1]):
        nxt = STAGES[i + 1]
        parts.append(f'<bpmn:userTask id="{stage}" name="{stage}"/>')
        parts.append(f'<bpmn:sequenceFlow id="f_{stage}_gw" sourceRef="{stage}" targetRef="gw_{stage}"/>')
        parts.append(f'<bpmn:exclusiveGateway id="gw_{stage}" default="f_{stage}_refused"/>')
        target = nxt if nxt != "won" else "won"
        parts.append(f'<bpmn:sequenceFlow id="f_{stage}_ok" sourceRef="gw_{stage}" targetRef="{target}">'
                     f'<bpmn:conditionExpression>{GATES[i].replace("<", "&lt;")}</bpmn:conditionExpression>'
                     '</bpmn:sequenceFlow>')
        parts.append(f'<bpmn:sequenceFlow id="f_{stage}_refused" sourceRef="gw_{stage}" targetRef="refused"/>')
    parts.append('<bpmn:endEvent id="won"/>')
    parts.append('<bpmn:endEvent id="refused"/>')
    parts.append('</bpmn:process></bpmn:definitions>')
    return "\n".join(parts)


def main() -> None:
    records, repeats, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    parser = SpiffBpmnParser()
    path = os.path.join(out, "deal.bpmn")
    with open(path, "w") as f:
        f.write(bpmn())
    parser.add_bpmn_file(path)
    spec = parser.get_spec("deal")
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    def persist(workflow: BpmnWorkflow, name: str) -> None:
        data = serializer.serialize_json(workflow)
        fd = os.open(os.path.join(out, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    rates = []
    refused = 0
    for repeat in range(repeats):
        transitions = 0
        started = time.perf_counter()
        for n in range(records):
            name = f"deal-{repeat}-{n}.json"
            workflow = BpmnWorkflow(spec)
            workflow.do_engine_steps()
            persist(workflow, name)
            for _ in range(5):
                # Load the stored workflow, as a server handling one request at a time would.
                with open(os.path.join(out, name)) as f:
                    workflow = serializer.deserialize_json(f.read())
                ready = workflow.get_tasks(state=TaskState.READY, manual=True)
                if not ready:
                    break  # a gate refused: the process ended in "refused"
                task = ready[0]
                task.data.update({
                    "amount": 880000 + n, "contact": "王经理", "discount": 0.1,
                    "signed_at": "2026-11-02",
                })
                task.run()
                workflow.do_engine_steps()
                persist(workflow, name)
                transitions += 1
            done = [t.task_spec.name for t in workflow.get_tasks(state=TaskState.COMPLETED)]
            if "won" not in done:
                refused += 1
        rates.append(transitions / (time.perf_counter() - started))
    if refused:
        sys.exit(f"SpiffWorkflow: {refused} deals did not reach won")
    print(json.dumps({
        "bench": "B4", "subject": "SpiffWorkflow",
        "what": "gated transitions, workflow serialized + fsynced after each step",
        "unit": "transitions/s", "values": rates, "higher_is_better": True, "durability": "D2",
        "size": f"{records} deals × 5 transitions × {repeats}",
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "extra": {"version": version("SpiffWorkflow")},
    }))


if __name__ == "__main__":
    main()
