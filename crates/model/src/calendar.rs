//! `*.calendar.yaml`: working hours, public holidays and make-up working days, which
//! SLAs count against.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Id, Text};

/// A business calendar.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    /// The calendar id (e.g. `china`).
    pub id: Id,
    /// Its name.
    pub title: Text,
    /// The offset from UTC of the calendar's local time, e.g. `+08:00` for China.
    #[schemars(regex(pattern = r"^[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub utc_offset: String,
    /// Working hours for each weekday; a day left out is not a working day.
    pub week: WeekHours,
    /// Days off: single dates or ranges.
    #[serde(default)]
    pub holidays: Vec<DateEntry>,
    /// Make-up working days (调休): weekend dates that are working days. They use
    /// `makeup_hours`, or Monday's hours.
    #[serde(default)]
    pub makeup_workdays: Vec<DateEntry>,
    /// Working hours on make-up working days.
    #[serde(default)]
    pub makeup_hours: Vec<HoursSpan>,
}

/// Working hours per weekday.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeekHours {
    /// Monday.
    #[serde(default)]
    pub monday: Vec<HoursSpan>,
    /// Tuesday.
    #[serde(default)]
    pub tuesday: Vec<HoursSpan>,
    /// Wednesday.
    #[serde(default)]
    pub wednesday: Vec<HoursSpan>,
    /// Thursday.
    #[serde(default)]
    pub thursday: Vec<HoursSpan>,
    /// Friday.
    #[serde(default)]
    pub friday: Vec<HoursSpan>,
    /// Saturday.
    #[serde(default)]
    pub saturday: Vec<HoursSpan>,
    /// Sunday.
    #[serde(default)]
    pub sunday: Vec<HoursSpan>,
}

/// `HH:MM-HH:MM`, e.g. `09:00-12:00`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct HoursSpan(
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$"))]
    pub String,
);

/// A date (`2026-10-01`) or a range of dates, with a name.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateEntry {
    /// A single date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub date: Option<String>,
    /// A range of dates, both ends included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<DateRange>,
    /// What the day is (e.g. 国庆节).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A range of dates, both ends included.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    /// The first day.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub from: String,
    /// The last day.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub to: String,
}
