//! The organisation as the packs' org files describe it: the caller, the people and
//! the departments. Read-only: the org changes by editing the org file and
//! restarting. No password data is stored with people, so none can be served.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use stagecraft_model::{Department, Id, User};
use stagecraft_runtime::Directory;

use super::definitions::Label;
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// A person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Person {
    /// The user id, also the login name.
    id: String,
    /// The name.
    name: String,
    /// The roles held.
    roles: Vec<String>,
    /// The department worked in.
    department: Option<String>,
    /// The person they report to.
    manager: Option<String>,
}

impl Person {
    fn of(user: &User) -> Person {
        Person {
            id: user.id.to_string(),
            name: user.name.clone(),
            roles: user.roles.iter().map(Id::to_string).collect(),
            department: user.department.as_ref().map(Id::to_string),
            manager: user.manager.as_ref().map(Id::to_string),
        }
    }
}

/// The caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    /// The user id, also the login name.
    id: String,
    /// The name.
    name: String,
    /// The roles held.
    roles: Vec<String>,
    /// The department worked in.
    department: Option<String>,
    /// The person they report to.
    manager: Option<String>,
    /// The people who report to them directly.
    reports: Vec<String>,
    /// Everyone who reports to them, directly or through others (whose records they
    /// see).
    team: Vec<String>,
    /// The e-mail address notifications go to.
    email: Option<String>,
    /// The mobile phone number.
    phone: Option<String>,
    /// The preferred language (`zh-CN` or `en`).
    locale: Option<String>,
}

fn me_of(org: &Directory, user: &User) -> Me {
    let person = Person::of(user);
    let reports = org
        .users()
        .filter(|other| other.manager.as_ref() == Some(&user.id))
        .map(|other| other.id.to_string())
        .collect();
    Me {
        id: person.id,
        name: person.name,
        roles: person.roles,
        department: person.department,
        manager: person.manager,
        reports,
        team: org.reports_of(user.id.as_str()),
        email: user.email.clone(),
        phone: user.phone.clone(),
        locale: user
            .locale
            .and_then(|locale| serde_json::to_value(locale).ok())
            .and_then(|value| value.as_str().map(str::to_owned)),
    }
}

/// The caller: name, roles, department, manager and the people who report to them.
#[utoipa::path(get, path = "/api/org/me", tag = "org",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, Problem> {
    state.with_org(|org| {
        org.user(&caller.user)
            .map(|user| Json(me_of(org, user)))
            .ok_or_else(|| Problem::unauthorized("the user is no longer in the organisation"))
    })
}

/// The people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct People {
    /// Everyone in the organisation, by id.
    users: Vec<Person>,
}

/// Everyone in the organisation: id, name, roles, department and manager.
#[utoipa::path(get, path = "/api/org/users", tag = "org",
    responses(
        (status = 200, description = "The people, by id", body = People),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn users(State(state): State<AppState>, _caller: Caller) -> Json<People> {
    Json(state.with_org(|org| People { users: org.users().map(Person::of).collect() }))
}

/// A department or team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DepartmentSummary {
    /// The department id.
    id: String,
    /// Its name.
    title: Label,
    /// The department it belongs to.
    parent: Option<String>,
    /// The person who heads it.
    head: Option<String>,
}

impl DepartmentSummary {
    fn of(department: &Department) -> DepartmentSummary {
        DepartmentSummary {
            id: department.id.to_string(),
            title: Label::of(&department.title),
            parent: department.parent.as_ref().map(Id::to_string),
            head: department.head.as_ref().map(Id::to_string),
        }
    }
}

/// The departments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Departments {
    /// Every department, by id.
    departments: Vec<DepartmentSummary>,
}

/// Every department and team, with its parent and head.
#[utoipa::path(get, path = "/api/org/departments", tag = "org",
    responses(
        (status = 200, description = "The departments, by id", body = Departments),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn departments(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<Departments> {
    Json(state.with_org(|org| Departments {
        departments: org.departments().map(DepartmentSummary::of).collect(),
    }))
}
