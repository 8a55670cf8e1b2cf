//! Business-calendar arithmetic: when a duration counted on a working calendar
//! (or around the clock) runs out, how much working time lies between two moments,
//! and whether a moment is working time.
//!
//! Moments are Unix milliseconds (UTC). A calendar's hours are in its local time,
//! which is UTC plus a fixed offset, so the arithmetic runs on a local time line:
//! day numbers counted from 1970-01-01 local and milliseconds after local midnight.
//! A fixed offset has no daylight-saving jumps, so every local day is exactly 24
//! hours long and converting back is a plain subtraction.
//!
//! The weekly pattern repeats every seven days; only holidays and make-up working
//! days break it. The loops therefore jump over whole regular weeks and look at
//! single days only near those dates and at the two ends, so a `2w` or `500h` due
//! time, or the working time over several years, costs microseconds.

use std::collections::BTreeSet;
use std::ops::Bound;

use chrono::{Datelike, NaiveDate};
use stagecraft_model::Duration;
use stagecraft_pack::Calendar;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const DAY_MINUTES: u16 = 24 * 60;

/// How far past a stretch of days without any working time the search goes before
/// giving up. A calendar with no working hours at all, or holidays covering years,
/// would otherwise make every search run forever.
const IDLE_LIMIT_DAYS: i64 = 3 * 366;

/// chrono counts days from 0001-01-01 (day 1); the Unix epoch is this day.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// Working spans of one day, in milliseconds after local midnight: sorted,
/// non-empty and neither overlapping nor touching.
type Spans = Vec<(i64, i64)>;

/// The moment a duration started at `start_ms` runs out.
///
/// Without a calendar the duration is a fixed length (`1d` is 24 hours). On a
/// calendar `m` and `h` count working time, `d` working days and `w` calendar weeks,
/// as the pack format describes. `0m` (any unit with 0) is due at once, at
/// `start_ms`, even outside working time.
///
/// `None` when the duration does not follow the duration pattern, when the result
/// is beyond the representable time range, or when the calendar has no working time
/// within three years of a point the count has to pass.
pub fn add(calendar: Option<&Calendar>, start_ms: i64, duration: &Duration) -> Option<i64> {
    let (count, unit) = parse(duration)?;
    let Some(calendar) = calendar else {
        let minutes = i64::try_from(duration.minutes()?).ok()?;
        return start_ms.checked_add(minutes.checked_mul(MINUTE_MS)?);
    };
    if count == 0 {
        return Some(start_ms);
    }
    let week = Week::new(calendar);
    match unit {
        Unit::Minutes => week.add_working(start_ms, count.checked_mul(MINUTE_MS)?),
        Unit::Hours => week.add_working(start_ms, count.checked_mul(HOUR_MS)?),
        Unit::Days => week.add_working_days(start_ms, count),
        Unit::Weeks => {
            let later = start_ms.checked_add(count.checked_mul(7 * DAY_MS)?)?;
            week.next_working_moment(later)
        }
    }
}

/// Whole working minutes in `[from_ms, to_ms)`, rounded down; 0 when `to_ms` is not
/// after `from_ms`.
pub fn working_minutes_between(calendar: &Calendar, from_ms: i64, to_ms: i64) -> i64 {
    if to_ms <= from_ms {
        return 0;
    }
    let week = Week::new(calendar);
    let (first_day, from) = week.local(from_ms);
    let (last_day, to) = week.local(to_ms);
    let ms = if first_day == last_day {
        i128::from(overlap(week.spans_on(first_day), from, to))
    } else {
        // The sum can exceed i64 milliseconds over the widest ranges; the minutes fit.
        i128::from(overlap(week.spans_on(first_day), from, DAY_MS))
            + week.whole_days(first_day + 1, last_day)
            + i128::from(overlap(week.spans_on(last_day), 0, to))
    };
    i64::try_from(ms / i128::from(MINUTE_MS)).unwrap_or(i64::MAX)
}

/// Whether `at_ms` is inside a working span. Spans include their start and exclude
/// their end: 12:00 is not working time on a 09:00-12:00 morning.
pub fn is_working_time(calendar: &Calendar, at_ms: i64) -> bool {
    let week = Week::new(calendar);
    let (day, at) = week.local(at_ms);
    week.spans_on(day).iter().any(|&(start, end)| start <= at && at < end)
}

/// `at_ms` itself if it is working time, otherwise the start of the next working
/// span. `None` when there is no working time within three years.
pub fn next_working_moment(calendar: &Calendar, at_ms: i64) -> Option<i64> {
    Week::new(calendar).next_working_moment(at_ms)
}

#[derive(Clone, Copy, Debug)]
enum Unit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

/// The count and unit of a duration that follows `^[0-9]{1,6}(m|h|d|w)$`.
/// `Duration::minutes` alone would also take `+5m` or seven digits.
fn parse(duration: &Duration) -> Option<(i64, Unit)> {
    let text = duration.as_str();
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let unit = match unit {
        "m" => Unit::Minutes,
        "h" => Unit::Hours,
        "d" => Unit::Days,
        "w" => Unit::Weeks,
        _ => return None,
    };
    Some((digits.parse().ok()?, unit))
}

