//! Who may see and change which record, decided here and nowhere else.
//!
//! A person sees a record when
//! - they hold a role that a pack declares with `sees: all` (the shipped base pack
//!   gives it to the administrator and the sales director), or
//! - they own it, or its owner reports to them (directly or through others), or
//! - they head the owner's department or a department above it, or
//! - the record has an open task for them or for a role they hold (this is how legal
//!   and finance see what is routed to them, and for as long as it is).
//!
//! Whoever may see a record may ask to change it; the flow itself then decides
//! (transition roles, approvers, gates). A record someone may not see answers 404,
//! like one that does not exist, so ids do not leak.

use stagecraft_model::{Id, RoleSees};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Directory, Org, Record};

/// Whether `user` may see `record`.
pub(crate) fn can_read(
    definitions: &Definitions,
    org: &Directory,
    user: &str,
    record: &Record,
) -> bool {
    let roles = org.roles_of(user);
    let sees_all = |role: &String| {
        definitions
            .roles
            .get(&Id::from(role.as_str()))
            .is_some_and(|declared| declared.sees == Some(RoleSees::All))
    };
    if roles.iter().any(sees_all) {
        return true;
    }
    if let Some(owner) = record.owner.as_deref() {
        if owner == user
            || org.reports_of(user).iter().any(|report| report == owner)
            || heads_department_of(org, user, owner)
        {
            return true;
        }
    }
    record.tasks.values().any(|task| {
        task.assignee.as_deref() == Some(user)
            || task.role.as_ref().is_some_and(|role| roles.iter().any(|held| held == role.as_str()))
    })
}

/// Whether `user` may change `record` (fields, stage, approvals).
pub(crate) fn can_write(
    definitions: &Definitions,
    org: &Directory,
    user: &str,
    record: &Record,
) -> bool {
    can_read(definitions, org, user, record)
}

/// Whether `user` heads the department of `owner` or one above it.
fn heads_department_of(org: &Directory, user: &str, owner: &str) -> bool {
    let mut current: Option<Id> = org.user(owner).and_then(|person| person.department.clone());
    // Org files could make departments each other's parents; the walk stays bounded.
    for _ in 0..=org.departments().count() {
        let Some(id) = current else { return false };
        let Some(department) = org.departments().find(|department| department.id == id) else {
            return false;
        };
        if department.head.as_ref().is_some_and(|head| head.as_str() == user) {
            return true;
        }
        current = department.parent.clone();
    }
    false
}
