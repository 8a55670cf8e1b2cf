//! Integration tests for the rules sandbox: compile-time checks, gate evaluation,
//! facts, host functions and the limits that stop abusive scripts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use stagecraft_rules::{
    CompiledRule, EvalError, Facts, GateOutcome, Host, Limits, NoHost, Query, RuleError,
    RuleErrorKind, Sandbox,
};

const RULE: &str = "test-rule";
const DAY: i64 = 86_400;
/// A fixed "now" for every test that needs one.
const NOW: i64 = 1_750_000_000;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn sandbox() -> Sandbox {
    Sandbox::new(Limits::default(), Arc::new(NoHost))
}

fn compile(sandbox: &Sandbox, source: &str) -> CompiledRule {
    sandbox
        .compile(RULE, source)
        .unwrap_or_else(|errors| panic!("`{source}` should compile, got {errors:#?}"))
}

fn compile_errors(sandbox: &Sandbox, source: &str) -> Vec<RuleError> {
    match sandbox.compile(RULE, source) {
        Ok(_) => panic!("`{source}` should not compile"),
        Err(errors) => errors,
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected a JSON object, got {other}"),
    }
}

fn gate(source: &str, facts: &Facts) -> Result<GateOutcome, EvalError> {
    let sandbox = sandbox();
    let rule = compile(&sandbox, source);
    sandbox.eval_gate(&rule, facts)
}

fn condition(sandbox: &Sandbox, source: &str, facts: &Facts) -> bool {
    let rule = compile(sandbox, source);
    sandbox
        .eval_condition(&rule, facts)
        .unwrap_or_else(|error| panic!("`{source}` should evaluate, got {error}"))
}

/// Compiles and runs an abusive script under the default limits, asserting that it is
/// refused within 100 ms (the spec's bound) with an error naming the rule.
fn run_abusive(source: &str) -> EvalError {
    let sandbox = sandbox();
    let rule = compile(&sandbox, source);
    let started = Instant::now();
    let result = sandbox.eval(&rule, &Facts::default());
    let elapsed = started.elapsed();
    let error = match result {
        Ok(value) => panic!("`{source}` should have been stopped, returned {value:?}"),
        Err(error) => error,
    };
    assert!(elapsed < Duration::from_millis(100), "`{source}` took {elapsed:?} to stop ({error})");
    assert!(error.to_string().contains(RULE), "the message `{error}` should name the rule");
    error
}

