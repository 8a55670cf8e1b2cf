//! Moving a manual clock (only with `--clock manual`, only for administrators).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use stagecraft_runtime::Org;

use super::{JsonBody, blocking, field_problem};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// The role that may move a manual clock.
const ADMIN_ROLE: &str = "admin";

/// A move of the clock: exactly one of `advance` and `now`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockChange {
    /// How far to move it on: a number and `m`, `h`, `d` or `w` (calendar time).
    #[serde(default)]
    #[schema(example = "8d")]
    advance: Option<String>,
    /// The time to set, RFC 3339.
    #[serde(default)]
    #[schema(example = "2026-11-30T09:00:00+08:00")]
    now: Option<String>,
}

/// Where the clock is now, and what the move made happen.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ClockMoved {
    /// The new time, RFC 3339.
    now: String,
    /// The new time, Unix milliseconds.
    now_ms: i64,
    /// How many timers (SLAs, reminders, escalations) fired.
    timers_fired: usize,
    /// How many records the scheduled scans looked at.
    records_scanned: usize,
}

/// `30m`, `8h`, `3d`, `2w` in milliseconds (calendar time, not working time).
fn duration_ms(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let unit_ms = match unit {
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    (0..=1_000_000).contains(&number).then(|| number * unit_ms)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|at| at.to_rfc3339()).unwrap_or_default()
}

/// Moves the server's manual clock and fires what fell due. Exists only when the
/// server runs with `--clock manual`; administrators only.
#[utoipa::path(post, path = "/api/admin/clock", tag = "admin",
    request_body = ClockChange,
    responses(
        (status = 200, description = "Moved", body = ClockMoved),
        (status = 400, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Neither or both of `advance` and `now`, or a value that cannot be read", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn move_clock(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(change): JsonBody<ClockChange>,
) -> Result<Json<ClockMoved>, Problem> {
    let is_admin = state.with_org(|org| org.roles_of(&caller.user).iter().any(|r| r == ADMIN_ROLE));
    if !is_admin {
        return Err(Problem::forbidden("only an administrator may move the clock"));
    }
    let Some(clock) = state.manual_clock().cloned() else {
        return Err(Problem::not_found("there is nothing at this path"));
    };
    let now = match (change.advance.as_deref(), change.now.as_deref()) {
        (Some(advance), None) => {
            let ms = duration_ms(advance).ok_or_else(|| {
                Problem::invalid(vec![field_problem(
                    "/advance",
                    "请写成数字加单位：m（分钟）、h（小时）、d（天）或 w（周），例如 8d",
                    "write a number and a unit: m, h, d or w, e.g. 8d",
                )])
            })?;
            clock.advance(ms)
        }
        (None, Some(now)) => {
            let at = chrono::DateTime::parse_from_rfc3339(now).map_err(|error| {
                Problem::invalid(vec![field_problem(
                    "/now",
                    "请写成 RFC 3339 时间，例如 2026-11-30T09:00:00+08:00",
                    format!("not an rfc 3339 time ({error}), e.g. 2026-11-30T09:00:00+08:00"),
                )])
            })?;
            clock.set(at.timestamp_millis());
            at.timestamp_millis()
        }
        _ => {
            return Err(Problem::invalid(vec![field_problem(
                "/",
                "请给出 advance 或 now 二者之一",
                "give either `advance` or `now`",
            )]));
        }
    };
    // What the move made due happens before the answer, not at the next tick.
    let (fired, scanned) =
        blocking(move || state.run_maintenance().map_err(|error| Problem::failure(&error))).await?;
    Ok(Json(ClockMoved {
        now: rfc3339(now),
        now_ms: now,
        timers_fired: fired,
        records_scanned: scanned,
    }))
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations_take_minutes_hours_days_and_weeks() {
        assert_eq!(duration_ms("30m"), Some(1_800_000));
        assert_eq!(duration_ms("8h"), Some(28_800_000));
        assert_eq!(duration_ms("3d"), Some(259_200_000));
        assert_eq!(duration_ms("2w"), Some(1_209_600_000));
        for bad in ["", "d", "3", "3x", "-1d", "1.5d", "３d", "99999999999d"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }
}