/// A calendar prepared for arithmetic: spans cleaned up and in milliseconds, and
/// what a regular week holds.
struct Week<'a> {
    offset_ms: i64,
    /// Spans per weekday, Monday first.
    days: [Spans; 7],
    makeup: Spans,
    /// Working milliseconds per weekday, and in a whole regular week.
    day_totals: [i64; 7],
    week_total: i64,
    /// Weekdays with any working time.
    working_days_per_week: i64,
    holidays: &'a BTreeSet<NaiveDate>,
    makeup_workdays: &'a BTreeSet<NaiveDate>,
}

impl<'a> Week<'a> {
    fn new(calendar: &'a Calendar) -> Self {
        let days: [Spans; 7] = std::array::from_fn(|index| clean(&calendar.week[index]));
        // Make-up days follow Monday's hours unless the calendar says otherwise.
        let makeup = if calendar.makeup_hours.is_empty() {
            days[0].clone()
        } else {
            clean(&calendar.makeup_hours)
        };
        let day_totals: [i64; 7] = std::array::from_fn(|index| total(&days[index]));
        Week {
            offset_ms: i64::from(calendar.utc_offset_minutes) * MINUTE_MS,
            week_total: day_totals.iter().sum(),
            working_days_per_week: day_totals.iter().filter(|&&ms| ms > 0).count() as i64,
            days,
            makeup,
            day_totals,
            holidays: &calendar.holidays,
            makeup_workdays: &calendar.makeup_workdays,
        }
    }

    /// The local day number and the milliseconds after local midnight of a moment.
    fn local(&self, at_ms: i64) -> (i64, i64) {
        // In i128 so that moments near the ends of the i64 range cannot overflow.
        let local = i128::from(at_ms) + i128::from(self.offset_ms);
        let day = local.div_euclid(i128::from(DAY_MS));
        let within = local.rem_euclid(i128::from(DAY_MS));
        // |day| < 2^47 and 0 <= within < DAY_MS, so both fit.
        (day as i64, within as i64)
    }

    /// The moment at `within` milliseconds after the local midnight starting `day`.
    fn utc(&self, day: i64, within: i64) -> Option<i64> {
        let local = i128::from(day) * i128::from(DAY_MS) + i128::from(within);
        i64::try_from(local - i128::from(self.offset_ms)).ok()
    }

    fn spans_on(&self, day: i64) -> &[(i64, i64)] {
        // Days chrono cannot name hold no holidays: they follow the weekly pattern.
        if let Some(date) = date_of(day) {
            // A day listed both ways is a day off: the loader forbids it, and not
            // working is the safer reading of a contradictory calendar.
            if self.holidays.contains(&date) {
                return &[];
            }
            if self.makeup_workdays.contains(&date) {
                return &self.makeup;
            }
        }
        &self.days[weekday(day)]
    }

    fn total_on(&self, day: i64) -> i64 {
        total(self.spans_on(day))
    }