fn stopped_reason(error: EvalError) -> String {
    match error {
        EvalError::Stopped { rule, reason } => {
            assert_eq!(rule, RULE);
            reason
        }
        other => panic!("expected EvalError::Stopped, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A test host: an org chart and an in-memory store
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct TestHost {
    managers: BTreeMap<String, String>,
    departments: BTreeMap<String, String>,
    heads: BTreeMap<String, String>,
    roles: BTreeMap<String, Vec<String>>,
    /// (form, record) pairs; each record has `id`, `created_at` and its fields.
    records: Vec<(String, Map<String, Value>)>,
    /// Every query the sandbox made, in order.
    queries: Mutex<Vec<Query>>,
}

impl TestHost {
    fn org() -> Self {
        let pairs = |items: &[(&str, &str)]| -> BTreeMap<String, String> {
            items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        TestHost {
            managers: pairs(&[("alice", "bob"), ("bob", "carol")]),
            departments: pairs(&[("alice", "sales"), ("bob", "sales")]),
            heads: pairs(&[("sales", "carol")]),
            roles: [
                ("legal".to_owned(), vec!["dave".to_owned(), "erin".to_owned()]),
                ("finance".to_owned(), vec!["frank".to_owned()]),
            ]
            .into_iter()
            .collect(),
            ..TestHost::default()
        }
    }

    fn with_record(mut self, form: &str, record: Value) -> Self {
        self.records.push((form.to_owned(), object(record)));
        self
    }

    fn queries(&self) -> Vec<Query> {
        self.queries.lock().expect("queries lock").clone()
    }
}

impl Host for TestHost {
    fn manager(&self, user: &str) -> Option<String> {
        self.managers.get(user).cloned()
    }
    fn department(&self, user: &str) -> Option<String> {
        self.departments.get(user).cloned()
    }
    fn head(&self, department: &str) -> Option<String> {
        self.heads.get(department).cloned()
    }
    fn role_members(&self, role: &str) -> Vec<String> {
        self.roles.get(role).cloned().unwrap_or_default()
    }
    fn query(&self, query: &Query) -> Result<Vec<Map<String, Value>>, String> {
        self.queries.lock().map_err(|e| e.to_string())?.push(query.clone());
        Ok(self
            .records
            .iter()
            .filter(|(form, _)| *form == query.form)
            .map(|(_, record)| record)
            .filter(|record| {
                query.equals.iter().all(|(field, value)| record.get(field) == Some(value))
            })
            .filter(|record| match query.created_since {
                Some(since) => {
                    record.get("created_at").and_then(Value::as_i64).is_some_and(|at| at >= since)
                }
                None => true,
            })
            .filter(|record| match &query.exclude_id {
                Some(id) => record.get("id").and_then(Value::as_str) != Some(id.as_str()),
                None => true,
            })
            .take(query.limit)
            .cloned()
            .collect())
    }
}

fn host_sandbox(host: TestHost) -> (Sandbox, Arc<TestHost>) {
    let host = Arc::new(host);
    let sandbox = Sandbox::new(Limits::default(), host.clone());
    (sandbox, host)
}

// ---------------------------------------------------------------------------
// Compile errors
// ---------------------------------------------------------------------------

#[test]
fn syntax_error_reports_kind_line_and_column() {
    // Line 2: `let y = ;` — the expression is missing where `;` stands, column 9.
    let errors = compile_errors(&sandbox(), "let x = 1;\nlet y = ;\nx");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.kind, RuleErrorKind::Syntax, "{error:#?}");
    assert_eq!((error.line, error.column), (2, 9), "{error:#?}");
    assert!(!error.message.is_empty());
}

#[test]
fn syntax_error_position_on_first_line() {
    // An unclosed parenthesis on line 1: the error sits where `)` was expected.
    let errors = compile_errors(&sandbox(), "(record.amount > 1");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, RuleErrorKind::Syntax, "{errors:#?}");
    assert_eq!(errors[0].line, 1, "{errors:#?}");
}

#[test]
fn unknown_variable_is_named_with_a_did_you_mean_hint() {
    let errors = compile_errors(&sandbox(), "recrod.amount > 100");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.kind, RuleErrorKind::UnknownVariable);
    assert!(error.message.contains("recrod"), "{}", error.message);
    assert_eq!(error.hint.as_deref(), Some("did you mean `record`?"));
    assert_eq!((error.line, error.column), (1, 1), "{error:#?}");
}

#[test]
fn unknown_variable_on_a_later_line_is_placed() {
    let errors = compile_errors(&sandbox(), "let a = 1;\na + amount");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.kind, RuleErrorKind::UnknownVariable);
    assert!(error.message.contains("`amount`"), "{}", error.message);
    assert_eq!((error.line, error.column), (2, 5), "{error:#?}");
}

#[test]
fn unknown_functions_are_refused_at_compile_time() {
    let sandbox = sandbox();
    for source in ["sleep(10)", "timestamp()", "eval(\"1\")", "open_file(\"x\")"] {
        let errors = match sandbox.compile(RULE, source) {
            Ok(_) => panic!("`{source}` must not compile"),
            Err(errors) => errors,
        };
        assert!(!errors.is_empty(), "`{source}`");
        for error in &errors {
            assert!(
                matches!(error.kind, RuleErrorKind::UnknownFunction | RuleErrorKind::Syntax),
                "`{source}`: {error:#?}"
            );
        }
    }
}

