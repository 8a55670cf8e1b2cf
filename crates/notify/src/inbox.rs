//! The in-app inbox and each person's notification preferences, kept as internal
//! records: `_inbox/<user>/<inverted outbox id>` (so a scan by id returns the newest
//! first), indexed by `user` and, while unread, `unread = <user>`; and
//! `_notify_prefs/<user>`. Inbox items are written in the same commit that hands the
//! outbox row over, so each person gets each notification in the inbox exactly once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stagecraft_model::Channel;
use stagecraft_store::{Commit, IndexValue, Page, RecordId, RecordWrite, Store, StoreError};

/// The internal form of inbox items.
pub const INBOX_FORM: &str = "_inbox";
/// The internal form of preferences.
pub const PREFERENCES_FORM: &str = "_notify_prefs";

/// One notification in someone's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxItem {
    /// The notification id (its outbox id); the same for everyone it was sent to.
    pub id: u64,
    /// The person.
    pub user: String,
    /// The subject.
    pub subject: String,
    /// The message.
    pub text: String,
    /// The record it is about.
    pub record: Option<String>,
    /// The record's form.
    pub form: Option<String>,
    /// A link to the record.
    pub record_url: Option<String>,
    /// Why it was sent (an alert id, `escalation`, a stage, `report:<id>`).
    pub cause: String,
    /// When it was sent (Unix ms).
    pub at: i64,
    /// When the person read it (Unix ms).
    pub read_at: Option<i64>,
}

impl InboxItem {
    /// `_inbox/<user>/<u64::MAX - id, 20 digits>`.
    pub fn record_id(user: &str, id: u64) -> RecordId {
        RecordId::new(format!("{INBOX_FORM}/{user}/{:020}", u64::MAX - id))
    }

    pub(crate) fn write(&self, expected_version: Option<u64>) -> RecordWrite {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let id = Self::record_id(&self.user, self.id);
        let mut write = match expected_version {
            Some(version) => RecordWrite::update(id, INBOX_FORM, version, value),
            None => RecordWrite::create(id, INBOX_FORM, value),
        };
        write = write.indexed("user", self.user.as_str());
        if self.read_at.is_none() {
            write = write.indexed("unread", self.user.as_str());
        }
        write
    }
}

/// A page of someone's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxPage {
    /// How many are unread, in all.
    pub unread: usize,
    /// The notifications, newest first.
    pub items: Vec<InboxItem>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<u64>,
}

