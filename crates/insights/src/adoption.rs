//! Adoption: who uses the system, and how (being built).
