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

/// Whether `user` may see `record`: as the org says (above), and besides
/// - a record of a pool form (`x-form.pool`) that has no owner, for everyone, so that
///   anyone who may create such records can find and claim it (once claimed, the
///   rules above apply again);
/// - a record of a feedback form (`x-form.feedback`), for everyone: feedback is for
///   the whole company.
pub(crate) fn can_read(
    definitions: &Definitions,
    org: &Directory,
    user: &str,
    record: &Record,
) -> bool {
    let meta = definitions.forms.get(&record.form).map(|form| &form.meta);
    let in_pool = record.owner.is_none() && meta.is_some_and(|meta| meta.pool.is_some());
    let feedback = meta.is_some_and(|meta| meta.feedback.is_some());
    in_pool || feedback || sees_by_org(definitions, org, user, record)
}

/// Whether the org lets `user` see `record`: see the module's description.
pub(crate) fn sees_by_org(
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

/// Whether `user` may change `record` (fields, stage, approvals): whoever the org
/// lets see it, and for a feedback form also the holders of its `handlers` roles. A
/// record in a pool is not changed before someone claims it.
pub(crate) fn can_write(
    definitions: &Definitions,
    org: &Directory,
    user: &str,
    record: &Record,
) -> bool {
    sees_by_org(definitions, org, user, record) || handles_feedback(definitions, org, user, record)
}

/// Whether `user` holds one of the `handlers` roles of the record's feedback form.
pub(crate) fn handles_feedback(
    definitions: &Definitions,
    org: &Directory,
    user: &str,
    record: &Record,
) -> bool {
    let Some(feedback) = definitions.forms.get(&record.form).and_then(|f| f.meta.feedback.as_ref())
    else {
        return false;
    };
    let roles = org.roles_of(user);
    feedback.handlers.iter().any(|handler| roles.iter().any(|held| held == handler.as_str()))
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
