//! The durable delivery state: one internal record `_delivery/<outbox id>` per
//! notification that leaves the server, holding each delivery (one per channel and
//! recipient) with its attempts, next attempt, last error and outcome. It is written
//! through the store's atomic commits, so it survives a kill -9 like everything else.
//!
//! Index entries (form `_delivery`): `active = true` while a delivery waits for an
//! attempt, `dead = true` while one is on the dead-letter list.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stagecraft_model::Channel;
use stagecraft_store::{Commit, IndexValue, Page, RecordId, RecordWrite, Store, StoreError};

/// The internal form of delivery records.
pub const DELIVERY_FORM: &str = "_delivery";

/// What happened to a delivery so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver accepted it.
    Sent,
    /// Given up after the last attempt, or refused for good: on the dead-letter list.
    Dead,
    /// Not attempted, and never will be (channel off, no address, turned off by the
    /// user); the reason is in `last_error`.
    Skipped,
}

/// What to send, per kind of channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// An e-mail to one person.
    Email {
        /// The address.
        to: String,
        /// The person's name.
        name: String,
        /// The subject.
        subject: String,
        /// The plain-text part.
        text: String,
        /// The HTML part.
        html: String,
    },
    /// A chat message to a group (WeCom, DingTalk, Feishu), mentioning people.
    Chat {
        /// The message.
        text: String,
        /// Mobile numbers of the people to mention.
        mobiles: Vec<String>,
        /// Their names, for channels that cannot mention by number.
        names: Vec<String>,
    },
    /// A webhook body (the `data` of a Standard Webhooks message).
    Webhook {
        /// The JSON to send.
        body: Value,
    },
    /// Nothing to send (skipped deliveries).
    None,
}

/// One delivery: one channel, one recipient (a user, or `group` for chat robots and
/// `endpoint` for the webhook).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The stable notification id receivers deduplicate by:
    /// `<outbox id>.<channel>.<recipient>`, e.g. `42.email.rep01`.
    pub id: String,
    /// The channel.
    pub channel: Channel,
    /// The user, `group` or `endpoint`.
    pub recipient: String,
    /// Where it stands.
    pub state: State,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    pub next_at: i64,
    /// The last attempt's time.
    #[serde(default)]
    pub last_attempt_at: Option<i64>,
    /// The last error, or why it was skipped.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    #[serde(default)]
    pub sent_at: Option<i64>,
    /// What to send.
    pub payload: Payload,
}

/// The delivery record of one outbox row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The outbox row.
    pub outbox: u64,
    /// When it was planned.
    pub created_at: i64,
    /// The record the notification is about, if any.
    pub record: Option<String>,
    /// Why it was sent (an alert, `escalation`, a stage, `report:<id>`).
    pub cause: String,
    /// The template.
    pub template: String,
    /// A template problem met while rendering (rendered leniently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
}

impl DeliveryRecord {
    /// The record id: `_delivery/<outbox id, 20 digits>`, so ids sort like the outbox.
    pub fn record_id(outbox: u64) -> RecordId {
        RecordId::new(format!("{DELIVERY_FORM}/{outbox:020}"))
    }

    /// Whether a delivery still waits for an attempt.
    pub fn is_active(&self) -> bool {
        self.deliveries.iter().any(|d| d.state == State::Pending)
    }

    /// Whether a delivery is on the dead-letter list.
    pub fn has_dead(&self) -> bool {
        self.deliveries.iter().any(|d| d.state == State::Dead)
    }

    /// The write that stores it, with its index entries.
    pub(crate) fn write(&self, expected_version: Option<u64>) -> RecordWrite {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let id = Self::record_id(self.outbox);
        let mut write = match expected_version {
            Some(version) => RecordWrite::update(id, DELIVERY_FORM, version, value),
            None => RecordWrite::create(id, DELIVERY_FORM, value),
        };
        if self.is_active() {
            write = write.indexed("active", true);
        }
        if self.has_dead() {
            write = write.indexed("dead", true);
        }
        write
    }
}

