//! Business-calendar arithmetic against a China-like calendar: Monday to Friday
//! 09:00-12:00 and 13:30-18:00 (7.5 working hours a day) at +08:00, New Year and
//! National Day 2026 off, and two make-up working days, Sunday 2026-09-20 and
//! Saturday 2026-10-10.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::NaiveDate;
use proptest::prelude::*;
use stagecraft_model::{Duration, Id};
use stagecraft_pack::Calendar;
use stagecraft_runtime::calendar::{
    add, is_working_time, next_working_moment, working_minutes_between,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

fn dates(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |day| *day <= to)
}

fn hm(h: u16, m: u16) -> u16 {
    h * 60 + m
}

fn china() -> Calendar {
    let workday = vec![(hm(9, 0), hm(12, 0)), (hm(13, 30), hm(18, 0))];
    let mut holidays: BTreeSet<NaiveDate> = dates(date(2026, 1, 1), date(2026, 1, 3)).collect();
    holidays.extend(dates(date(2026, 10, 1), date(2026, 10, 7)));
    Calendar {
        id: Id::from("china"),
        utc_offset_minutes: 8 * 60,
        week: [
            workday.clone(),
            workday.clone(),
            workday.clone(),
            workday.clone(),
            workday.clone(),
            Vec::new(),
            Vec::new(),
        ],
        holidays,
        makeup_workdays: [date(2026, 9, 20), date(2026, 10, 10)].into_iter().collect(),
        makeup_hours: Vec::new(),
    }
}

/// A calendar with no working hours at all.
fn never() -> Calendar {
    Calendar {
        id: Id::from("never"),
        utc_offset_minutes: 8 * 60,
        week: Default::default(),
        holidays: BTreeSet::new(),
        makeup_workdays: BTreeSet::new(),
        makeup_hours: Vec::new(),
    }
}

/// A local time on a +08:00 calendar, as Unix milliseconds.
fn cn(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    date(y, mo, d).and_hms_opt(h, mi, 0).expect("a valid time").and_utc().timestamp_millis()
        - 8 * HOUR
}

fn due(calendar: &Calendar, start: i64, duration: &str) -> Option<i64> {
    add(Some(calendar), start, &Duration::from(duration))
}

#[test]
fn forty_eight_working_hours_from_friday_afternoon() {
    let calendar = china();
    // Friday 2026-03-06 17:00-18:00 is 1h. Mon 9, Tue 10, Wed 11, Thu 12, Fri 13 and
    // Mon 16 March are 6 × 7.5h = 45h, 46h in all. The last 2h are Tuesday 17 March
    // 09:00-11:00.
    assert_eq!(due(&calendar, cn(2026, 3, 6, 17, 0), "48h"), Some(cn(2026, 3, 17, 11, 0)));
}

#[test]
fn working_time_starts_outside_working_hours() {
    let calendar = china();
    // During lunch: the clock starts at 13:30.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 12, 30), "2h"), Some(cn(2026, 3, 11, 15, 30)));
    // Before 09:00.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 7, 0), "1h"), Some(cn(2026, 3, 11, 10, 0)));
    // After 18:00: the next morning.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 19, 0), "1h"), Some(cn(2026, 3, 12, 10, 0)));
    // On a Saturday: Monday morning.
    assert_eq!(due(&calendar, cn(2026, 3, 14, 10, 0), "30m"), Some(cn(2026, 3, 16, 9, 30)));
    // On a holiday: National Day runs to Wednesday 7 October. Thursday 8 October
    // gives 3h in the morning and the fourth hour is 13:30-14:30.
    assert_eq!(due(&calendar, cn(2026, 10, 1, 10, 0), "4h"), Some(cn(2026, 10, 8, 14, 30)));
    // Saturday 19 September: the next working day is the make-up Sunday.
    assert_eq!(due(&calendar, cn(2026, 9, 19, 10, 0), "1h"), Some(cn(2026, 9, 20, 10, 0)));
}

#[test]
fn working_time_that_runs_out_at_the_end_of_a_span_ends_there() {
    let calendar = china();
    // The morning's 3h are used up at 12:00, not at 13:30.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 9, 0), "3h"), Some(cn(2026, 3, 11, 12, 0)));
    // A whole working day from its start ends at 18:00 the same day.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 9, 0), "450m"), Some(cn(2026, 3, 11, 18, 0)));
    assert_eq!(due(&calendar, cn(2026, 3, 11, 9, 0), "451m"), Some(cn(2026, 3, 12, 9, 1)));
}

