//! The server: a JSON API over the engine, with sign-in, per-record authorization,
//! security headers and a background round of timers and scans.
//!
//! [`Server::open`] loads the packs, opens the data folder (an embedded store) and
//! binds; [`Server::run`] serves until Ctrl-C or SIGTERM. [`app`] is the router alone,
//! for tests that call it without a socket. This crate is the only one that knows
//! HTTP; everything it changes goes through [`stagecraft_engine::Engine::execute`].

mod access;
mod api;
mod auth;
mod config;
mod demo;
mod error;
mod headers;
mod problem;
mod server;
mod state;
mod uploads;

pub use api::{MAX_BODY_BYTES, app};
pub use config::{ClockChoice, Config, PasswordCost};
pub use demo::{DEMO_PASSWORD, Demo, DemoLogin};
pub use error::ServerError;
pub use server::Server;
pub use state::{AppState, Startup};
pub use uploads::{FILES_FOLDER, copy_uploads, uploads_beside};