/// A delivery record with the version it was read at.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The record.
    pub record: DeliveryRecord,
    /// Its store version.
    pub version: u64,
}

/// Reads a delivery record.
pub fn load(store: &dyn Store, outbox: u64) -> Result<Option<Loaded>, StoreError> {
    let Some(stored) = store.record(&DeliveryRecord::record_id(outbox))? else { return Ok(None) };
    Ok(serde_json::from_value(stored.value)
        .ok()
        .map(|record| Loaded { record, version: stored.version }))
}

/// The delivery records indexed under `field = true`, oldest first.
pub fn indexed(store: &dyn Store, field: &str, limit: usize) -> Result<Vec<Loaded>, StoreError> {
    let mut found = Vec::new();
    let mut page = Page::first(limit.clamp(1, 500));
    loop {
        let ids =
            store.records_by_index(DELIVERY_FORM, field, &IndexValue::Bool(true), page.clone())?;
        for id in &ids {
            if let Some(stored) = store.record(id)?
                && let Ok(record) = serde_json::from_value(stored.value)
            {
                found.push(Loaded { record, version: stored.version });
            }
        }
        match ids.last() {
            Some(last) if ids.len() == page.limit && found.len() < limit => {
                page = Page::after(last.clone(), page.limit)
            }
            _ => break,
        }
    }
    found.truncate(limit);
    Ok(found)
}

/// A delivery on the dead-letter list, as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The delivery id (`<outbox>.<channel>.<recipient>`).
    pub id: String,
    /// The outbox row.
    pub outbox: u64,
    /// The channel: `email`, `wecom`, `dingtalk`, `feishu` or `webhook`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub channel: Channel,
    /// The user, `group` or `endpoint`.
    pub recipient: String,
    /// The record the notification is about.
    pub record: Option<String>,
    /// Why it was sent.
    pub cause: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's time (Unix ms).
    pub last_attempt_at: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
}

/// Every dead delivery, oldest notification first (at most `limit`).
pub fn dead_letters(store: &dyn Store, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    let mut letters = Vec::new();
    for loaded in indexed(store, "dead", limit)? {
        let record = &loaded.record;
        for delivery in record.deliveries.iter().filter(|d| d.state == State::Dead) {
            letters.push(DeadLetter {
                id: delivery.id.clone(),
                outbox: record.outbox,
                channel: delivery.channel,
                recipient: delivery.recipient.clone(),
                record: record.record.clone(),
                cause: record.cause.clone(),
                attempts: delivery.attempts,
                last_attempt_at: delivery.last_attempt_at,
                last_error: delivery.last_error.clone(),
            });
        }
    }
    letters.truncate(limit);
    Ok(letters)
}

/// Why a retry was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such delivery.
    #[error("no delivery `{0}`")]
    Unknown(String),
    /// It is not on the dead-letter list.
    #[error("delivery `{0}` is not dead-lettered")]
    NotDead(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts a dead delivery back in line for an attempt now, with a fresh count of
/// attempts; it keeps its id, so a receiver that did get it can tell.
pub fn retry(store: &dyn Store, delivery_id: &str, now: i64) -> Result<Delivery, RetryError> {
    let outbox: u64 = delivery_id
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| RetryError::Unknown(delivery_id.to_owned()))?;
    for _ in 0..5 {
        let Some(mut loaded) = load(store, outbox)? else {
            return Err(RetryError::Unknown(delivery_id.to_owned()));
        };
        let Some(delivery) = loaded.record.deliveries.iter_mut().find(|d| d.id == delivery_id)
        else {
            return Err(RetryError::Unknown(delivery_id.to_owned()));
        };
        if delivery.state != State::Dead {
            return Err(RetryError::NotDead(delivery_id.to_owned()));
        }
        delivery.state = State::Pending;
        delivery.attempts = 0;
        delivery.next_at = now;
        let retried = delivery.clone();
        let mut commit = Commit::at(now);
        commit.records.push(loaded.record.write(Some(loaded.version)));
        match store.commit(commit) {
            Ok(_) => return Ok(retried),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(RetryError::Unknown(delivery_id.to_owned()))
}
