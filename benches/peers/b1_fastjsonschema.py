"""B1 peer: the opportunity form validated by fastjsonschema (compiled to Python).

The schema is the shipped one with `$schema` removed (fastjsonschema knows drafts
4, 6 and 7 only; the form uses no 2020-12-only keyword) and formats checked, as
the engine checks them. Usage: b1_fastjsonschema.py SCHEMA DOC ITERATIONS REPEATS
-> one result line (nanoseconds per validation, each repeat).
"""

import json
import resource
import sys
import time

import fastjsonschema

schema = json.load(open(sys.argv[1]))
schema.pop("$schema", None)
doc = json.load(open(sys.argv[2]))
iterations = int(sys.argv[3])
repeats = int(sys.argv[4])
validate = fastjsonschema.compile(schema, use_formats=True)
validate(doc)  # raises if the document were not valid
try:
    validate(dict(doc, amount=-1))
    sys.exit("fastjsonschema accepted an invalid document")
except fastjsonschema.JsonSchemaValueException:
    pass
ns = []
for _ in range(repeats):
    started = time.perf_counter_ns()
    for _ in range(iterations):
        validate(doc)
    ns.append((time.perf_counter_ns() - started) / iterations)
print(json.dumps({
    "bench": "B1", "subject": "fastjsonschema", "what": "validate a valid form",
    "unit": "ns", "values": ns, "higher_is_better": False, "durability": "-",
    "size": f"{iterations} validations × {repeats}",
    "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "extra": {},
}))
