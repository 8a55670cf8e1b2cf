//! The organisation: users, their roles and departments, and reporting lines. Loaded
//! from the packs' org files and changed through this API (people join, move, leave);
//! every change is checked so that reporting lines never form a cycle and nobody
//! refers to an unknown department.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stagecraft_model::{Department, Id, OrgFile, Text, User};

use crate::machine::Org;

/// Why an org change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    /// The user or department does not exist.
    #[error("unknown {kind} `{id}`")]
    Unknown {
        /// `user` or `department`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// The change would make someone their own (indirect) manager.
    #[error("`{user}` cannot report to `{manager}`: {manager} already reports to {user}")]
    Cycle {
        /// The user.
        user: String,
        /// The manager.
        manager: String,
    },
    /// The id is taken.
    #[error("`{0}` exists already")]
    Exists(String),
}

/// The organisation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Directory {
    users: BTreeMap<String, User>,
    departments: BTreeMap<String, Department>,
}

impl Directory {
    /// Builds the directory from org files (already checked by the loader).
    pub fn from_file(file: &OrgFile) -> Self {
        Directory {
            users: file.users.iter().map(|user| (user.id.to_string(), user.clone())).collect(),
            departments: file
                .departments
                .iter()
                .map(|department| (department.id.to_string(), department.clone()))
                .collect(),
        }
    }

    /// Everyone.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Every department.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// One user.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// Adds a person.
    pub fn add_user(&mut self, user: User) -> Result<(), OrgError> {
        if self.users.contains_key(user.id.as_str()) {
            return Err(OrgError::Exists(user.id.to_string()));
        }
        if let Some(department) = &user.department {
            self.require_department(department.as_str())?;
        }
        if let Some(manager) = &user.manager {
            self.require_user(manager.as_str())?;
        }
        self.users.insert(user.id.to_string(), user);
        Ok(())
    }

    /// Removes a person; their reports move up to the person's own manager.
    pub fn remove_user(&mut self, id: &str) -> Result<User, OrgError> {
        let user = self.users.remove(id).ok_or_else(|| unknown("user", id))?;
        for other in self.users.values_mut() {
            if other.manager.as_ref().is_some_and(|manager| manager.as_str() == id) {
                other.manager = user.manager.clone();
            }
        }
        for department in self.departments.values_mut() {
            if department.head.as_ref().is_some_and(|head| head.as_str() == id) {
                department.head = None;
            }
        }
        Ok(user)
    }

    /// Changes who a person reports to (`None`: nobody).
    pub fn set_manager(&mut self, user: &str, manager: Option<&str>) -> Result<(), OrgError> {
        self.require_user(user)?;
        if let Some(manager) = manager {
            self.require_user(manager)?;
            // Walk up from the new manager: meeting the user would close a loop.
            let mut current = Some(manager.to_owned());
            let mut seen = BTreeSet::new();
            while let Some(next) = current {
                if next == user {
                    return Err(OrgError::Cycle {
                        user: user.to_owned(),
                        manager: manager.to_owned(),
                    });
                }
                if !seen.insert(next.clone()) {
                    break;
                }
                current = self.users.get(&next).and_then(|u| u.manager.as_ref().map(Id::to_string));
            }
        }
        if let Some(entry) = self.users.get_mut(user) {
            entry.manager = manager.map(Id::from);
        }
        Ok(())
    }

    /// Moves a person to a department.
    pub fn set_department(&mut self, user: &str, department: Option<&str>) -> Result<(), OrgError> {
        self.require_user(user)?;
        if let Some(department) = department {
            self.require_department(department)?;
        }
        if let Some(entry) = self.users.get_mut(user) {
            entry.department = department.map(Id::from);
        }
        Ok(())
    }

    /// Gives a person a role.
    pub fn grant_role(&mut self, user: &str, role: &str) -> Result<(), OrgError> {
        let entry = self.users.get_mut(user).ok_or_else(|| unknown("user", user))?;
        if !entry.roles.iter().any(|held| held.as_str() == role) {
            entry.roles.push(Id::from(role));
        }
        Ok(())
    }

    /// Takes a role away.
    pub fn revoke_role(&mut self, user: &str, role: &str) -> Result<(), OrgError> {
        let entry = self.users.get_mut(user).ok_or_else(|| unknown("user", user))?;
        entry.roles.retain(|held| held.as_str() != role);
        Ok(())
    }

    /// Adds a department.
    pub fn add_department(
        &mut self,
        id: &str,
        title: Text,
        parent: Option<&str>,
        head: Option<&str>,
    ) -> Result<(), OrgError> {
        if self.departments.contains_key(id) {
            return Err(OrgError::Exists(id.to_owned()));
        }
        if let Some(parent) = parent {
            self.require_department(parent)?;
        }
        if let Some(head) = head {
            self.require_user(head)?;
        }
        self.departments.insert(
            id.to_owned(),
            Department {
                id: Id::from(id),
                title,
                parent: parent.map(Id::from),
                head: head.map(Id::from),
            },
        );
        Ok(())
    }

