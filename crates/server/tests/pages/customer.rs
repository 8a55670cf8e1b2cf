//! The `customer` page.