#[test]
fn unknown_function_error_names_the_function_and_its_position() {
    let errors = compile_errors(&sandbox(), "let x = 1;\nx + sleep(10)");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.kind, RuleErrorKind::UnknownFunction);
    assert!(error.message.contains("`sleep`"), "{}", error.message);
    assert_eq!((error.line, error.column), (2, 5), "{error:#?}");
    assert!(error.hint.is_some());
}

#[test]
fn eval_is_refused_as_a_reserved_word() {
    let errors = compile_errors(&sandbox(), "eval(\"1\")");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, RuleErrorKind::Syntax);
    assert!(errors[0].message.contains("eval"), "{}", errors[0].message);
}

#[test]
fn misspelt_host_function_gets_a_hint() {
    let errors = compile_errors(&sandbox(), "managr(record.owner)");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, RuleErrorKind::UnknownFunction);
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `manager`?"));
}

#[test]
fn every_unknown_function_in_a_script_is_reported() {
    let errors = compile_errors(&sandbox(), "let a = sleep(10);\nlet b = open_file(\"x\");\na");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.kind == RuleErrorKind::UnknownFunction));
    assert!(errors[0].message.contains("`sleep`"), "{errors:#?}");
    assert_eq!(errors[0].line, 1);
    assert!(errors[1].message.contains("`open_file`"), "{errors:#?}");
    assert_eq!(errors[1].line, 2);
}

#[test]
fn unknown_function_inside_a_script_function_is_reported() {
    let errors = compile_errors(&sandbox(), "fn f(x) { sleep(x) }\nf(1)");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, RuleErrorKind::UnknownFunction);
    assert!(errors[0].message.contains("`sleep`"));
}

#[test]
fn unknown_method_call_is_reported() {
    let errors = compile_errors(&sandbox(), "record.amount.launch_missiles()");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, RuleErrorKind::UnknownFunction);
    assert!(errors[0].message.contains("`launch_missiles`"));
}

#[test]
fn script_defined_functions_compile_and_run() {
    let sandbox = sandbox();
    let rule = compile(&sandbox, "fn f(x) { x + 1 } f(2)");
    let value = sandbox.eval(&rule, &Facts::default()).expect("evaluates");
    assert_eq!(value.as_int(), Ok(3));
}

#[test]
fn closures_with_filter_compile_and_run() {
    let sandbox = sandbox();
    let rule = compile(&sandbox, "let limit = 2; [1, 2, 3, 4].filter(|x| x > limit).len()");
    let value = sandbox.eval(&rule, &Facts::default()).expect("evaluates");
    assert_eq!(value.as_int(), Ok(2));
}

#[test]
fn host_functions_compile() {
    let sandbox = sandbox();
    for source in [
        "manager(record.owner)",
        "department(record.owner)",
        "head(\"sales\")",
        "role(\"legal\")",
        "minutes(5)",
        "hours(2)",
        "days(7)",
        "filled(record.amount)",
        "find(\"opportunity\", #{customer: \"acme\"})",
        "count(\"opportunity\", #{customer: \"acme\"})",
    ] {
        compile(&sandbox, source);
    }
    let functions: Vec<&str> = sandbox.functions().collect();
    for name in [
        "manager",
        "department",
        "head",
        "role",
        "minutes",
        "hours",
        "days",
        "filled",
        "find",
        "count",
    ] {
        assert!(functions.contains(&name), "`{name}` should be listed in {functions:?}");
    }
}

#[test]
fn overlong_source_is_refused_as_a_limit() {
    let sandbox =
        Sandbox::new(Limits { max_source_len: 10, ..Limits::default() }, Arc::new(NoHost));
    let errors = compile_errors(&sandbox, "record.amount > 100");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, RuleErrorKind::Limit);
}

// ---------------------------------------------------------------------------
// Gate evaluation
// ---------------------------------------------------------------------------

