//! The state machine: `step(context, state, command) -> Outcome | Refusal`.
//!
//! Everything the machine needs from outside comes through [`Context`]: the
//! definitions, the org, the rules sandbox (whose host answers queries), the actor,
//! the current time, an id source and a seed for sampled audits. Given the same
//! context and inputs it returns the same result.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use stagecraft_model::{
    Action, AlertRepeat, ApprovalPolicy, Condition, Effect as EffectDef, FieldName, FlowFile, Id,
    Party, PoolRules, Stage, Text, TriggerEvent,
};
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_rules::{Facts, GateOutcome, Sandbox};

use crate::calendar;
use crate::protocol::{
    Command, Effect, Event, FieldProblem, Notification, OwnerChange, Reason, Refusal, Task,
    TaskKind, TimerKind,
};
use crate::state::{
    AlertMark, ApprovalState, ApprovalStatus, Decision, FlowState, ParentLink, Record,
};

/// The organisation as the runtime needs it.
pub trait Org {
    /// A user's direct manager.
    fn manager(&self, user: &str) -> Option<String>;
    /// The department a user works in.
    fn department(&self, user: &str) -> Option<String>;
    /// The head of a department.
    fn head(&self, department: &str) -> Option<String>;
    /// The users holding a role.
    fn role_members(&self, role: &str) -> Vec<String>;
    /// The roles a user holds.
    fn roles_of(&self, user: &str) -> Vec<String>;
}

/// Everything a step may consult.
pub struct Context<'a> {
    /// The definitions the record runs on.
    pub definitions: &'a Definitions,
    /// The organisation.
    pub org: &'a dyn Org,
    /// The sandbox rules run in; its host answers `find`/`count`.
    pub sandbox: &'a Sandbox,
    /// Who issued the command (`None` for the engine itself: timers, sub-flows, scans).
    pub actor: Option<&'a str>,
    /// Now, in Unix milliseconds.
    pub now: i64,
    /// Makes new record ids (for sub-flows).
    pub new_id: &'a mut dyn FnMut() -> String,
    /// Seeds the sampling of automatic approvals for audit, so it is reproducible.
    pub seed: u64,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("actor", &self.actor)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The result of an accepted command.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The record after the command.
    pub record: Record,
    /// What happened.
    pub events: Vec<Event>,
    /// What the engine must do.
    pub effects: Vec<Effect>,
}

/// Runs one command against a record (`None` only for [`Command::Create`]).
pub fn step(
    cx: &mut Context<'_>,
    state: Option<&Record>,
    command: Command,
) -> Result<Outcome, Refusal> {
    let Some(record) = state else {
        return match command {
            Command::Create { form, fields, owner } => create(cx, form, fields, owner),
            _ => Err(Refusal::NotApplicable("the record does not exist".into())),
        };
    };
    let mut run = Run::new(cx, record.clone());
    match command {
        Command::Create { .. } => {
            return Err(Refusal::NotApplicable("the record exists already".into()));
        }
        Command::Update { expected_version, fields } => run.update(expected_version, fields)?,
        Command::Transition { to } => run.transition(&to, false)?,
        Command::Decide { approval, approve, reason } => run.decide(&approval, approve, reason)?,
        Command::Resubmit { approval } => run.resubmit(&approval)?,
        Command::Linked { form, record } => run.linked(&form, &record)?,
        Command::SubflowEnded { child, outcome } => run.subflow_ended(&child, &outcome)?,
        Command::Timer { key, timer } => run.timer(&key, timer)?,
        Command::Scan { alert } => run.scan(&alert)?,
        Command::Touched { by } => run.touched(&by),
        Command::Claim { owned } => run.claim(owned)?,
        Command::Release => run.release()?,
        Command::ReturnIdle => run.return_idle()?,
    }
    Ok(run.finish())
}

/// When an owned record of a pool form goes back to the pool unless someone works on
/// it: its last activity plus the pool's `return_after`, counted on the pool's
/// calendar. `None` when the record has no owner or its form no idle return.
pub fn returns_to_pool_at(definitions: &Definitions, record: &Record) -> Option<i64> {
    record.owner.as_ref()?;
    let pool = definitions.forms.get(&record.form)?.meta.pool.as_ref()?;
    let calendar = pool.calendar.as_ref().and_then(|id| definitions.calendars.get(id));
    calendar::add(calendar, record.last_activity_at, pool.return_after.as_ref()?)
}

fn create(
    cx: &mut Context<'_>,
    form_id: Id,
    fields: Map<String, Value>,
    owner: Option<String>,
) -> Result<Outcome, Refusal> {
    let definitions = cx.definitions;
    let form = definitions
        .forms
        .get(&form_id)
        .ok_or_else(|| Refusal::NotApplicable(format!("there is no form `{form_id}`")))?;
    let owner =
        owner.or_else(|| cx.actor.map(str::to_owned)).filter(|_| form.meta.owned.unwrap_or(true));
    let id = (cx.new_id)();
    let record = Record {
        id,
        form: form_id.clone(),
        version: 0,
        owner: owner.clone(),
        created_at: cx.now,
        updated_at: cx.now,
        last_activity_at: cx.now,
        fields: fields.clone(),
        flow: None,
        parent: None,
        alerts: BTreeMap::new(),
        tasks: BTreeMap::new(),
        timers: BTreeSet::new(),
    };
    let flow = starting_flow(definitions, &form_id).cloned();
    let problems = create_problems(definitions, &form_id, &fields);
    let mut run = Run::new(cx, record);
    if !problems.is_empty() {
        return Err(Refusal::Invalid(problems));
    }
    run.events.push(Event::Created { form: form_id, fields, owner });
    if let Some(flow) = flow {
        run.start_flow(&flow)?;
    }
    run.touch_linked();
    run.alerts_for(TriggerEvent::Created, &[])?;
    Ok(run.finish())
}

/// The flow a new record of a form starts, if any.
fn starting_flow<'d>(definitions: &'d Definitions, form: &Id) -> Option<&'d FlowFile> {
    definitions
        .flows
        .values()
        .find(|flow| &flow.form == form && flow.start_on_create.unwrap_or(true))
}

/// Every problem a new record of `form` with `fields` would have — the schema's and
/// the first stage's required fields — without creating it. A caller that checks
/// more (links, permissions) can report everything in one answer.
pub fn create_problems(
    definitions: &Definitions,
    form: &Id,
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let Some(compiled) = definitions.forms.get(form) else { return Vec::new() };
    let mut problems = validate(compiled, fields);
    if let Some(flow) = starting_flow(definitions, form) {
        merge_problems(
            &mut problems,
            required_problems(compiled, flow, &[initial_stage(flow)], fields),
        );
    }
    problems
}

/// A way out of a record's current stage, as the actor would find it now.
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    /// The stage the transition leads to.
    pub to: Id,
    /// The transition's title, else the target stage's title.
    pub title: Text,
    /// Why the actor cannot take it now; empty when every gate is open.
    pub reasons: Vec<Reason>,
}

/// Every transition out of the record's current stage (in the flow's order, including
/// `from: "*"` ones), each with the reasons a [`Command::Transition`] by the actor
/// would be refused now: the same check as the move itself, without changing
/// anything. Empty when no flow drives the record or the flow has ended. For pages
/// and clients that show which moves are open and why the others are closed.
pub fn exits(cx: &mut Context<'_>, record: &Record) -> Result<Vec<Exit>, Refusal> {
    let run = Run::new(cx, record.clone());
    let Ok((flow, state)) = run.flow() else { return Ok(Vec::new()) };
    if state.outcome.is_some() {
        return Ok(Vec::new());
    }
    let mut exits: Vec<Exit> = Vec::new();
    for transition in &flow.transitions {
        let from_here = transition.from == state.stage.as_str() || transition.from == "*";
        if !from_here
            || transition.to == state.stage
            || exits.iter().any(|exit| exit.to == transition.to)
        {
            continue;
        }
        let Some(target) = stage(flow, &transition.to) else { continue };
        let reasons = run.gate(flow, &state, &transition.to, false)?;
        let title = transition.title.clone().unwrap_or_else(|| target.title.clone());
        exits.push(Exit { to: transition.to.clone(), title, reasons });
    }
    Ok(exits)
}

