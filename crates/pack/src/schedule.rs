//! Cron schedules as operations staff write them: five fields,
//! `minute hour day-of-month month day-of-week`, with Sunday as 0 or 7 and names
//! such as `MON`. The `cron` crate wants a seconds field and counts weekdays from
//! Sunday = 1, so the text is translated once here; everything else uses the result.

use std::str::FromStr;

pub use cron::Schedule;

/// Parses a five-field cron schedule.
pub fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "a schedule has 5 fields (minute hour day month weekday), this one has {}",
            fields.len()
        ));
    }
    let weekday = translate_weekdays(fields[4])?;
    let translated =
        format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], weekday);
    Schedule::from_str(&translated).map_err(|error| {
        let message = error.to_string();
        let message = message.trim_start_matches("Invalid expression: ");
        format!("invalid schedule `{text}`: {}", message.to_lowercase())
    })
}

/// Moves numeric weekdays from cron's usual Sunday = 0 (or 7) to the `cron` crate's
/// Sunday = 1. Step values after `/` are counts, not weekdays, and stay as they are.
fn translate_weekdays(field: &str) -> Result<String, String> {
    let mut out = String::new();
    for (index, part) in field.split(',').enumerate() {
        if index > 0 {
            out.push(',');
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let translated: Vec<String> = range
            .split('-')
            .map(|atom| match atom.parse::<u8>() {
                Ok(day @ 0..=7) => Ok((day % 7 + 1).to_string()),
                Ok(day) => Err(format!(
                    "weekday {day} is out of range; use 0-7 (0 and 7 are Sunday) or MON-SUN"
                )),
                Err(_) => Ok(atom.to_owned()),
            })
            .collect::<Result<_, _>>()?;
        out.push_str(&translated.join("-"));
        if let Some(step) = step {
            out.push('/');
            out.push_str(step);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    #[test]
    fn monday_is_one_as_in_ordinary_cron() {
        let schedule = parse_schedule("0 9 * * 1").expect("valid");
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("date");
        let next = schedule.after(&start).next().expect("a next time");
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!(next.format("%H:%M").to_string(), "09:00");
    }

    #[test]
    fn names_and_sunday_as_zero_or_seven() {
        for text in ["30 8 * * MON-FRI", "0 0 * * 0", "0 0 * * 7", "*/15 * * * *"] {
            assert!(parse_schedule(text).is_ok(), "{text}");
        }
        let sunday = parse_schedule("0 0 * * 0").expect("valid");
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("date");
        assert_eq!(sunday.after(&start).next().expect("next").weekday(), Weekday::Sun);
    }

    #[test]
    fn wrong_field_counts_and_values_are_explained() {
        assert!(parse_schedule("0 9 * *").unwrap_err().contains("5 fields"));
        assert!(parse_schedule("0 9 * * 9").unwrap_err().contains("out of range"));
        assert!(parse_schedule("61 9 * * *").is_err());
    }
}
