//! The locked-down rhai engine: limits, host functions, compile-time name checks
//! and evaluation with a deadline.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicIteratorPackage, BasicMapPackage, BasicMathPackage,
    BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    AST, ASTNode, Array, Dynamic, Engine, EvalAltResult, Expr, INT, ImmutableString, Map, Scope,
    Stmt,
};
use serde_json::Value;

use crate::host::{Host, Query};

/// Variables every rule can read. Rules may define more with `let`.
pub const VARIABLES: &[(&str, &str)] = &[
    ("record", "the record's fields as a map, plus `id`, `owner`, `created_at`"),
    ("previous", "the record before the change (`()` when there was none)"),
    ("stage", "the id of the record's current stage (`()` outside a flow)"),
    ("stage_entered_at", "when the record entered its stage, Unix seconds"),
    ("time_in_stage", "seconds since the record entered its stage"),
    ("now", "the current time, Unix seconds"),
    ("actor", "the user id of whoever caused the change (`()` for the scheduler)"),
    ("changed", "the names of the fields that changed, as an array"),
];

/// Functions rhai itself provides outside the packages that rules may call.
const LANGUAGE_FUNCTIONS: &[&str] = &["type_of", "Fn", "call", "curry"];

/// The sandbox limits. The defaults keep a typical rule far below them while
/// stopping runaway scripts within milliseconds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Abstract operations per evaluation.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at the top level and inside functions.
    pub max_expr_depth: (usize, usize),
    /// Bytes of UTF-8 in any string (a Chinese character takes three).
    pub max_string_size: usize,
    /// Items in any array.
    pub max_array_size: usize,
    /// Entries in any map.
    pub max_map_size: usize,
    /// Variables alive at once.
    pub max_variables: usize,
    /// Script-defined functions in one rule.
    pub max_functions: usize,
    /// Wall-clock time per evaluation.
    pub deadline: Duration,
    /// Characters in a rule's source.
    pub max_source_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 200_000,
            max_call_levels: 32,
            max_expr_depth: (64, 32),
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_variables: 256,
            max_functions: 64,
            deadline: Duration::from_millis(50),
            max_source_len: 64 * 1024,
        }
    }
}

/// Why a rule did not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleErrorKind {
    /// The script does not parse.
    Syntax,
    /// The script reads a variable that is not defined.
    UnknownVariable,
    /// The script calls a function that rules cannot use.
    UnknownFunction,
    /// The script is too large or too deeply nested.
    Limit,
}

/// A compile problem in a rule, placed by line and column within the script
/// (both from 1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    /// What kind of problem.
    pub kind: RuleErrorKind,
    /// What is wrong, lowercase.
    pub message: String,
    /// The line in the script, from 1.
    pub line: usize,
    /// The column in the script, from 1.
    pub column: usize,
    /// How to fix it, when there is a likely fix.
    pub hint: Option<String>,
    /// How many characters the problem spans (the length of an unknown name; 1 for a
    /// syntax error, which rhai places at a single point).
    pub length: usize,
}

/// Why an evaluation failed. The rule's name is always part of the message so that a
/// log line or a refusal points at the culprit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The rule ran past its deadline or operation budget.
    #[error("rule `{rule}` was stopped: {reason}")]
    Stopped {
        /// The rule.
        rule: String,
        /// Which limit stopped it.
        reason: String,
    },
    /// The rule failed at run time (a type error, a missing field, an error it threw).
    #[error("rule `{rule}` failed: {message}")]
    Failed {
        /// The rule.
        rule: String,
        /// The rhai error.
        message: String,
    },
    /// The rule returned something a gate cannot interpret.
    #[error(
        "rule `{rule}` returned {found}; a gate returns true, false, a text or a list of texts"
    )]
    BadResult {
        /// The rule.
        rule: String,
        /// The type returned.
        found: String,
    },
}

/// A compiled rule, ready to evaluate many times.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    name: String,
    ast: AST,
    queries: Vec<QueryUse>,
}

impl CompiledRule {
    /// The rule's name, used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `find`/`count` calls whose form is written as a literal, so that the loader
    /// can check the form and its filter keys before the rule ever runs.
    pub fn queries(&self) -> &[QueryUse] {
        &self.queries
    }
}