/// Starts a sub-flow record: used by the engine for a [`Effect::StartFlow`].
pub fn start_subflow(
    cx: &mut Context<'_>,
    flow_id: &Id,
    child: String,
    fields: Map<String, Value>,
    owner: Option<String>,
    parent: ParentLink,
) -> Result<Outcome, Refusal> {
    let definitions = cx.definitions;
    let flow = definitions
        .flows
        .get(flow_id)
        .cloned()
        .ok_or_else(|| Refusal::NotApplicable(format!("there is no flow `{flow_id}`")))?;
    let form = definitions
        .forms
        .get(&flow.form)
        .ok_or_else(|| Refusal::NotApplicable(format!("there is no form `{}`", flow.form)))?;
    let record = Record {
        id: child,
        form: flow.form.clone(),
        version: 0,
        owner: owner.clone(),
        created_at: cx.now,
        updated_at: cx.now,
        last_activity_at: cx.now,
        fields: fields.clone(),
        flow: None,
        parent: Some(parent),
        alerts: BTreeMap::new(),
        tasks: BTreeMap::new(),
        timers: BTreeSet::new(),
    };
    // A sub-flow record is created by the system from the parent's data; schema
    // problems are reported, not hidden, but required fields may come later.
    let problems = validate(form, &fields);
    if !problems.is_empty() {
        return Err(Refusal::Invalid(problems));
    }
    let mut run = Run::new(cx, record);
    run.events.push(Event::Created { form: flow.form.clone(), fields, owner });
    run.start_flow(&flow)?;
    run.alerts_for(TriggerEvent::Created, &[])?;
    Ok(run.finish())
}

fn initial_stage(flow: &FlowFile) -> Id {
    flow.initial.clone().unwrap_or_else(|| flow.stages[0].id.clone())
}

fn stage<'f>(flow: &'f FlowFile, id: &Id) -> Option<&'f Stage> {
    flow.stages.iter().find(|stage| &stage.id == id)
}

fn stage_index(flow: &FlowFile, id: &Id) -> usize {
    flow.stages.iter().position(|stage| &stage.id == id).unwrap_or_default()
}

/// Schema problems, each at its field, with a message in both languages.
fn validate(form: &CompiledForm, fields: &Map<String, Value>) -> Vec<FieldProblem> {
    let instance = Value::Object(fields.clone());
    // Most submissions are valid: the yes/no check stops at nothing and builds no
    // errors; only a failing one is walked again for every problem.
    if form.validator.is_valid(&instance) {
        return Vec::new();
    }
    form.validator
        .iter_errors(&instance)
        .map(|error| {
            let pointer = error.instance_path().as_str().to_owned();
            let mut pointer = if pointer.is_empty() { "/".to_owned() } else { pointer };
            if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind() {
                pointer = format!("/{}", property.as_str().unwrap_or_default());
                let label = label_of(form, property.as_str().unwrap_or_default());
                return FieldProblem {
                    pointer,
                    message_zh: format!("请填写「{}」", label.0),
                    message_en: format!("{} is required", label.1),
                };
            }
            let message = error.masked().to_string();
            FieldProblem {
                pointer,
                message_zh: format!("格式不正确:{message}"),
                message_en: message,
            }
        })
        .collect()
}

fn label_of(form: &CompiledForm, field: &str) -> (String, String) {
    let label = form.fields.get(&FieldName(field.to_owned())).and_then(|info| info.label.as_ref());
    match label {
        Some(text) => (text.get("zh-CN").to_owned(), text.get("en").to_owned()),
        None => (field.to_owned(), field.to_owned()),
    }
}

fn filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.trim().is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
        Some(_) => true,
    }
}

/// Adds the stage problems of fields the schema has not already complained about.
fn merge_problems(problems: &mut Vec<FieldProblem>, more: Vec<FieldProblem>) {
    for problem in more {
        if !problems.iter().any(|known| known.pointer == problem.pointer) {
            problems.push(problem);
        }
    }
}

/// Fields the stages require that are not filled.
fn required_problems(
    form: &CompiledForm,
    flow: &FlowFile,
    stages: &[Id],
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for stage_id in stages {
        let Some(stage) = stage(flow, stage_id) else { continue };
        for field in &stage.requires {
            if field.as_str() == "owner"
                || filled(fields.get(field.as_str()))
                || !seen.insert(field.clone())
            {
                continue;
            }
            let label = label_of(form, field.as_str());
            problems.push(FieldProblem {
                pointer: format!("/{field}"),
                message_zh: format!(
                    "从「{}」阶段起必须填写「{}」",
                    stage.title.get("zh-CN"),
                    label.0
                ),
                message_en: format!(
                    "{} is required from stage {} on",
                    label.1,
                    stage.title.get("en")
                ),
            });
        }
    }
    problems
}

/// A timer to set, as the runtime writes it.
struct TimerSpec {
    key: String,
    due: i64,
    kind: TimerKind,
}

/// One command in progress over a record.
struct Run<'c, 'a> {
    cx: &'c mut Context<'a>,
    record: Record,
    before: Record,
    events: Vec<Event>,
    effects: Vec<Effect>,
}

impl<'c, 'a> Run<'c, 'a> {
    fn new(cx: &'c mut Context<'a>, record: Record) -> Self {
        Run { cx, before: record.clone(), record, events: Vec::new(), effects: Vec::new() }
    }

    fn finish(mut self) -> Outcome {
        if !self.events.is_empty() {
            self.record.version += 1;
            self.record.updated_at = self.cx.now;
        }
        Outcome { record: self.record, events: self.events, effects: self.effects }
    }

