//! The customer's story, end to end, through the HTTP API: one module per requirement
//! of the sales, contract, alert, split-deal and after-sales packs. Each test starts a
//! server (in-process, on the shipped packs, the demo company and a manual clock),
//! acts as the people of the story do, and asserts on what they see: refusals and
//! their reasons, the tasks in each person's list, the notifications in the outbox
//! and whom they go to, escalations at the right working hour, the stage history.
//!
//! The pack pages (`flows/*/README.md`) tell how to replay each scenario by hand with
//! `stagecraft serve --demo --clock manual`.

mod harness;

mod after_sales;
mod alerts;
mod contract;
mod pipeline;
mod split_deal;