#[test]
fn gate_true_is_open() {
    assert_eq!(gate("true", &Facts::default()), Ok(GateOutcome::Open));
}

#[test]
fn gate_false_is_closed_without_reasons() {
    assert_eq!(gate("false", &Facts::default()), Ok(GateOutcome::Closed(Vec::new())));
}

#[test]
fn gate_string_is_closed_with_that_reason() {
    assert_eq!(
        gate("\"needs a signed contract\"", &Facts::default()),
        Ok(GateOutcome::Closed(vec!["needs a signed contract".to_owned()]))
    );
}

#[test]
fn gate_array_of_strings_is_closed_with_those_reasons() {
    assert_eq!(
        gate("[\"no contract\", \"no budget\"]", &Facts::default()),
        Ok(GateOutcome::Closed(vec!["no contract".to_owned(), "no budget".to_owned()]))
    );
}

#[test]
fn gate_reasons_built_at_run_time() {
    let facts = Facts { record: object(json!({"amount": 50, "contract": ""})), ..Facts::default() };
    let source = r#"
        let reasons = [];
        if record.amount < 100 { reasons.push("amount is below 100"); }
        if !filled(record.contract) { reasons.push("contract is missing"); }
        reasons
    "#;
    assert_eq!(
        gate(source, &facts),
        Ok(GateOutcome::Closed(vec![
            "amount is below 100".to_owned(),
            "contract is missing".to_owned()
        ]))
    );
}

#[test]
fn gate_empty_array_is_open() {
    assert_eq!(gate("[]", &Facts::default()), Ok(GateOutcome::Open));
}

#[test]
fn gate_number_is_a_bad_result_naming_the_rule() {
    let error = gate("42", &Facts::default()).expect_err("a number is not a gate answer");
    match &error {
        EvalError::BadResult { rule, found } => {
            assert_eq!(rule, RULE);
            assert!(found.contains("i64") || found.contains("int"), "{found}");
        }
        other => panic!("expected BadResult, got {other:?}"),
    }
    assert!(error.to_string().contains(RULE), "{error}");
}

#[test]
fn condition_requires_a_boolean() {
    let sandbox = sandbox();
    let rule = compile(&sandbox, "\"yes\"");
    let error = sandbox.eval_condition(&rule, &Facts::default()).expect_err("not a bool");
    assert!(matches!(&error, EvalError::BadResult { rule, .. } if rule == RULE), "{error:?}");
}

#[test]
fn runtime_error_is_failed_naming_the_rule() {
    let facts = Facts { record: object(json!({"amount": "lots"})), ..Facts::default() };
    let sandbox = sandbox();
    // rhai has no `-` for a string and a number.
    let rule = compile(&sandbox, "record.amount - 1 > 100");
    let error = sandbox.eval_gate(&rule, &facts).expect_err("no `-` for a string");
    assert!(matches!(&error, EvalError::Failed { rule, .. } if rule == RULE), "{error:?}");
    assert!(error.to_string().contains(RULE), "{error}");
}

#[test]
fn eval_value_converts_to_json() {
    let sandbox = sandbox();
    let facts = Facts { record: object(json!({"amount": 120})), ..Facts::default() };
    let rule = compile(&sandbox, "#{total: record.amount * 2, tags: [\"a\", \"b\"]}");
    let value = sandbox.eval_value(&rule, &facts).expect("evaluates");
    assert_eq!(value, json!({"total": 240, "tags": ["a", "b"]}));
}

// ---------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------

#[test]
fn record_fields_are_readable() {
    let sandbox = sandbox();
    let big = Facts { record: object(json!({"amount": 150})), ..Facts::default() };
    let small = Facts { record: object(json!({"amount": 50})), ..Facts::default() };
    assert!(condition(&sandbox, "record.amount > 100", &big));
    assert!(!condition(&sandbox, "record.amount > 100", &small));
}

