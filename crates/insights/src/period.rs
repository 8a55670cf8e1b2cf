//! Reporting periods: a month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`),
//! as a half-open range of Unix milliseconds in a local time (the flow calendar's
//! offset from UTC), and the local weeks that cohorts are grouped by.

use chrono::{Datelike, Duration, FixedOffset, NaiveDate, TimeZone};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// A period, `[start, end)` in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// The period as written (`2026-11`, `2026-Q4`, `2026`).
    pub label: String,
    /// The first millisecond.
    pub start: i64,
    /// The first millisecond after it.
    pub end: i64,
    /// The offset from UTC the period is counted in, in minutes.
    pub utc_offset_minutes: i32,
}

impl Period {
    /// Reads `2026-11`, `2026-Q4` or `2026`; `None` for anything else.
    pub fn parse(label: &str, utc_offset_minutes: i32) -> Option<Period> {
        let label = label.trim();
        let (first, last) = match label.split_once('-') {
            None => {
                let year = year(label)?;
                (NaiveDate::from_ymd_opt(year, 1, 1)?, NaiveDate::from_ymd_opt(year + 1, 1, 1)?)
            }
            Some((year_text, rest)) => {
                let year = year(year_text)?;
                let (month, months) = match rest.strip_prefix('Q') {
                    Some(quarter) => {
                        let quarter: u32 = quarter.parse().ok().filter(|q| (1..=4).contains(q))?;
                        (quarter * 3 - 2, 3)
                    }
                    None if rest.len() == 2 => {
                        (rest.parse().ok().filter(|m| (1..=12).contains(m))?, 1)
                    }
                    None => return None,
                };
                let first = NaiveDate::from_ymd_opt(year, month, 1)?;
                (first, first.checked_add_months(chrono::Months::new(months))?)
            }
        };
        Some(Period {
            label: label.to_owned(),
            start: local_midnight(first, utc_offset_minutes)?,
            end: local_midnight(last, utc_offset_minutes)?,
            utc_offset_minutes,
        })
    }

    /// The month containing `at_ms`.
    pub fn month_of(at_ms: i64, utc_offset_minutes: i32) -> Option<Period> {
        let date = local_date(at_ms, utc_offset_minutes)?;
        Period::parse(&format!("{:04}-{:02}", date.year(), date.month()), utc_offset_minutes)
    }

    /// The quarter containing `at_ms`.
    pub fn quarter_of(at_ms: i64, utc_offset_minutes: i32) -> Option<Period> {
        let date = local_date(at_ms, utc_offset_minutes)?;
        let quarter = (date.month() - 1) / 3 + 1;
        Period::parse(&format!("{:04}-Q{quarter}", date.year()), utc_offset_minutes)
    }

    /// Whether `at_ms` falls in the period.
    pub fn contains(&self, at_ms: i64) -> bool {
        self.start <= at_ms && at_ms < self.end
    }

    /// Whether a local date (`2026-11-30`, or a date-time starting with one) falls in
    /// the period.
    pub fn contains_date(&self, text: &str) -> bool {
        let day = text.get(..10).and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok());
        day.and_then(|day| local_midnight(day, self.utc_offset_minutes))
            .is_some_and(|at| self.contains(at))
    }

    /// The local Mondays of the weeks that overlap the period, in order.
    pub fn weeks(&self) -> Vec<i64> {
        let mut weeks = Vec::new();
        let mut week = week_of(self.start, self.utc_offset_minutes);
        while week < self.end && weeks.len() < 60 {
            weeks.push(week);
            week += 7 * DAY_MS;
        }
        weeks
    }
}

/// The local Monday 00:00 of the week containing `at_ms`.
pub fn week_of(at_ms: i64, utc_offset_minutes: i32) -> i64 {
    let offset = i64::from(utc_offset_minutes) * 60_000;
    let local = at_ms + offset;
    let day = local.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: day 0 is weekday 3 counted from Monday.
    let monday = day - (day + 3).rem_euclid(7);
    monday * DAY_MS - offset
}

/// The local date of `at_ms`, as `YYYY-MM-DD`.
pub fn date_text(at_ms: i64, utc_offset_minutes: i32) -> String {
    local_date(at_ms, utc_offset_minutes).map(|date| date.to_string()).unwrap_or_default()
}

fn year(text: &str) -> Option<i32> {
    (text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

fn local_midnight(date: NaiveDate, utc_offset_minutes: i32) -> Option<i64> {
    let offset = FixedOffset::east_opt(utc_offset_minutes * 60)?;
    let midnight = date.and_hms_opt(0, 0, 0)?;
    offset.from_local_datetime(&midnight).single().map(|at| at.timestamp_millis())
}

fn local_date(at_ms: i64, utc_offset_minutes: i32) -> Option<NaiveDate> {
    let offset = FixedOffset::east_opt(utc_offset_minutes * 60)?;
    let at = chrono::DateTime::from_timestamp_millis(at_ms)?;
    Some((at + Duration::zero()).with_timezone(&offset).date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_quarters_and_years_are_local_ranges() {
        let november = Period::parse("2026-11", 480).expect("month");
        // 2026-11-01 00:00 +08:00 is 2026-10-31 16:00 UTC.
        assert_eq!(november.start, 1_793_462_400_000);
        assert_eq!(november.end - november.start, 30 * DAY_MS);
        let q4 = Period::parse("2026-Q4", 480).expect("quarter");
        assert_eq!(q4.end - q4.start, 92 * DAY_MS);
        assert!(Period::parse("2026", 0).is_some());
        for bad in ["2026-13", "2026-Q5", "26-11", "2026-1", "", "2026-Q"] {
            assert!(Period::parse(bad, 0).is_none(), "{bad}");
        }
        assert!(november.contains_date("2026-11-30"));
        assert!(!november.contains_date("2026-12-01"));
    }

    #[test]
    fn weeks_start_on_local_mondays() {
        // 2026-11-02 was a Monday.
        let monday = Period::parse("2026-11", 0).expect("month").weeks()[1];
        assert_eq!(date_text(monday, 0), "2026-11-02");
        assert_eq!(week_of(monday + 3 * DAY_MS, 0), monday);
    }
}
