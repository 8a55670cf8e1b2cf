//! Commands in, one atomic commit out. The engine loads the record, runs the pure
//! runtime, follows the effects that reach other records (sub-flows, a waiting
//! parent, linked records), and writes everything in one store commit. Time comes
//! from the injected clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value, json};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;
use stagecraft_rules::{Limits, Sandbox};
use stagecraft_runtime::{
    Command, Context, Directory, Effect, Event, Outcome, ParentLink, Record, Refusal, Task,
    start_subflow, step,
};
use stagecraft_store::{
    Commit, IdempotencyClaim, IndexEntry, NewEvent, NewTask, NewTimer, Page, RecordId, RecordWrite,
    Store, StoreError, TaskChange, TaskId, TimerChange, TimerId,
};

use crate::clock::Clock;
use crate::host::{StoreHost, decode, index_value};

/// Which record a command is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A new record (the command is [`Command::Create`]).
    New,
    /// An existing record.
    Existing(String),
}

/// What an accepted command did.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// The record after the command.
    pub record: Record,
    /// The events of the command, on every record it changed.
    pub events: Vec<(String, Event)>,
    /// Other records the command changed (a parent, a sub-flow, a linked record).
    pub others: Vec<Record>,
}

/// Why a command did not go through.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime refused: the reasons are for the user.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The record does not exist.
    #[error("record {0} does not exist")]
    NotFound(String),
    /// The idempotency key was used before, for this record.
    #[error("this request was already carried out for record {0}")]
    Duplicate(String),
    /// Another command changed a record at the same time; retry.
    #[error("the record changed while the command ran; try again")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A stored record cannot be read.
    #[error("stored record {0} cannot be read")]
    Corrupt(String),
    /// A command set off too long a chain of follow-up steps.
    #[error("the command set off more than {0} follow-up steps")]
    TooManySteps(usize),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => EngineError::Conflict,
            StoreError::AlreadyApplied { record, .. } => EngineError::Duplicate(record.to_string()),
            other => EngineError::Store(other),
        }
    }
}

/// The most follow-up steps one command may cause (sub-flows starting sub-flows…).
const MAX_STEPS: usize = 64;

/// How many threads fire due timers side by side.
const TIMER_WORKERS: usize = 4;

/// The record id of the scheduler's own state in the store.
const SCHEDULE_RECORD: &str = "_schedule";

/// The engine.
pub struct Engine {
    store: Arc<dyn Store>,
    definitions: RwLock<Arc<Definitions>>,
    /// Every set of definitions loaded since start, oldest first: a record stays on
    /// the pack version its flow started with.
    history: RwLock<Vec<Arc<Definitions>>>,
    org: Arc<RwLock<Directory>>,
    sandbox: Sandbox,
    clock: Arc<dyn Clock>,
    seed: u64,
    next_id: AtomicU64,
    instance: u32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("seed", &self.seed).finish_non_exhaustive()
    }
}

/// A record read inside a command, with the version it had in the store.
struct Loaded {
    record: Record,
    stored_version: Option<u64>,
}

/// Everything one command changes, gathered before the commit.
struct Tx {
    now: i64,
    /// Who ran the command (`None`: the engine, e.g. a timer). Stored with every event
    /// as `by`, so reports can say who moved a record or decided an approval.
    actor: Option<String>,
    records: BTreeMap<String, Loaded>,
    changed: Vec<String>,
    /// Records that already counted a linked record as activity in this command.
    linked: Vec<String>,
    events: Vec<(String, Event)>,
    tasks: Vec<TaskChange>,
    timers: Vec<TimerChange>,
    outbox: Vec<Value>,
}

impl Engine {
    /// An engine over a store and definitions. The org starts from the definitions'
    /// org files; `seed` makes sampled audits reproducible.
    pub fn new(
        store: Arc<dyn Store>,
        definitions: Definitions,
        clock: Arc<dyn Clock>,
        seed: u64,
    ) -> Self {
        let org = Arc::new(RwLock::new(Directory::from_file(&definitions.org)));
        let host = StoreHost::new(store.clone(), org.clone());
        let sandbox = Sandbox::new(Limits::default(), Arc::new(host));
        let instance = (clock.now_ms() as u32) ^ std::process::id().rotate_left(16);
        let definitions = Arc::new(definitions);
        Engine {
            store,
            history: RwLock::new(vec![definitions.clone()]),
            definitions: RwLock::new(definitions),
            org,
            sandbox,
            clock,
            seed,
            next_id: AtomicU64::new(0),
            instance,
        }
    }