#[test]
fn time_in_stage_is_now_minus_stage_entered_at() {
    let sandbox = sandbox();
    let long = Facts { stage_entered_at: Some(NOW - 8 * DAY), now: NOW, ..Facts::default() };
    let short = Facts { stage_entered_at: Some(NOW - 6 * DAY), now: NOW, ..Facts::default() };
    assert!(condition(&sandbox, "time_in_stage > days(7)", &long));
    assert!(!condition(&sandbox, "time_in_stage > days(7)", &short));
    assert!(condition(&sandbox, &format!("time_in_stage == {} && now == {NOW}", 8 * DAY), &long));
}

#[test]
fn time_in_stage_is_unit_outside_a_stage() {
    let sandbox = sandbox();
    let facts = Facts { now: NOW, ..Facts::default() };
    assert!(condition(&sandbox, "time_in_stage == ()", &facts));
}

#[test]
fn previous_is_unit_when_absent() {
    let sandbox = sandbox();
    assert!(condition(&sandbox, "previous == ()", &Facts::default()));
    let with_previous = Facts { previous: Some(object(json!({"amount": 10}))), ..Facts::default() };
    assert!(!condition(&sandbox, "previous == ()", &with_previous));
    assert!(condition(&sandbox, "previous.amount == 10", &with_previous));
}

#[test]
fn changed_lists_changed_fields() {
    let sandbox = sandbox();
    let facts =
        Facts { changed: vec!["amount".to_owned(), "stage".to_owned()], ..Facts::default() };
    assert!(condition(&sandbox, "changed.contains(\"amount\")", &facts));
    assert!(!condition(&sandbox, "changed.contains(\"owner\")", &facts));
    assert!(!condition(&sandbox, "changed.contains(\"amount\")", &Facts::default()));
}

#[test]
fn stage_and_actor_facts() {
    let sandbox = sandbox();
    let facts = Facts {
        stage: Some("review".to_owned()),
        actor: Some("alice".to_owned()),
        ..Facts::default()
    };
    assert!(condition(&sandbox, "stage == \"review\" && actor == \"alice\"", &facts));
    assert!(condition(&sandbox, "stage == () && actor == ()", &Facts::default()));
}

