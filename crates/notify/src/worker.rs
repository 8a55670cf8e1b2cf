//! The delivery worker: takes the outbox rows the engine wrote, plans their
//! deliveries, and sends them with retries.
//!
//! 1. **Plan** (one store commit per outbox row): render the template for each reader,
//!    write the inbox items and the `_delivery/<outbox id>` record, and mark the outbox
//!    row delivered (handed over). A crash before the commit plans the row again; after
//!    it, nothing is planned twice.
//! 2. **Send**: every pending delivery whose time has come is sent, then its outcome
//!    is committed (sent; or a retry after an exponential backoff with jitter; or the
//!    dead-letter list after the last attempt or a final refusal). Deliver first, then
//!    mark: a crash between the two sends that delivery again after the restart, with
//!    the same id. At most [`IN_FLIGHT`] deliveries are between the two at any time,
//!    so a crash repeats at most that many (the crash window).

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use stagecraft_engine::Engine;
use stagecraft_model::Channel;
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Directory, Record};
use stagecraft_store::{Commit, OutboxId, OutboxRow, Store, StoreError};

use crate::channels::{Channels, SendError};
use crate::config::NotifyConfig;
use crate::delivery::{self, Delivery, DeliveryRecord, Loaded, Payload, State};
use crate::inbox::{self, InboxItem};
use crate::render::{self, Rendered};
use crate::reports;

/// How many deliveries may be sent at once (and so repeated after a crash).
pub const IN_FLIGHT: usize = 4;

/// How often the worker looks for work when idle.
pub const POLL: Duration = Duration::from_millis(500);

/// What went wrong in a round.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A blocking task did not finish.
    #[error("worker: {0}")]
    Join(String),
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Outbox rows planned.
    pub planned: usize,
    /// Scheduled reports written to the outbox.
    pub reports: usize,
    /// Deliveries the receivers accepted.
    pub sent: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Deliveries put on the dead-letter list.
    pub dead: usize,
}

/// The delivery worker.
#[derive(Clone, Debug)]
pub struct Notifier {
    engine: Arc<Engine>,
    config: Arc<NotifyConfig>,
    channels: Channels,
}

impl Notifier {
    /// A worker over the engine's store with these settings.
    pub fn new(engine: Arc<Engine>, config: NotifyConfig) -> Result<Notifier, String> {
        let config = Arc::new(config);
        let channels = Channels::new(config.clone())?;
        Ok(Notifier { engine, config, channels })
    }