    /// The first day from `day` on that is a holiday or a make-up day.
    fn next_special(&self, day: i64) -> Option<i64> {
        let from = match date_of(day) {
            Some(date) => Bound::Included(date),
            None if day < 0 => Bound::Unbounded,
            None => return None,
        };
        let first = |set: &BTreeSet<NaiveDate>| {
            set.range((from, Bound::Unbounded)).next().copied().map(day_of)
        };
        match (first(self.holidays), first(self.makeup_workdays)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many whole weeks from `day` on contain no holiday or make-up day.
    fn regular_weeks_from(&self, day: i64) -> i64 {
        self.next_special(day).map_or(i64::MAX, |special| (special - day) / 7)
    }

    /// Working milliseconds in the whole days `[first, end)`: the weekly pattern,
    /// corrected for the holidays and make-up days among them.
    fn whole_days(&self, first: i64, end: i64) -> i128 {
        if end <= first {
            return 0;
        }
        let weeks = (end - first) / 7;
        let mut ms = i128::from(weeks) * i128::from(self.week_total);
        for day in first + weeks * 7..end {
            ms += i128::from(self.day_totals[weekday(day)]);
        }
        let Some((from, to)) = date_range(first, end) else {
            return ms;
        };
        for date in self.holidays.range((from, to)) {
            ms -= i128::from(self.day_totals[weekday(day_of(*date))]);
        }
        let makeup = i128::from(total(&self.makeup));
        for date in self.makeup_workdays.range((from, to)) {
            if !self.holidays.contains(date) {
                ms += makeup - i128::from(self.day_totals[weekday(day_of(*date))]);
            }
        }
        ms
    }

    fn next_working_moment(&self, at_ms: i64) -> Option<i64> {
        let (mut day, mut at) = self.local(at_ms);
        for _ in 0..=IDLE_LIMIT_DAYS {
            if let Some(&(start, _)) = self.spans_on(day).iter().find(|&&(_, end)| at < end) {
                return self.utc(day, start.max(at));
            }
            // Day by day is enough: any weekly hours end the walk within a week or a
            // holiday stretch, and a calendar without them stops at the limit.
            day += 1;
            at = 0;
        }
        None
    }

    /// `start_ms` plus `amount` milliseconds of working time (`amount` > 0). When the
    /// count ends exactly at the end of a span the result is that end (12:00), not
    /// the start of the next span (13:30): the time is up as soon as it is used.
    fn add_working(&self, start_ms: i64, amount: i64) -> Option<i64> {
        let (mut day, mut at) = self.local(start_ms);
        let mut left = amount;
        let mut idle = 0;
        loop {
            for &(start, end) in self.spans_on(day) {
                if end <= at {
                    continue;
                }
                let from = start.max(at);
                if left <= end - from {
                    return self.utc(day, from + left);
                }
                left -= end - from;
            }
            idle = if self.total_on(day) > 0 { 0 } else { idle + 1 };
            if idle > IDLE_LIMIT_DAYS {
                return None;
            }
            day += 1;
            at = 0;
            if self.week_total > 0 && left > self.week_total {
                // Keep at least a millisecond so the end falls inside a day below.
                let weeks = ((left - 1) / self.week_total).min(self.regular_weeks_from(day));
                day += weeks * 7;
                left -= weeks * self.week_total;
            }
        }
    }

    /// `count` (> 0) working days after `start_ms`, at the same working moment: the
    /// working time already used on the start's day is used again on the target day,
    /// as far as that day has working time.
    fn add_working_days(&self, start_ms: i64, count: i64) -> Option<i64> {
        // A start outside working time counts from the next working moment: after the
        // day's last span that is the next working day's beginning, as on a day off.
        let (day, at) = self.local(self.next_working_moment(start_ms)?);
        let used = overlap(self.spans_on(day), 0, at);
        let target = self.nth_working_day_after(day, count)?;
        let spans = self.spans_on(target);
        let mut before = 0;
        for &(start, end) in spans {
            // `<` rather than `<=`: a start at 13:30 with the morning used up lands at
            // 13:30 again, not at 12:00.
            if used < before + end - start {
                return self.utc(target, start + used - before);
            }
            before += end - start;
        }
        // The target day is shorter than the time already used: its end.
        let &(_, end) = spans.last()?;
        self.utc(target, end)
    }

    fn nth_working_day_after(&self, mut day: i64, count: i64) -> Option<i64> {
        let mut left = count;
        let mut idle = 0;
        loop {
            day += 1;
            if self.working_days_per_week > 0 && left > self.working_days_per_week {
                let weeks =
                    ((left - 1) / self.working_days_per_week).min(self.regular_weeks_from(day));
                day += weeks * 7;
                left -= weeks * self.working_days_per_week;
            }
            if self.total_on(day) > 0 {
                left -= 1;
                if left == 0 {
                    return Some(day);
                }
                idle = 0;
            } else {
                idle += 1;
                if idle > IDLE_LIMIT_DAYS {
                    return None;
                }
            }
        }
    }
}

/// Spans in milliseconds, cut to the day, empty ones dropped and overlapping or
/// touching ones joined. The loader only sorts them, and two spans that touch are
/// one stretch of work: a count ending at 12:00 should not stop there.
fn clean(spans: &[(u16, u16)]) -> Spans {
    let mut sorted: Vec<(u16, u16)> = spans
        .iter()
        .map(|&(start, end)| (start.min(DAY_MINUTES), end.min(DAY_MINUTES)))
        .filter(|(start, end)| start < end)
        .collect();
    sorted.sort_unstable();
    let mut out: Spans = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        let (start, end) = (i64::from(start) * MINUTE_MS, i64::from(end) * MINUTE_MS);
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn total(spans: &[(i64, i64)]) -> i64 {
    spans.iter().map(|(start, end)| end - start).sum()
}

/// Working milliseconds of `spans` within `[from, to)`.
fn overlap(spans: &[(i64, i64)], from: i64, to: i64) -> i64 {
    spans.iter().map(|&(start, end)| (end.min(to) - start.max(from)).max(0)).sum()
}

/// Monday = 0. Day 0, 1970-01-01, was a Thursday.
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

fn date_of(day: i64) -> Option<NaiveDate> {
    let from_ce = i32::try_from(day.checked_add(EPOCH_DAYS_FROM_CE)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(from_ce)
}

fn day_of(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - EPOCH_DAYS_FROM_CE
}

/// The dates of the days `[first, end)` (first < end) as set bounds, clipped to the
/// dates chrono can name; `None` when none of them can be named.
fn date_range(first: i64, end: i64) -> Option<(Bound<NaiveDate>, Bound<NaiveDate>)> {
    let (min, max) = (day_of(NaiveDate::MIN), day_of(NaiveDate::MAX));
    if end <= min || first > max {
        return None;
    }
    let from = if first < min { Bound::Unbounded } else { Bound::Included(date_of(first)?) };
    let to = if end > max { Bound::Unbounded } else { Bound::Excluded(date_of(end)?) };
    Some((from, to))
}