#[test]
fn zero_is_due_at_once() {
    let calendar = china();
    let saturday = cn(2026, 3, 14, 10, 0);
    for text in ["0m", "0h", "0d", "0w"] {
        assert_eq!(due(&calendar, saturday, text), Some(saturday), "{text}");
        assert_eq!(add(None, saturday, &Duration::from(text)), Some(saturday), "{text}");
    }
}

#[test]
fn working_days_keep_the_working_moment() {
    let calendar = china();
    assert_eq!(due(&calendar, cn(2026, 3, 11, 10, 0), "2d"), Some(cn(2026, 3, 13, 10, 0)));
    // Over the weekend.
    assert_eq!(due(&calendar, cn(2026, 3, 13, 16, 0), "2d"), Some(cn(2026, 3, 17, 16, 0)));
    // Across National Day: Wednesday 30 September, then Thursday 8 and Friday 9
    // October are the next two working days.
    assert_eq!(due(&calendar, cn(2026, 9, 30, 10, 0), "2d"), Some(cn(2026, 10, 9, 10, 0)));
    // Onto the make-up Saturday 10 October.
    assert_eq!(due(&calendar, cn(2026, 10, 8, 10, 0), "2d"), Some(cn(2026, 10, 10, 10, 0)));
    assert_eq!(due(&calendar, cn(2026, 10, 10, 10, 0), "1d"), Some(cn(2026, 10, 12, 10, 0)));
    // From Friday 18 September onto the make-up Sunday 20 September.
    assert_eq!(due(&calendar, cn(2026, 9, 18, 15, 0), "1d"), Some(cn(2026, 9, 20, 15, 0)));
    // Ten working days from 24 September: 25, 28, 29, 30 September, 8, 9, 10, 12,
    // 13 and 14 October.
    assert_eq!(due(&calendar, cn(2026, 9, 24, 11, 0), "10d"), Some(cn(2026, 10, 14, 11, 0)));
}

#[test]
fn working_days_from_outside_working_hours() {
    let calendar = china();
    // Lunch: the morning's 3h are used, so the count resumes at 13:30.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 12, 30), "1d"), Some(cn(2026, 3, 12, 13, 30)));
    // Before 09:00: nothing used yet.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 8, 0), "1d"), Some(cn(2026, 3, 12, 9, 0)));
    // After 18:00 the day is used up: counting starts Thursday 09:00.
    assert_eq!(due(&calendar, cn(2026, 3, 11, 19, 0), "1d"), Some(cn(2026, 3, 13, 9, 0)));
    // A Saturday counts from Monday 09:00.
    assert_eq!(due(&calendar, cn(2026, 3, 14, 10, 0), "1d"), Some(cn(2026, 3, 17, 9, 0)));
    // A holiday counts from the first working day after it, Thursday 8 October.
    assert_eq!(due(&calendar, cn(2026, 10, 2, 10, 0), "1d"), Some(cn(2026, 10, 9, 9, 0)));
}

#[test]
fn a_shorter_target_day_caps_the_working_moment() {
    let mut calendar = china();
    calendar.makeup_hours = vec![(hm(9, 0), hm(12, 0))];
    // Friday 9 October 16:00 has used 5.5h; the make-up Saturday only has 3h.
    assert_eq!(due(&calendar, cn(2026, 10, 9, 16, 0), "1d"), Some(cn(2026, 10, 10, 12, 0)));
    assert_eq!(due(&calendar, cn(2026, 10, 9, 10, 0), "1d"), Some(cn(2026, 10, 10, 10, 0)));
}

#[test]
fn weeks_are_calendar_weeks_moved_to_working_time() {
    let calendar = china();
    assert_eq!(due(&calendar, cn(2026, 3, 11, 10, 0), "2w"), Some(cn(2026, 3, 25, 10, 0)));
    // From the holiday Sunday 4 October to Sunday 11 October: Monday 09:00.
    assert_eq!(due(&calendar, cn(2026, 10, 4, 10, 0), "1w"), Some(cn(2026, 10, 12, 9, 0)));
    // From the holiday evening of 1 October to 8 October 19:00: Friday 09:00.
    assert_eq!(due(&calendar, cn(2026, 10, 1, 19, 0), "1w"), Some(cn(2026, 10, 9, 9, 0)));
    // Into the holiday: Thursday 24 September lands on 1 October.
    assert_eq!(due(&calendar, cn(2026, 9, 24, 10, 0), "1w"), Some(cn(2026, 10, 8, 9, 0)));
    // From a holiday onto the make-up Saturday, which is working time.
    assert_eq!(due(&calendar, cn(2026, 10, 3, 10, 0), "1w"), Some(cn(2026, 10, 10, 10, 0)));
}

