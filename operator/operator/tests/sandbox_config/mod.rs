//! The operator configuration the real-binary tests give `operator sandbox`: a repository
//! scope, the pool bounds, the runner API on `listen` and the operations endpoints on
//! `ops`; `server_extra` adds lines to the `[server]` table.

pub fn sandbox_config(min: u32, max: u32, listen: &str, ops: &str, server_extra: &str) -> String {
    format!(
        r#"
[github]
scope = {{ repository = "octo-org/octo-repo" }}
labels = ["self-hosted", "linux"]
credential = {{ key_vault_url = "https://kv-runners.vault.azure.net/", secret_name = "github-pat" }}

[azure]
vmss_resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-runners"

[queue]
url = "https://stbusy.queue.core.windows.net/busy-runners"

[pool]
min = {min}
max = {max}
free_target_percentage = 25

[server]
listen = "{listen}"
operations_listen = "{ops}"
{server_extra}shutdown_grace = "5s"
"#
    )
}
