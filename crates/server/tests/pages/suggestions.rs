//! The `suggestions` page.
