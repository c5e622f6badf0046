//! Command line: `serve`, `sandbox`, `config validate|schema`, `openapi`, `demo`, `simulate`,
//! `trace export`.

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
    /// Replay a CI workload through the real operator on a virtual clock and print what
    /// a pool setting costs in job waits and idle VM-hours (docs/simulate.md).
    Simulate(Box<SimulateArgs>),
    /// Work with workload traces.
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Write a repository's workflow job history as a JSONL workload (docs/simulate.md),
    /// through the operator's GitHub client; the token is read from $GITHUB_TOKEN.
    Export(TraceExportArgs),
}

#[derive(Debug, Args)]
pub struct TraceExportArgs {
    /// The repository, `owner/name`.
    #[arg(long)]
    pub repository: String,
    /// First day (UTC) of runs to export, `YYYY-MM-DD`.
    #[arg(long)]
    pub since: String,
    /// Last day (UTC), inclusive; default: today.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
    /// GitHub's REST API root (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long, default_value = "https://api.github.com")]
    pub api_url: String,
    /// Wait out a spent rate limit for up to this long before giving up.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_rate_limit_wait: std::time::Duration,
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
    #[arg(long, default_value_t = 0)]
    pub min: u32,
    #[arg(long, default_value_t = 24)]
    pub max: u32,
    /// Free target in percent.
    #[arg(long, default_value_t = 20)]
    pub free_target: u8,
    /// Without a runner scale set: the pool sees only its own runners' jobs (min is then at least 1).
    #[arg(long)]
    pub no_scale_set: bool,
    /// Hand out registration tokens instead of JIT configs (implies --no-scale-set).
    #[arg(long)]
    pub token_mode: bool,
    /// Seed of the job arrivals and durations.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The workload: JSONL (docs/simulate.md) or a bitcoin-core-ci-stats JSON array, gzipped or not.
    #[arg(long)]
    pub trace: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub min: u32,
    #[arg(long, default_value_t = 60)]
    pub max: u32,
    /// Free target in percent.
    #[arg(long, default_value_t = 30)]
    pub free_target: u8,
    /// How long an idle surplus VM waits before it is deleted.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub scale_in_delay: std::time::Duration,
    /// VMs kept parked (deallocated) in reserve and started on demand before new ones are created.
    #[arg(long, default_value_t = 0)]
    pub parked: u32,
    /// From capacity raised until the VM runs.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub boot: std::time::Duration,
    /// From the reimage call until the VM runs again.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub reimage: std::time::Duration,
    /// From the start call until a parked VM runs again (an assumption until measured).
    #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
    pub start: std::time::Duration,
    /// Price table (TOML or JSON): the operator's configuration, whose `pool.prices` is used, or a
    /// file with just `currency`, `running_per_hour` and `parked_per_hour`. Default: Standard_D4ads_v5
    /// with a StandardSSD_LRS E10 OS disk, pay-as-you-go, East US (docs/simulate.md, "Prices").
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Replay only the jobs of the trace's last DURATION (e.g. `14d`), counted back from its last arrival.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["from", "until"])]
    pub last: Option<std::time::Duration>,
    /// Replay only the jobs arriving on or after this UTC day (`YYYY-MM-DD`).
    #[arg(long)]
    pub from: Option<String>,
    /// Replay only the jobs arriving on or before this UTC day (`YYYY-MM-DD`), inclusive.
    #[arg(long)]
    pub until: Option<String>,
    /// Size `min` and `parked` with the learned mode (`pool.learned`, default tuning unless a
    /// `--learned-*` option sets a field; `--min`
    /// and `--parked` are its floors), seeded from the trace's jobs before the window (none
    /// without `--last`/`--from`), then learning from each pass as the operator does.
    #[arg(long)]
    pub learned: bool,
    /// `--learned` tuning, `pool.learned.warm_quantile` (default: the configuration's).
    #[arg(long, requires = "learned")]
    pub learned_warm_quantile: Option<f64>,
    /// `--learned` tuning, `pool.learned.reserve_quantile`.
    #[arg(long, requires = "learned")]
    pub learned_reserve_quantile: Option<f64>,
    /// `--learned` tuning, `pool.learned.burst_window`.
    #[arg(long, requires = "learned", value_parser = humantime::parse_duration)]
    pub learned_burst_window: Option<std::time::Duration>,
    /// `--learned` tuning, `pool.learned.slot`.
    #[arg(long, requires = "learned", value_parser = humantime::parse_duration)]
    pub learned_slot: Option<std::time::Duration>,
    /// `--learned` tuning, `pool.learned.lead`.
    #[arg(long, requires = "learned", value_parser = humantime::parse_duration)]
    pub learned_lead: Option<std::time::Duration>,
    /// `--learned` tuning, `pool.learned.half_life`.
    #[arg(long, requires = "learned", value_parser = humantime::parse_duration)]
    pub learned_half_life: Option<std::time::Duration>,
    /// `--learned` tuning, `pool.learned.history_weeks`.
    #[arg(long, requires = "learned")]
    pub learned_history_weeks: Option<u32>,
    /// Demand from a runner scale set (the pool sees assigned jobs, `--min 0` allowed);
    /// without, the pool sees only its own runners' jobs (`github.demand = "none"`).
    #[arg(long)]
    pub scale_set: bool,
    /// Print only the workload summary (a quick check of how the trace was read).
    #[arg(long)]
    pub summary_only: bool,
    /// Run a grid of settings (every combination of the --sweep-* lists) instead of one.
    #[arg(long)]
    pub sweep: bool,
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,12")]
    pub sweep_min: Vec<u32>,
    #[arg(long, value_delimiter = ',', default_value = "10,20,30,50,70")]
    pub sweep_free_target: Vec<u8>,
    #[arg(long, value_delimiter = ',', default_value = "2m,10m", value_parser = humantime::parse_duration)]
    pub sweep_scale_in_delay: Vec<std::time::Duration>,
    /// Parked reserves to combine with the other lists (0: running-only).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub sweep_parked: Vec<u32>,
    /// The p95 job wait the recommended setting must meet.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub target_p95: std::time::Duration,
    /// Issue 16's goal run: running-only and parked grids on the whole trace and on its last
    /// 14 days, the break-even start time, p95 target 60 s, demand from the scale set
    /// (docs/simulate.md, "The goal run"). Ignores the setting and sweep options.
    #[arg(long, conflicts_with_all = ["sweep", "summary_only", "last", "from", "until", "learned"])]
    pub goal: bool,
    /// Also write the figures as one self-contained HTML page (inline SVG, no script).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the chart of p95 wait against idle cost as a standalone SVG (sweeps and the goal run).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Settings run at once (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}
