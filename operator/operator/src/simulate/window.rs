//! A part of a trace: the jobs that arrived in a time window, and the jobs before it (the
//! history a learned mode may learn from without seeing the window).
//!
//! `--last 14d` is the window of the trace's last 14 days: jobs arriving within 14 × 24 h
//! before the last arrival (inclusive at both ends of that span, so the last job is in it).
//! `--from`/`--until` take UTC days, `YYYY-MM-DD`, `--until` inclusive. The window keeps
//! each job's absolute arrival, so a run on it starts at the window's first arrival with
//! an empty pool, as a deployment that started then would.

use std::time::Duration;

use operator_sim::workload::{TraceJob, Workload};

const DAY: f64 = 86_400.0;

/// Which jobs of a trace to replay, by arrival (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Window {
    /// The whole trace.
    All,
    /// Jobs arriving no more than this long before the trace's last arrival.
    Last(Duration),
    /// Jobs arriving at or after `from` and before `until` (either end open).
    Span { from: Option<f64>, until: Option<f64> },
}

/// A window applied to a trace: the window's jobs and the jobs that came before them.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub window: Workload,
    pub history: Workload,
    /// The window's bounds, Unix seconds (the first and last arrival it may hold).
    pub from: f64,
    pub until: f64,
}

/// A UTC day `YYYY-MM-DD` as Unix seconds at its midnight.
pub fn parse_day(s: &str) -> Result<f64, String> {
    let date = time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD): {e}"))?;
    Ok(date.midnight().assume_utc().unix_timestamp() as f64)
}

impl Window {
    /// `--last`, `--from` and `--until` as given (`--last` excludes the other two).
    pub fn of(last: Option<Duration>, from: Option<&str>, until: Option<&str>) -> Result<Self, String> {
        match (last, from, until) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err("--last excludes --from and --until".into()),
            (Some(span), None, None) => Ok(Window::Last(span)),
            (None, None, None) => Ok(Window::All),
            (None, from, until) => Ok(Window::Span {
                from: from.map(parse_day).transpose()?,
                // Inclusive: up to the end of that day.
                until: until.map(parse_day).transpose()?.map(|t| t + DAY),
            }),
        }
    }

    /// Split `workload` into the window's jobs and the earlier ones; jobs after the window
    /// belong to neither.
    pub fn split(&self, workload: &Workload) -> Split {
        let last = workload.jobs.last().map_or(0.0, |j| j.arrival);
        let (from, until) = match *self {
            Window::All => (f64::NEG_INFINITY, f64::INFINITY),
            Window::Last(span) => (last - span.as_secs_f64(), f64::INFINITY),
            Window::Span { from, until } => (from.unwrap_or(f64::NEG_INFINITY), until.unwrap_or(f64::INFINITY)),
        };
        let pick = |keep: &dyn Fn(&TraceJob) -> bool| Workload {
            jobs: workload.jobs.iter().filter(|j| keep(j)).cloned().collect(),
            dropped: workload.dropped.clone(),
        };
        let window = pick(&|j| j.arrival >= from && j.arrival < until);
        let history = pick(&|j| j.arrival < from);
        let first = window.jobs.first().map_or(from, |j| j.arrival);
        let end = window.jobs.last().map_or(until, |j| j.arrival);
        Split { window, history, from: first, until: end }
    }

    /// How the window is named in the printed summary.
    pub fn describe(&self) -> Option<String> {
        match self {
            Window::All => None,
            Window::Last(span) if span.as_secs() % 86_400 == 0 => {
                Some(format!("the last {} days", span.as_secs() / 86_400))
            }
            Window::Last(span) => Some(format!("the last {}", humantime::format_duration(*span))),
            Window::Span { from, until } => Some(format!(
                "from {} until {}",
                from.map_or("the start".into(), day),
                until.map_or("the end".into(), |t| day(t - DAY))
            )),
        }
    }
}

/// Unix seconds as a UTC day, `YYYY-MM-DD`.
pub fn day(unix: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix.floor() as i64)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| format!("{unix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(arrivals: &[f64]) -> Workload {
        Workload::new(
            arrivals
                .iter()
                .map(|&arrival| TraceJob { arrival, duration: 60.0, labels: vec![], name: String::new() })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_last_days_are_counted_back_from_the_last_arrival() {
        // Arrivals on days 0, 10, 16 and 30 (the last).
        let w = trace(&[0.0, 10.0 * DAY, 16.0 * DAY, 30.0 * DAY]);
        let split = Window::Last(Duration::from_secs(14 * 86_400)).split(&w);
        let days = |w: &Workload| w.jobs.iter().map(|j| j.arrival / DAY).collect::<Vec<_>>();
        // Day 16 is exactly 14 days before day 30: inside.
        assert_eq!(days(&split.window), [16.0, 30.0]);
        assert_eq!(days(&split.history), [0.0, 10.0]);
        assert_eq!((split.from, split.until), (16.0 * DAY, 30.0 * DAY));
        assert_eq!(Window::Last(Duration::from_secs(14 * 86_400)).describe().unwrap(), "the last 14 days");
    }

    #[test]
    fn from_and_until_take_whole_utc_days_until_inclusive() {
        let base = parse_day("2025-09-04").unwrap();
        assert_eq!(base, 1_756_944_000.0);
        let w = trace(&[base - 1.0, base, base + 1.5 * DAY, base + 2.0 * DAY]);
        let window = Window::of(None, Some("2025-09-04"), Some("2025-09-05")).unwrap();
        let split = window.split(&w);
        assert_eq!(split.window.jobs.len(), 2, "the 4th and the 5th, not the 6th");
        assert_eq!(split.history.jobs.len(), 1);
        assert_eq!(window.describe().unwrap(), "from 2025-09-04 until 2025-09-05");
        assert!(Window::of(Some(Duration::from_secs(60)), Some("2025-09-04"), None).is_err());
        assert!(parse_day("4 Sep").is_err());
    }

    #[test]
    fn the_whole_trace_has_no_history() {
        let w = trace(&[5.0, 6.0]);
        let split = Window::All.split(&w);
        assert_eq!(split.window, w);
        assert!(split.history.jobs.is_empty());
        assert_eq!(Window::of(None, None, None).unwrap(), Window::All);
    }
}
