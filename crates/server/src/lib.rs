//! The server: a JSON API over the engine, with sign-in, per-record authorization,
//! security headers and a background round of timers and scans.
//!
//! [`Server::open`] loads the packs, opens the data folder (an embedded store) and
//! binds; [`Server::run`] serves until Ctrl-C or SIGTERM. [`app`] is the router alone,
//! for tests that call it without a socket. This crate is the only one that knows
//! HTTP; everything it changes goes through [`stagecraft_engine::Engine::execute`].
//!
//! # Pages
//!
//! Besides the JSON API, `/ui` serves HTML pages generated from the packs (module
//! `pages`): sign-in, a workbench of tasks and records, a form per pack form with
//! messages beside the fields, and a page per record with its stage, key actions,
//! open and closed exits, approvals and history. Handlebars templates in strict mode
//! with HTML escaping, CSRF tokens on every form, no JavaScript, Chinese by default
//! and English with `?lang=en`. They use the same access checks and engine calls as
//! the API and are not part of its OpenAPI document.

mod access;
mod api;
mod auth;
mod config;
mod demo;
mod error;
mod graph;
mod headers;
mod pages;
mod problem;
mod server;
mod state;
mod tokens;
mod uploads;
mod watch;

pub use api::{MAX_BODY_BYTES, app};
pub use config::{ClockChoice, Config, PasswordCost};
pub use demo::{DEMO_PASSWORD, Demo, DemoLogin};
pub use error::ServerError;
pub use server::Server;
pub use state::{AppState, Startup};
pub use uploads::{FILES_FOLDER, copy_uploads, uploads_beside};