/// A `find("form", #{key: …})` or `count(…)` call found in a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryUse {
    /// The form, as written.
    pub form: String,
    /// Where the form name is (line, column, from 1).
    pub form_at: (usize, usize),
    /// The filter keys written in a map literal, with where each is.
    pub keys: Vec<(String, (usize, usize))>,
}

/// Filter keys with a meaning of their own; every other key names an indexed field.
pub const QUERY_KEYS: &[&str] = &["created_within", "exclude"];

/// What a gate answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateOutcome {
    /// The record may pass.
    Open,
    /// The record may not pass. Empty reasons mean the rule answered `false` and the
    /// declared reason applies.
    Closed(Vec<String>),
}

/// The facts a rule sees.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The record (fields plus `id`, `owner`, `created_at`).
    pub record: serde_json::Map<String, Value>,
    /// The record before the change.
    pub previous: Option<serde_json::Map<String, Value>>,
    /// The current stage id.
    pub stage: Option<String>,
    /// When the record entered its stage (Unix seconds).
    pub stage_entered_at: Option<i64>,
    /// Now (Unix seconds), from the injected clock.
    pub now: i64,
    /// Who caused the change.
    pub actor: Option<String>,
    /// Fields that changed.
    pub changed: Vec<String>,
}

thread_local! {
    /// The deadline and `now` of the evaluation running on this thread. Host functions
    /// and the progress callback read it; evaluations never nest across threads.
    static CURRENT: Cell<Option<(Instant, i64)>> = const { Cell::new(None) };
}

