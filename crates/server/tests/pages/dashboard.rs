//! The `dashboard` page.
