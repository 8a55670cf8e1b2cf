//! Notifications: turns the outbox rows the engine writes (in the same commit as the
//! change that caused them) into deliveries — the in-app inbox, e-mail over SMTP,
//! 企业微信 / 钉钉 / 飞书 robots and signed webhooks — with retries, a dead-letter list
//! and a stable id per delivery; and writes the scheduled reports packs declare.
//!
//! - **Invariant:** nothing is lost and nothing is delivered twice in bulk. Every
//!   state change is a store commit: planning a row (inbox items, the delivery record,
//!   the row marked handed over) is one commit; each attempt's outcome is one commit,
//!   made after the send. A kill -9 repeats at most the deliveries in flight
//!   ([`worker::IN_FLIGHT`]), each with the same id, which receivers deduplicate by.
//! - **Boundary:** reads the definitions, the org and records through the engine and
//!   writes only its internal records (`_delivery/*`, `_inbox/*`, `_notify_prefs/*`,
//!   `_notify/reports`) and outbox rows of reports; knows no HTTP server.
//!
//! The stable id of a delivery is `<outbox id>.<channel>.<recipient>`, e.g.
//! `42.email.rep01` or `42.wecom.group`: the `webhook-id` header of webhooks, the
//! `Message-ID` (`<42.email.rep01@host>`) and `X-Stagecraft-Notification-Id` of
//! e-mails.

pub mod channels;
pub mod config;
pub mod delivery;
pub mod inbox;
pub mod render;
pub mod reports;
pub mod worker;

pub use config::{ConfigError, NotifyConfig, RetryPolicy, SMTP_URL_VARIABLE, Secret};
pub use delivery::{DeadLetter, Delivery, DeliveryRecord, RetryError, State};
pub use inbox::{InboxItem, InboxPage, Preferences, QuietHours};
pub use render::Rendered;
pub use worker::{IN_FLIGHT, Notifier, NotifyError, Round};
