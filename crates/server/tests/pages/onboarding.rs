//! The `onboarding` page.
