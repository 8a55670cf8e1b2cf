//! B1 and B2: what one request costs the CPU before any IO — form validation and
//! rule evaluation, on the shipped packs' compiled definitions.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};
use stagecraft_model::Id;
use stagecraft_rules::Facts;

use crate::common::{Figure, MONDAY_10AM, shipped};

/// The valid, fully filled opportunity the peers validate too.
pub(crate) const OPPORTUNITY_DOC: &str =
    include_str!("../../../benches/peers/opportunity-valid.json");

fn per_op_ns(iterations: usize, repeats: usize, mut op: impl FnMut()) -> Vec<f64> {
    // Warm up caches and branch predictors first.
    for _ in 0..iterations.min(10_000) {
        op();
    }
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                op();
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect()
}

/// B1: the opportunity form (the largest form of the sales pack), fully filled, by the
/// validator the packs compiled.
pub(crate) fn b1(root: &Path, iterations: usize, repeats: usize) -> anyhow::Result<Vec<Figure>> {
    let definitions = shipped(root)?;
    let form = definitions.forms.get(&Id::from("opportunity")).context("no opportunity form")?;
    let doc: Value = serde_json::from_str(OPPORTUNITY_DOC)?;
    let fields = doc.as_object().cloned().unwrap_or_default();
    if !form.validator.is_valid(&doc) {
        bail!("the benchmark's opportunity is not valid");
    }
    let mut invalid = doc.clone();
    invalid["amount"] = json!(-1);
    if form.validator.is_valid(&invalid) {
        bail!("the validator accepts a negative amount");
    }
    let size = format!(
        "form `opportunity`: {} fields, {} filled; {iterations} validations × {repeats}",
        form.fields.len(),
        fields.len()
    );
    let validator = &form.validator;
    let plain = per_op_ns(iterations, repeats, || {
        black_box(validator.is_valid(black_box(&doc)));
    });
    // What the runtime does on a create: the runtime's own check of the new record
    // (the schema, then the first stage's required fields).
    let opportunity = Id::from("opportunity");
    if !stagecraft_runtime::create_problems(&definitions, &opportunity, &fields).is_empty() {
        bail!("the runtime refuses the benchmark's opportunity");
    }
    let runtime = per_op_ns(iterations, repeats, || {
        black_box(stagecraft_runtime::create_problems(
            &definitions,
            &opportunity,
            black_box(&fields),
        ));
    });
    Ok(vec![
        Figure {
            bench: "B1",
            subject: "stagecraft".into(),
            what: "validate a valid form (is_valid)".into(),
            unit: "ns",
            values: plain,
            higher_is_better: false,
            durability: "-",
            size: size.clone(),
            extra: json!({"target_ns": 2000}),
        },
        Figure {
            bench: "B1",
            subject: "stagecraft-runtime-path".into(),
            what: "the runtime's check of a new record (schema + first stage's fields)".into(),
            unit: "ns",
            values: runtime,
            higher_is_better: false,
            durability: "-",
            size,
            extra: json!({"target_ns": 2000}),
        },
    ])
}

fn typical_facts() -> anyhow::Result<Facts> {
    let mut record: Map<String, Value> =
        serde_json::from_str::<Value>(OPPORTUNITY_DOC)?.as_object().cloned().unwrap_or_default();
    record.insert("id".into(), json!("0000019a2d4f0a00b3c1d2e300001"));
    record.insert("owner".into(), json!("rep01"));
    record.insert("created_at".into(), json!(MONDAY_10AM / 1000 - 10 * 86_400));
    record.insert("stage".into(), json!("needs_confirmed"));
    let mut previous = record.clone();
    previous.insert("amount".into(), json!(600_000));
    Ok(Facts {
        record,
        previous: Some(previous),
        stage: Some("needs_confirmed".into()),
        stage_entered_at: Some(MONDAY_10AM / 1000 - 9 * 86_400),
        now: MONDAY_10AM / 1000,
        actor: Some("rep01".into()),
        changed: vec!["amount".into()],
    })
}

/// B2: compiled rules of the shipped packs, evaluated in the sandbox on a typical
/// opportunity (16 fields): the stalled-deal alert, the large-swing alert and the
/// `amount_positive` gate.
pub(crate) fn b2(root: &Path, iterations: usize, repeats: usize) -> anyhow::Result<Vec<Figure>> {
    let definitions = shipped(root)?;
    let facts = typical_facts()?;
    let sandbox = definitions.sandbox.clone();
    let size = format!("{iterations} evaluations × {repeats}, a 20-key record");
    let mut figures = Vec::new();
    for (owner, pointer, label, gate) in [
        (
            "alert:stalled-deal",
            "/when",
            "alert stalled-deal (time in stage, stage not in list)",
            false,
        ),
        ("alert:large-swing", "/when", "alert large-swing (record vs previous amount)", false),
        ("gate:amount_positive", "", "gate amount_positive (if/else, text or bool)", true),
    ] {
        let rule =
            definitions.script(owner, pointer).with_context(|| format!("no rule {owner}"))?;
        let check = if gate {
            matches!(sandbox.eval_gate(rule, &facts)?, stagecraft_rules::GateOutcome::Open)
        } else {
            sandbox.eval_condition(rule, &facts)?
        };
        if !check {
            bail!("{owner} does not hold on the typical record");
        }
        let values = per_op_ns(iterations, repeats, || {
            if gate {
                black_box(sandbox.eval_gate(rule, black_box(&facts)).is_ok());
            } else {
                black_box(sandbox.eval_condition(rule, black_box(&facts)).is_ok());
            }
        });
        figures.push(Figure {
            bench: "B2",
            subject: "stagecraft".into(),
            what: label.into(),
            unit: "ns",
            values,
            higher_is_better: false,
            durability: "-",
            size: size.clone(),
            extra: json!({"target_ns": 2000}),
        });
    }
    Ok(figures)
}
