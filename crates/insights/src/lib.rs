//! Figures from the event log (being built).