    fn definitions(&self) -> &'a Definitions {
        self.cx.definitions
    }

    fn form(&self) -> Result<&'a CompiledForm, Refusal> {
        self.definitions().forms.get(&self.record.form).ok_or_else(|| {
            Refusal::NotApplicable(format!("the form `{}` is no longer loaded", self.record.form))
        })
    }

    fn flow(&self) -> Result<(&'a FlowFile, FlowState), Refusal> {
        let state = self
            .record
            .flow
            .clone()
            .ok_or_else(|| Refusal::NotApplicable("no flow drives this record".into()))?;
        let flow = self.definitions().flows.get(&state.flow).ok_or_else(|| {
            Refusal::NotApplicable(format!("the flow `{}` is no longer loaded", state.flow))
        })?;
        Ok((flow, state))
    }

    fn facts(&self, previous: Option<&Record>, changed: &[String]) -> Facts {
        Facts {
            record: self.record.facts(),
            previous: previous.map(Record::facts),
            stage: self.record.stage().map(Id::to_string),
            stage_entered_at: self.record.flow.as_ref().map(|flow| flow.stage_entered_at / 1000),
            now: self.cx.now / 1000,
            actor: self.cx.actor.map(str::to_owned),
            changed: changed.to_vec(),
        }
    }

    // ----- tasks and timers: the record keeps what it opened and set -------------------

    fn open_task(&mut self, task: Task) {
        self.record.tasks.insert(task.key.clone(), task.clone());
        self.effects.push(Effect::OpenTask(task));
    }

    fn close_tasks(&mut self, key_prefix: String) {
        let keys: Vec<String> =
            self.record.tasks.keys().filter(|key| key.starts_with(&key_prefix)).cloned().collect();
        for key in keys {
            self.record.tasks.remove(&key);
            self.effects.push(Effect::CloseTask { key });
        }
    }

    fn reassign_tasks(&mut self, key_prefix: String, to: String) {
        let keys: Vec<String> =
            self.record.tasks.keys().filter(|key| key.starts_with(&key_prefix)).cloned().collect();
        for key in keys {
            if let Some(task) = self.record.tasks.get_mut(&key) {
                task.assignee = Some(to.clone());
                task.role = None;
                let task = task.clone();
                self.effects.push(Effect::OpenTask(task));
            }
        }
    }

    fn set_timer(&mut self, timer: TimerSpec) {
        self.record.timers.insert(timer.key.clone());
        self.effects.push(Effect::SetTimer { key: timer.key, due: timer.due, kind: timer.kind });
    }

    fn cancel_timers(&mut self, key_prefix: String) {
        let keys: Vec<String> =
            self.record.timers.iter().filter(|key| key.starts_with(&key_prefix)).cloned().collect();
        for key in keys {
            self.record.timers.remove(&key);
            self.effects.push(Effect::CancelTimer { key });
        }
    }

    // ----- flows and stages ----------------------------------------------------------

    fn start_flow(&mut self, flow: &FlowFile) -> Result<(), Refusal> {
        let pack_version = self
            .definitions()
            .packs
            .iter()
            .find(|pack| Some(&pack.name) == self.form().ok().and_then(|form| form.pack.as_ref()))
            .map(|pack| pack.version.clone())
            .unwrap_or_default();
        let initial = initial_stage(flow);
        self.record.flow = Some(FlowState {
            flow: flow.id.clone(),
            pack_version: pack_version.clone(),
            stage: initial.clone(),
            stage_entered_at: self.cx.now,
            actions: BTreeMap::new(),
            approvals: BTreeMap::new(),
            waiting_for: None,
            visited: Vec::new(),
            outcome: None,
        });
        self.events.push(Event::FlowStarted { flow: flow.id.clone(), pack_version });
        self.enter(flow, &initial, None)
    }

    /// Enters a stage: history, approvals, SLA timers, effects, sub-flow, outcome.
    fn enter(&mut self, flow: &FlowFile, to: &Id, from: Option<(Id, i64)>) -> Result<(), Refusal> {
        let Some(stage) = stage(flow, to) else {
            return Err(Refusal::NotApplicable(format!("flow `{}` has no stage `{to}`", flow.id)));
        };
        let now = self.cx.now;
        if let Some(state) = self.record.flow.as_mut() {
            state.stage = to.clone();
            state.stage_entered_at = now;
            state.actions.clear();
            state.approvals.clear();
            state.waiting_for = None;
            if !state.visited.contains(to) {
                state.visited.push(to.clone());
            }
        }
        self.events.push(Event::StageChanged {
            flow: flow.id.clone(),
            from: from.as_ref().map(|(stage, _)| stage.clone()),
            to: to.clone(),
            stayed_ms: from.map(|(_, entered)| now - entered),
        });
        self.request_approvals(flow, stage)?;
        if let Some(sla) = &stage.sla {
            let calendar = self.calendar(sla.calendar.as_ref().or(flow.calendar.as_ref()));
            if let Some(due) = calendar::add(calendar, now, &sla.within) {
                self.set_timer(TimerSpec {
                    key: format!("{}/{}/{now}/sla", self.record.id, stage.id),
                    due,
                    kind: TimerKind::SlaExpired {
                        stage: stage.id.clone(),
                        entered_at: now,
                        approval: None,
                    },
                });
            }
        }
        let owner = format!("flow:{}", flow.id);
        let base = format!("/stages/{}/on_enter", stage_index(flow, to));
        self.effects_of(&stage.on_enter, &owner, &base, &stage.id)?;
        if let Some(subflow) = &stage.subflow {
            let child = (self.cx.new_id)();
            let mut fields = Map::new();
            for field in subflow.set.keys() {
                let pointer = format!(
                    "/stages/{}/subflow/set/{}",
                    stage_index(flow, to),
                    field.as_str().replace('~', "~0").replace('/', "~1")
                );
                let value = self.eval_value(&owner, &pointer)?;
                fields.insert(field.to_string(), value);
            }
            if subflow.wait {
                if let Some(state) = self.record.flow.as_mut() {
                    state.waiting_for = Some(child.clone());
                }
            }
            self.events
                .push(Event::SubflowStarted { flow: subflow.flow.clone(), child: child.clone() });
            self.effects.push(Effect::StartFlow {
                flow: subflow.flow.clone(),
                child,
                fields,
                owner: self.record.owner.clone(),
                wait: subflow.wait,
            });
        }
        // Fields filled before the stage count for its key actions.
        self.field_actions()?;
        if let Some(outcome) = &stage.outcome {
            if let Some(state) = self.record.flow.as_mut() {
                state.outcome = Some(outcome.clone());
            }
            self.events.push(Event::FlowEnded {
                flow: flow.id.clone(),
                outcome: outcome.clone(),
                duration_ms: self.cx.now - self.record.created_at,
            });
            self.cancel_timers(format!("{}/", self.record.id));
            if let Some(parent) = &self.record.parent {
                self.effects.push(Effect::NotifyParent {
                    parent: parent.record.clone(),
                    outcome: outcome.clone(),
                });
            }
        }
        Ok(())
    }

    fn calendar(&self, id: Option<&Id>) -> Option<&'a stagecraft_pack::Calendar> {
        id.and_then(|id| self.definitions().calendars.get(id))
    }

    /// Carries out a stage's effects.
    fn effects_of(
        &mut self,
        effects: &[EffectDef],
        owner: &str,
        base: &str,
        stage: &Id,
    ) -> Result<(), Refusal> {
        for (index, effect) in effects.iter().enumerate() {
            let pointer = format!("{base}/{index}");
            match effect {
                EffectDef::Task(task) => {
                    let (assignee, role) =
                        self.assignee(&task.assignee, owner, &format!("{pointer}/task/assignee"))?;
                    let due = task.due.as_ref().and_then(|due| {
                        calendar::add(self.calendar(task.calendar.as_ref()), self.cx.now, due)
                    });
                    self.open_task(Task {
                        key: format!("{}/{stage}/task/{index}", self.record.id),
                        record: self.record.id.clone(),
                        title: task.title.clone(),
                        assignee,
                        role,
                        form: task.form.clone(),
                        due,
                        kind: TaskKind::Stage,
                    });
                }
                EffectDef::Notify(notify) => {
                    let mut to = Vec::new();
                    for (n, party) in notify.to.iter().enumerate() {
                        to.extend(self.resolve(
                            party,
                            owner,
                            &format!("{pointer}/notify/to/{n}/expr"),
                        )?);
                    }
                    self.notify(to, &notify.template, &notify.channels, stage.as_str());
                }
                EffectDef::Set(set) => {
                    let value = match (&set.value, &set.expr) {
                        (Some(value), _) => value.clone(),
                        (None, Some(_)) => {
                            self.eval_value(owner, &format!("{pointer}/set/expr"))?
                        }
                        (None, None) => Value::Null,
                    };
                    let before =
                        self.record.fields.get(set.field.as_str()).cloned().unwrap_or(Value::Null);
                    if before != value {
                        self.record.fields.insert(set.field.to_string(), value.clone());
                        self.events.push(Event::FieldsChanged {
                            before: Map::from_iter([(set.field.to_string(), before)]),
                            after: Map::from_iter([(set.field.to_string(), value)]),
                        });
                    }
                }
                EffectDef::StartFlow(start) => {
                    let child = (self.cx.new_id)();
                    let mut fields = Map::new();
                    for field in start.set.keys() {
                        let inner = format!(
                            "{pointer}/start_flow/set/{}",
                            field.as_str().replace('~', "~0").replace('/', "~1")
                        );
                        fields.insert(field.to_string(), self.eval_value(owner, &inner)?);
                    }
                    self.events.push(Event::SubflowStarted {
                        flow: start.flow.clone(),
                        child: child.clone(),
                    });
                    self.effects.push(Effect::StartFlow {
                        flow: start.flow.clone(),
                        child,
                        fields,
                        owner: self.record.owner.clone(),
                        wait: false,
                    });
                }
            }
        }
        Ok(())
    }

    fn notify(
        &mut self,
        to: Vec<String>,
        template: &Id,
        channels: &[stagecraft_model::Channel],
        cause: &str,
    ) {
        let mut unique = Vec::new();
        for user in to {
            if !unique.contains(&user) {
                unique.push(user);
            }
        }
        if unique.is_empty() {
            return;
        }
        let channels = if channels.is_empty() {
            vec![stagecraft_model::Channel::Inbox]
        } else {
            channels.to_vec()
        };
        self.effects.push(Effect::Notify(Notification {
            record: self.record.id.clone(),
            to: unique,
            template: template.clone(),
            channels,
            cause: cause.to_owned(),
        }));
    }

    /// The people a party stands for.
    fn resolve(
        &self,
        party: &Party,
        owner: &str,
        expr_pointer: &str,
    ) -> Result<Vec<String>, Refusal> {
        let org = self.cx.org;
        let user_in = |field: &FieldName| -> Option<String> {
            if field.as_str() == "owner" {
                return self.record.owner.clone();
            }
            self.record.fields.get(field.as_str()).and_then(Value::as_str).map(str::to_owned)
        };
        Ok(match party {
            Party::User(user) => vec![user.to_string()],
            Party::Role(role) => org.role_members(role.as_str()),
            Party::Field(field) => user_in(field).into_iter().collect(),
            Party::ManagerOf(field) => {
                user_in(field).and_then(|user| org.manager(&user)).into_iter().collect()
            }
            Party::DepartmentHeadOf(field) => user_in(field)
                .and_then(|user| org.department(&user))
                .and_then(|department| org.head(&department))
                .into_iter()
                .collect(),
            Party::HeadOf(department) => org.head(department.as_str()).into_iter().collect(),
            Party::Expr(_) => match self.eval_value(owner, expr_pointer)? {
                Value::String(user) => vec![user],
                Value::Array(users) => {
                    users.into_iter().filter_map(|user| user.as_str().map(str::to_owned)).collect()
                }
                _ => Vec::new(),
            },
        })
    }

    /// A task's assignee: a role stays a role (anyone holding it may do the task).
    fn assignee(
        &self,
        party: &Party,
        owner: &str,
        expr_pointer: &str,
    ) -> Result<(Option<String>, Option<Id>), Refusal> {
        if let Party::Role(role) = party {
            return Ok((None, Some(role.clone())));
        }
        Ok((self.resolve(party, owner, expr_pointer)?.into_iter().next(), None))
    }

    fn eval_value(&self, owner: &str, pointer: &str) -> Result<Value, Refusal> {
        let rule = self
            .definitions()
            .script(owner, pointer)
            .ok_or_else(|| Refusal::RuleFailed(format!("no compiled rule at {owner}{pointer}")))?;
        self.cx
            .sandbox
            .eval_value(rule, &self.facts(None, &[]))
            .map_err(|error| Refusal::RuleFailed(error.to_string()))
    }

    // ----- approvals -----------------------------------------------------------------

    fn request_approvals(&mut self, flow: &FlowFile, stage: &Stage) -> Result<(), Refusal> {
        let owner = format!("flow:{}", flow.id);
        let index = stage_index(flow, &stage.id);
        for (n, approval) in stage.approvals.iter().enumerate() {
            let base = format!("/stages/{index}/approvals/{n}");
            let mut approvers = Vec::new();
            for (m, party) in approval.approvers.iter().enumerate() {
                approvers.push(self.resolve(
                    party,
                    &owner,
                    &format!("{base}/approvers/{m}/expr"),
                )?);
            }
            let everyone: Vec<String> =
                approvers.iter().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
            if approval.policy == ApprovalPolicy::AutoApprove {
                let rate = approval.audit.as_ref().map_or(0.0, |audit| audit.rate);
                let audited = self.sampled(&approval.id, rate);
                if audited {
                    if let Some(audit) = &approval.audit {
                        let (assignee, role) = self.assignee(
                            &audit.auditor,
                            &owner,
                            &format!("{base}/audit/auditor/expr"),
                        )?;
                        let due = audit.due.as_ref().and_then(|due| {
                            calendar::add(self.calendar(flow.calendar.as_ref()), self.cx.now, due)
                        });
                        self.open_task(Task {
                            key: format!("{}/{}/audit/{}", self.record.id, stage.id, approval.id),
                            record: self.record.id.clone(),
                            title: approval.title.clone(),
                            assignee,
                            role,
                            form: approval.form.clone(),
                            due,
                            kind: TaskKind::Audit { approval: approval.id.clone() },
                        });
                    }
                }
                self.set_approval(
                    &approval.id,
                    ApprovalState {
                        approvers,
                        decisions: Vec::new(),
                        status: ApprovalStatus::Approved,
                        audited,
                    },
                );
                self.events
                    .push(Event::ApprovalAutoApproved { approval: approval.id.clone(), audited });
                continue;
            }
            self.set_approval(
                &approval.id,
                ApprovalState {
                    approvers,
                    decisions: Vec::new(),
                    status: ApprovalStatus::Pending,
                    audited: false,
                },
            );
            self.events.push(Event::ApprovalRequested {
                approval: approval.id.clone(),
                approvers: everyone.clone(),
            });
            let due = approval.sla.as_ref().and_then(|sla| {
                calendar::add(
                    self.calendar(sla.calendar.as_ref().or(flow.calendar.as_ref())),
                    self.cx.now,
                    &sla.within,
                )
            });
            for user in &everyone {
                self.open_task(Task {
                    key: format!("{}/{}/approval/{}/{user}", self.record.id, stage.id, approval.id),
                    record: self.record.id.clone(),
                    title: approval.title.clone(),
                    assignee: Some(user.clone()),
                    role: None,
                    form: approval.form.clone(),
                    due,
                    kind: TaskKind::Approval { approval: approval.id.clone() },
                });
            }
            if let (Some(due), Some(_)) = (due, &approval.sla) {
                self.set_timer(TimerSpec {
                    key: format!(
                        "{}/{}/{}/approval-sla/{}",
                        self.record.id, stage.id, self.cx.now, approval.id
                    ),
                    due,
                    kind: TimerKind::SlaExpired {
                        stage: stage.id.clone(),
                        entered_at: self.cx.now,
                        approval: Some(approval.id.clone()),
                    },
                });
            }
        }
        Ok(())
    }

    fn set_approval(&mut self, id: &Id, state: ApprovalState) {
        if let Some(flow) = self.record.flow.as_mut() {
            flow.approvals.insert(id.clone(), state);
        }
    }

    /// Whether an automatic approval is sampled for audit: a reproducible draw from the
    /// seed, the record, the approval and the moment the stage was entered.
    fn sampled(&self, approval: &Id, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let entered = self.record.flow.as_ref().map_or(0, |flow| flow.stage_entered_at);
        let key = format!("{}|{}|{approval}|{entered}", self.cx.seed, self.record.id);
        // FNV-1a: stable across platforms and versions, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash as f64 / u64::MAX as f64) < rate
    }

    fn decide(
        &mut self,
        approval_id: &Id,
        approve: bool,
        reason: Option<String>,
    ) -> Result<(), Refusal> {
        let (flow, state) = self.flow()?;
        let stage = stage(flow, &state.stage)
            .ok_or_else(|| Refusal::NotApplicable("unknown stage".into()))?;
        let definition =
            stage.approvals.iter().find(|approval| &approval.id == approval_id).ok_or_else(
                || {
                    Refusal::NotApplicable(format!(
                        "stage `{}` has no approval `{approval_id}`",
                        stage.id
                    ))
                },
            )?;
        let actor = self
            .cx
            .actor
            .ok_or_else(|| Refusal::Forbidden("only a person can decide an approval".into()))?;
        let mut approval = state.approvals.get(approval_id).cloned().ok_or_else(|| {
            Refusal::NotApplicable(format!("approval `{approval_id}` was not requested"))
        })?;
        if approval.status != ApprovalStatus::Pending {
            return Err(Refusal::NotApplicable(format!(
                "approval `{approval_id}` is already decided"
            )));
        }
        if !approval.approvers.iter().flatten().any(|user| user == actor) {
            return Err(Refusal::Forbidden(format!(
                "{actor} is not an approver of `{approval_id}`"
            )));
        }
        if !approve && reason.as_deref().is_none_or(|reason| reason.trim().is_empty()) {
            return Err(Refusal::Invalid(vec![FieldProblem {
                pointer: "/reason".into(),
                message_zh: "驳回时请填写原因".into(),
                message_en: "a rejection needs a reason".into(),
            }]));
        }
        if approval.decisions.iter().any(|decision| decision.user == actor) {
            return Err(Refusal::NotApplicable(format!("{actor} has already decided")));
        }
        approval.decisions.push(Decision {
            user: actor.to_owned(),
            approve,
            reason: reason.clone(),
            at: self.cx.now,
        });
        let approved_by = |users: &Vec<String>| {
            approval
                .decisions
                .iter()
                .any(|decision| decision.approve && users.contains(&decision.user))
        };
        approval.status = if !approve {
            ApprovalStatus::Rejected
        } else {
            let done =
                match definition.policy {
                    ApprovalPolicy::AnyOf => true,
                    ApprovalPolicy::Required => approval.approvers.iter().all(approved_by),
                    ApprovalPolicy::AllOf => approval.approvers.iter().flatten().all(|user| {
                        approval.decisions.iter().any(|d| d.approve && &d.user == user)
                    }),
                    ApprovalPolicy::AutoApprove => true,
                };
            if done { ApprovalStatus::Approved } else { ApprovalStatus::Pending }
        };
        let status = approval.status;
        self.set_approval(approval_id, approval);
        self.events.push(Event::ApprovalDecided {
            approval: approval_id.clone(),
            user: actor.to_owned(),
            approve,
            reason,
            status,
        });
        let prefix = format!("{}/{}/approval/{approval_id}/", self.record.id, state.stage);
        if status == ApprovalStatus::Pending {
            self.close_tasks(format!("{prefix}{actor}"));
        } else {
            self.close_tasks(prefix);
        }
        if status == ApprovalStatus::Rejected {
            if let Some(owner) = self.record.owner.clone() {
                self.open_task(Task {
                    key: format!("{}/{}/resubmit/{approval_id}", self.record.id, state.stage),
                    record: self.record.id.clone(),
                    title: Text::Localized(stagecraft_model::LocalizedText {
                        zh_cn: Some(format!(
                            "审批被驳回,请修改后重新提交:{}",
                            definition.title.get("zh-CN")
                        )),
                        en: Some(format!(
                            "Rejected, revise and resubmit: {}",
                            definition.title.get("en")
                        )),
                    }),
                    assignee: Some(owner),
                    role: None,
                    form: None,
                    due: None,
                    kind: TaskKind::Approval { approval: approval_id.clone() },
                });
            }
        }
        Ok(())
    }

    fn resubmit(&mut self, approval_id: &Id) -> Result<(), Refusal> {
        let (flow, state) = self.flow()?;
        let stage = stage(flow, &state.stage)
            .ok_or_else(|| Refusal::NotApplicable("unknown stage".into()))?
            .clone();
        let rejected = state
            .approvals
            .get(approval_id)
            .is_some_and(|approval| approval.status == ApprovalStatus::Rejected);
        if !rejected {
            return Err(Refusal::NotApplicable(format!(
                "approval `{approval_id}` was not rejected"
            )));
        }
        self.close_tasks(format!("{}/{}/resubmit/{approval_id}", self.record.id, stage.id));
        let mut only = stage.clone();
        only.approvals.retain(|approval| &approval.id == approval_id);
        self.request_approvals(flow, &only)
    }

    // ----- fields ----------------------------------------------------------------------

    fn update(
        &mut self,
        expected_version: u64,
        changes: Map<String, Value>,
    ) -> Result<(), Refusal> {
        if expected_version != self.record.version {
            return Err(Refusal::Stale { expected: expected_version, actual: self.record.version });
        }
        let form = self.form()?;
        let mut before = Map::new();
        let mut after = Map::new();
        for (field, value) in changes {
            let old = self.record.fields.get(&field).cloned().unwrap_or(Value::Null);
            if old == value {
                continue;
            }
            before.insert(field.clone(), old);
            after.insert(field.clone(), value.clone());
            if value.is_null() {
                self.record.fields.remove(&field);
            } else {
                self.record.fields.insert(field, value);
            }
        }
        if after.is_empty() {
            return Ok(());
        }
        let mut problems = validate(form, &self.record.fields);
        if let Ok((flow, state)) = self.flow() {
            merge_problems(
                &mut problems,
                required_problems(form, flow, &state.visited, &self.record.fields),
            );
        }
        if !problems.is_empty() {
            return Err(Refusal::Invalid(problems));
        }
        let changed: Vec<String> = after.keys().cloned().collect();
        self.events.push(Event::FieldsChanged { before, after });
        self.record.last_activity_at = self.cx.now;
        self.field_actions()?;
        self.touch_linked();
        self.alerts_for(TriggerEvent::FieldChanged, &changed)
    }

    /// Marks key actions done by filled fields (or their rule), in their order.
    fn field_actions(&mut self) -> Result<(), Refusal> {
        let Ok((flow, state)) = self.flow() else { return Ok(()) };
        let Some(stage) = stage(flow, &state.stage) else { return Ok(()) };
        let owner = format!("flow:{}", flow.id);
        let index = stage_index(flow, &stage.id);
        loop {
            let mut progressed = false;
            for (n, action) in stage.actions.iter().enumerate() {
                if action.form.is_some()
                    || self.action_done(&action.id)
                    || !self.predecessors_done(action)
                {
                    continue;
                }
                let fields_ok = action
                    .fields
                    .iter()
                    .all(|field| filled(self.record.fields.get(field.as_str())));
                let rule_ok = match &action.done_when {
                    Some(_) => {
                        let pointer = format!("/stages/{index}/actions/{n}/done_when");
                        self.condition_holds(&owner, &pointer, None)?
                    }
                    None => true,
                };
                if fields_ok && rule_ok && (!action.fields.is_empty() || action.done_when.is_some())
                {
                    self.mark_action(&action.id);
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    fn action_done(&self, action: &Id) -> bool {
        self.record.flow.as_ref().is_some_and(|flow| flow.actions.contains_key(action))
    }

    fn predecessors_done(&self, action: &Action) -> bool {
        action.after.iter().all(|before| self.action_done(before))
    }

    fn mark_action(&mut self, action: &Id) {
        let now = self.cx.now;
        let stage = self.record.stage().cloned();
        if let Some(flow) = self.record.flow.as_mut() {
            flow.actions.insert(action.clone(), now);
        }
        self.events.push(Event::ActionDone { action: action.clone() });
        if let Some(stage) = stage {
            self.close_tasks(format!("{}/{stage}/action/{action}", self.record.id));
        }
    }

    fn condition_holds(
        &self,
        owner: &str,
        pointer: &str,
        facts_record: Option<&Map<String, Value>>,
    ) -> Result<bool, Refusal> {
        let rule = self
            .definitions()
            .script(owner, pointer)
            .ok_or_else(|| Refusal::RuleFailed(format!("no compiled rule at {owner}{pointer}")))?;
        let mut facts = self.facts(None, &[]);
        if let Some(record) = facts_record {
            facts.record = record.clone();
        }
        self.cx
            .sandbox
            .eval_condition(rule, &facts)
            .map_err(|error| Refusal::RuleFailed(error.to_string()))
    }

    /// A record linked to this one was created: it may complete a key action, and it
    /// may not skip the order of key actions.
    fn linked(&mut self, form: &Id, linked: &Map<String, Value>) -> Result<(), Refusal> {
        if let Ok((flow, state)) = self.flow() {
            if let Some(stage) = stage(flow, &state.stage) {
                let owner = format!("flow:{}", flow.id);
                let index = stage_index(flow, &stage.id);
                for (n, action) in stage.actions.iter().enumerate() {
                    if action.form.as_ref() != Some(form) || self.action_done(&action.id) {
                        continue;
                    }
                    let missing: Vec<&Action> = action
                        .after
                        .iter()
                        .filter(|before| !self.action_done(before))
                        .filter_map(|before| stage.actions.iter().find(|a| &a.id == before))
                        .collect();
                    if !missing.is_empty() {
                        return Err(Refusal::Gated(
                            missing
                                .iter()
                                .map(|before| {
                                    Reason::new(
                                        "order",
                                        Some(action.id.as_str()),
                                        format!(
                                            "请先完成「{}」,再进行「{}」",
                                            before.title.get("zh-CN"),
                                            action.title.get("zh-CN")
                                        ),
                                        format!(
                                            "finish \"{}\" before \"{}\"",
                                            before.title.get("en"),
                                            action.title.get("en")
                                        ),
                                    )
                                })
                                .collect(),
                        ));
                    }
                    let matches = match &action.done_when {
                        Some(_) => self.condition_holds(
                            &owner,
                            &format!("/stages/{index}/actions/{n}/done_when"),
                            Some(linked),
                        )?,
                        None => true,
                    };
                    if matches
                        && action
                            .fields
                            .iter()
                            .all(|field| filled(self.record.fields.get(field.as_str())))
                    {
                        self.mark_action(&action.id);
                    }
                }
            }
        }
        // An alert's task that asks for a form (a stall report, a wake-up call) is done
        // once a record of that form links to this one. A stage's tasks stay open until
        // the record leaves the stage: whoever has them still needs to see it.
        let done: Vec<String> = self
            .record
            .tasks
            .iter()
            .filter(|(_, task)| {
                task.form.as_ref() == Some(form) && matches!(task.kind, TaskKind::Alert { .. })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in done {
            self.close_tasks(key);
        }
        // A linked record is activity on this one.
        self.touched(linked.get("id").and_then(Value::as_str).unwrap_or_default());
        self.field_actions()
    }

    // ----- the pool ----------------------------------------------------------------------

    fn pool(&self) -> Result<&'a PoolRules, Refusal> {
        let form = self.form()?;
        form.meta.pool.as_ref().ok_or_else(|| {
            Refusal::NotApplicable(format!(
                "form `{}` has no pool: its records are not claimed or released",
                form.id
            ))
        })
    }

    fn claim(&mut self, owned: u64) -> Result<(), Refusal> {
        let pool = self.pool()?;
        let actor = self
            .cx
            .actor
            .ok_or_else(|| Refusal::Forbidden("only a person can claim a record".into()))?;
        match self.record.owner.as_deref() {
            Some(owner) if owner == actor => {
                return Err(Refusal::NotApplicable("you own this record already".into()));
            }
            Some(owner) => {
                return Err(Refusal::NotApplicable(format!(
                    "the record belongs to {owner}; only a record in the pool can be claimed"
                )));
            }
            None => {}
        }
        if let Some(max) = pool.max_per_owner {
            if owned >= u64::from(max) {
                return Err(Refusal::NotApplicable(format!(
                    "you own {owned} records of form `{}`, the most one person may own ({max}); \
                     release one first",
                    self.record.form
                )));
            }
        }
        // Taking a record is working on it: the idle time starts again.
        self.record.last_activity_at = self.cx.now;
        self.change_owner(Some(actor.to_owned()), OwnerChange::Claimed);
        Ok(())
    }

    fn release(&mut self) -> Result<(), Refusal> {
        self.pool()?;
        if self.record.owner.is_none() {
            return Err(Refusal::NotApplicable("the record is in the pool already".into()));
        }
        self.change_owner(None, OwnerChange::Released);
        Ok(())
    }

    fn return_idle(&mut self) -> Result<(), Refusal> {
        let pool = self.pool()?;
        let Some(owner) = self.record.owner.clone() else {
            return Err(Refusal::NotApplicable("the record is in the pool already".into()));
        };
        let due = returns_to_pool_at(self.definitions(), &self.record);
        if due.is_none_or(|due| due > self.cx.now) {
            return Err(Refusal::NotApplicable("the record has not been idle long enough".into()));
        }
        self.change_owner(None, OwnerChange::ReturnedIdle);
        if let Some(template) = &pool.notify {
            self.notify(vec![owner], template, &[], "pool");
        }
        Ok(())
    }

    fn change_owner(&mut self, to: Option<String>, why: OwnerChange) {
        let from = std::mem::replace(&mut self.record.owner, to.clone());
        self.events.push(Event::OwnerChanged { from, to, why });
    }

    /// Work on a record that links here counts as activity on this one.
    fn touched(&mut self, by: &str) {
        self.record.last_activity_at = self.cx.now;
        self.events.push(Event::Touched { by: by.to_owned() });
    }

    /// Asks the engine to mark the records this one `touches` as active.
    fn touch_linked(&mut self) {
        let Ok(form) = self.form() else { return };
        let records: Vec<String> = form
            .meta
            .touches
            .iter()
            .filter_map(|field| {
                self.record.fields.get(field.as_str()).and_then(Value::as_str).map(str::to_owned)
            })
            .collect();
        if !records.is_empty() {
            self.effects.push(Effect::Touch { records });
        }
    }

    // ----- moving between stages -------------------------------------------------------

    /// Every reason the record cannot move to `to` now (empty when it can).
    fn gate(
        &self,
        flow: &FlowFile,
        state: &FlowState,
        to: &Id,
        system: bool,
    ) -> Result<Vec<Reason>, Refusal> {
        let mut reasons = Vec::new();
        let owner = format!("flow:{}", flow.id);
        let from = stage(flow, &state.stage)
            .ok_or_else(|| Refusal::NotApplicable("unknown stage".into()))?;
        let target = stage(flow, to).ok_or_else(|| {
            Refusal::NotApplicable(format!("flow `{}` has no stage `{to}`", flow.id))
        })?;
        if state.outcome.is_some() {
            return Err(Refusal::NotApplicable(format!("the flow ended in stage `{}`", from.id)));
        }
        let transition = flow.transitions.iter().enumerate().find(|(_, transition)| {
            &transition.to == to && (transition.from == from.id.as_str() || transition.from == "*")
        });
        // A sub-flow's `when_done` names the stage to go to itself: that is the path,
        // declared in the flow file, whether or not a transition repeats it.
        let transition = match transition {
            Some((index, transition)) => Some((index, transition)),
            None if system => None,
            None => {
                return Ok(vec![Reason::new(
                    "transition",
                    Some(to.as_str()),
                    format!(
                        "不能从「{}」直接进入「{}」",
                        from.title.get("zh-CN"),
                        target.title.get("zh-CN")
                    ),
                    format!(
                        "there is no way from \"{}\" to \"{}\"",
                        from.title.get("en"),
                        target.title.get("en")
                    ),
                )]);
            }
        };
        if let Some((_, transition)) = transition.filter(|(_, t)| !system && !t.roles.is_empty()) {
            let roles = self.cx.actor.map(|actor| self.cx.org.roles_of(actor)).unwrap_or_default();
            if !transition.roles.iter().any(|role| roles.iter().any(|held| held == role.as_str())) {
                reasons.push(Reason::new(
                    "role",
                    None,
                    "只有指定角色可以执行此操作",
                    format!(
                        "only {} may take this step",
                        transition.roles.iter().map(Id::as_str).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let from_index = stage_index(flow, &from.id);
        // Key actions of the stage being left.
        for action in &from.actions {
            if !action.optional && !state.actions.contains_key(&action.id) {
                reasons.push(Reason::new(
                    "action",
                    Some(action.id.as_str()),
                    format!("尚未完成关键动作「{}」", action.title.get("zh-CN")),
                    format!("key action \"{}\" is not done", action.title.get("en")),
                ));
            }
        }
        // Approvals.
        for approval in &from.approvals {
            let status = state.approvals.get(&approval.id).map(|approval| approval.status);
            let (zh, en) = match status {
                Some(ApprovalStatus::Approved) => continue,
                Some(ApprovalStatus::Rejected) => {
                    let why = state
                        .approvals
                        .get(&approval.id)
                        .and_then(|a| a.decisions.iter().rev().find(|d| !d.approve))
                        .and_then(|d| d.reason.clone())
                        .unwrap_or_default();
                    (
                        format!("「{}」被驳回:{why}", approval.title.get("zh-CN")),
                        format!("\"{}\" was rejected: {why}", approval.title.get("en")),
                    )
                }
                _ => (
                    format!("等待「{}」审批通过", approval.title.get("zh-CN")),
                    format!("waiting for approval \"{}\"", approval.title.get("en")),
                ),
            };
            reasons.push(Reason::new("approval", Some(approval.id.as_str()), zh, en));
        }
        // The sub-flow the stage waits for.
        if state.waiting_for.is_some() && !system {
            reasons.push(Reason::new(
                "subflow",
                state.waiting_for.as_deref(),
                "正在等待子流程完成",
                "waiting for the sub-flow to finish",
            ));
        }
        // Exit conditions, the transition's gate, the target's entry conditions.
        let no_gate = Vec::new();
        let (transition_gate, transition_index) = match transition {
            Some((index, transition)) => (&transition.gate, index),
            None => (&no_gate, 0),
        };
        let lists = [
            (&from.exit, format!("/stages/{from_index}/exit")),
            (transition_gate, format!("/transitions/{transition_index}/gate")),
            (&target.entry, format!("/stages/{}/entry", stage_index(flow, to))),
        ];
        for (conditions, base) in lists {
            for (n, condition) in conditions.iter().enumerate() {
                reasons.extend(self.condition(condition, &owner, &format!("{base}/{n}"))?);
            }
        }
        // Fields: the transition's and the target stage's (and every stage visited).
        let mut needed: Vec<FieldName> =
            transition.map(|(_, transition)| transition.requires.clone()).unwrap_or_default();
        let mut stages = state.visited.clone();
        stages.push(to.clone());
        for stage_id in &stages {
            if let Some(stage) = stage(flow, stage_id) {
                needed.extend(stage.requires.iter().cloned());
            }
        }
        let form = self.form()?;
        let mut seen = BTreeSet::new();
        for field in needed {
            if field.as_str() != "owner"
                && !filled(self.record.fields.get(field.as_str()))
                && seen.insert(field.clone())
            {
                let label = label_of(form, field.as_str());
                reasons.push(Reason::new(
                    "field",
                    Some(field.as_str()),
                    format!("请填写「{}」", label.0),
                    format!("fill in {}", label.1),
                ));
            }
        }
        Ok(reasons)
    }

    /// Evaluates one condition; its reasons when it stops the record.
    fn condition(
        &self,
        condition: &Condition,
        owner: &str,
        pointer: &str,
    ) -> Result<Vec<Reason>, Refusal> {
        let (rule, declared, subject) = match (&condition.rule, &condition.check) {
            (Some(rule), _) => {
                let gate = self.definitions().gates.get(rule);
                let compiled = self.definitions().script(&format!("gate:{rule}"), "");
                let reason =
                    condition.reason.clone().or_else(|| gate.and_then(|gate| gate.reason.clone()));
                (compiled, reason, rule.to_string())
            }
            (None, Some(_)) => (
                self.definitions().script(owner, &format!("{pointer}/check")),
                condition.reason.clone(),
                pointer.to_owned(),
            ),
            (None, None) => return Ok(Vec::new()),
        };
        let rule =
            rule.ok_or_else(|| Refusal::RuleFailed(format!("no compiled rule for {subject}")))?;
        match self.cx.sandbox.eval_gate(rule, &self.facts(None, &[])) {
            Ok(GateOutcome::Open) => Ok(Vec::new()),
            Ok(GateOutcome::Closed(reasons)) if reasons.is_empty() => {
                let text = declared.unwrap_or(Text::Plain(format!("条件「{subject}」未满足")));
                Ok(vec![Reason::new(
                    "condition",
                    Some(&subject),
                    text.get("zh-CN"),
                    text.get("en"),
                )])
            }
            Ok(GateOutcome::Closed(reasons)) => Ok(reasons
                .into_iter()
                .map(|reason| Reason::new("condition", Some(&subject), reason.clone(), reason))
                .collect()),
            Err(error) => Err(Refusal::RuleFailed(error.to_string())),
        }
    }

    /// Moves to another stage when every gate is open.
    fn transition(&mut self, to: &Id, system: bool) -> Result<(), Refusal> {
        let (flow, state) = self.flow()?;
        let reasons = self.gate(flow, &state, to, system)?;
        if !reasons.is_empty() {
            return Err(Refusal::Gated(reasons));
        }
        let from = stage(flow, &state.stage)
            .ok_or_else(|| Refusal::NotApplicable("unknown stage".into()))?;
        let owner = format!("flow:{}", flow.id);
        let base = format!("/stages/{}/on_exit", stage_index(flow, &from.id));
        self.effects_of(&from.on_exit, &owner, &base, &from.id)?;
        // Leaving a stage closes its tasks and stops its clocks.
        self.close_tasks(format!("{}/{}/", self.record.id, from.id));
        self.cancel_timers(format!("{}/{}/{}/", self.record.id, from.id, state.stage_entered_at));
        self.enter(flow, to, Some((from.id.clone(), state.stage_entered_at)))?;
        self.alerts_for(TriggerEvent::StageChanged, &[])
    }

    fn subflow_ended(&mut self, child: &str, outcome: &Id) -> Result<(), Refusal> {
        let (flow, state) = self.flow()?;
        self.events.push(Event::SubflowEnded { child: child.to_owned(), outcome: outcome.clone() });
        if state.waiting_for.as_deref() != Some(child) {
            return Ok(());
        }
        if let Some(flow_state) = self.record.flow.as_mut() {
            flow_state.waiting_for = None;
        }
        let Some(stage) = stage(flow, &state.stage) else { return Ok(()) };
        let Some(subflow) = &stage.subflow else { return Ok(()) };
        let Some(reaction) = subflow.when_done.iter().find(|reaction| &reaction.outcome == outcome)
        else {
            return Ok(());
        };
        let to = reaction.advance.clone();
        let (flow, state) = self.flow()?;
        let reasons = self.gate(flow, &state, &to, true)?;
        if reasons.is_empty() {
            self.transition(&to, true)
        } else {
            self.events.push(Event::AdvanceRefused { to, reasons });
            Ok(())
        }
    }

    // ----- time --------------------------------------------------------------------------

    fn timer(&mut self, key: &str, timer: TimerKind) -> Result<(), Refusal> {
        // The timer has fired: the record no longer holds it.
        self.record.timers.remove(key);
        let Ok((flow, state)) = self.flow() else { return Ok(()) };
        match timer {
            TimerKind::SlaExpired { stage: stage_id, entered_at, approval } => {
                // A timer from an earlier visit of the stage, or for a decided approval,
                // has nothing left to watch.
                if state.stage != stage_id
                    || state.stage_entered_at != entered_at
                    || state.outcome.is_some()
                {
                    return Ok(());
                }
                if let Some(approval) = &approval {
                    if state
                        .approvals
                        .get(approval)
                        .is_some_and(|a| a.status != ApprovalStatus::Pending)
                    {
                        return Ok(());
                    }
                }
                self.events.push(Event::SlaBreached {
                    stage: stage_id.clone(),
                    approval: approval.clone(),
                });
                let Some(stage) = stage(flow, &stage_id) else { return Ok(()) };
                let sla = match &approval {
                    Some(approval) => stage
                        .approvals
                        .iter()
                        .find(|a| &a.id == approval)
                        .and_then(|a| a.sla.as_ref()),
                    None => stage.sla.as_ref(),
                };
                let Some(ladder) = sla.and_then(|sla| sla.escalation.clone()) else {
                    return Ok(());
                };
                let calendar = self
                    .calendar(sla.and_then(|sla| sla.calendar.as_ref()).or(flow.calendar.as_ref()));
                if let Some(definition) = self.definitions().escalations.get(&ladder) {
                    for (step, escalation) in definition.steps.iter().enumerate() {
                        if let Some(due) = calendar::add(calendar, self.cx.now, &escalation.after) {
                            self.set_timer(TimerSpec {
                                key: format!(
                                    "{}/{}/{entered_at}/escalation/{ladder}/{step}",
                                    self.record.id, stage_id
                                ),
                                due,
                                kind: TimerKind::Escalation {
                                    stage: stage_id.clone(),
                                    entered_at,
                                    ladder: ladder.clone(),
                                    step,
                                },
                            });
                        }
                    }
                }
                Ok(())
            }
            TimerKind::Escalation { stage: stage_id, entered_at, ladder, step } => {
                if state.stage != stage_id
                    || state.stage_entered_at != entered_at
                    || state.outcome.is_some()
                {
                    return Ok(());
                }
                let Some(definition) = self.definitions().escalations.get(&ladder) else {
                    return Ok(());
                };
                let Some(escalation) = definition.steps.get(step) else { return Ok(()) };
                let owner = format!("escalation:{ladder}");
                let mut notified = Vec::new();
                for (n, party) in escalation.notify.iter().enumerate() {
                    notified.extend(self.resolve(
                        party,
                        &owner,
                        &format!("/steps/{step}/notify/{n}/expr"),
                    )?);
                }
                let reassigned_to = match &escalation.reassign {
                    Some(party) => self
                        .resolve(party, &owner, &format!("/steps/{step}/reassign/expr"))?
                        .into_iter()
                        .next(),
                    None => None,
                };
                if let Some(template) = &escalation.template {
                    self.notify(notified.clone(), template, &escalation.channels, "escalation");
                }
                if let Some(to) = &reassigned_to {
                    self.reassign_tasks(format!("{}/{}/", self.record.id, stage_id), to.clone());
                }
                self.events.push(Event::Escalated { ladder, step, notified, reassigned_to });
                Ok(())
            }
        }
    }

    // ----- alerts --------------------------------------------------------------------------

    /// Runs the alerts of the record's form whose trigger matches.
    fn alerts_for(&mut self, event: TriggerEvent, changed: &[String]) -> Result<(), Refusal> {
        let alerts: Vec<_> = self
            .definitions()
            .alerts
            .iter()
            .filter(|alert| alert.form == self.record.form && alert.trigger.event == Some(event))
            .filter(|alert| match event {
                TriggerEvent::FieldChanged => alert
                    .trigger
                    .field
                    .as_ref()
                    .is_some_and(|field| changed.iter().any(|c| c == field.as_str())),
                TriggerEvent::StageChanged => alert.trigger.flow.as_ref().is_none_or(|flow| {
                    self.record.flow.as_ref().is_some_and(|state| &state.flow == flow)
                }),
                TriggerEvent::Created => true,
            })
            .cloned()
            .collect();
        for alert in alerts {
            self.alert(&alert, changed)?;
        }
        Ok(())
    }

    fn scan(&mut self, alert_id: &Id) -> Result<(), Refusal> {
        let alert =
            self.definitions()
                .alerts
                .iter()
                .find(|alert| &alert.id == alert_id)
                .cloned()
                .ok_or_else(|| Refusal::NotApplicable(format!("there is no alert `{alert_id}`")))?;
        if alert.form != self.record.form {
            return Ok(());
        }
        self.alert(&alert, &[])
    }

    fn alert(
        &mut self,
        alert: &stagecraft_model::Alert,
        changed: &[String],
    ) -> Result<(), Refusal> {
        let owner = format!("alert:{}", alert.id);
        let stage = self.record.stage().cloned();
        let allowed = match (&alert.repeat, self.record.alerts.get(&alert.id)) {
            (_, None) | (AlertRepeat::Always, _) => true,
            (AlertRepeat::OncePerStage, Some(mark)) => mark.stage != stage,
            (AlertRepeat::Every(every), Some(mark)) => every
                .minutes()
                .is_some_and(|minutes| self.cx.now - mark.at >= minutes as i64 * 60_000),
        };
        if !allowed {
            return Ok(());
        }
        if alert.when.is_some() {
            let rule = self.definitions().script(&owner, "/when").ok_or_else(|| {
                Refusal::RuleFailed(format!("no compiled rule for alert {}", alert.id))
            })?;
            let previous = self.before.clone();
            let facts = self.facts(Some(&previous), changed);
            let fires = self
                .cx
                .sandbox
                .eval_condition(rule, &facts)
                .map_err(|error| Refusal::RuleFailed(error.to_string()))?;
            if !fires {
                return Ok(());
            }
        }
        self.record
            .alerts
            .insert(alert.id.clone(), AlertMark { at: self.cx.now, stage: stage.clone() });
        self.events.push(Event::AlertRaised { alert: alert.id.clone() });
        if let Some(notify) = &alert.notify {
            let mut to = Vec::new();
            for (n, party) in notify.to.iter().enumerate() {
                to.extend(self.resolve(party, &owner, &format!("/notify/to/{n}/expr"))?);
            }
            self.notify(to, &notify.template, &notify.channels, alert.id.as_str());
        }
        if let Some(task) = &alert.task {
            let (assignee, role) = self.assignee(&task.assignee, &owner, "/task/assignee/expr")?;
            let due = task.due.as_ref().and_then(|due| {
                calendar::add(self.calendar(task.calendar.as_ref()), self.cx.now, due)
            });
            self.open_task(Task {
                key: format!("{}/alert/{}/{}", self.record.id, alert.id, self.cx.now),
                record: self.record.id.clone(),
                title: task.title.clone(),
                assignee,
                role,
                form: task.form.clone(),
                due,
                kind: TaskKind::Alert { alert: alert.id.clone() },
            });
        }
        Ok(())
    }
}