#[test]
fn without_a_calendar_durations_are_fixed_lengths() {
    let start = cn(2026, 3, 14, 23, 17);
    let fixed = |text: &str| add(None, start, &Duration::from(text));
    assert_eq!(fixed("30m"), Some(start + 30 * MINUTE));
    assert_eq!(fixed("48h"), Some(start + 48 * HOUR));
    assert_eq!(fixed("2d"), Some(start + 2 * DAY));
    assert_eq!(fixed("1w"), Some(start + 7 * DAY));
    assert_eq!(fixed("999999w"), Some(start + 999_999 * 7 * DAY));
}

#[test]
fn invalid_durations_have_no_due_time() {
    let calendar = china();
    let start = cn(2026, 3, 11, 10, 0);
    for text in ["", "h", "5", "5x", "1d12h", "+5m", "-5m", "1234567m", " 5m", "5 m", "5时"] {
        assert_eq!(due(&calendar, start, text), None, "{text:?}");
        assert_eq!(add(None, start, &Duration::from(text)), None, "{text:?}");
    }
}

#[test]
fn a_calendar_without_working_hours_gives_up_quickly() {
    let calendar = never();
    let start = cn(2026, 3, 11, 10, 0);
    let clock = Instant::now();
    for text in ["1m", "48h", "2d", "1w"] {
        assert_eq!(due(&calendar, start, text), None, "{text}");
    }
    assert_eq!(next_working_moment(&calendar, start), None);
    assert!(!is_working_time(&calendar, start));
    assert_eq!(working_minutes_between(&calendar, start, start + 1000 * DAY), 0);
    assert!(clock.elapsed().as_millis() < 1000, "took {:?}", clock.elapsed());
}

#[test]
fn the_search_for_working_time_reaches_three_years() {
    // Only one make-up day in the whole calendar: found two years ahead, not five.
    let mut calendar = never();
    calendar.makeup_hours = vec![(hm(9, 0), hm(17, 0))];
    let start = cn(2026, 3, 11, 10, 0);
    calendar.makeup_workdays.insert(date(2028, 3, 11));
    assert_eq!(next_working_moment(&calendar, start), Some(cn(2028, 3, 11, 9, 0)));
    assert_eq!(due(&calendar, start, "2h"), Some(cn(2028, 3, 11, 11, 0)));
    // `1d` counts from that day and needs a working day after it: none, until a
    // second make-up day a year later is added.
    assert_eq!(due(&calendar, start, "1d"), None);
    calendar.makeup_workdays.insert(date(2029, 3, 11));
    assert_eq!(due(&calendar, start, "1d"), Some(cn(2029, 3, 11, 9, 0)));
    calendar.makeup_workdays = [date(2031, 3, 11)].into_iter().collect();
    assert_eq!(next_working_moment(&calendar, start), None);
    assert_eq!(due(&calendar, start, "2h"), None);
    assert_eq!(due(&calendar, start, "1d"), None);
}

#[test]
fn long_durations_are_counted_without_walking_every_minute() {
    let calendar = china();
    let start = cn(2026, 3, 11, 10, 0);
    let clock = Instant::now();
    let end = due(&calendar, start, "999999h").unwrap();
    assert_eq!(working_minutes_between(&calendar, start, end), 999_999 * 60);
    assert!(due(&calendar, start, "999999d").unwrap() > end);
    assert!(due(&calendar, start, "999999w").is_some());
    assert!(clock.elapsed().as_millis() < 1000, "took {:?}", clock.elapsed());
}