    /// Names the head of a department.
    pub fn set_head(&mut self, department: &str, head: Option<&str>) -> Result<(), OrgError> {
        if let Some(head) = head {
            self.require_user(head)?;
        }
        let entry = self
            .departments
            .get_mut(department)
            .ok_or_else(|| unknown("department", department))?;
        entry.head = head.map(Id::from);
        Ok(())
    }

    /// The people who report to a user, directly or through others.
    pub fn reports_of(&self, user: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![user.to_owned()];
        while let Some(manager) = pending.pop() {
            for other in self.users.values() {
                if other.manager.as_ref().is_some_and(|m| m.as_str() == manager)
                    && !found.contains(&other.id.to_string())
                {
                    found.push(other.id.to_string());
                    pending.push(other.id.to_string());
                }
            }
        }
        found.sort();
        found
    }

    fn require_user(&self, id: &str) -> Result<(), OrgError> {
        if self.users.contains_key(id) { Ok(()) } else { Err(unknown("user", id)) }
    }

    fn require_department(&self, id: &str) -> Result<(), OrgError> {
        if self.departments.contains_key(id) { Ok(()) } else { Err(unknown("department", id)) }
    }
}

fn unknown(kind: &'static str, id: &str) -> OrgError {
    OrgError::Unknown { kind, id: id.to_owned() }
}

impl Org for Directory {
    fn manager(&self, user: &str) -> Option<String> {
        self.users.get(user)?.manager.as_ref().map(Id::to_string)
    }

    fn department(&self, user: &str) -> Option<String> {
        self.users.get(user)?.department.as_ref().map(Id::to_string)
    }

    /// The head of a department, or of the nearest department above it that has one.
    fn head(&self, department: &str) -> Option<String> {
        let mut current = self.departments.get(department);
        let mut steps = 0;
        while let Some(entry) = current {
            if let Some(head) = &entry.head {
                return Some(head.to_string());
            }
            steps += 1;
            if steps > self.departments.len() {
                return None;
            }
            current =
                entry.parent.as_ref().and_then(|parent| self.departments.get(parent.as_str()));
        }
        None
    }

    fn role_members(&self, role: &str) -> Vec<String> {
        self.users
            .values()
            .filter(|user| user.roles.iter().any(|held| held.as_str() == role))
            .map(|user| user.id.to_string())
            .collect()
    }

    fn roles_of(&self, user: &str) -> Vec<String> {
        self.users
            .get(user)
            .map(|u| u.roles.iter().map(Id::to_string).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, manager: Option<&str>, department: Option<&str>, roles: &[&str]) -> User {
        User {
            id: Id::from(id),
            name: id.to_owned(),
            email: None,
            phone: None,
            department: department.map(Id::from),
            manager: manager.map(Id::from),
            roles: roles.iter().map(|role| Id::from(*role)).collect(),
            locale: None,
        }
    }

    fn company() -> Directory {
        let mut directory = Directory::default();
        directory.add_department("sales", Text::Plain("销售部".into()), None, None).expect("ok");
        directory
            .add_department("sales-east", Text::Plain("华东".into()), Some("sales"), None)
            .expect("ok");
        directory
            .add_user(person("director", None, Some("sales"), &["sales_director"]))
            .expect("ok");
        directory
            .add_user(person(
                "mgr-east",
                Some("director"),
                Some("sales-east"),
                &["regional_manager"],
            ))
            .expect("ok");
        directory
            .add_user(person("rep01", Some("mgr-east"), Some("sales-east"), &["sales_rep"]))
            .expect("ok");
        directory.set_head("sales", Some("director")).expect("ok");
        directory
    }

    #[test]
    fn reporting_lines_and_heads_resolve() {
        let directory = company();
        assert_eq!(directory.manager("rep01").as_deref(), Some("mgr-east"));
        // sales-east has no head of its own: the head of sales answers.
        assert_eq!(directory.head("sales-east").as_deref(), Some("director"));
        assert_eq!(directory.role_members("sales_rep"), ["rep01"]);
        assert_eq!(directory.reports_of("director"), ["mgr-east", "rep01"]);
    }

    #[test]
    fn a_reporting_cycle_is_refused() {
        let mut directory = company();
        let refused = directory.set_manager("director", Some("rep01"));
        assert!(matches!(refused, Err(OrgError::Cycle { .. })), "{refused:?}");
        assert_eq!(directory.manager("director"), None, "nothing changed");
    }

    #[test]
    fn leaving_moves_reports_up() {
        let mut directory = company();
        directory.remove_user("mgr-east").expect("ok");
        assert_eq!(directory.manager("rep01").as_deref(), Some("director"));
        assert!(matches!(directory.grant_role("mgr-east", "x"), Err(OrgError::Unknown { .. })));
    }
}
