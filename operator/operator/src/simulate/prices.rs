//! What the pool's VMs cost in money, and the idle cost of a run.
//!
//! The table holds a VM's compute per hour (`running_per_hour`) and its managed OS disk
//! per hour (`parked_per_hour`: all a parked, deallocated VM bills). A pool that parks
//! needs managed OS disks, so each of its VMs bills its disk whether running or parked:
//! a running hour costs `running_per_hour + parked_per_hour`. A pool that parks nothing
//! keeps Terraform's default ephemeral OS disk, which lives on the VM's own local disk and
//! bills nothing: a running hour costs `running_per_hour`.
//!
//! The defaults are Terraform's default runner (`runners.sku = "Standard_D4ads_v5"`,
//! Linux, pay-as-you-go, East US) and the managed OS disk parking needs: a
//! `StandardSSD_LRS` disk of the full runner image's size (actions/runner-images builds
//! its Ubuntu images with a 75 GB OS disk, billed as the next tier up, E10, 128 GiB).
//! Sources and dates are in `docs/simulate.md` ("Prices").

use std::path::Path;

use figment::{
    providers::{Format, Json, Toml},
    Figment,
};

/// A price table: what one VM costs per hour, the operator configuration's `pool.prices`
/// (defaults: USD 0.206 an hour for the D4ads_v5's compute, USD 0.01315 an hour for the E10
/// disk, USD 9.60 a month over Azure's 730-hour month, rounded).
pub use crate::config::PricesConfig as Prices;

/// Why a price table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("the price file {0} must end in .toml or .json")]
    UnknownFormat(std::path::PathBuf),
    #[error("the price file has no price table (`pool.prices`, or `currency`, `running_per_hour` and `parked_per_hour` at the top)")]
    Read(#[source] Box<figment::Error>),
    #[error("prices must be finite and at least 0: {0:?}")]
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
        if ok(self.running_per_hour) && ok(self.parked_per_hour) {
            Ok(self)
        } else {
            Err(PricesError::Invalid(self))
        }
    }

    /// A running VM-hour: compute, and the managed OS disk when the pool parks (`parks`).
    pub fn running_vm_per_hour(&self, parks: bool) -> f64 {
        self.running_per_hour + if parks { self.parked_per_hour } else { 0.0 }
    }

    /// Running VM-hours at [`Self::running_vm_per_hour`] plus parked hours at the disk's
    /// price: the idle cost of idle VM-hours, the total cost of every VM-hour.
    pub fn cost(&self, parks: bool, running_hours: f64, parked_hours: f64) -> f64 {
        running_hours * self.running_vm_per_hour(parks) + parked_hours * self.parked_per_hour
    }

    /// One line naming the table, for the printed summary.
    pub fn describe(&self) -> String {
        format!(
            "{c} {:.4}/h a running VM (compute, ephemeral OS disk), {c} {:.4}/h a managed OS disk \
             (a parked VM; a pool that parks pays it on running VMs too)",
            self.running_per_hour,
            self.parked_per_hour,
            c = self.currency
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
        // The E10's USD 9.60 a month over Azure's 730-hour month, rounded.
        assert_eq!(p.parked_per_hour, 0.01315);
        assert!((p.parked_per_hour - 9.60 / 730.0).abs() < 1e-6);
        assert_eq!(p.running_per_hour, 0.206);
        // A parked VM costs about a seventeenth of a running one of a parking pool.
        let ratio = p.running_vm_per_hour(true) / p.parked_per_hour;
        assert!((16.0..17.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn a_parking_pool_pays_its_disks_while_running_too_and_a_running_only_one_does_not() {
        let p = Prices { currency: "EUR".into(), running_per_hour: 0.2, parked_per_hour: 0.01 };
        // 10 idle running hours and 100 parked hours.
        assert!((p.cost(true, 10.0, 100.0) - (10.0 * 0.21 + 100.0 * 0.01)).abs() < 1e-12);
        assert!((p.cost(false, 10.0, 0.0) - 2.0).abs() < 1e-12);
        assert!((p.cost(true, 30.0, 100.0) - (30.0 * 0.21 + 1.0)).abs() < 1e-12);
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

        let partial = dir.path().join("partial.toml");
        std::fs::write(&partial, "running_per_hour = 0.5\n").unwrap();
        assert_eq!(Prices::load(&partial).unwrap(), Prices { running_per_hour: 0.5, ..Prices::default() });

        let negative = dir.path().join("bad.json");
        std::fs::write(&negative, r#"{"running_per_hour": -0.1}"#).unwrap();
        assert!(matches!(Prices::load(&negative), Err(PricesError::Invalid(_))));
        assert!(matches!(Prices::load(&dir.path().join("prices.yaml")), Err(PricesError::UnknownFormat(_))));
    }
}