#[test]
fn working_time_and_the_next_working_moment() {
    let calendar = china();
    assert!(is_working_time(&calendar, cn(2026, 3, 11, 9, 0)));
    assert!(is_working_time(&calendar, cn(2026, 3, 11, 12, 0) - 1));
    assert!(!is_working_time(&calendar, cn(2026, 3, 11, 12, 0)));
    assert!(!is_working_time(&calendar, cn(2026, 3, 11, 18, 0)));
    assert!(!is_working_time(&calendar, cn(2026, 3, 14, 10, 0)));
    assert!(!is_working_time(&calendar, cn(2026, 10, 1, 10, 0)));
    assert!(is_working_time(&calendar, cn(2026, 10, 10, 10, 0)));
    let next = |at| next_working_moment(&calendar, at);
    assert_eq!(next(cn(2026, 3, 11, 10, 15)), Some(cn(2026, 3, 11, 10, 15)));
    assert_eq!(next(cn(2026, 3, 11, 12, 0)), Some(cn(2026, 3, 11, 13, 30)));
    assert_eq!(next(cn(2026, 3, 13, 18, 0)), Some(cn(2026, 3, 16, 9, 0)));
    assert_eq!(next(cn(2026, 9, 30, 18, 30)), Some(cn(2026, 10, 8, 9, 0)));
}

#[test]
fn working_minutes_between_two_moments() {
    let calendar = china();
    let between = |from, to| working_minutes_between(&calendar, from, to);
    // A full regular week: 5 × 7.5h.
    assert_eq!(between(cn(2026, 3, 9, 0, 0), cn(2026, 3, 16, 0, 0)), 5 * 450);
    assert_eq!(between(cn(2026, 3, 12, 15, 0), cn(2026, 3, 19, 15, 0)), 5 * 450);
    // Across lunch: 11:00-12:00 and 13:30-14:30.
    assert_eq!(between(cn(2026, 3, 11, 11, 0), cn(2026, 3, 11, 14, 30)), 120);
    // National Day week has no working time.
    assert_eq!(between(cn(2026, 10, 1, 0, 0), cn(2026, 10, 8, 0, 0)), 0);
    assert_eq!(between(cn(2026, 10, 2, 9, 0), cn(2026, 10, 2, 18, 0)), 0);
    // The week after it: Thursday, Friday and the make-up Saturday.
    assert_eq!(between(cn(2026, 10, 5, 0, 0), cn(2026, 10, 12, 0, 0)), 3 * 450);
    // 2026 has 261 weekdays. 7 of them are holidays (1-2 January, 1-2 and 5-7
    // October) and 2 make-up days are added: 261 - 7 + 2 = 256 working days.
    assert_eq!(between(cn(2026, 1, 1, 0, 0), cn(2027, 1, 1, 0, 0)), 256 * 450);
    // Backwards or empty.
    assert_eq!(between(cn(2026, 3, 11, 14, 0), cn(2026, 3, 11, 10, 0)), 0);
    assert_eq!(between(cn(2026, 3, 11, 10, 0), cn(2026, 3, 11, 10, 0)), 0);
    // Partial minutes round down.
    assert_eq!(between(cn(2026, 3, 11, 10, 0), cn(2026, 3, 11, 10, 0) + 59_999), 0);
    // The widest range does not overflow.
    assert!(working_minutes_between(&calendar, i64::MIN, i64::MAX) > 0);
}

#[test]
fn other_offsets_and_spans_past_midnight() {
    // New York in winter, -05:00, with a night shift that runs on to Tuesday.
    let calendar = Calendar {
        id: Id::from("new_york"),
        utc_offset_minutes: -5 * 60,
        week: [
            vec![(hm(9, 0), hm(17, 0)), (hm(22, 0), hm(24, 0))],
            vec![(hm(0, 0), hm(2, 0)), (hm(9, 0), hm(17, 0))],
            vec![(hm(9, 0), hm(17, 0))],
            vec![(hm(9, 0), hm(17, 0))],
            vec![(hm(9, 0), hm(17, 0))],
            Vec::new(),
            Vec::new(),
        ],
        holidays: BTreeSet::new(),
        makeup_workdays: BTreeSet::new(),
        makeup_hours: Vec::new(),
    };
    let ny = |d: u32, h: u32| {
        date(2026, 3, d).and_hms_opt(h, 0, 0).unwrap().and_utc().timestamp_millis() + 5 * HOUR
    };
    // Friday 6 March 16:00 local is 21:00 UTC; 2h later is Monday 10:00 local.
    assert_eq!(add(Some(&calendar), ny(6, 16), &Duration::from("2h")), Some(ny(9, 10)));
    // Monday 23:00 + 2h runs through midnight without a gap.
    assert_eq!(add(Some(&calendar), ny(9, 23), &Duration::from("2h")), Some(ny(10, 1)));
    assert_eq!(working_minutes_between(&calendar, ny(9, 23), ny(10, 1)), 120);
}