/// The sandboxed engine. One per loaded set of definitions; cheap to share.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    known_functions: BTreeSet<String>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the sandbox over a host.
    pub fn new(limits: Limits, host: Arc<dyn Host>) -> Self {
        let mut engine = Engine::new_raw();
        for package in [
            ArithmeticPackage::new().as_shared_module(),
            LogicPackage::new().as_shared_module(),
            BasicStringPackage::new().as_shared_module(),
            MoreStringPackage::new().as_shared_module(),
            BasicArrayPackage::new().as_shared_module(),
            BasicMapPackage::new().as_shared_module(),
            BasicMathPackage::new().as_shared_module(),
            BasicIteratorPackage::new().as_shared_module(),
        ] {
            engine.register_global_module(package);
        }
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth.0, limits.max_expr_depth.1)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_variables(limits.max_variables)
            .set_max_functions(limits.max_functions)
            .set_strict_variables(true)
            .set_optimization_level(rhai::OptimizationLevel::Simple);
        for symbol in ["eval", "print", "debug"] {
            engine.disable_symbol(symbol);
        }
        engine.on_progress(|operations| {
            // Reading the clock costs more than an operation; look every 256 of them.
            if operations % 256 != 0 {
                return None;
            }
            let deadline = CURRENT.with(Cell::get).map(|(deadline, _)| deadline)?;
            (Instant::now() >= deadline).then(|| Dynamic::from("deadline"))
        });
        register_host_functions(&mut engine, host);

        let mut known_functions: BTreeSet<String> = engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|signature| signature.split('(').next())
            .map(|name| name.trim().to_owned())
            .collect();
        known_functions.extend(LANGUAGE_FUNCTIONS.iter().map(|name| (*name).to_owned()));
        Sandbox { engine, limits, known_functions }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The functions rules may call, sorted.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.known_functions.iter().map(String::as_str)
    }

    /// Compiles a rule, checking its syntax, the variables it reads and the functions
    /// it calls. All name problems are reported, not only the first.
    pub fn compile(&self, name: &str, source: &str) -> Result<CompiledRule, Vec<RuleError>> {
        if source.chars().count() > self.limits.max_source_len {
            return Err(vec![RuleError {
                kind: RuleErrorKind::Limit,
                message: format!(
                    "the script is longer than {} characters",
                    self.limits.max_source_len
                ),
                line: 1,
                column: 1,
                hint: Some("move logic into smaller rules".into()),
                length: 1,
            }]);
        }
        // Declare the facts by name only, as plain variables: strict-variables mode
        // needs their names, but constants in the compile scope are propagated into
        // the AST by the optimizer, so every evaluation would see the default facts.
        let mut scope = Scope::new();
        for (name, _) in VARIABLES {
            scope.push_dynamic(*name, Dynamic::UNIT);
        }
        let ast = match self.engine.compile_with_scope(&scope, source) {
            Ok(ast) => ast,
            Err(error) => return Err(vec![parse_error(&error)]),
        };
        let errors = self.unknown_functions(&ast);
        if errors.is_empty() {
            let queries = query_uses(&ast);
            Ok(CompiledRule { name: name.to_owned(), ast, queries })
        } else {
            Err(errors)
        }
    }

    fn unknown_functions(&self, ast: &AST) -> Vec<RuleError> {
        let script_functions: BTreeSet<String> =
            ast.iter_functions().map(|function| function.name.to_owned()).collect();
        let mut errors = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            let (call, position) = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, position)))
                | Some(ASTNode::Expr(Expr::MethodCall(call, position)))
                // A call used as a statement (`f(x);`, or a script's or function's
                // last expression) is a `Stmt::FnCall`, not an `Expr::FnCall`.
                | Some(ASTNode::Stmt(Stmt::FnCall(call, position))) => (call, *position),
                _ => return true,
            };
            let name = call.name.as_str();
            let is_identifier =
                name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
            if call.op_token.is_some()
                || !is_identifier
                || self.known_functions.contains(name)
                || script_functions.contains(name)
            {
                return true;
            }
            let hint = closest(name, self.known_functions.iter().map(String::as_str))
                .map(|known| format!("did you mean `{known}`?"))
                .or_else(|| {
                    Some("rules cannot use time, files, eval or modules; see the list of functions in the reference".into())
                });
            errors.push(RuleError {
                kind: RuleErrorKind::UnknownFunction,
                message: format!("unknown function `{name}`"),
                line: position.line().unwrap_or(1),
                column: position.position().unwrap_or(1),
                hint,
                length: name.chars().count(),
            });
            true
        });
        errors
    }

    /// Evaluates a rule and returns its raw value.
    pub fn eval(&self, rule: &CompiledRule, facts: &Facts) -> Result<Dynamic, EvalError> {
        let mut scope = fact_scope(facts);
        let deadline = Instant::now()
            .checked_add(self.limits.deadline)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        let previous = CURRENT.with(|current| current.replace(Some((deadline, facts.now))));
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast);
        CURRENT.with(|current| current.set(previous));
        result.map_err(|error| eval_error(&rule.name, &error))
    }

    /// Evaluates a rule as a boolean condition (alerts, `done_when`).
    pub fn eval_condition(&self, rule: &CompiledRule, facts: &Facts) -> Result<bool, EvalError> {
        let value = self.eval(rule, facts)?;
        value.as_bool().map_err(|found| EvalError::BadResult {
            rule: rule.name.clone(),
            found: found.to_owned(),
        })
    }

    /// Evaluates a rule as a gate: `true` opens it, `false` closes it with the declared
    /// reason, a text or a list of texts closes it with those reasons (an empty list
    /// opens it).
    pub fn eval_gate(&self, rule: &CompiledRule, facts: &Facts) -> Result<GateOutcome, EvalError> {
        let value = self.eval(rule, facts)?;
        let bad =
            |found: &str| EvalError::BadResult { rule: rule.name.clone(), found: found.to_owned() };
        if let Ok(open) = value.as_bool() {
            return Ok(if open { GateOutcome::Open } else { GateOutcome::Closed(Vec::new()) });
        }
        if value.is_string() {
            return Ok(GateOutcome::Closed(vec![value.to_string()]));
        }
        if value.is_array() {
            let reasons: Vec<String> = value
                .into_array()
                .map_err(&bad)?
                .into_iter()
                .map(|reason| reason.to_string())
                .collect();
            return Ok(if reasons.is_empty() {
                GateOutcome::Open
            } else {
                GateOutcome::Closed(reasons)
            });
        }
        Err(bad(value.type_name()))
    }

    /// Evaluates an expression into JSON (for `set` effects and sub-flow fields).
    pub fn eval_value(&self, rule: &CompiledRule, facts: &Facts) -> Result<Value, EvalError> {
        let value = self.eval(rule, facts)?;
        rhai::serde::from_dynamic(&value).map_err(|error| EvalError::Failed {
            rule: rule.name.clone(),
            message: error.to_string(),
        })
    }
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn place(position: rhai::Position) -> (usize, usize) {
    (position.line().unwrap_or(1), position.position().unwrap_or(1))
}