#[test]
fn facts_are_constants_at_run_time() {
    let sandbox = sandbox();
    let facts = Facts { record: object(json!({"amount": 1})), ..Facts::default() };
    let rule = compile(&sandbox, "record = #{amount: 2}; true");
    let error = sandbox.eval(&rule, &facts).expect_err("facts cannot be reassigned");
    match &error {
        EvalError::Failed { rule, message } => {
            assert_eq!(rule, RULE);
            assert!(message.contains("constant"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn compiled_rule_sees_the_facts_of_each_evaluation_not_compile_time_defaults() {
    // Regression: the facts used to be pushed as constants into the compile scope,
    // and rhai's optimizer inlined their default values (`record` = `#{}`,
    // `previous` = `()`, ...) into the AST.
    let sandbox = sandbox();
    let rule =
        compile(&sandbox, "[record.amount, previous.amount, stage, actor, now, time_in_stage]");
    let facts = Facts {
        record: object(json!({"amount": 7})),
        previous: Some(object(json!({"amount": 6}))),
        stage: Some("review".to_owned()),
        stage_entered_at: Some(NOW - 10),
        now: NOW,
        actor: Some("alice".to_owned()),
        changed: vec!["amount".to_owned()],
    };
    let value = sandbox.eval_value(&rule, &facts).expect("evaluates");
    assert_eq!(value, json!([7, 6, "review", "alice", NOW, 10]));
}

// ---------------------------------------------------------------------------
// Host functions
// ---------------------------------------------------------------------------

#[test]
fn manager_of_record_owner() {
    let (sandbox, _) = host_sandbox(TestHost::org());
    let facts = Facts { record: object(json!({"owner": "alice"})), ..Facts::default() };
    assert!(condition(&sandbox, "manager(record.owner) == \"bob\"", &facts));
    let stranger = Facts { record: object(json!({"owner": "zed"})), ..Facts::default() };
    assert!(condition(&sandbox, "manager(record.owner) == ()", &stranger));
}

#[test]
fn department_and_head() {
    let (sandbox, _) = host_sandbox(TestHost::org());
    assert!(condition(&sandbox, "head(department(\"alice\")) == \"carol\"", &Facts::default()));
    assert!(condition(&sandbox, "department(\"zed\") == ()", &Facts::default()));
}

#[test]
fn role_members() {
    let (sandbox, _) = host_sandbox(TestHost::org());
    let facts = Facts { actor: Some("erin".to_owned()), ..Facts::default() };
    assert!(condition(&sandbox, "role(\"legal\") == [\"dave\", \"erin\"]", &facts));
    assert!(condition(&sandbox, "role(\"legal\").contains(actor)", &facts));
    assert!(!condition(&sandbox, "role(\"finance\").contains(actor)", &facts));
    assert!(condition(&sandbox, "role(\"nobody\").len() == 0", &facts));
}

#[test]
fn duration_helpers() {
    let sandbox = sandbox();
    assert!(condition(
        &sandbox,
        "minutes(2) == 120 && hours(1) == 3600 && days(2) == 172800",
        &Facts::default()
    ));
}

#[test]
fn filled_checks_for_content() {
    let sandbox = sandbox();
    let facts = Facts {
        record: object(json!({
            "blank": "  ",
            "text": "x",
            "none": null,
            "empty_list": [],
            "list": [1],
            "empty_map": {},
            "zero": 0
        })),
        ..Facts::default()
    };
    assert!(condition(
        &sandbox,
        "!filled(record.blank) && filled(record.text) && !filled(record.none) \
         && !filled(record.empty_list) && filled(record.list) \
         && !filled(record.empty_map) && filled(record.zero)",
        &facts
    ));
}

const SPLIT_DEAL: &str = r#"
    let similar = find("opportunity", #{customer: record.customer, created_within: days(14), exclude: record.id});
    similar.filter(|d| d.amount < 500000).len() >= 2
"#;

fn split_deal_facts() -> Facts {
    Facts {
        record: object(json!({
            "id": "opp-1",
            "owner": "alice",
            "customer": "acme",
            "amount": 450000,
            "created_at": NOW
        })),
        now: NOW,
        ..Facts::default()
    }
}

fn opportunity(id: &str, customer: &str, amount: i64, age_days: i64) -> Value {
    json!({
        "id": id,
        "customer": customer,
        "amount": amount,
        "created_at": NOW - age_days * DAY
    })
}

#[test]
fn split_deal_rule_fires_on_two_recent_small_deals() {
    let host = TestHost::org()
        .with_record("opportunity", opportunity("opp-1", "acme", 450000, 0))
        .with_record("opportunity", opportunity("opp-2", "acme", 300000, 3))
        .with_record("opportunity", opportunity("opp-3", "acme", 499999, 13));
    let (sandbox, host) = host_sandbox(host);
    assert!(condition(&sandbox, SPLIT_DEAL, &split_deal_facts()));

    let queries = host.queries();
    assert_eq!(queries.len(), 1, "{queries:#?}");
    let query = &queries[0];
    assert_eq!(query.form, "opportunity");
    assert_eq!(query.equals, object(json!({"customer": "acme"})));
    assert_eq!(query.created_since, Some(NOW - 14 * DAY));
    assert_eq!(query.exclude_id.as_deref(), Some("opp-1"));
    assert!(query.limit > 0);
}

#[test]
fn split_deal_rule_does_not_fire_without_two_similar_deals() {
    // Only opp-2 qualifies: opp-1 is the record itself, opp-3 is too old, opp-4 is
    // another customer's, opp-5 is too large and opp-6 is a different form.
    let host = TestHost::org()
        .with_record("opportunity", opportunity("opp-1", "acme", 450000, 0))
        .with_record("opportunity", opportunity("opp-2", "acme", 300000, 3))
        .with_record("opportunity", opportunity("opp-3", "acme", 300000, 15))
        .with_record("opportunity", opportunity("opp-4", "globex", 300000, 1))
        .with_record("opportunity", opportunity("opp-5", "acme", 500000, 1))
        .with_record("quote", opportunity("opp-6", "acme", 300000, 1));
    let (sandbox, _) = host_sandbox(host);
    assert!(!condition(&sandbox, SPLIT_DEAL, &split_deal_facts()));
}

#[test]
fn count_uses_the_same_filter() {
    let host = TestHost::org()
        .with_record("opportunity", opportunity("opp-1", "acme", 450000, 0))
        .with_record("opportunity", opportunity("opp-2", "acme", 300000, 3))
        .with_record("opportunity", opportunity("opp-3", "globex", 300000, 3));
    let (sandbox, _) = host_sandbox(host);
    assert!(condition(
        &sandbox,
        "count(\"opportunity\", #{customer: record.customer, exclude: record.id}) == 1",
        &split_deal_facts()
    ));
}

#[test]
fn created_within_must_be_a_number() {
    let (sandbox, _) = host_sandbox(TestHost::org());
    let rule = compile(&sandbox, "find(\"opportunity\", #{created_within: \"two weeks\"})");
    let error = sandbox.eval(&rule, &Facts::default()).expect_err("bad created_within");
    match &error {
        EvalError::Failed { rule, message } => {
            assert_eq!(rule, RULE);
            assert!(message.contains("created_within"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn host_query_error_is_a_failure() {
    #[derive(Debug)]
    struct BrokenStore;
    impl Host for BrokenStore {
        fn manager(&self, _: &str) -> Option<String> {
            None
        }
        fn department(&self, _: &str) -> Option<String> {
            None
        }
        fn head(&self, _: &str) -> Option<String> {
            None
        }
        fn role_members(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn query(&self, _: &Query) -> Result<Vec<Map<String, Value>>, String> {
            Err("store is offline".to_owned())
        }
    }
    let sandbox = Sandbox::new(Limits::default(), Arc::new(BrokenStore));
    let rule = compile(&sandbox, "count(\"opportunity\", #{}) > 0");
    let error = sandbox.eval_condition(&rule, &Facts::default()).expect_err("store fails");
    match &error {
        EvalError::Failed { rule, message } => {
            assert_eq!(rule, RULE);
            assert!(message.contains("store is offline"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Sandbox abuse
// ---------------------------------------------------------------------------

#[test]
fn abuse_infinite_loop_is_stopped() {
    let reason = stopped_reason(run_abusive("loop {}"));
    assert!(reason.contains("operations") || reason.contains("time limit"), "{reason}");
}

#[test]
fn abuse_while_true_is_stopped() {
    let reason = stopped_reason(run_abusive("while true { let x = 1; }"));
    assert!(reason.contains("operations") || reason.contains("time limit"), "{reason}");
}

#[test]
fn abuse_deep_recursion_is_stopped() {
    let reason = stopped_reason(run_abusive("fn f(n) { f(n + 1) } f(0)"));
    assert!(reason.contains("too deeply"), "{reason}");
}

#[test]
fn abuse_string_doubling_is_stopped() {
    let reason = stopped_reason(run_abusive("let s = \"x\"; loop { s += s; }"));
    assert!(reason.contains("string") && reason.contains("limit"), "{reason}");
}

#[test]
fn abuse_growing_array_is_stopped() {
    // rhai re-measures the whole array after every `push`, so growing it to
    // max_array_size is quadratic; in an unoptimised build the deadline can fire
    // before the size limit does. Either limit must stop it, as `Stopped`.
    let reason = stopped_reason(run_abusive("let a = []; loop { a.push(1); }"));
    assert!(reason.contains("array") || reason.contains("time limit"), "{reason}");
}

#[test]
fn abuse_map_grown_by_index_is_stopped() {
    // `m[k] = v` bypasses rhai's max_map_size, so the operations budget or the
    // deadline has to stop this one; either is fine.
    let reason =
        stopped_reason(run_abusive("let m = #{}; let i = 0; loop { m[\"k\" + i] = i; i += 1; }"));
    assert!(
        reason.contains("operations") || reason.contains("time limit") || reason.contains("map"),
        "{reason}"
    );
}

#[test]
fn abuse_too_many_variables_is_stopped() {
    let source: String =
        (0..300).map(|i| format!("let v{i} = {i};\n")).collect::<String>() + "true";
    let reason = stopped_reason(run_abusive(&source));
    assert!(reason.contains("variables"), "{reason}");
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[test]
fn custom_deadline_stops_a_loop_within_50ms() {
    let sandbox = Sandbox::new(
        Limits { deadline: Duration::from_millis(5), ..Default::default() },
        Arc::new(NoHost),
    );
    let rule = compile(&sandbox, "loop {}");
    let started = Instant::now();
    let result = sandbox.eval(&rule, &Facts::default());
    let elapsed = started.elapsed();
    let error = result.expect_err("the loop must be stopped");
    assert!(elapsed < Duration::from_millis(50), "stopped after {elapsed:?}");
    assert!(matches!(error, EvalError::Stopped { .. }), "{error:?}");
}

#[test]
fn deadline_alone_stops_a_loop() {
    // With the operations budget out of reach, only the deadline can stop the loop.
    let sandbox = Sandbox::new(
        Limits {
            deadline: Duration::from_millis(5),
            max_operations: u64::MAX,
            ..Default::default()
        },
        Arc::new(NoHost),
    );
    let rule = compile(&sandbox, "loop {}");
    let error = sandbox.eval(&rule, &Facts::default()).expect_err("the loop must be stopped");
    let reason = stopped_reason(error);
    assert!(reason.contains("time limit"), "{reason}");
}

#[test]
fn operations_budget_alone_stops_a_loop() {
    let sandbox = Sandbox::new(
        Limits {
            max_operations: 1_000,
            deadline: Duration::from_secs(3_600),
            ..Default::default()
        },
        Arc::new(NoHost),
    );
    let rule = compile(&sandbox, "loop {}");
    let error = sandbox.eval(&rule, &Facts::default()).expect_err("the loop must be stopped");
    let reason = stopped_reason(error);
    assert!(reason.contains("operations"), "{reason}");
}

#[test]
fn limits_accessor_returns_the_configured_limits() {
    let sandbox = Sandbox::new(
        Limits { deadline: Duration::from_millis(5), ..Default::default() },
        Arc::new(NoHost),
    );
    assert_eq!(sandbox.limits().deadline, Duration::from_millis(5));
    assert_eq!(sandbox.limits().max_operations, Limits::default().max_operations);
}

#[test]
fn a_rule_can_be_evaluated_repeatedly() {
    let sandbox = sandbox();
    let rule = compile(&sandbox, "record.amount > 100");
    assert_eq!(rule.name(), RULE);
    for amount in [50, 150, 50, 150] {
        let facts = Facts { record: object(json!({"amount": amount})), ..Facts::default() };
        assert_eq!(sandbox.eval_condition(&rule, &facts), Ok(amount > 100));
    }
}

#[test]
fn a_stopped_rule_does_not_poison_the_next_evaluation() {
    let sandbox = sandbox();
    let runaway = compile(&sandbox, "loop {}");
    let fine = compile(&sandbox, "let n = 0; for i in 0..1000 { n += i; } n == 499500");
    assert!(sandbox.eval(&runaway, &Facts::default()).is_err());
    assert_eq!(sandbox.eval_condition(&fine, &Facts::default()), Ok(true));
}
