//! Rules the types alone cannot express. Each violation names the field and the rule,
//! so an operator reading the start-up error knows exactly what to change.

use std::{borrow::Cow, fmt};

use super::{Config, DemandSource, GithubScope};

/// One broken rule: the dotted field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// e.g. `pool.min`, or `pool.schedules[2].timezone` for an entry of a list.
    pub field: Cow<'static, str>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// All violations in `config`, in field order; empty when the config is usable.
pub fn validate(config: &Config) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut fail = recorder(&mut out);

    let pool = &config.pool;
    if pool.min == 0 && config.github.demand == DemandSource::None {
        fail(
            "pool.min",
            "pool.min (0) must be at least 1 with github.demand = \"none\": the pool then learns of demand only from its own runners".into(),
        );
    }
    if pool.min > pool.max {
        fail("pool.min", format!("pool.min ({}) must not exceed pool.max ({})", pool.min, pool.max));
    }
    if pool.max > 1000 {
        fail("pool.max", format!("pool.max ({}) must be at most 1000, the scale set's instance limit", pool.max));
    }
    if pool.free_target_percentage >= 100 {
        fail(
            "pool.free_target_percentage",
            format!("pool.free_target_percentage ({}) must be between 0 and 99", pool.free_target_percentage),
        );
    }
    if pool.registration_timeout.get().as_secs() < 60 {
        fail(
            "pool.registration_timeout",
            format!(
                "pool.registration_timeout ({}) must be at least 1m: a VM needs time to boot",
                pool.registration_timeout
            ),
        );
    }
    drop(fail);
    // parked, schedules, learned and prices: their fields carry list indices.
    out.extend(super::targets::violations(config));
    let mut fail = recorder(&mut out);

    let github = &config.github;
    if !github.api_url.starts_with("https://") && !github.api_url.starts_with("http://127.") {
        fail("github.api_url", format!("github.api_url ({}) must be an https:// URL", github.api_url));
    }
    match &github.scope {
        GithubScope::Repository(repo) => {
            let parts: Vec<&str> = repo.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                fail("github.scope.repository", format!("github.scope.repository ({repo}) must be owner/name"));
            }
            if github.runner_group.is_some() {
                fail(
                    "github.runner_group",
                    "github.runner_group is only allowed with organization scope: repositories have no runner groups"
                        .into(),
                );
            }
        }
        GithubScope::Organization(org) => {
            if org.is_empty() || org.contains('/') {
                fail(
                    "github.scope.organization",
                    format!("github.scope.organization ({org}) must be an organization login"),
                );
            }
        }
    }
    let demand_none = github.demand == DemandSource::None;
    if (demand_none && github.labels.is_empty()) || github.labels.len() > 100 {
        let least = if demand_none { 1 } else { 0 };
        fail("github.labels", format!("github.labels must hold {least} to 100 labels, not {}", github.labels.len()));
    }
    if !demand_none && !github.jit {
        fail(
            "github.jit",
            "github.jit must be true with github.demand = \"scale_set\": scale-set runners register only with JIT configs"
                .into(),
        );
    }
    if let Some(name) = &github.scale_set_name {
        if !valid_scale_set_name(name) {
            fail(
                "github.scale_set_name",
                format!("github.scale_set_name ({name:?}) must be 1-100 letters, digits, '.', '_' or '-'"),
            );
        }
    }
    for label in &github.labels {
        if !valid_label(label) {
            fail(
                "github.labels",
                format!("github.labels entry {label:?} must be 1-100 characters without commas or whitespace"),
            );
        }
    }
    if !github.credential.key_vault_url.starts_with("https://")
        && !github.credential.key_vault_url.starts_with("http://127.")
    {
        fail(
            "github.credential.key_vault_url",
            format!(
                "github.credential.key_vault_url ({}) must be an https:// vault URI",
                github.credential.key_vault_url
            ),
        );
    }

    if !valid_vmss_id(&config.azure.vmss_resource_id) {
        fail(
            "azure.vmss_resource_id",
            format!(
                "azure.vmss_resource_id ({}) must look like /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachineScaleSets/<name>",
                config.azure.vmss_resource_id
            ),
        );
    }
    if !https_or_loopback(&config.azure.resource_manager_url) {
        fail(
            "azure.resource_manager_url",
            format!("azure.resource_manager_url ({}) must be an https:// URL", config.azure.resource_manager_url),
        );
    }
    if !config.queue.url.starts_with("https://") && !config.queue.url.starts_with("http://127.") {
        fail("queue.url", format!("queue.url ({}) must be an https:// queue URL", config.queue.url));
    }
    if config.reconcile.period.get().as_secs() < 5 {
        fail("reconcile.period", format!("reconcile.period ({}) must be at least 5s", config.reconcile.period));
    }
    if config.reconcile.debounce.get() > config.reconcile.period.get() {
        fail(
            "reconcile.debounce",
            format!(
                "reconcile.debounce ({}) must not exceed reconcile.period ({})",
                config.reconcile.debounce, config.reconcile.period
            ),
        );
    }
    let server = &config.server;
    if server.operations_listen == server.listen && server.listen.port() != 0 {
        fail(
            "server.operations_listen",
            format!(
                "server.operations_listen ({}) must differ from server.listen: runners must not reach /metrics and /readyz",
                server.operations_listen
            ),
        );
    }
    if server.max_connections_per_source == 0 || server.max_connections_per_source > server.max_connections {
        fail(
            "server.max_connections_per_source",
            format!(
                "server.max_connections_per_source ({}) must be between 1 and server.max_connections ({})",
                server.max_connections_per_source, server.max_connections
            ),
        );
    }
    if !(1024..=65536).contains(&server.max_header_bytes) {
        fail(
            "server.max_header_bytes",
            format!("server.max_header_bytes ({}) must be between 1024 and 65536", server.max_header_bytes),
        );
    }
    if server.header_read_timeout.get().is_zero() || server.request_timeout.get().is_zero() {
        fail(
            "server.header_read_timeout",
            "server.header_read_timeout and server.request_timeout must be more than zero".into(),
        );
    }
    drop(fail);
    out
}

