//! The `pool` page.
