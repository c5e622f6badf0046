//! Where the pool's warm and parked counts come from — fixed (`pool.min`,
//! `pool.parked`), by the clock (`pool.schedules`) or learned from demand
//! (`pool.learned`) — and what a running and a parked VM cost (`pool.prices`). The
//! core computes the targets (`operator_core::targets`); this file holds their
//! settings and the rules the types cannot express.

use std::{borrow::Cow, path::PathBuf, time::Duration};

use operator_core::targets::{LearnedParams, Schedule, ScheduleEntry, ScheduleError, Targets};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Config, DemandSource, HumanDuration, PoolConfig, Violation};

/// One `pool.schedules` entry: while its pattern matches, its fields replace the pool's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Five cron fields, `minute hour day-of-month month day-of-week`, matched on the wall
    /// clock of `timezone`. The entry applies during every minute the pattern matches:
    /// `* 8-17 * * mon-fri` is 08:00-17:59 on weekdays, `0 9 * * *` the one minute 09:00.
    /// Names (`mon`, `jan`), lists, ranges and steps as in crontab; Sunday is 0 or 7; when
    /// both day fields are restricted either may match.
    #[schemars(example = "* 8-17 * * mon-fri")]
    pub cron: String,
    /// IANA time zone of the pattern, e.g. `Europe/Berlin`, `America/New_York` or `UTC`,
    /// from the time zone database compiled into the operator.
    #[schemars(example = "Europe/Berlin")]
    pub timezone: String,
    /// `pool.min` while this entry applies (the pool's own when absent).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub min: Option<u32>,
    /// `pool.parked` while this entry applies (the pool's own when absent).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub parked: Option<u32>,
    /// `pool.free_target_percentage` while this entry applies (the pool's own when absent).
    #[serde(default)]
    #[schemars(range(min = 0, max = 99))]
    pub free_target_percentage: Option<u8>,
}

impl From<&ScheduleConfig> for ScheduleEntry {
    fn from(entry: &ScheduleConfig) -> Self {
        Self {
            cron: entry.cron.clone(),
            timezone: entry.timezone.clone(),
            min: entry.min,
            parked: entry.parked,
            free_target_percentage: entry.free_target_percentage,
        }
    }
}

/// The learned mode: warm and parked counts sized from the pool's demand history
/// (docs/scaling-policy.md, "Learned mode"). The other fields tune the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnedConfig {
    /// The block blob that keeps the learned state across restarts, in the storage
    /// account the operator already uses:
    /// `https://<account>.blob.core.windows.net/operator-state/learned-demand.json`. The
    /// scaler's identity needs Storage Blob Data Contributor on the container. A SAS in
    /// the query is used as it is (local runs against Azurite).
    #[schemars(example = "https://stbusy.blob.core.windows.net/operator-state/learned-demand.json")]
    pub state_url: String,
    /// A workload trace (the `operator simulate --trace` formats: JSONL or the
    /// bitcoin-core-ci-stats array, gzipped or not) to learn from when the blob does not
    /// exist yet; ignored once it does.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub seed_trace: Option<PathBuf>,
    /// Length of a slot of the week (whole minutes, dividing a day). Bursts are learned
    /// per slot, from Monday 00:00 UTC.
    #[serde(default = "default_slot")]
    pub slot: HumanDuration,
    /// Half-life of a week's peak: its weight halves for every half-life of age.
    #[serde(default = "default_half_life")]
    pub half_life: HumanDuration,
    /// Weeks of peaks kept per slot, newest first (1-520).
    #[serde(default = "default_history_weeks")]
    #[schemars(range(min = 1, max = 520))]
    pub history_weeks: u32,
    /// Warm VMs (`min`) cover this quantile of a slot's weekly largest burst (the rise of
    /// demand within `burst_window`).
    #[serde(default = "default_warm_quantile")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warm_quantile: f64,
    /// Warm plus parked VMs cover this quantile. A running VM costs about fifteen times a
    /// parked one (`pool.prices`), so this is set high (default 1: the largest burst of
    /// the weeks kept) and `warm_quantile` low (default 0: nothing kept running).
    #[serde(default = "default_reserve_quantile")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub reserve_quantile: f64,
    /// How long before a slot begins its targets already apply, so VMs are started or
    /// parked in time.
    #[serde(default = "default_lead")]
    pub lead: HumanDuration,
    /// A burst is how far demand rose within this window (30 s to 1 h): about a boot,
    /// the time a reserve taken by one burst needs to be whole again.
    #[serde(default = "default_burst_window")]
    pub burst_window: HumanDuration,
    /// How often the learned state is written to the blob (and once more on shutdown).
    #[serde(default = "default_save_period")]
    pub save_period: HumanDuration,
}