fn query_uses(ast: &AST) -> Vec<QueryUse> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        if !matches!(call.name.as_str(), "find" | "count") || call.args.len() != 2 {
            return true;
        }
        let Expr::StringConstant(form, form_position) = &call.args[0] else { return true };
        let keys = match &call.args[1] {
            Expr::Map(map, _) => {
                map.0.iter().map(|(ident, _)| (ident.name.to_string(), place(ident.pos))).collect()
            }
            Expr::DynamicConstant(value, position) => value
                .read_lock::<Map>()
                .map(|map| map.keys().map(|key| (key.to_string(), place(*position))).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        found.push(QueryUse { form: form.to_string(), form_at: place(*form_position), keys });
        true
    });
    found
}

fn fact_scope(facts: &Facts) -> Scope<'static> {
    let mut scope = Scope::new();
    let to_dynamic = |value: &serde_json::Map<String, Value>| {
        rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
    };
    let optional = |value: Option<Dynamic>| value.unwrap_or(Dynamic::UNIT);
    scope.push_constant_dynamic("record", to_dynamic(&facts.record));
    scope.push_constant_dynamic("previous", optional(facts.previous.as_ref().map(to_dynamic)));
    scope.push_constant_dynamic("stage", optional(facts.stage.clone().map(Dynamic::from)));
    scope.push_constant_dynamic(
        "stage_entered_at",
        optional(facts.stage_entered_at.map(Dynamic::from_int)),
    );
    scope.push_constant_dynamic(
        "time_in_stage",
        optional(facts.stage_entered_at.map(|at| Dynamic::from_int(facts.now - at))),
    );
    scope.push_constant("now", facts.now as INT);
    scope.push_constant_dynamic("actor", optional(facts.actor.clone().map(Dynamic::from)));
    let changed: Array = facts.changed.iter().cloned().map(Dynamic::from).collect();
    scope.push_constant("changed", changed);
    scope
}

