//! The `todos` page.