impl LearnedConfig {
    /// The learned mode on `state_url` with every default.
    pub fn new(state_url: impl Into<String>) -> Self {
        Self {
            state_url: state_url.into(),
            seed_trace: None,
            slot: default_slot(),
            half_life: default_half_life(),
            history_weeks: default_history_weeks(),
            warm_quantile: default_warm_quantile(),
            reserve_quantile: default_reserve_quantile(),
            lead: default_lead(),
            burst_window: default_burst_window(),
            save_period: default_save_period(),
        }
    }

    /// The core model's tuning.
    pub fn params(&self) -> LearnedParams {
        LearnedParams {
            slot: self.slot.get(),
            half_life: self.half_life.get(),
            history_weeks: self.history_weeks,
            warm_quantile: self.warm_quantile,
            reserve_quantile: self.reserve_quantile,
            lead: self.lead.get(),
            burst_window: self.burst_window.get(),
        }
    }
}

/// What one runner VM costs an hour, running and parked, for comparing settings. The
/// defaults are Azure pay-as-you-go list prices in East US, read on 2026-12-01 from
/// secondary sources quoting Azure's retail price list (docs/configuration.md, "Prices";
/// not checked against prices.azure.com itself): Terraform's default runner size
/// Standard_D4ads_v5 (Linux) at $0.206 an hour, and for a parked VM its managed OS disk
/// alone, the full runner image's 75 GiB on StandardSSD_LRS, billed as an E10 (128 GiB)
/// at $9.60 a month, $0.01315 an hour. Set your region's and size's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    /// ISO 4217 code of the prices' currency.
    #[serde(default = "default_currency")]
    #[schemars(pattern(r"^[A-Z]{3}$"))]
    pub currency: String,
    /// One running runner VM's compute, per hour. A VM on a managed OS disk (as parking
    /// needs) pays `parked_per_hour` for the disk on top.
    #[serde(default = "default_running_per_hour")]
    #[schemars(range(min = 0.0))]
    pub running_per_hour: f64,
    /// One parked (deallocated) runner VM, per hour: Azure bills only its managed OS disk.
    #[serde(default = "default_parked_per_hour")]
    #[schemars(range(min = 0.0))]
    pub parked_per_hour: f64,
}

impl Default for PricesConfig {
    fn default() -> Self {
        Self {
            currency: default_currency(),
            running_per_hour: default_running_per_hour(),
            parked_per_hour: default_parked_per_hour(),
        }
    }
}

impl PoolConfig {
    /// The configured targets, before any schedule or learning.
    pub fn base_targets(&self) -> Targets {
        Targets { min: self.min, parked: self.parked, free_target_percentage: self.free_target_percentage }
    }

    /// `pool.schedules` as the core's entries.
    pub fn schedule_entries(&self) -> Vec<ScheduleEntry> {
        self.schedules.iter().map(ScheduleEntry::from).collect()
    }

    /// `pool.schedules`, parsed (empty when none are configured). A validated
    /// configuration always parses.
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::new(self.schedule_entries())
    }
}

