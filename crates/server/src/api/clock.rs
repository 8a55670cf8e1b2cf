//! Moving a manual clock (only with `--clock manual`, only for administrators).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use stagecraft_runtime::Org;

use super::{JsonBody, blocking, field_problem};
use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;

/// The role that may move a manual clock.
const ADMIN_ROLE: &str = "admin";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockChange {
    #[serde(default)]
    advance: Option<String>,
    #[serde(default)]
    now: Option<String>,
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

pub(crate) async fn move_clock(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(change): JsonBody<ClockChange>,
) -> Result<Json<Value>, Problem> {
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
    Ok(Json(json!({
        "now": rfc3339(now),
        "now_ms": now,
        "timers_fired": fired,
        "records_scanned": scanned,
    })))
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
