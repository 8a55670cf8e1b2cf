//! The `import` page.