/// Someone's inbox, newest first: up to `limit` items older than `before`.
pub fn list(
    store: &dyn Store,
    user: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<InboxPage, StoreError> {
    let limit = limit.clamp(1, 200);
    let page = match before {
        Some(id) => Page::after(InboxItem::record_id(user, id), limit),
        None => Page::first(limit),
    };
    let ids = store.records_by_index(INBOX_FORM, "user", &IndexValue::from(user), page)?;
    let mut items = Vec::new();
    for id in &ids {
        if let Some(stored) = store.record(id)?
            && let Ok(item) = serde_json::from_value::<InboxItem>(stored.value)
        {
            items.push(item);
        }
    }
    let next = (ids.len() == limit).then(|| items.last().map(|item| item.id)).flatten();
    Ok(InboxPage { unread: unread_count(store, user)?, items, next })
}

/// How many notifications the person has not read.
pub fn unread_count(store: &dyn Store, user: &str) -> Result<usize, StoreError> {
    let mut count = 0;
    let mut page = Page::first(1000);
    loop {
        let ids =
            store.records_by_index(INBOX_FORM, "unread", &IndexValue::from(user), page.clone())?;
        count += ids.len();
        match ids.last() {
            Some(last) if ids.len() == page.limit => page = Page::after(last.clone(), page.limit),
            _ => return Ok(count),
        }
    }
}

/// Marks one of the person's notifications read; `None` when they have no such
/// notification. Reading twice keeps the first time.
pub fn mark_read(
    store: &dyn Store,
    user: &str,
    id: u64,
    now: i64,
) -> Result<Option<InboxItem>, StoreError> {
    for _ in 0..5 {
        let Some(stored) = store.record(&InboxItem::record_id(user, id))? else { return Ok(None) };
        let Ok(mut item) = serde_json::from_value::<InboxItem>(stored.value) else {
            return Ok(None);
        };
        if item.read_at.is_some() {
            return Ok(Some(item));
        }
        item.read_at = Some(now);
        let mut commit = Commit::at(now);
        commit.records.push(item.write(Some(stored.version)));
        match store.commit(commit) {
            Ok(_) => return Ok(Some(item)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// Quiet hours, in the server's local time (`timezone` in the settings): from
/// `from` to `to`, across midnight when `to` is earlier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuietHours {
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM`.
    pub to: String,
}

impl QuietHours {
    fn minutes(text: &str) -> Option<i64> {
        let (hours, minutes) = text.split_once(':')?;
        let hours: i64 = hours.parse().ok()?;
        let minutes: i64 = minutes.parse().ok()?;
        ((0..24).contains(&hours) && (0..60).contains(&minutes)).then_some(hours * 60 + minutes)
    }

    /// Whether both times are valid `HH:MM` and differ.
    pub fn is_valid(&self) -> bool {
        matches!((Self::minutes(&self.from), Self::minutes(&self.to)), (Some(a), Some(b)) if a != b)
    }

    /// When the quiet hours around `now` end, or `None` when `now` is not inside them.
    pub fn end_after(&self, now_ms: i64, utc_offset_minutes: i32) -> Option<i64> {
        let from = Self::minutes(&self.from)?;
        let to = Self::minutes(&self.to)?;
        let day_ms = 86_400_000;
        let local = now_ms + i64::from(utc_offset_minutes) * 60_000;
        let midnight = local.div_euclid(day_ms) * day_ms;
        let minute = (local - midnight) / 60_000;
        let inside =
            if from < to { (from..to).contains(&minute) } else { minute >= from || minute < to };
        if !inside {
            return None;
        }
        let mut end = midnight + to * 60_000;
        if end <= local {
            end += day_ms;
        }
        Some(end - i64::from(utc_offset_minutes) * 60_000)
    }
}

/// What a person chose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preferences {
    /// Channels the person does not want (`email`, `wecom`, `dingtalk`, `feishu`):
    /// no e-mail, and no mention in group messages. The inbox cannot be turned off.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub off: Vec<Channel>,
    /// While these hours last, e-mails to the person wait until they end.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
}

fn preferences_id(user: &str) -> RecordId {
    RecordId::new(format!("{PREFERENCES_FORM}/{user}"))
}

/// A person's preferences (the defaults when they set none).
pub fn preferences(store: &dyn Store, user: &str) -> Result<Preferences, StoreError> {
    Ok(store
        .record(&preferences_id(user))?
        .and_then(|stored| serde_json::from_value(stored.value).ok())
        .unwrap_or_default())
}

/// Stores a person's preferences.
pub fn set_preferences(
    store: &dyn Store,
    user: &str,
    preferences: &Preferences,
    now: i64,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(preferences).unwrap_or(Value::Null);
    for _ in 0..5 {
        let write = match store.record(&preferences_id(user))? {
            Some(stored) => RecordWrite::update(
                preferences_id(user),
                PREFERENCES_FORM,
                stored.version,
                value.clone(),
            ),
            None => RecordWrite::create(preferences_id(user), PREFERENCES_FORM, value.clone()),
        };
        let mut commit = Commit::at(now);
        commit.records.push(write);
        match store.commit(commit) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_across_midnight() {
        let quiet = QuietHours { from: "22:00".into(), to: "08:00".into() };
        assert!(quiet.is_valid());
        // 2026-03-02 23:30 at +08:00 is 15:30 UTC.
        let late = chrono::DateTime::parse_from_rfc3339("2026-03-02T23:30:00+08:00")
            .expect("time")
            .timestamp_millis();
        let end = quiet.end_after(late, 480).expect("inside");
        let expected = chrono::DateTime::parse_from_rfc3339("2026-03-03T08:00:00+08:00")
            .expect("time")
            .timestamp_millis();
        assert_eq!(end, expected);
        let noon = chrono::DateTime::parse_from_rfc3339("2026-03-02T12:00:00+08:00")
            .expect("time")
            .timestamp_millis();
        assert_eq!(quiet.end_after(noon, 480), None);
        let early = chrono::DateTime::parse_from_rfc3339("2026-03-03T07:00:00+08:00")
            .expect("time")
            .timestamp_millis();
        assert_eq!(quiet.end_after(early, 480), Some(expected));
        assert!(!QuietHours { from: "25:00".into(), to: "08:00".into() }.is_valid());
    }
}