fn default_slot() -> HumanDuration {
    HumanDuration(LearnedParams::default().slot)
}
fn default_half_life() -> HumanDuration {
    HumanDuration(LearnedParams::default().half_life)
}
fn default_history_weeks() -> u32 {
    LearnedParams::default().history_weeks
}
fn default_warm_quantile() -> f64 {
    LearnedParams::default().warm_quantile
}
fn default_reserve_quantile() -> f64 {
    LearnedParams::default().reserve_quantile
}
fn default_lead() -> HumanDuration {
    HumanDuration(LearnedParams::default().lead)
}
fn default_burst_window() -> HumanDuration {
    HumanDuration(LearnedParams::default().burst_window)
}
fn default_save_period() -> HumanDuration {
    HumanDuration::secs(5 * 60)
}
fn default_currency() -> String {
    "USD".to_owned()
}
fn default_running_per_hour() -> f64 {
    0.206
}
fn default_parked_per_hour() -> f64 {
    // E10 Standard SSD (LRS), $9.60 a month over Azure's 730-hour month, rounded.
    0.01315
}

/// The violations of `pool.parked`, `pool.schedules`, `pool.learned` and `pool.prices`.
pub(super) fn violations(config: &Config) -> Vec<Violation> {
    let pool = &config.pool;
    let mut out = Vec::new();
    let mut fail = |field: Cow<'static, str>, message: String| out.push(Violation { field, message });

    if pool.min.saturating_add(pool.parked) > pool.max && pool.min <= pool.max {
        fail(
            "pool.parked".into(),
            format!("pool.min ({}) + pool.parked ({}) must not exceed pool.max ({})", pool.min, pool.parked, pool.max),
        );
    }

    let entries = pool.schedule_entries();
    let mut errors = Schedule::errors(&entries).into_iter().peekable();
    for (index, entry) in entries.iter().enumerate() {
        let at = |field: &str| format!("pool.schedules[{index}]{field}");
        while let Some(error) = errors.next_if(|e| e.index() == index) {
            let field = at(&format!(".{}", error.field()));
            let message = format!("{field}: {}", crate::report::chain(&error));
            fail(field.into(), message);
        }
        let filled = entry.apply(pool.base_targets());
        if filled.min.saturating_add(filled.parked) > pool.max {
            fail(
                at("").into(),
                format!(
                    "{}: min ({}) + parked ({}) must not exceed pool.max ({}) (unset fields are the pool's)",
                    at(""),
                    filled.min,
                    filled.parked,
                    pool.max
                ),
            );
        }
        if filled.free_target_percentage >= 100 {
            fail(
                at(".free_target_percentage").into(),
                format!(
                    "{} ({}) must be between 0 and 99",
                    at(".free_target_percentage"),
                    filled.free_target_percentage
                ),
            );
        }
        if filled.min == 0 && config.github.demand == DemandSource::None {
            fail(
                at(".min").into(),
                format!("{} (0) must be at least 1 with github.demand = \"none\", as pool.min", at(".min")),
            );
        }
    }

    if let Some(learned) = &pool.learned {
        if !pool.schedules.is_empty() {
            fail(
                "pool.learned".into(),
                format!(
                    "pool.learned cannot be combined with pool.schedules ({} entries): the learned mode sizes min and parked itself; remove one of them",
                    pool.schedules.len()
                ),
            );
        }
        if !valid_blob_url(&learned.state_url) {
            fail(
                "pool.learned.state_url".into(),
                format!(
                    "pool.learned.state_url ({}) must be an https:// blob URL such as https://<account>.blob.core.windows.net/operator-state/learned-demand.json",
                    crate::queue::redact_query(&learned.state_url)
                ),
            );
        }
        for problem in learned.params().problems() {
            let field = format!("pool.learned.{}", problem.field());
            fail(field.clone().into(), format!("{field}: {problem}"));
        }
        if learned.save_period.get() < Duration::from_secs(30) {
            fail(
                "pool.learned.save_period".into(),
                format!("pool.learned.save_period ({}) must be at least 30s", learned.save_period),
            );
        }
    }

    let prices = &pool.prices;
    if !(prices.currency.len() == 3 && prices.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        fail(
            "pool.prices.currency".into(),
            format!("pool.prices.currency ({:?}) must be an ISO 4217 code such as \"USD\"", prices.currency),
        );
    }
    for (field, value) in [
        ("pool.prices.running_per_hour", prices.running_per_hour),
        ("pool.prices.parked_per_hour", prices.parked_per_hour),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            fail(field.into(), format!("{field} ({value}) must be a price of zero or more"));
        }
    }
    out
}