    /// The definitions in force.
    pub fn definitions(&self) -> Arc<Definitions> {
        match self.definitions.read() {
            Ok(definitions) => definitions.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the definitions (already checked: [`stagecraft_pack::load`] returns
    /// definitions only when there are no errors, so a broken reload never gets here).
    pub fn reload(&self, definitions: Definitions) {
        // The org comes from the org files: a changed file changes who reports to whom.
        let org = Directory::from_file(&definitions.org);
        match self.org.write() {
            Ok(mut current) => *current = org,
            Err(poisoned) => *poisoned.into_inner() = org,
        }
        let definitions = Arc::new(definitions);
        match self.history.write() {
            Ok(mut history) => history.push(definitions.clone()),
            Err(poisoned) => poisoned.into_inner().push(definitions.clone()),
        }
        match self.definitions.write() {
            Ok(mut current) => *current = definitions,
            Err(poisoned) => *poisoned.into_inner() = definitions,
        }
    }

    /// The definitions a record runs on: the newest loaded set in which the pack of
    /// its form still has the version the record's flow started with, else the
    /// current ones.
    pub fn definitions_for(&self, record: &Record) -> Arc<Definitions> {
        let current = self.definitions();
        let Some(started) = record.flow.as_ref().map(|flow| flow.pack_version.clone()) else {
            return current;
        };
        let pack_version = |definitions: &Definitions| {
            let pack = definitions.forms.get(&record.form).and_then(|form| form.pack.clone())?;
            definitions.packs.iter().find(|p| p.name == pack).map(|p| p.version.clone())
        };
        if pack_version(&current).as_deref() == Some(started.as_str()) {
            return current;
        }
        let history = match self.history.read() {
            Ok(history) => history.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        history
            .into_iter()
            .rev()
            .find(|definitions| pack_version(definitions).as_deref() == Some(started.as_str()))
            .unwrap_or(current)
    }

    /// The organisation, to read or change.
    pub fn org(&self) -> Arc<RwLock<Directory>> {
        self.org.clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time of the engine's clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A record by id.
    pub fn record(&self, id: &str) -> Result<Option<Record>, EngineError> {
        match self.store.record(&RecordId::new(id))? {
            Some(stored) => {
                decode(&stored.value).map(Some).ok_or_else(|| EngineError::Corrupt(id.to_owned()))
            }
            None => Ok(None),
        }
    }

    /// A new record id: time-ordered, unique across restarts and engines.
    fn new_id(&self) -> String {
        let counter = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:011x}{:08x}{counter:05x}", self.clock.now_ms(), self.instance)
    }

    /// Runs a command by `actor` (`None`: the engine itself) and commits everything it
    /// changes at once. With an idempotency key, a repeated request is answered with
    /// [`EngineError::Duplicate`] naming the first result, and changes nothing.
    pub fn execute(
        &self,
        actor: Option<&str>,
        target: Target,
        command: Command,
        idempotency_key: Option<&str>,
    ) -> Result<Executed, EngineError> {
        if let Some(key) = idempotency_key {
            if let Some(record) = self.store.idempotent(key)? {
                return Err(EngineError::Duplicate(record.to_string()));
            }
        }
        let now = self.clock.now_ms();
        let mut tx = Tx::new(now);
        tx.actor = actor.map(str::to_owned);
        let id = match &target {
            Target::New => None,
            Target::Existing(id) => Some(id.clone()),
        };
        let state = match &id {
            Some(id) => Some(self.load(&mut tx, id)?.record.clone()),
            None => None,
        };
        let definitions = match &state {
            Some(record) => self.definitions_for(record),
            None => self.definitions(),
        };
        let is_create = matches!(command, Command::Create { .. });
        let outcome = self.run(&definitions, actor, now, state.as_ref(), command)?;
        let main = outcome.record.id.clone();
        tx.apply(outcome.clone());
        if is_create {
            self.link(&definitions, &mut tx, &outcome.record)?;
        }
        self.follow(&definitions, &mut tx, &main, outcome.effects)?;
        let claim = idempotency_key.map(|key| IdempotencyClaim {
            key: key.to_owned(),
            record: RecordId::new(main.clone()),
        });
        // A command that changed nothing (a scan whose alert does not fire, an update
        // to the same values) has nothing to make durable: no commit, no fsync.
        if !tx.is_empty() || claim.is_some() {
            self.commit(&definitions, &tx, claim)?;
        }
        let record = tx
            .records
            .get(&main)
            .map(|loaded| loaded.record.clone())
            .ok_or(EngineError::NotFound(main.clone()))?;
        let others = tx
            .changed
            .iter()
            .filter(|id| **id != main)
            .filter_map(|id| tx.records.get(id))
            .map(|l| l.record.clone())
            .collect();
        Ok(Executed { record, events: tx.events, others })
    }

    /// The transitions out of a record's current stage and, for each, why `actor`
    /// could not take it now (see [`stagecraft_runtime::exits`]). Reads only: the
    /// gates run in the sandbox on the record as it is, at the clock's time.
    pub fn exits(
        &self,
        actor: Option<&str>,
        record: &Record,
    ) -> Result<Vec<stagecraft_runtime::Exit>, EngineError> {
        let definitions = self.definitions_for(record);
        let now = self.clock.now_ms();
        Ok(self
            .with_context(&definitions, actor, now, |cx| stagecraft_runtime::exits(cx, record))?)
    }

    /// Runs a step inside a command's transaction: the rules' queries see the records
    /// the transaction has changed so far (a sub-flow that just ended is seen ended by
    /// its parent's gates), not their stored versions.
    fn run_seeing(
        &self,
        tx: &Tx,
        definitions: &Definitions,
        actor: Option<&str>,
        state: Option<&Record>,
        command: Command,
    ) -> Result<Outcome, EngineError> {
        let pending = tx.records.values().map(|loaded| loaded.record.clone()).collect();
        crate::host::with_pending(pending, || self.run(definitions, actor, tx.now, state, command))
    }

    fn run(
        &self,
        definitions: &Definitions,
        actor: Option<&str>,
        now: i64,
        state: Option<&Record>,
        command: Command,
    ) -> Result<Outcome, EngineError> {
        Ok(self.with_context(definitions, actor, now, |cx| step(cx, state, command))?)
    }

    /// Runs `work` with a runtime context over the current org, this engine's
    /// sandbox, id source and seed.
    fn with_context<T>(
        &self,
        definitions: &Definitions,
        actor: Option<&str>,
        now: i64,
        work: impl FnOnce(&mut Context<'_>) -> T,
    ) -> T {
        let org = self.read_org();
        let mut new_id = || self.new_id();
        let mut cx = Context {
            definitions,
            org: &org,
            sandbox: &self.sandbox,
            actor,
            now,
            new_id: &mut new_id,
            seed: self.seed,
        };
        work(&mut cx)
    }

    fn read_org(&self) -> Directory {
        match self.org.read() {
            Ok(org) => org.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn load<'t>(&self, tx: &'t mut Tx, id: &str) -> Result<&'t Loaded, EngineError> {
        if !tx.records.contains_key(id) {
            let stored = self
                .store
                .record(&RecordId::new(id))?
                .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
            let record =
                decode(&stored.value).ok_or_else(|| EngineError::Corrupt(id.to_owned()))?;
            tx.records
                .insert(id.to_owned(), Loaded { record, stored_version: Some(stored.version) });
        }
        tx.records.get(id).ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// A new record may complete a key action of the records it links to, and keeps
    /// the records it `touches` active. A refusal (a key action out of order) stops
    /// the whole command.
    fn link(
        &self,
        definitions: &Definitions,
        tx: &mut Tx,
        record: &Record,
    ) -> Result<(), EngineError> {
        let Some(form) = definitions.forms.get(&record.form) else { return Ok(()) };
        let mut targets: Vec<String> = Vec::new();
        for (field, info) in &form.fields {
            let Some(linked) = record.fields.get(field.as_str()).and_then(Value::as_str) else {
                continue;
            };
            if info.link.is_none() || targets.iter().any(|t| t == linked) {
                continue;
            }
            let Ok(target) = self.load(tx, linked).map(|loaded| loaded.record.clone()) else {
                continue;
            };
            // Records this one only `touches` are handled by the runtime's
            // `Touch` effect; here key actions the new record may complete, and open
            // alert tasks that ask for a record of its form.
            let asked_for = target.tasks.values().any(|task| {
                task.form.as_ref() == Some(&record.form)
                    && matches!(task.kind, stagecraft_runtime::TaskKind::Alert { .. })
            });
            let completes_action = asked_for
                || target.flow.as_ref().is_some_and(|state| {
                    definitions.flows.get(&state.flow).is_some_and(|flow| {
                        flow.stages.iter().any(|stage| {
                            stage.id == state.stage
                                && stage
                                    .actions
                                    .iter()
                                    .any(|a| a.form.as_ref() == Some(&record.form))
                        })
                    })
                });
            if completes_action {
                targets.push(linked.to_owned());
            }
        }
        for target in targets {
            let state = self.load(tx, &target)?.record.clone();
            let outcome = self.run_seeing(
                tx,
                definitions,
                None,
                Some(&state),
                Command::Linked { form: record.form.clone(), record: record.facts() },
            )?;
            let effects = outcome.effects.clone();
            tx.apply(outcome);
            tx.linked.push(target.clone());
            self.follow(definitions, tx, &target, effects)?;
        }
        Ok(())
    }

    /// Carries out effects; those that reach other records run them through the
    /// runtime too, in the same transaction.
    fn follow(
        &self,
        definitions: &Definitions,
        tx: &mut Tx,
        origin: &str,
        effects: Vec<Effect>,
    ) -> Result<(), EngineError> {
        // Each effect travels with the record whose step produced it.
        let mut queue: VecDeque<(String, Effect)> =
            effects.into_iter().map(|e| (origin.to_owned(), e)).collect();
        let mut runtime_steps = 0;
        while let Some((origin, effect)) = queue.pop_front() {
            if runtime_steps > MAX_STEPS {
                return Err(EngineError::TooManySteps(MAX_STEPS));
            }
            match effect {
                Effect::OpenTask(task) => tx.tasks.push(TaskChange::Upsert(new_task(&task))),
                Effect::CloseTask { key } => tx.tasks.push(TaskChange::Close(TaskId::new(key))),
                Effect::SetTimer { key, due, kind } => {
                    tx.timers.push(TimerChange::Add(NewTimer {
                        id: TimerId::new(key.clone()),
                        due_ms: due,
                        data: json!({"record": origin, "key": key, "timer": kind}),
                    }));
                }
                Effect::CancelTimer { key } => {
                    tx.timers.push(TimerChange::Remove(TimerId::new(key)))
                }
                Effect::Notify(notification) => {
                    let mut row = serde_json::to_value(&notification).unwrap_or(Value::Null);
                    if let Value::Object(map) = &mut row {
                        map.insert("at".into(), json!(tx.now));
                    }
                    tx.outbox.push(row);
                }
                Effect::StartFlow { flow, child, fields, owner, wait } => {
                    let stage = self
                        .load(tx, &origin)?
                        .record
                        .stage()
                        .cloned()
                        .unwrap_or_else(|| Id::from(""));
                    let parent = origin.clone();
                    runtime_steps += 1;
                    let link = ParentLink { record: parent, stage, wait };
                    let outcome = self.with_context(definitions, None, tx.now, |cx| {
                        start_subflow(cx, &flow, child, fields, owner, link)
                    })?;
                    let child_id = outcome.record.id.clone();
                    queue.extend(outcome.effects.iter().cloned().map(|e| (child_id.clone(), e)));
                    tx.apply(outcome);
                }
                Effect::NotifyParent { parent, outcome } => {
                    let child = origin.clone();
                    runtime_steps += 1;
                    let state = self.load(tx, &parent)?.record.clone();
                    let result = self.run_seeing(
                        tx,
                        definitions,
                        None,
                        Some(&state),
                        Command::SubflowEnded { child, outcome },
                    )?;
                    queue.extend(result.effects.iter().cloned().map(|e| (parent.clone(), e)));
                    tx.apply(result);
                }
                Effect::Touch { records } => {
                    for id in records {
                        // A record the new one was linked to has counted this already.
                        if tx.linked.contains(&id) || self.load(tx, &id).is_err() {
                            continue;
                        }
                        let state = self.load(tx, &id)?.record.clone();
                        runtime_steps += 1;
                        let result = self.run_seeing(
                            tx,
                            definitions,
                            None,
                            Some(&state),
                            Command::Touched { by: origin.clone() },
                        )?;
                        tx.linked.push(id.clone());
                        queue.extend(result.effects.iter().cloned().map(|e| (id.clone(), e)));
                        tx.apply(result);
                    }
                }
            }
        }
        Ok(())
    }

    fn commit(
        &self,
        definitions: &Definitions,
        tx: &Tx,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<(), EngineError> {
        let mut commit = Commit::at(tx.now);
        for id in &tx.changed {
            let Some(loaded) = tx.records.get(id) else { continue };
            let record = &loaded.record;
            let value =
                serde_json::to_value(record).map_err(|_| EngineError::Corrupt(id.clone()))?;
            let mut write = match loaded.stored_version {
                Some(version) => {
                    RecordWrite::update(id.as_str(), record.form.as_str(), version, value)
                }
                None => RecordWrite::create(id.as_str(), record.form.as_str(), value),
            };
            write.index = index_entries(definitions, record);
            commit.records.push(write);
        }
        for (record, event) in &tx.events {
            let mut data = serde_json::to_value(event).unwrap_or(Value::Null);
            let kind = data.get("event").and_then(Value::as_str).unwrap_or("event").to_owned();
            if let (Some(actor), Value::Object(fields)) = (&tx.actor, &mut data) {
                fields.insert("by".to_owned(), Value::String(actor.clone()));
            }
            commit.events.push(NewEvent::new(record.as_str(), kind, data));
        }
        commit.tasks = tx.tasks.clone();
        commit.timers = tx.timers.clone();
        commit.outbox = tx.outbox.clone();
        commit.idempotency = idempotency;
        self.store.commit(commit)?;
        Ok(())
    }

    /// Fires every timer that is due, each in its own commit together with what it
    /// caused; returns how many fired. A timer whose commit fails stays and fires on
    /// the next call, so each timer's effects happen exactly once.
    ///
    /// Timers of different records fire side by side on [`TIMER_WORKERS`] threads, so
    /// that their commits share the store's flushes (group commit); the timers of one
    /// record fire on one thread, in order of their due time.
    pub fn fire_due_timers(&self) -> Result<usize, EngineError> {
        let mut fired = 0;
        loop {
            let now = self.clock.now_ms();
            let due = self.store.timers_due(now, 256)?;
            if due.is_empty() {
                return Ok(fired);
            }
            let mut lanes: Vec<Vec<stagecraft_store::StoredTimer>> =
                (0..TIMER_WORKERS).map(|_| Vec::new()).collect();
            for timer in due {
                let record = timer.data.get("record").and_then(Value::as_str).unwrap_or_default();
                let lane =
                    record.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
                lanes[lane % TIMER_WORKERS].push(timer);
            }
            let results: Vec<Result<usize, EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = lanes
                    .into_iter()
                    .filter(|lane| !lane.is_empty())
                    .map(|lane| scope.spawn(move || self.fire_lane(lane)))
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| {
                        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            });
            let mut progressed = 0;
            for result in results {
                progressed += result?;
            }
            if progressed == 0 {
                return Ok(fired);
            }
            fired += progressed;
        }
    }

    /// Fires timers one after the other; returns how many fired.
    fn fire_lane(&self, timers: Vec<stagecraft_store::StoredTimer>) -> Result<usize, EngineError> {
        let mut fired = 0;
        for timer in timers {
            let record =
                timer.data.get("record").and_then(Value::as_str).unwrap_or_default().to_owned();
            let key = timer
                .data
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or(timer.id.as_str())
                .to_owned();
            let kind =
                timer.data.get("timer").cloned().and_then(|kind| serde_json::from_value(kind).ok());
            let result = match kind {
                Some(kind) => self.fire(&record, key, kind, timer.id.clone()),
                None => self.drop_timer(timer.id.clone()),
            };
            match result {
                Ok(()) => fired += 1,
                Err(EngineError::Conflict) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(fired)
    }

    fn fire(
        &self,
        record: &str,
        key: String,
        timer: stagecraft_runtime::TimerKind,
        id: TimerId,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let mut tx = Tx::new(now);
        let state = match self.load(&mut tx, record) {
            Ok(loaded) => loaded.record.clone(),
            Err(EngineError::NotFound(_)) => return self.drop_timer(id),
            Err(error) => return Err(error),
        };
        let definitions = self.definitions_for(&state);
        let outcome =
            match self.run(&definitions, None, now, Some(&state), Command::Timer { key, timer }) {
                Ok(outcome) => outcome,
                // A timer whose rule fails would fire for ever; record nothing and drop it.
                Err(EngineError::Refused(_)) => return self.drop_timer(id),
                Err(error) => return Err(error),
            };
        let effects = outcome.effects.clone();
        tx.apply(outcome);
        self.follow(&definitions, &mut tx, record, effects)?;
        tx.timers.insert(0, TimerChange::Remove(id));
        self.commit(&definitions, &tx, None)
    }

    fn drop_timer(&self, id: TimerId) -> Result<(), EngineError> {
        let mut commit = Commit::at(self.clock.now_ms());
        commit.timers.push(TimerChange::Remove(id));
        self.store.commit(commit)?;
        Ok(())
    }

    /// Runs the scheduled alert scans whose cron schedule ticked since the last run
    /// (missed ticks after downtime run once), then records the time. Each record is
    /// scanned in its own commit; a scan interrupted by a crash runs again, and the
    /// alerts' repeat rules keep it from alerting twice.
    pub fn run_scheduled_scans(&self) -> Result<usize, EngineError> {
        let definitions = self.definitions();
        let now = self.clock.now_ms();
        let stored = self.store.record(&RecordId::new(SCHEDULE_RECORD))?;
        let mut last: Map<String, Value> = stored
            .as_ref()
            .and_then(|stored| stored.value.as_object().cloned())
            .unwrap_or_default();
        let mut scanned = 0;
        let mut changed = false;
        for alert in &definitions.alerts {
            let Some(schedule) = &alert.trigger.schedule else { continue };
            let Ok(schedule) = stagecraft_pack::parse_schedule(schedule) else { continue };
            let offset = alert
                .trigger
                .calendar
                .as_ref()
                .and_then(|id| definitions.calendars.get(id))
                .map_or(0, |calendar| calendar.utc_offset_minutes);
            let Some(zone) = chrono::FixedOffset::east_opt(offset * 60) else { continue };
            let since = last.get(alert.id.as_str()).and_then(Value::as_i64);
            let Some(since) = since else {
                // First run: start counting from now, without a backlog.
                last.insert(alert.id.to_string(), json!(now));
                changed = true;
                continue;
            };
            let Some(start) = chrono::DateTime::from_timestamp_millis(since) else { continue };
            let ticked = schedule
                .after(&start.with_timezone(&zone))
                .next()
                .is_some_and(|tick| tick.timestamp_millis() <= now);
            if !ticked {
                continue;
            }
            let mut page = Page::first(500);
            loop {
                let ids = self.store.records_of_form(alert.form.as_str(), page.clone())?;
                for id in &ids {
                    match self.execute(
                        None,
                        Target::Existing(id.to_string()),
                        Command::Scan { alert: alert.id.clone() },
                        None,
                    ) {
                        Ok(_) | Err(EngineError::Refused(_)) | Err(EngineError::Conflict) => {
                            scanned += 1
                        }
                        Err(error) => return Err(error),
                    }
                }
                match ids.last() {
                    Some(last_id) if ids.len() == page.limit => {
                        page = Page::after(last_id.clone(), page.limit)
                    }
                    _ => break,
                }
            }
            last.insert(alert.id.to_string(), json!(now));
            changed = true;
        }
        if changed {
            let mut commit = Commit::at(now);
            let value = Value::Object(last);
            commit.records.push(match stored {
                Some(stored) => {
                    RecordWrite::update(SCHEDULE_RECORD, "_system", stored.version, value)
                }
                None => RecordWrite::create(SCHEDULE_RECORD, "_system", value),
            });
            self.store.commit(commit)?;
        }
        Ok(scanned)
    }
}

impl Engine {
    /// How many records of `form` `user` owns, counted on the store's `owner` index
    /// (every owned record is indexed by owner).
    pub fn owned_count(&self, form: &str, user: &str) -> Result<u64, EngineError> {
        let owner = stagecraft_store::IndexValue::from(user);
        let mut count = 0u64;
        let mut page = Page::first(500);
        loop {
            let ids = self.store.records_by_index(form, "owner", &owner, page.clone())?;
            count += ids.len() as u64;
            match ids.last() {
                Some(last) if ids.len() == page.limit => {
                    page = Page::after(last.clone(), page.limit)
                }
                _ => return Ok(count),
            }
        }
    }

    /// `actor` takes record `id` from its form's pool (see [`Command::Claim`]): the
    /// engine counts the records of the form the actor owns, and the runtime refuses
    /// when that reaches the pool's `max_per_owner`. Two claims by one person at the
    /// same moment may both pass the count; the limit is a working rule, not a lock.
    pub fn claim(&self, actor: &str, id: &str) -> Result<Executed, EngineError> {
        let record = self.record(id)?.ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        let owned = self.owned_count(record.form.as_str(), actor)?;
        self.execute(Some(actor), Target::Existing(id.to_owned()), Command::Claim { owned }, None)
    }

    /// The idle sweep of the pools: every owned record of a form whose `x-form.pool`
    /// has `return_after`, on which nobody worked for that long (counted on the
    /// pool's calendar), goes back to the pool, each in its own commit, and its former
    /// owner is told (the pool's `notify` template). Returns how many went back. Reads
    /// every record of those forms, so callers run it seldom (the server: once per
    /// hour of clock time).
    pub fn return_idle_to_pool(&self) -> Result<usize, EngineError> {
        let definitions = self.definitions();
        let now = self.clock.now_ms();
        let mut returned = 0;
        for form in definitions.forms.values() {
            if form.meta.pool.as_ref().and_then(|pool| pool.return_after.as_ref()).is_none() {
                continue;
            }
            let mut page = Page::first(500);
            loop {
                let ids = self.store.records_of_form(form.id.as_str(), page.clone())?;
                for id in &ids {
                    let Some(record) = self.record(id.as_str())? else { continue };
                    let due = stagecraft_runtime::returns_to_pool_at(&definitions, &record);
                    if due.is_none_or(|due| due > now) {
                        continue;
                    }
                    let target = Target::Existing(id.to_string());
                    match self.execute(None, target, Command::ReturnIdle, None) {
                        Ok(_) => returned += 1,
                        Err(EngineError::Refused(_)) | Err(EngineError::Conflict) => {}
                        Err(error) => return Err(error),
                    }
                }
                match ids.last() {
                    Some(last) if ids.len() == page.limit => {
                        page = Page::after(last.clone(), page.limit)
                    }
                    _ => break,
                }
            }
        }
        Ok(returned)
    }
}

/// What [`Engine::verify`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verification {
    /// Differences between the store's projections and their primary data.
    pub store_problems: Vec<String>,
    /// Records whose state differs from the state their events rebuild.
    pub record_problems: Vec<String>,
    /// How many records were replayed.
    pub records: usize,
}

impl Verification {
    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.store_problems.is_empty() && self.record_problems.is_empty()
    }
}

impl Engine {
    /// Checks that everything derived can be rebuilt: the store's projections from its
    /// primary data, and every record's fields, owner, stage and outcome from its own
    /// events (the history is complete).
    pub fn verify(&self) -> Result<Verification, EngineError> {
        let mut verification = Verification {
            store_problems: self
                .store
                .verify()?
                .problems
                .iter()
                .map(|problem| format!("{}: {}: {}", problem.tree, problem.key, problem.issue))
                .collect(),
            ..Verification::default()
        };
        let definitions = self.definitions();
        for form in definitions.forms.keys() {
            let mut page = Page::first(500);
            loop {
                let ids = self.store.records_of_form(form.as_str(), page.clone())?;
                for id in &ids {
                    verification.records += 1;
                    if let Some(problem) = self.replay(id)? {
                        verification.record_problems.push(problem);
                    }
                }
                match ids.last() {
                    Some(last) if ids.len() == page.limit => {
                        page = Page::after(last.clone(), page.limit)
                    }
                    _ => break,
                }
            }
        }
        Ok(verification)
    }

    /// Rebuilds a record from its events and says how it differs from the stored one.
    fn replay(&self, id: &RecordId) -> Result<Option<String>, EngineError> {
        let Some(record) = self.record(id.as_str())? else { return Ok(None) };
        let mut fields = Map::new();
        let mut owner = None;
        let mut stage: Option<String> = None;
        let mut outcome: Option<String> = None;
        for event in self.store.events_of(id)? {
            let text = |key: &str| event.data.get(key).and_then(Value::as_str).map(str::to_owned);
            match event.kind.as_str() {
                "created" => {
                    fields = event
                        .data
                        .get("fields")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    owner = text("owner");
                }
                "fields_changed" => {
                    for (field, value) in
                        event.data.get("after").and_then(Value::as_object).into_iter().flatten()
                    {
                        if value.is_null() {
                            fields.remove(field);
                        } else {
                            fields.insert(field.clone(), value.clone());
                        }
                    }
                }
                "owner_changed" => owner = text("to"),
                "stage_changed" => stage = text("to"),
                "flow_ended" => outcome = text("outcome"),
                // An imported record's history begins in another system: its fields
                // and owner as imported are the start, its stage and outcome are in
                // the event.
                "imported" => {
                    fields = record.fields.clone();
                    owner = record.owner.clone();
                    stage = event
                        .data
                        .get("stages")
                        .and_then(Value::as_array)
                        .and_then(|stages| stages.last())
                        .and_then(|last| last.get("stage"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| record.stage().map(|stage| stage.to_string()));
                    outcome = event
                        .data
                        .get("ended")
                        .and_then(|ended| ended.get("outcome"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                _ => {}
            }
        }
        let mut differences = Vec::new();
        if fields != record.fields {
            differences.push("fields");
        }
        if owner != record.owner {
            differences.push("owner");
        }
        if stage.as_deref() != record.stage().map(Id::as_str) {
            differences.push("stage");
        }
        if outcome.as_deref()
            != record.flow.as_ref().and_then(|flow| flow.outcome.as_ref()).map(Id::as_str)
        {
            differences.push("outcome");
        }
        Ok((!differences.is_empty())
            .then(|| format!("record {id}: {} differ from its events", differences.join(", "))))
    }

    /// Loads the packs under `paths` and, only when they have no errors, makes them
    /// the definitions for new records. On errors the running definitions stay and
    /// the report says what is wrong.
    pub fn reload_from(
        &self,
        paths: &[std::path::PathBuf],
    ) -> Result<stagecraft_pack::Report, stagecraft_pack::Report> {
        let (definitions, report) = stagecraft_pack::load(paths)?;
        self.reload(definitions);
        Ok(report)
    }
}

impl Tx {
    fn new(now: i64) -> Self {
        Tx {
            now,
            actor: None,
            records: BTreeMap::new(),
            changed: Vec::new(),
            linked: Vec::new(),
            events: Vec::new(),
            tasks: Vec::new(),
            timers: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// Takes in a step's outcome; a record read from the store keeps the version it
    /// was read at, which the commit expects.
    /// Whether the command changed nothing: every change has at least one event.
    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tasks.is_empty()
            && self.timers.is_empty()
            && self.outbox.is_empty()
    }

    fn apply(&mut self, outcome: Outcome) {
        let id = outcome.record.id.clone();
        for event in outcome.events {
            self.events.push((id.clone(), event));
        }
        match self.records.get_mut(&id) {
            Some(loaded) => loaded.record = outcome.record,
            None => {
                self.records
                    .insert(id.clone(), Loaded { record: outcome.record, stored_version: None });
            }
        }
        if !self.changed.contains(&id) {
            self.changed.push(id);
        }
    }
}

/// A task as the store keeps it: assigned to a user, or to `role:<id>`.
fn new_task(task: &Task) -> NewTask {
    let assignee = match (&task.assignee, &task.role) {
        (Some(user), _) => user.clone(),
        (None, Some(role)) => format!("role:{role}"),
        (None, None) => "unassigned".to_owned(),
    };
    NewTask {
        id: TaskId::new(task.key.clone()),
        assignee,
        due_ms: task.due,
        data: serde_json::to_value(task).unwrap_or(Value::Null),
    }
}

/// The index entries of a record: the fields its form indexes, plus owner and stage.
fn index_entries(definitions: &Definitions, record: &Record) -> Vec<IndexEntry> {
    let mut entries = Vec::new();
    if let Some(form) = definitions.forms.get(&record.form) {
        for field in &form.meta.indexes {
            if let Some(value) = record.fields.get(field.as_str()).and_then(index_value) {
                entries.push(IndexEntry::new(field.as_str(), value));
            }
        }
        // Links are indexed too, so a record's linked records can be listed.
        for (field, info) in &form.fields {
            let already = form.meta.indexes.contains(field);
            if info.link.is_some() && !already {
                if let Some(value) = record.fields.get(field.as_str()).and_then(index_value) {
                    entries.push(IndexEntry::new(field.as_str(), value));
                }
            }
            // And the ids of uploaded files (one, or a list), so that the records
            // holding a file are found at once when someone asks to download it.
            if info.file && !already {
                match record.fields.get(field.as_str()) {
                    Some(Value::String(id)) => {
                        entries.push(IndexEntry::new(field.as_str(), id.as_str()))
                    }
                    Some(Value::Array(ids)) => entries.extend(
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(|id| IndexEntry::new(field.as_str(), id)),
                    ),
                    _ => {}
                }
            }
        }
    }
    if let Some(owner) = &record.owner {
        entries.push(IndexEntry::new("owner", owner.as_str()));
    }
    if let Some(stage) = record.stage() {
        entries.push(IndexEntry::new("stage", stage.as_str()));
    }
    entries
}

/// A record from another system, with its own history, for [`Engine::import`].
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedRecord {
    /// Its form.
    pub form: Id,
    /// Its owner.
    pub owner: Option<String>,
    /// Its fields, already checked against the form.
    pub fields: Map<String, Value>,
    /// When it was created in the other system (Unix milliseconds).
    pub created_at: i64,
    /// The stages of the form's flow it reached, in order, each with when; the last
    /// one is where it stands. Empty: it stands in the flow's first stage.
    pub stages: Vec<stagecraft_runtime::ImportedStage>,
    /// How it ended, if it did: the outcome of one of the flow's terminal stages.
    pub ended: Option<stagecraft_runtime::ImportedEnd>,
    /// Link fields that name another record of the same import, by its position in
    /// the list (their ids are only known once the import allocates them).
    pub links_in_import: Vec<(String, usize)>,
}

impl Engine {
    /// Writes records from another system as history, in ONE store commit (all or
    /// nothing) at the clock's time, and returns their new ids in order. The import
    /// counts as the records' last activity.
    ///
    /// History is not pushed through the flow: no gates, key actions, approvals,
    /// effects, tasks, timers or notifications. Each record keeps its own creation
    /// date, owner and fields, stands at its last stage (entered at that stage's
    /// date) or has ended with its outcome, is indexed like any record, and gets one
    /// [`Event::Imported`] that carries its dates for reports. An open record starts
    /// no SLA timer: its next move starts the flow's machinery as usual.
    pub fn import(
        &self,
        actor: Option<&str>,
        source: &str,
        records: Vec<ImportedRecord>,
    ) -> Result<Vec<String>, EngineError> {
        let definitions = self.definitions();
        let now = self.clock.now_ms();
        let mut commit = Commit::at(now);
        let mut ids = Vec::with_capacity(records.len());
        let new_ids: Vec<String> = records.iter().map(|_| self.new_id()).collect();
        for (imported, id) in records.into_iter().zip(&new_ids) {
            let mut record = self.imported_record(&definitions, &imported, id.clone())?;
            for (field, index) in &imported.links_in_import {
                let linked = new_ids.get(*index).ok_or_else(|| {
                    EngineError::Refused(Refusal::NotApplicable(format!(
                        "field `{field}` links to record {index} of an import of {}",
                        new_ids.len()
                    )))
                })?;
                record.fields.insert(field.clone(), Value::String(linked.clone()));
            }
            let value = serde_json::to_value(&record)
                .map_err(|_| EngineError::Corrupt(record.id.clone()))?;
            let mut write = RecordWrite::create(record.id.as_str(), record.form.as_str(), value);
            write.index = index_entries(&definitions, &record);
            commit.records.push(write);
            let stages = match &record.flow {
                Some(_) => imported.stages.clone(),
                None => Vec::new(),
            };
            let event = Event::Imported {
                source: source.to_owned(),
                created_at: imported.created_at,
                stages,
                ended: imported.ended.clone(),
            };
            let mut data = serde_json::to_value(&event).unwrap_or(Value::Null);
            if let (Some(actor), Value::Object(map)) = (actor, &mut data) {
                map.insert("by".to_owned(), Value::String(actor.to_owned()));
            }
            commit.events.push(NewEvent::new(record.id.as_str(), "imported", data));
            ids.push(record.id);
        }
        if !ids.is_empty() {
            self.store.commit(commit)?;
        }
        Ok(ids)
    }

    /// The record an imported one becomes, refused when its form, stages or outcome
    /// are not in the definitions.
    fn imported_record(
        &self,
        definitions: &Definitions,
        imported: &ImportedRecord,
        id: String,
    ) -> Result<Record, EngineError> {
        let not_applicable =
            |message: String| EngineError::Refused(Refusal::NotApplicable(message));
        let form = definitions
            .forms
            .get(&imported.form)
            .ok_or_else(|| not_applicable(format!("there is no form `{}`", imported.form)))?;
        let flow = definitions
            .flows
            .values()
            .find(|flow| flow.form == imported.form && flow.start_on_create.unwrap_or(true));
        let state = match flow {
            None => None,
            Some(flow) => {
                let mut stages = imported.stages.clone();
                for reached in &stages {
                    if !flow.stages.iter().any(|stage| stage.id == reached.stage) {
                        return Err(not_applicable(format!(
                            "flow `{}` has no stage `{}`",
                            flow.id, reached.stage
                        )));
                    }
                }
                if let Some(ended) = &imported.ended {
                    let terminal = flow
                        .stages
                        .iter()
                        .find(|stage| stage.outcome.as_ref() == Some(&ended.outcome))
                        .ok_or_else(|| {
                            not_applicable(format!(
                                "flow `{}` has no outcome `{}`",
                                flow.id, ended.outcome
                            ))
                        })?;
                    let last_is_terminal = stages.last().is_some_and(|last| {
                        flow.stages.iter().any(|s| {
                            s.id == last.stage && s.outcome.as_ref() == Some(&ended.outcome)
                        })
                    });
                    if !last_is_terminal {
                        stages.push(stagecraft_runtime::ImportedStage {
                            stage: terminal.id.clone(),
                            at: ended.at,
                        });
                    }
                }
                let initial = flow.initial.clone().unwrap_or_else(|| flow.stages[0].id.clone());
                let (stage, entered) = stages
                    .last()
                    .map(|last| (last.stage.clone(), last.at))
                    .unwrap_or((initial.clone(), imported.created_at));
                let mut visited: Vec<Id> = Vec::new();
                for reached in &stages {
                    if !visited.contains(&reached.stage) {
                        visited.push(reached.stage.clone());
                    }
                }
                if visited.is_empty() {
                    visited.push(initial);
                }
                let pack_version = form
                    .pack
                    .as_ref()
                    .and_then(|pack| definitions.packs.iter().find(|p| &p.name == pack))
                    .map(|pack| pack.version.clone())
                    .unwrap_or_default();
                let outcome = flow
                    .stages
                    .iter()
                    .find(|candidate| candidate.id == stage)
                    .and_then(|candidate| candidate.outcome.clone());
                Some(stagecraft_runtime::FlowState {
                    flow: flow.id.clone(),
                    pack_version,
                    stage,
                    stage_entered_at: entered,
                    actions: BTreeMap::new(),
                    approvals: BTreeMap::new(),
                    waiting_for: None,
                    visited,
                    outcome,
                })
            }
        };
        // The import counts as activity: inactivity alerts and a pool's idle return
        // count from now, not from the last date in the other system (which would
        // send every imported customer back to the pool at once).
        let now = self.clock.now_ms();
        Ok(Record {
            id,
            form: imported.form.clone(),
            version: 1,
            owner: imported.owner.clone().filter(|_| form.meta.owned.unwrap_or(true)),
            created_at: imported.created_at,
            updated_at: now,
            last_activity_at: now,
            fields: imported.fields.clone(),
            flow: state,
            parent: None,
            alerts: BTreeMap::new(),
            tasks: BTreeMap::new(),
            timers: std::collections::BTreeSet::new(),
        })
    }
}
