//! Process-health audit (being built).
