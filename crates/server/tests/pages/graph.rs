//! The `graph` page.
