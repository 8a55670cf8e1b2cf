// B1 peer: the opportunity form validated by ajv (draft 2020-12, compiled to
// JavaScript), with ajv-formats so that `date` and `date-time` are checked as the
// engine checks them; `strict: false` because the form carries `x-` keywords.
// Usage: node b1_ajv.mjs SCHEMA DOC ITERATIONS REPEATS -> one result line.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

// BENCH_NODE_PREFIX: the npm prefix the driver installed ajv into.
const require = createRequire(resolve(process.env.BENCH_NODE_PREFIX, "package.json"));
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [schemaPath, docPath, iterations, repeats] = process.argv.slice(2);
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const ajv = new Ajv2020({ strict: false, allErrors: false });
addFormats(ajv);
const validate = ajv.compile(schema);
if (!validate(doc)) throw new Error("ajv refused the valid document: " + JSON.stringify(validate.errors));
if (validate({ ...doc, amount: -1 })) throw new Error("ajv accepted an invalid document");
const ns = [];
for (let r = 0; r < Number(repeats); r++) {
  const started = process.hrtime.bigint();
  let ok = true;
  for (let i = 0; i < Number(iterations); i++) ok = validate(doc) && ok;
  if (!ok) throw new Error("invalid");
  ns.push(Number(process.hrtime.bigint() - started) / Number(iterations));
}
console.log(JSON.stringify({
  bench: "B1", subject: "ajv", what: "validate a valid form", unit: "ns", values: ns,
  higher_is_better: false, durability: "-", size: `${iterations} validations × ${repeats}`,
  rss_kib: Math.round(process.resourceUsage().maxRSS), extra: {},
}));
