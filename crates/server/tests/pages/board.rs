//! The `board` page.