/// Records a violation of a field named by a fixed path.
fn recorder(out: &mut Vec<Violation>) -> impl FnMut(&'static str, String) + '_ {
    |field, message| out.push(Violation { field: Cow::Borrowed(field), message })
}

fn https_or_loopback(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://127.")
}

fn valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= 100 && !label.chars().any(|c| c == ',' || c.is_whitespace())
}

fn valid_scale_set_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_vmss_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    matches!(
        parts.as_slice(),
        ["", s, sub, r, rg, p, ns, t, name]
            if s.eq_ignore_ascii_case("subscriptions") && !sub.is_empty()
            && r.eq_ignore_ascii_case("resourceGroups") && !rg.is_empty()
            && p.eq_ignore_ascii_case("providers") && ns.eq_ignore_ascii_case("Microsoft.Compute")
            && t.eq_ignore_ascii_case("virtualMachineScaleSets") && !name.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

    fn violations_of(edit: impl Fn(&mut Config)) -> Vec<Violation> {
        let mut config = load_str(super::super::load::tests_support::MINIMAL).unwrap();
        edit(&mut config);
        validate(&config)
    }

    #[test]
    fn the_minimal_config_is_valid() {
        assert!(violations_of(|_| {}).is_empty());
    }

    #[test]
    fn min_above_max_is_named() {
        let v = violations_of(|c| {
            c.pool.min = 5;
            c.pool.max = 3;
        });
        assert_eq!(v[0].field, "pool.min");
        assert_eq!(v[0].message, "pool.min (5) must not exceed pool.max (3)");
    }

    #[test]
    fn zero_min_is_allowed_only_with_a_demand_source() {
        assert!(violations_of(|c| c.pool.min = 0).is_empty(), "the scale set reports demand from zero");
        let v = violations_of(|c| {
            c.pool.min = 0;
            c.github.demand = DemandSource::None;
        });
        assert_eq!(v[0].field, "pool.min");
    }

    #[test]
    fn scale_set_demand_needs_jit_and_a_valid_name() {
        assert_eq!(violations_of(|c| c.github.jit = false)[0].field, "github.jit");
        assert!(violations_of(|c| {
            c.github.jit = false;
            c.github.demand = DemandSource::None;
        })
        .is_empty());
        let v = violations_of(|c| c.github.scale_set_name = Some("linux x64".into()));
        assert_eq!(v[0].field, "github.scale_set_name");
        assert!(violations_of(|c| c.github.scale_set_name = Some("linux-x64_2.large".into())).is_empty());
    }

    #[test]
    fn free_target_must_stay_below_one_hundred() {
        assert_eq!(violations_of(|c| c.pool.free_target_percentage = 100)[0].field, "pool.free_target_percentage");
        assert!(violations_of(|c| c.pool.free_target_percentage = 99).is_empty());
    }

    #[test]
    fn labels_with_commas_or_spaces_are_refused() {
        let v = violations_of(|c| c.github.labels = vec!["gpu, large".into()]);
        assert_eq!(v[0].field, "github.labels");
        assert!(violations_of(|c| c.github.labels.clear()).is_empty(), "a scale set's name is its label");
        let v = violations_of(|c| {
            c.github.labels.clear();
            c.github.demand = DemandSource::None;
        });
        assert!(v[0].message.contains("1 to 100"), "{v:?}");
    }

    #[test]
    fn runner_groups_need_organization_scope() {
        let v = violations_of(|c| c.github.runner_group = Some("linux".into()));
        assert_eq!(v[0].field, "github.runner_group");
        let ok = violations_of(|c| {
            c.github.scope = GithubScope::Organization("octo-org".into());
            c.github.runner_group = Some("linux".into());
        });
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn a_malformed_scale_set_id_is_refused() {
        let v = violations_of(|c| c.azure.vmss_resource_id = "/subscriptions/x/resourceGroups/rg".into());
        assert_eq!(v[0].field, "azure.vmss_resource_id");
    }

    #[test]
    fn plain_http_endpoints_are_refused_except_loopback() {
        assert_eq!(
            violations_of(|c| c.queue.url = "http://stbusy.queue.core.windows.net/q".into())[0].field,
            "queue.url"
        );
        assert!(violations_of(|c| c.queue.url = "http://127.0.0.1:10001/devstoreaccount1/q".into()).is_empty());
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let v = violations_of(|c| {
            c.pool.min = 0;
            c.github.demand = DemandSource::None;
            c.pool.free_target_percentage = 100;
            c.reconcile.period = crate::config::HumanDuration::secs(1);
        });
        assert_eq!(v.len(), 3, "{v:?}");
    }
}