fn parse_error(error: &rhai::ParseError) -> RuleError {
    let position = error.position();
    let mut length = 1;
    let (kind, message, hint) = match error.err_type() {
        rhai::ParseErrorType::VariableUndefined(name) => {
            let known = VARIABLES.iter().map(|(name, _)| *name);
            let hint = closest(name, known)
                .map(|known| format!("did you mean `{known}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "rules can read {}; define other variables with `let`",
                        VARIABLES
                            .iter()
                            .map(|(name, _)| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            length = name.chars().count();
            (RuleErrorKind::UnknownVariable, format!("unknown variable `{name}`"), Some(hint))
        }
        rhai::ParseErrorType::ExprTooDeep => (
            RuleErrorKind::Limit,
            "the expression is nested too deeply for the rules sandbox".to_owned(),
            Some("split it into smaller steps with `let`".into()),
        ),
        rhai::ParseErrorType::LiteralTooLarge(..) => (
            RuleErrorKind::Limit,
            lowercase_first(&error.err_type().to_string()),
            Some("keep large data out of rules; query it with `find`".into()),
        ),
        rhai::ParseErrorType::Reserved(word) => (
            RuleErrorKind::Syntax,
            format!("`{word}` is not available in rules"),
            Some("rules cannot use eval, print, debug, import or custom syntax".into()),
        ),
        other => (
            RuleErrorKind::Syntax,
            lowercase_first(&other.to_string()),
            Some("rules are rhai expressions, e.g. `record.amount > 100000 && stage == \"proposal\"`".into()),
        ),
    };
    RuleError {
        kind,
        message,
        line: position.line().unwrap_or(1),
        column: position.position().unwrap_or(1),
        hint,
        length,
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn eval_error(rule: &str, error: &EvalAltResult) -> EvalError {
    let stopped =
        |reason: &str| EvalError::Stopped { rule: rule.to_owned(), reason: reason.to_owned() };
    match error {
        EvalAltResult::ErrorTerminated(..) => stopped("it ran past its time limit"),
        EvalAltResult::ErrorTooManyOperations(..) => stopped("it ran too many operations"),
        EvalAltResult::ErrorStackOverflow(..) => stopped("it called functions too deeply"),
        EvalAltResult::ErrorDataTooLarge(what, ..) => {
            stopped(&format!("{} grew past its limit", what.to_lowercase()))
        }
        EvalAltResult::ErrorTooManyVariables(..) => stopped("it defined too many variables"),
        other => EvalError::Failed { rule: rule.to_owned(), message: other.to_string() },
    }
}

fn current_now() -> i64 {
    CURRENT.with(Cell::get).map(|(_, now)| now).unwrap_or_default()
}

fn optional_string(value: Option<String>) -> Dynamic {
    value.map(Dynamic::from).unwrap_or(Dynamic::UNIT)
}

fn register_host_functions(engine: &mut Engine, host: Arc<dyn Host>) {
    let org = host.clone();
    engine.register_fn("manager", move |user: ImmutableString| optional_string(org.manager(&user)));
    let org = host.clone();
    engine.register_fn("department", move |user: ImmutableString| {
        optional_string(org.department(&user))
    });
    let org = host.clone();
    engine.register_fn("head", move |department: ImmutableString| {
        optional_string(org.head(&department))
    });
    let org = host.clone();
    engine.register_fn("role", move |role: ImmutableString| -> Array {
        org.role_members(&role).into_iter().map(Dynamic::from).collect()
    });
    engine.register_fn("minutes", |n: INT| n.saturating_mul(60));
    engine.register_fn("hours", |n: INT| n.saturating_mul(3_600));
    engine.register_fn("days", |n: INT| n.saturating_mul(86_400));
    engine.register_fn("filled", |value: Dynamic| -> bool {
        if value.is_unit() {
            return false;
        }
        if let Ok(text) = value.clone().into_immutable_string() {
            return !text.trim().is_empty();
        }
        if let Ok(array) = value.clone().into_array() {
            return !array.is_empty();
        }
        if let Some(map) = value.read_lock::<Map>() {
            return !map.is_empty();
        }
        true
    });
    let store = host.clone();
    engine.register_fn(
        "find",
        move |form: ImmutableString, filter: Map| -> Result<Array, Box<EvalAltResult>> {
            let records =
                store.query(&query(&form, filter)?).map_err(Box::<EvalAltResult>::from)?;
            Ok(records
                .into_iter()
                .map(|record| rhai::serde::to_dynamic(record).unwrap_or(Dynamic::UNIT))
                .collect())
        },
    );
    let store = host;
    engine.register_fn(
        "count",
        move |form: ImmutableString, filter: Map| -> Result<INT, Box<EvalAltResult>> {
            let records =
                store.query(&query(&form, filter)?).map_err(Box::<EvalAltResult>::from)?;
            Ok(records.len() as INT)
        },
    );
}

/// The most records one query returns: enough for "three similar deals", small
/// enough that no rule can pull the database into memory.
const QUERY_LIMIT: usize = 1_000;

/// Turns a rule's filter map into a [`Query`]. Special keys: `created_within`
/// (seconds before now) and `exclude` (a record id); every other key is an indexed
/// field that must equal the value.
fn query(form: &str, filter: Map) -> Result<Query, Box<EvalAltResult>> {
    let mut query = Query {
        form: form.to_owned(),
        equals: serde_json::Map::new(),
        created_since: None,
        exclude_id: None,
        limit: QUERY_LIMIT,
    };
    for (key, value) in filter {
        match key.as_str() {
            "created_within" => {
                let seconds = value.as_int().map_err(|_| {
                    Box::<EvalAltResult>::from(
                        "created_within must be a number of seconds, e.g. days(14)",
                    )
                })?;
                query.created_since = Some(current_now() - seconds);
            }
            "exclude" => query.exclude_id = Some(value.to_string()),
            field => {
                let json: Value = rhai::serde::from_dynamic(&value)?;
                query.equals.insert(field.to_owned(), json);
            }
        }
    }
    Ok(query)
}
