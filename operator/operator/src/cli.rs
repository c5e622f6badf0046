//! Command line: `serve`, `sandbox`, `config validate|schema`, `openapi`, `demo`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "operator",
    version,
    about = "Autoscaler for self-hosted GitHub Actions runners on Azure VM Scale Sets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: API server and reconcile loop, against Azure and GitHub.
    Serve(ServeArgs),
    /// Run the same operator against an in-memory scale set, GitHub and secret store:
    /// try a configuration, benchmark, rehearse failures. No VMs are simulated.
    Sandbox(SandboxArgs),
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Run the operator against an in-memory scale set and GitHub with simulated VMs.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML or JSON); `OPERATOR_*` variables override it.
    #[arg(long, short, env = "OPERATOR_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Authenticate to Azure with your Azure CLI login instead of the VM's managed identity
    /// (running the operator from a workstation).
    #[arg(long)]
    pub azure_cli: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Configuration file (TOML or JSON); `OPERATOR_*` variables override it.
    #[arg(long, short, env = "OPERATOR_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Keep the busy record in memory instead of the configured queue (which otherwise
    /// needs a SAS URL, e.g. Azurite's: the sandbox has no Azure identity).
    #[arg(long)]
    pub in_memory_queue: bool,
    /// Delete the simulated scale set after this long (e.g. `30s`): it answers 404 for
    /// itself, and the operator must stop non-zero naming the cause.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub delete_scale_set_after: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file (with the environment applied) and report every problem.
    Validate { file: PathBuf },
    /// Print the configuration's JSON schema.
    Schema,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Jobs to run.
    #[arg(long, default_value_t = 40)]
    pub jobs: u32,
    #[arg(long, default_value_t = 2)]
    pub min: u32,
    #[arg(long, default_value_t = 16)]
    pub max: u32,
    /// Free target in percent.
    #[arg(long, default_value_t = 50)]
    pub free_target: u8,
    /// Hand out registration tokens instead of JIT configs.
    #[arg(long)]
    pub token_mode: bool,
    /// Seed of the job arrivals and durations.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}