#[test]
fn messy_spans_are_cleaned_up() {
    // Overlapping, touching, unsorted, empty and out-of-day spans as a hand-built
    // calendar might hold them: Monday works 08:00-14:00 and 20:00-24:00.
    let mut calendar = never();
    calendar.week[0] =
        vec![(hm(10, 0), hm(12, 0)), (hm(8, 0), hm(11, 0)), (hm(12, 0), hm(14, 0)), (600, 600)];
    calendar.week[0].push((hm(20, 0), 5000));
    let monday = cn(2026, 3, 9, 0, 0);
    assert_eq!(working_minutes_between(&calendar, monday, monday + DAY), 10 * 60);
    // 6h from 08:00 ends at 14:00, not at 12:00.
    assert_eq!(due(&calendar, cn(2026, 3, 9, 8, 0), "6h"), Some(cn(2026, 3, 9, 14, 0)));
}

/// Working minutes counted one minute at a time, for comparison.
fn minute_by_minute(calendar: &Calendar, from: i64, to: i64) -> i64 {
    (0..(to - from) / MINUTE).filter(|k| is_working_time(calendar, from + k * MINUTE)).count()
        as i64
}

/// A moment between 2025-12-20 and 2027-01-10, to the millisecond.
fn any_moment() -> impl Strategy<Value = i64> {
    cn(2025, 12, 20, 0, 0)..cn(2027, 1, 10, 0, 0)
}

/// A minute in the weeks around National Day and New Year, where the special days are.
fn special_minute() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0..30 * 24 * 60_i64).prop_map(|k| cn(2026, 9, 15, 0, 0) + k * MINUTE),
        (0..20 * 24 * 60_i64).prop_map(|k| cn(2025, 12, 25, 0, 0) + k * MINUTE),
    ]
}

fn is_span_end(calendar: &Calendar, at: i64) -> bool {
    !is_working_time(calendar, at) && is_working_time(calendar, at - 1)
}

proptest! {
    #[test]
    fn working_time_added_is_working_time_between(
        start in any_moment(),
        count in 1..3000_u32,
        unit in prop_oneof![Just('m'), Just('h')],
    ) {
        let calendar = china();
        let text = format!("{count}{unit}");
        let minutes = i64::from(count) * if unit == 'h' { 60 } else { 1 };
        let end = due(&calendar, start, &text).unwrap();
        prop_assert!(end > start);
        prop_assert_eq!(working_minutes_between(&calendar, start, end), minutes);
        prop_assert!(is_working_time(&calendar, end) || is_span_end(&calendar, end));
        // Nothing is counted twice: one minute less is already reached a minute earlier.
        let shorter = due(&calendar, start, &format!("{}m", minutes - 1)).unwrap();
        prop_assert_eq!(working_minutes_between(&calendar, shorter, end), 1);
    }

    #[test]
    fn working_days_land_in_order_on_working_time(
        start in any_moment(),
        count in 1..400_u32,
    ) {
        let calendar = china();
        let end = due(&calendar, start, &format!("{count}d")).unwrap();
        let next = due(&calendar, start, &format!("{}d", count + 1)).unwrap();
        prop_assert!(start < end && end < next);
        prop_assert!(is_working_time(&calendar, end) || is_span_end(&calendar, end));
        // Every working day of this calendar is 7.5h long, so one working day more
        // is exactly 450 working minutes more.
        prop_assert_eq!(working_minutes_between(&calendar, end, next), 450);
    }

    #[test]
    fn weeks_land_on_working_time(start in any_moment(), count in 1..200_u32) {
        let calendar = china();
        let end = due(&calendar, start, &format!("{count}w")).unwrap();
        prop_assert!(end >= start + i64::from(count) * 7 * DAY);
        prop_assert!(is_working_time(&calendar, end));
        let later = start + i64::from(count) * 7 * DAY;
        prop_assert_eq!(working_minutes_between(&calendar, later, end), 0);
    }
}

proptest! {
    // The reference walks every minute of up to twelve days; fewer cases keep the
    // test fast.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn working_minutes_match_a_minute_by_minute_count(
        from in special_minute(),
        length in 0..12 * 24 * 60_i64,
    ) {
        let calendar = china();
        let to = from + length * MINUTE;
        prop_assert_eq!(
            working_minutes_between(&calendar, from, to),
            minute_by_minute(&calendar, from, to)
        );
    }
}