    /// The settings.
    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// Runs rounds forever (until the task is dropped), pausing [`POLL`] when a round
    /// found nothing to do.
    pub async fn run(self) {
        loop {
            match self.round().await {
                Ok(round) if round.planned + round.sent + round.retried + round.dead > 0 => {}
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(error) => {
                    eprintln!("error: delivering notifications: {error}");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// One round: write due scheduled reports, plan the pending outbox rows, send the
    /// due deliveries.
    pub async fn round(&self) -> Result<Round, NotifyError> {
        let engine = self.engine.clone();
        let config = self.config.clone();
        let (reports, planned) = blocking(move || {
            let reports = reports::run_due(&engine)?;
            let planned = plan_pending(&engine, &config, 200)?;
            Ok((reports, planned))
        })
        .await?;
        let mut round = self.send_due().await?;
        round.planned = planned;
        round.reports = reports;
        Ok(round)
    }

    /// Sends every due delivery, [`IN_FLIGHT`] at a time.
    async fn send_due(&self) -> Result<Round, NotifyError> {
        let engine = self.engine.clone();
        let due: Vec<Loaded> = blocking(move || {
            let now = engine.now();
            Ok(delivery::indexed(engine.store().as_ref(), "active", 1000)?
                .into_iter()
                .filter(|loaded| {
                    loaded
                        .record
                        .deliveries
                        .iter()
                        .any(|d| d.state == State::Pending && d.next_at <= now)
                })
                .collect())
        })
        .await?;
        let mut round = Round::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut queue = due.into_iter();
        loop {
            while tasks.len() < IN_FLIGHT {
                let Some(loaded) = queue.next() else { break };
                let worker = self.clone();
                tasks.spawn(async move { worker.send_record(loaded.record.outbox).await });
            }
            let Some(done) = tasks.join_next().await else { break };
            let part = done.map_err(|error| NotifyError::Join(error.to_string()))??;
            round.sent += part.sent;
            round.retried += part.retried;
            round.dead += part.dead;
        }
        Ok(round)
    }

    /// Sends the due deliveries of one notification, one after the other, committing
    /// each outcome before the next send.
    async fn send_record(&self, outbox: u64) -> Result<Round, NotifyError> {
        let mut round = Round::default();
        let mut tried = BTreeSet::new();
        loop {
            let engine = self.engine.clone();
            let Some(loaded) =
                blocking(move || Ok(delivery::load(engine.store().as_ref(), outbox)?)).await?
            else {
                return Ok(round);
            };
            let now = self.engine.now();
            let Some(next) = loaded
                .record
                .deliveries
                .iter()
                .find(|d| d.state == State::Pending && d.next_at <= now && !tried.contains(&d.id))
                .cloned()
            else {
                return Ok(round);
            };
            tried.insert(next.id.clone());
            let outcome = self.channels.send(&next, now).await;
            let engine = self.engine.clone();
            let retry = self.config.retry;
            let id = next.id.clone();
            let state = blocking(move || {
                record_outcome(engine.store().as_ref(), outbox, &id, outcome, engine.now(), retry)
            })
            .await?;
            match state {
                Some(State::Sent) => round.sent += 1,
                Some(State::Dead) => round.dead += 1,
                Some(_) => round.retried += 1,
                None => {}
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NotifyError> + Send + 'static,
) -> Result<T, NotifyError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| NotifyError::Join(error.to_string()))?
}

/// Commits the outcome of one attempt; returns the delivery's new state.
fn record_outcome(
    store: &dyn Store,
    outbox: u64,
    delivery_id: &str,
    outcome: Result<(), SendError>,
    now: i64,
    retry: crate::config::RetryPolicy,
) -> Result<Option<State>, NotifyError> {
    for _ in 0..10 {
        let Some(mut loaded) = delivery::load(store, outbox)? else { return Ok(None) };
        let Some(entry) = loaded.record.deliveries.iter_mut().find(|d| d.id == delivery_id) else {
            return Ok(None);
        };
        if entry.state != State::Pending {
            return Ok(Some(entry.state));
        }
        entry.attempts += 1;
        entry.last_attempt_at = Some(now);
        match &outcome {
            Ok(()) => {
                entry.state = State::Sent;
                entry.sent_at = Some(now);
                entry.last_error = None;
            }
            Err(error) => {
                entry.last_error = Some(error.message().to_owned());
                let permanent = matches!(error, SendError::Permanent(_));
                if permanent || entry.attempts >= retry.attempts {
                    entry.state = State::Dead;
                } else {
                    entry.next_at = now + backoff_ms(retry, entry.attempts);
                }
            }
        }
        let state = entry.state;
        let mut commit = Commit::at(now);
        commit.records.push(loaded.record.write(Some(loaded.version)));
        match store.commit(commit) {
            Ok(_) => return Ok(Some(state)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(None)
}

/// The wait before attempt `attempts + 1`: the first delay doubled per failure, capped,
/// then "equal jitter" (a random point in its upper half), so that many failed
/// deliveries do not come back at the same moment.
pub fn backoff_ms(retry: crate::config::RetryPolicy, attempts: u32) -> i64 {
    let exponent = attempts.saturating_sub(1).min(30);
    let delay =
        retry.first_delay_ms.saturating_mul(1_i64 << exponent).min(retry.max_delay_ms).max(1);
    let half = delay / 2;
    half + fastrand::i64(0..=delay - half)
}

/// Plans up to `limit` pending outbox rows, one commit each; returns how many.
pub fn plan_pending(
    engine: &Engine,
    config: &NotifyConfig,
    limit: usize,
) -> Result<usize, NotifyError> {
    let store = engine.store().clone();
    let rows = store.outbox_pending(limit)?;
    let mut planned = 0;
    for row in rows {
        let definitions = engine.definitions();
        let org = engine.org();
        let commit = {
            let org = org.read().unwrap_or_else(PoisonError::into_inner);
            plan(engine, &definitions, &org, config, &row, engine.now())?
        };
        match store.commit(commit) {
            Ok(_) => planned += 1,
            // Another worker planned it meanwhile (its inbox items exist): fine.
            Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(planned)
}

/// The notification an outbox row carries (engine notifications and reports).
#[derive(Debug, Default)]
struct Row {
    record: Option<String>,
    to: Vec<String>,
    template: String,
    channels: Vec<Channel>,
    cause: String,
    report: Option<Value>,
}

fn read_row(value: &Value) -> Row {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut to: Vec<String> = Vec::new();
    for user in
        value.get("to").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    {
        if !to.iter().any(|known| known == user) {
            to.push(user.to_owned());
        }
    }
    let mut channels: Vec<Channel> = Vec::new();
    for channel in value.get("channels").and_then(Value::as_array).into_iter().flatten() {
        if let Ok(channel) = serde_json::from_value::<Channel>(channel.clone())
            && !channels.contains(&channel)
        {
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        channels.push(Channel::Inbox);
    }
    Row {
        record: text("record").filter(|r| !r.is_empty()),
        to,
        template: text("template").unwrap_or_default(),
        channels,
        cause: text("cause").unwrap_or_default(),
        report: value.get("report").cloned(),
    }
}

/// A deep link to a record's page.
pub fn record_url(config: &NotifyConfig, form: &str, record: &str) -> String {
    let segment = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!("{}/ui/records/{}/{}", config.public_url, segment(form), segment(record))
}

/// What a template sees, apart from the reader: `record` (its fields plus `id`,
/// `form`, `stage`, `owner`), `record_url`, `task` (the open task the cause opened
/// on the record), `cause`, `alert` and `report`.
pub fn base_context(
    definitions: &Definitions,
    config: &NotifyConfig,
    record: Option<&Record>,
    cause: &str,
    report: Option<&Value>,
) -> Map<String, Value> {
    let mut context = Map::new();
    if let Some(record) = record {
        let mut fields = record.fields.clone();
        fields.insert("id".into(), json!(record.id));
        fields.insert("form".into(), json!(record.form));
        if let Some(owner) = &record.owner {
            fields.insert("owner".into(), json!(owner));
        }
        if let Some(flow) = &record.flow {
            fields.insert("stage".into(), json!(flow.stage));
        }
        let url = record_url(config, record.form.as_str(), &record.id);
        let marker = format!("/alert/{cause}/");
        if let Some(task) = record.tasks.values().rfind(|task| task.key.contains(&marker)) {
            context.insert(
                "task".into(),
                json!({
                    "key": task.key,
                    "title": task.title.get(&config.locale),
                    "due": task.due,
                    "url": url,
                }),
            );
        }
        context.insert("record".into(), Value::Object(fields));
        context.insert("record_url".into(), json!(url));
    }
    context.insert("cause".into(), json!(cause));
    if let Some(alert) = definitions.alerts.iter().find(|alert| alert.id.as_str() == cause) {
        context.insert(
            "alert".into(),
            json!({"id": alert.id, "title": alert.title.get(&config.locale)}),
        );
    }
    if let Some(report) = report {
        context.insert("report".into(), report.clone());
        if let Some(url) = report.get("url") {
            context.insert("record_url".into(), url.clone());
        }
    }
    context
}

/// Everything a notification becomes, in one commit: inbox items, the delivery
/// record, and the outbox row marked handed over.
fn plan(
    engine: &Engine,
    definitions: &Definitions,
    org: &Directory,
    config: &NotifyConfig,
    row: &OutboxRow,
    now: i64,
) -> Result<Commit, NotifyError> {
    let store = engine.store();
    let notification = read_row(&row.data);
    let record = match &notification.record {
        Some(id) => engine.record(id).ok().flatten(),
        None => None,
    };
    let base = base_context(
        definitions,
        config,
        record.as_ref(),
        &notification.cause,
        notification.report.as_ref(),
    );
    let at = row.data.get("at").and_then(Value::as_i64).unwrap_or(row.created_at_ms);
    let mut warnings = Vec::new();
    let render_for = |locale: &str, recipient: Option<(&str, &str)>, warnings: &mut Vec<String>| {
        let mut context = base.clone();
        if let Some((id, name)) = recipient {
            context.insert("recipient".into(), json!({"id": id, "name": name}));
        }
        let mut rendered = match render::render(
            definitions,
            &notification.template,
            locale,
            &Value::Object(context),
        ) {
            Ok(rendered) => rendered,
            Err(error) => {
                warnings.push(error.to_string());
                fallback(definitions, &notification, locale)
            }
        };
        if let Some(report) = &notification.report {
            rendered.html = reports::append_figures(&rendered.html, report, &rendered.locale);
        }
        if let Some(warning) = &rendered.warning
            && !warnings.contains(warning)
        {
            warnings.push(warning.clone());
        }
        rendered
    };

    let mut commit = Commit::at(now);
    commit.delivered.push(OutboxId(row.id.0));
    let outbox = row.id.0;
    let mut deliveries: Vec<Delivery> = Vec::new();
    let pending = |channel: Channel, recipient: &str, payload: Payload, next_at: i64| Delivery {
        id: format!("{outbox}.{}.{recipient}", channel_name(channel)),
        channel,
        recipient: recipient.to_owned(),
        state: State::Pending,
        attempts: 0,
        next_at,
        last_attempt_at: None,
        last_error: None,
        sent_at: None,
        payload,
    };
    let skipped = |channel: Channel, recipient: &str, why: &str| Delivery {
        state: State::Skipped,
        last_error: Some(why.to_owned()),
        ..pending(channel, recipient, Payload::None, now)
    };

    // The readers, with their org entries and preferences.
    struct Reader {
        id: String,
        name: String,
        email: Option<String>,
        phone: Option<String>,
        locale: String,
        preferences: inbox::Preferences,
    }
    let mut readers = Vec::new();
    for user in &notification.to {
        let Some(entry) = org.user(user) else {
            warnings.push(format!("unknown user `{user}`"));
            continue;
        };
        let locale = match entry.locale {
            Some(stagecraft_model::Locale::En) => "en".to_owned(),
            Some(stagecraft_model::Locale::ZhCn) => "zh-CN".to_owned(),
            None => config.locale.clone(),
        };
        readers.push(Reader {
            id: user.clone(),
            name: entry.name.clone(),
            email: entry.email.clone().filter(|e| !e.trim().is_empty()),
            phone: entry.phone.clone().filter(|p| !p.trim().is_empty()),
            locale,
            preferences: inbox::preferences(store.as_ref(), user)?,
        });
    }

    for channel in &notification.channels {
        match channel {
            Channel::Inbox => {
                for reader in &readers {
                    let rendered =
                        render_for(&reader.locale, Some((&reader.id, &reader.name)), &mut warnings);
                    let item = InboxItem {
                        id: outbox,
                        user: reader.id.clone(),
                        subject: rendered.subject,
                        text: rendered.text,
                        record: notification.record.clone(),
                        form: record.as_ref().map(|r| r.form.to_string()),
                        record_url: base
                            .get("record_url")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        cause: notification.cause.clone(),
                        at,
                        read_at: None,
                    };
                    // Planned once: a second plan of the same row cannot happen, since
                    // this commit also marks the row handed over.
                    commit.records.push(item.write(None));
                }
            }
            Channel::Email => {
                for reader in &readers {
                    let delivery = if config.email.is_none() {
                        skipped(*channel, &reader.id, "e-mail is not configured")
                    } else if reader.preferences.off.contains(channel) {
                        skipped(*channel, &reader.id, "turned off by the user")
                    } else if let Some(address) = &reader.email {
                        let rendered = render_for(
                            &reader.locale,
                            Some((&reader.id, &reader.name)),
                            &mut warnings,
                        );
                        let next_at = reader
                            .preferences
                            .quiet_hours
                            .as_ref()
                            .and_then(|quiet| quiet.end_after(now, config.utc_offset_minutes))
                            .unwrap_or(now);
                        pending(
                            *channel,
                            &reader.id,
                            Payload::Email {
                                to: address.clone(),
                                name: reader.name.clone(),
                                subject: rendered.subject,
                                text: rendered.text,
                                html: rendered.html,
                            },
                            next_at,
                        )
                    } else {
                        skipped(*channel, &reader.id, "no e-mail address in the org")
                    };
                    deliveries.push(delivery);
                }
            }
            Channel::Wecom | Channel::Dingtalk | Channel::Feishu => {
                let configured = match channel {
                    Channel::Wecom => config.wecom.is_some(),
                    Channel::Dingtalk => config.dingtalk.is_some(),
                    _ => config.feishu.is_some(),
                };
                if !configured {
                    deliveries.push(skipped(*channel, "group", "the channel is not configured"));
                    continue;
                }
                let mentioned: Vec<&Reader> =
                    readers.iter().filter(|r| !r.preferences.off.contains(channel)).collect();
                if mentioned.is_empty() && !readers.is_empty() {
                    deliveries.push(skipped(*channel, "group", "turned off by every recipient"));
                    continue;
                }
                let rendered = render_for(&config.locale, None, &mut warnings);
                let text = chat_text(&rendered);
                deliveries.push(pending(
                    *channel,
                    "group",
                    Payload::Chat {
                        text,
                        mobiles: mentioned.iter().filter_map(|r| r.phone.clone()).collect(),
                        names: mentioned.iter().map(|r| r.name.clone()).collect(),
                    },
                    now,
                ));
            }
            Channel::Webhook => {
                if config.webhook.is_none() {
                    deliveries.push(skipped(*channel, "endpoint", "the webhook is not configured"));
                    continue;
                }
                let rendered = render_for(&config.locale, None, &mut warnings);
                let id = format!("{outbox}.webhook.endpoint");
                let body = json!({
                    "id": id,
                    "notification": outbox,
                    "record": notification.record,
                    "form": record.as_ref().map(|r| r.form.to_string()),
                    "record_url": base.get("record_url"),
                    "cause": notification.cause,
                    "template": notification.template,
                    "to": readers.iter().map(|r| json!({"id": r.id, "name": r.name, "email": r.email})).collect::<Vec<_>>(),
                    "subject": rendered.subject,
                    "text": rendered.text,
                    "at": at,
                });
                deliveries.push(pending(*channel, "endpoint", Payload::Webhook { body }, now));
            }
        }
    }

    if !deliveries.is_empty() {
        let record = DeliveryRecord {
            outbox,
            created_at: now,
            record: notification.record.clone(),
            cause: notification.cause.clone(),
            template: notification.template.clone(),
            warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
            deliveries,
        };
        commit.records.push(record.write(None));
    }
    Ok(commit)
}

/// The text of a chat message: the subject, then the body.
fn chat_text(rendered: &Rendered) -> String {
    if rendered.text.starts_with(&rendered.subject) {
        rendered.text.clone()
    } else {
        format!("【{}】\n{}", rendered.subject, rendered.text)
    }
}

/// When the template cannot be rendered at all: the cause's title, so that nobody
/// misses the notification.
fn fallback(definitions: &Definitions, row: &Row, locale: &str) -> Rendered {
    let title = definitions
        .alerts
        .iter()
        .find(|alert| alert.id.as_str() == row.cause)
        .map(|alert| alert.title.get(locale).to_owned())
        .unwrap_or_else(|| row.cause.clone());
    let text = match &row.record {
        Some(record) => format!("{title}: {record}"),
        None => title.clone(),
    };
    Rendered {
        subject: title,
        html: format!("<p>{}</p>", render::escape_html(&text)),
        text,
        locale: locale.to_owned(),
        warning: None,
    }
}

/// `email`, `wecom`, … as in pack files.
pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Inbox => "inbox",
        Channel::Email => "email",
        Channel::Wecom => "wecom",
        Channel::Dingtalk => "dingtalk",
        Channel::Feishu => "feishu",
        Channel::Webhook => "webhook",
    }
}

/// Renders a template against a record for a reader, as the worker would (for the
/// preview endpoint and command).
pub fn preview(
    engine: &Engine,
    config: &NotifyConfig,
    template: &str,
    record: Option<&str>,
    locale: &str,
    reader: Option<&str>,
) -> Result<Rendered, render::RenderError> {
    let definitions = engine.definitions();
    let record = record.and_then(|id| engine.record(id).ok().flatten());
    let cause = definitions
        .alerts
        .iter()
        .find(|alert| alert.notify.as_ref().is_some_and(|n| n.template.as_str() == template))
        .map(|alert| alert.id.to_string())
        .unwrap_or_default();
    let mut context = base_context(&definitions, config, record.as_ref(), &cause, None);
    if let Some(user) = reader {
        let org = engine.org();
        let org = org.read().unwrap_or_else(PoisonError::into_inner);
        let name = org.user(user).map(|u| u.name.clone()).unwrap_or_else(|| user.to_owned());
        context.insert("recipient".into(), json!({"id": user, "name": name}));
    }
    render::render(&definitions, template, locale, &Value::Object(context))
}
