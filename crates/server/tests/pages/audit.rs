//! The `audit` page.