/// `https://` (or `http://127.…` for local tests) with a container and a blob name.
fn valid_blob_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://127.")) else {
        return false;
    };
    let path = rest.split('?').next().unwrap_or_default();
    let mut segments = path.split_once('/').map_or("", |(_, p)| p).split('/');
    let (container, blob) = (segments.next().unwrap_or_default(), segments.next().unwrap_or_default());
    // Azurite's URLs put the account first: http://127.0.0.1:10000/devstoreaccount1/<container>/<blob>.
    !container.is_empty() && !blob.is_empty()
}

#[cfg(test)]
mod tests {
    use super::super::{load::tests_support::MINIMAL, load_str, validate::validate};
    use super::*;

    fn violations_of(edit: impl Fn(&mut Config)) -> Vec<Violation> {
        let mut config = load_str(MINIMAL).unwrap();
        edit(&mut config);
        validate(&config)
    }

    fn every_minute(timezone: &str) -> ScheduleConfig {
        ScheduleConfig {
            cron: "* * * * *".into(),
            timezone: timezone.into(),
            min: None,
            parked: None,
            free_target_percentage: None,
        }
    }

    const STATE_URL: &str = "https://stbusy.blob.core.windows.net/operator-state/learned-demand.json";

    fn learned() -> LearnedConfig {
        let text = format!("{MINIMAL}\n[pool.learned]\nstate_url = \"{STATE_URL}\"\n");
        let read = load_str(&text).unwrap().pool.learned.unwrap();
        assert_eq!(read, LearnedConfig::new(STATE_URL), "the serde defaults are new()'s");
        read
    }

    #[test]
    fn the_new_pool_fields_default_to_fixed_targets_without_parking() {
        let pool = load_str(MINIMAL).unwrap().pool;
        assert_eq!(pool.parked, 0);
        assert!(pool.schedules.is_empty() && pool.learned.is_none());
        assert_eq!(pool.prices, PricesConfig::default());
        assert_eq!(pool.base_targets(), Targets { min: 1, parked: 0, free_target_percentage: 25 });
    }

