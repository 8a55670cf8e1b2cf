//! Figures from the event log: funnel conversion, cycle times, coverage against
//! targets, SLA breaches, adoption and process-health audit, with SVG charts and CSV
//! tables. Everything is computed from a [`dataset::Dataset`] and the flows' `measures`.

pub mod adoption;
pub mod audit;
pub mod csv;
pub mod dataset;
pub mod figures;
pub mod period;
pub mod svg;
pub mod targets;
