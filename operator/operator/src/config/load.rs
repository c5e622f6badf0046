//! Layering: built-in defaults < file < environment, then validation.

use std::path::{Path, PathBuf};

use figment::{
    providers::{Env, Format, Json, Toml},
    Figment,
};

use super::{validate::validate, Config, Violation};

/// Environment variables with this prefix override the file; `__` separates nested keys.
pub const ENV_PREFIX: &str = "OPERATOR_";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error("config file {path} must end in .toml or .json")]
    UnknownFormat { path: PathBuf },
    #[error("could not read the configuration: {source}")]
    Parse {
        #[source]
        source: Box<figment::Error>,
    },
    #[error("invalid configuration:\n{}", render(.0))]
    Invalid(Vec<Violation>),
}

fn render(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  - {v}")).collect::<Vec<_>>().join("\n")
}

/// Loads the layered configuration: `file` (TOML or JSON, by extension) under the
/// process environment, and validates it.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::FileMissing { path: path.to_owned() });
        }
        figment = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => figment.merge(Toml::file_exact(path)),
            Some("json") => figment.merge(Json::file_exact(path)),
            _ => return Err(ConfigError::UnknownFormat { path: path.to_owned() }),
        };
    }
    extract(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
}

/// Loads a configuration from TOML text alone (no environment); for tests and the demo.
pub fn load_str(toml: &str) -> Result<Config, ConfigError> {
    extract(Figment::new().merge(Toml::string(toml)))
}

fn extract(figment: Figment) -> Result<Config, ConfigError> {
    let config: Config = figment.extract().map_err(|source| ConfigError::Parse { source: Box::new(source) })?;
    let violations = validate(&config);
    if violations.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(violations))
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// The smallest valid configuration, shared by the config tests.
    pub(crate) const MINIMAL: &str = r#"
[github]
scope = { repository = "octo-org/octo-repo" }
labels = ["self-hosted", "linux", "azure"]
credential = { key_vault_url = "https://kv-runners.vault.azure.net/", secret_name = "github-pat" }

[azure]
vmss_resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-runners/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-runners"

[queue]
url = "https://stbusy.queue.core.windows.net/busy-runners"

[pool]
min = 1
max = 10
free_target_percentage = 25
"#;
}

#[cfg(test)]
mod tests {
    use super::tests_support::MINIMAL;
    use super::*;
    use figment::Jail;

    #[test]
    fn minimal_file_gets_the_documented_defaults() {
        let config = load_str(MINIMAL).unwrap();
        assert_eq!(config.github.api_url, "https://api.github.com");
        assert!(config.github.jit);
        assert_eq!(config.pool.scale_in_delay.to_string(), "5m");
        assert_eq!(config.pool.registration_timeout.to_string(), "10m");
        assert_eq!(config.reconcile.period.to_string(), "30s");
        assert_eq!(config.server.listen.port(), 8080);
        assert_eq!(config.azure.vmss_name(), "vmss-runners");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type, test only
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file("operator.toml", MINIMAL)?;
            jail.set_env("OPERATOR_POOL__MAX", "20");
            jail.set_env("OPERATOR_RECONCILE__PERIOD", "45s");
            let config = load(Some(Path::new("operator.toml"))).expect("valid");
            assert_eq!(config.pool.max, 20, "env beats file");
            assert_eq!(config.pool.min, 1, "file kept where env is silent");
            assert_eq!(config.reconcile.period.to_string(), "45s", "env beats default");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type, test only
    fn json_files_are_read_too() {
        Jail::expect_with(|jail| {
            let value: toml::Value = toml::from_str(MINIMAL).unwrap();
            jail.create_file("operator.json", &serde_json::to_string(&value).unwrap())?;
            let config = load(Some(Path::new("operator.json"))).expect("valid");
            assert_eq!(config.pool.free_target_percentage, 25);
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error_not_an_empty_layer() {
        let err = load(Some(Path::new("/nonexistent/operator.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::FileMissing { .. }), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let text = MINIMAL.replace("min = 1", "min = 1\nminn = 2");
        let err = load_str(&text).unwrap_err().to_string();
        assert!(err.contains("minn"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_field_and_the_rule() {
        let text = MINIMAL.replace("min = 1", "min = 5").replace("max = 10", "max = 3");
        let err = load_str(&text).unwrap_err().to_string();
        assert!(err.contains("pool.min (5) must not exceed pool.max (3)"), "{err}");
    }
}
