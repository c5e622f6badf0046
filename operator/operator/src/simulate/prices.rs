//! What the pool's VMs cost in money: a running VM per hour (compute and its OS disk) and
//! a parked (deallocated) VM per hour (its OS disk alone), and the idle cost of a run.
//!
//! The defaults are Terraform's default runner (`runners.sku = "Standard_D4ads_v5"`,
//! Linux, pay-as-you-go) with the managed OS disk parking needs: a `StandardSSD_LRS` disk
//! of the full runner image's size (actions/runner-images builds its Ubuntu images with a
//! 75 GB OS disk, billed as the next tier up, E10, 128 GiB). Sources and dates are in
//! `docs/simulate.md` ("Prices").

use std::path::Path;

use figment::{
    providers::{Format, Json, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// Hours in Azure's billing month: monthly disk prices are divided by this.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Standard_D4ads_v5, Linux, pay-as-you-go, East US, US dollars per hour.
pub const D4ADS_V5_PER_HOUR: f64 = 0.206;
/// StandardSSD_LRS E10 (128 GiB), East US, US dollars per month.
pub const E10_PER_MONTH: f64 = 9.60;

/// A price table: what one VM costs per hour, running and parked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// ISO 4217 code the prices are in, e.g. `USD`.
    pub currency: String,
    /// A running VM: compute plus its OS disk.
    pub running_per_hour: f64,
    /// A parked (deallocated) VM: its OS disk alone; Azure bills no compute for it.
    pub parked_per_hour: f64,
}

impl Default for Prices {
    fn default() -> Self {
        let disk = E10_PER_MONTH / HOURS_PER_MONTH;
        Self { currency: "USD".into(), running_per_hour: D4ADS_V5_PER_HOUR + disk, parked_per_hour: disk }
    }
}

/// Why a price table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("the price file {0} must end in .toml or .json")]
    UnknownFormat(std::path::PathBuf),
    #[error("the price file has no price table (`pool.prices`, or `currency`, `running_per_hour` and `parked_per_hour` at the top)")]
    Read(#[source] Box<figment::Error>),
    #[error("prices must be finite and at least 0, and a parked VM must not cost more than a running one: {0:?}")]
    Invalid(Prices),
}

impl Prices {
    /// A price table from a TOML or JSON file: the operator's configuration (its
    /// `pool.prices`) or a file holding only the table's three fields.
    pub fn load(path: &Path) -> Result<Self, PricesError> {
        let figment = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Figment::new().merge(Toml::file_exact(path)),
            Some("json") => Figment::new().merge(Json::file_exact(path)),
            _ => return Err(PricesError::UnknownFormat(path.to_owned())),
        };
        let prices = if figment.find_value("pool.prices").is_ok() {
            figment.extract_inner::<Prices>("pool.prices")
        } else {
            figment.extract::<Prices>()
        }
        .map_err(|e| PricesError::Read(Box::new(e)))?;
        prices.validated()
    }

    fn validated(self) -> Result<Self, PricesError> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if ok(self.running_per_hour) && ok(self.parked_per_hour) && self.parked_per_hour <= self.running_per_hour {
            Ok(self)
        } else {
            Err(PricesError::Invalid(self))
        }
    }

    /// Idle cost: idle running VM-hours at the running price plus parked hours at the
    /// parked price. A running VM's price includes its disk, so its disk is not counted
    /// twice; a parked VM pays its disk alone.
    pub fn idle_cost(&self, idle_running_hours: f64, parked_hours: f64) -> f64 {
        idle_running_hours * self.running_per_hour + parked_hours * self.parked_per_hour
    }

    /// Total cost: every running VM-hour (busy or idle) and every parked hour.
    pub fn total_cost(&self, running_hours: f64, parked_hours: f64) -> f64 {
        running_hours * self.running_per_hour + parked_hours * self.parked_per_hour
    }

    /// One line naming the table, for the printed summary.
    pub fn describe(&self) -> String {
        format!(
            "{} {:.4}/h running VM (compute and disk), {} {:.4}/h parked VM (disk)",
            self.currency, self.running_per_hour, self.currency, self.parked_per_hour
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_the_d4ads_v5_with_its_e10_disk() {
        let p = Prices::default();
        assert_eq!(p.currency, "USD");
        assert!((p.parked_per_hour - 9.60 / 730.0).abs() < 1e-12);
        assert!((p.running_per_hour - (0.206 + 9.60 / 730.0)).abs() < 1e-12);
        // A parked VM costs about a sixteenth of a running one.
        let ratio = p.running_per_hour / p.parked_per_hour;
        assert!((16.0..17.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn idle_cost_prices_idle_running_hours_and_parked_hours_each_once() {
        let p = Prices { currency: "EUR".into(), running_per_hour: 0.2, parked_per_hour: 0.01 };
        assert!((p.idle_cost(10.0, 100.0) - (2.0 + 1.0)).abs() < 1e-12);
        assert!((p.total_cost(30.0, 100.0) - (6.0 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn a_price_table_is_read_from_an_operator_config_or_a_bare_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("operator.toml");
        std::fs::write(
            &config,
            "[pool]\nmin = 2\nmax = 10\nfree_target_percentage = 20\n\
             [pool.prices]\ncurrency = \"EUR\"\nrunning_per_hour = 0.19\nparked_per_hour = 0.012\n",
        )
        .unwrap();
        let p = Prices::load(&config).unwrap();
        assert_eq!(p, Prices { currency: "EUR".into(), running_per_hour: 0.19, parked_per_hour: 0.012 });

        let bare = dir.path().join("prices.json");
        std::fs::write(&bare, r#"{"currency": "USD", "running_per_hour": 0.3, "parked_per_hour": 0.02}"#).unwrap();
        assert_eq!(Prices::load(&bare).unwrap().running_per_hour, 0.3);

        let dearer_parked = dir.path().join("bad.json");
        std::fs::write(&dearer_parked, r#"{"currency": "USD", "running_per_hour": 0.1, "parked_per_hour": 0.2}"#)
            .unwrap();
        assert!(matches!(Prices::load(&dearer_parked), Err(PricesError::Invalid(_))));
        assert!(matches!(Prices::load(&dir.path().join("prices.yaml")), Err(PricesError::UnknownFormat(_))));
    }
}