    #[test]
    fn min_and_parked_together_must_fit_in_max() {
        let v = violations_of(|c| c.pool.parked = 10);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "pool.parked");
        assert_eq!(v[0].message, "pool.min (1) + pool.parked (10) must not exceed pool.max (10)");
        assert!(violations_of(|c| c.pool.parked = 9).is_empty());
    }

    #[test]
    fn a_bad_schedule_entry_is_named_by_its_position() {
        let v = violations_of(|c| {
            c.pool.schedules = vec![every_minute("UTC"), every_minute("UTC"), every_minute("Europe/Berln")];
        });
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "pool.schedules[2].timezone");
        assert_eq!(v[0].message, "pool.schedules[2].timezone: unknown time zone \"Europe/Berln\"");

        let v = violations_of(|c| {
            c.pool.schedules = vec![ScheduleConfig { cron: "0 25 * * *".into(), ..every_minute("UTC") }]
        });
        assert_eq!(v[0].field, "pool.schedules[0].cron");
        assert!(
            v[0].message.starts_with("pool.schedules[0].cron: \"0 25 * * *\" is not a valid cron pattern: "),
            "{v:?}"
        );
    }

    #[test]
    fn schedule_entries_are_checked_with_the_pool_values_filled_in() {
        let v = violations_of(|c| {
            c.pool.parked = 4;
            c.pool.schedules = vec![ScheduleConfig { min: Some(7), ..every_minute("UTC") }];
        });
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "pool.schedules[0]");
        assert_eq!(
            v[0].message,
            "pool.schedules[0]: min (7) + parked (4) must not exceed pool.max (10) (unset fields are the pool's)"
        );
        let v = violations_of(|c| {
            c.pool.schedules = vec![ScheduleConfig { free_target_percentage: Some(100), ..every_minute("UTC") }]
        });
        assert_eq!(v[0].field, "pool.schedules[0].free_target_percentage");
        let v = violations_of(|c| {
            c.github.demand = DemandSource::None;
            c.pool.schedules = vec![ScheduleConfig { min: Some(0), ..every_minute("UTC") }];
        });
        assert_eq!(v[0].field, "pool.schedules[0].min");
    }

    #[test]
    fn schedules_read_from_toml_apply_in_their_zone() {
        let text = format!(
            "{MINIMAL}\n[[pool.schedules]]\ncron = \"* 9-17 * * mon-fri\"\ntimezone = \"Europe/Berlin\"\nmin = 4\nparked = 6\n"
        );
        let pool = load_str(&text).unwrap().pool;
        let applied =
            pool.schedule().unwrap().targets_at(pool.base_targets(), time::macros::datetime!(2026-07-06 07:00 UTC));
        assert_eq!(applied.entry, Some(0));
        assert_eq!(applied.targets, Targets { min: 4, parked: 6, free_target_percentage: 25 });
    }

    #[test]
    fn learned_mode_excludes_schedules_and_checks_its_tuning() {
        assert!(violations_of(|c| c.pool.learned = Some(learned())).is_empty());
        let v = violations_of(|c| {
            c.pool.learned = Some(learned());
            c.pool.schedules = vec![every_minute("UTC")];
        });
        assert_eq!(v[0].field, "pool.learned");
        assert!(v[0].message.contains("cannot be combined with pool.schedules"), "{v:?}");
        let v = violations_of(|c| {
            c.pool.learned = Some(LearnedConfig {
                state_url: "https://stbusy.blob.core.windows.net/learned-demand.json?sig=secret".into(),
                slot: HumanDuration::secs(7 * 60),
                warm_quantile: 1.5,
                ..learned()
            })
        });
        let fields: Vec<_> = v.iter().map(|v| v.field.as_ref()).collect();
        assert_eq!(fields, ["pool.learned.state_url", "pool.learned.slot", "pool.learned.warm_quantile"]);
        assert!(!v[0].message.contains("secret"), "{v:?}");
    }

    #[test]
    fn learned_defaults_are_the_models() {
        let learned = learned();
        assert_eq!(learned.params(), LearnedParams::default());
        assert_eq!(learned.slot.to_string(), "4h");
        assert_eq!(learned.burst_window.to_string(), "1m 30s");
        assert_eq!(learned.save_period.to_string(), "5m");
        assert!(learned.seed_trace.is_none());
    }

    #[test]
    fn azurite_blob_urls_are_accepted() {
        assert!(valid_blob_url(
            "http://127.0.0.1:10000/devstoreaccount1/operator-state/learned-demand.json?sv=1&sig=x"
        ));
        assert!(valid_blob_url("https://stbusy.blob.core.windows.net/operator-state/learned-demand.json"));
        assert!(!valid_blob_url("https://stbusy.blob.core.windows.net/operator-state"));
        assert!(!valid_blob_url("http://stbusy.blob.core.windows.net/operator-state/learned-demand.json"));
    }

    #[test]
    fn prices_must_be_a_currency_code_and_non_negative() {
        let v = violations_of(|c| {
            c.pool.prices = PricesConfig { currency: "usd".into(), running_per_hour: -1.0, parked_per_hour: f64::NAN }
        });
        let fields: Vec<_> = v.iter().map(|v| v.field.as_ref()).collect();
        assert_eq!(fields, ["pool.prices.currency", "pool.prices.running_per_hour", "pool.prices.parked_per_hour"]);
        let ratio = default_running_per_hour() / default_parked_per_hour();
        assert!((15.0..16.0).contains(&ratio), "a running VM costs about 15.7 parked ones: {ratio}");
    }
}
