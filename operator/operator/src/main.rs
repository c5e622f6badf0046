//! Thin entry point: parse arguments, set up logging, load config, call the library.

use std::{process::ExitCode, sync::Arc};

use anyhow::{bail, Context};
use clap::Parser;
use operator::azure::CredentialSource;
use operator::connect::{connect, ConnectOptions};
use operator::{
    api::{server::raise_open_files_limit, HttpLimits},
    budget::ScaleSetBudget,
    cli::{Cli, Command, ConfigCommand, DemoArgs, SandboxArgs, ServeArgs, SimulateArgs, TraceCommand, TraceExportArgs},
    config::{self, LogFormat},
    controller::{Controller, Settings},
    demo::{run_demo, DemoOptions},
    learned::LearnedState,
    metrics::Metrics,
    ports::{Ports, ScaleSetApi},
    run::{run, Listeners, RunSettings},
    sandbox::{Sandbox, SandboxQueue},
    shutdown, telemetry,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Sandbox(args) => sandbox(args).await,
        Command::Config(ConfigCommand::Validate { file }) => {
            let config = config::load(Some(&file))?;
            println!(
                "{}: valid (pool {} min {} max {})",
                file.display(),
                config.azure.vmss_name(),
                config.pool.min,
                config.pool.max
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Schema) => {
            print!("{}", config::json_schema());
            Ok(())
        }
        Command::Openapi => {
            print!("{}", operator::api::openapi_json());
            Ok(())
        }
        Command::Demo(args) => demo(args).await,
        // Each setting runs on its own paused-clock runtime, off this one.
        Command::Simulate(args) => tokio::task::spawn_blocking(move || simulate(&args)).await?,
        Command::Trace(TraceCommand::Export(args)) => trace_export(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    telemetry::init(config.log.format);
    exit_on_panic();
    let source = if args.azure_cli { CredentialSource::AzureCli } else { CredentialSource::ManagedIdentity };
    let options = ConnectOptions { credential_source: source, azure_client_options: None };
    let connected = connect(&config, options).await.context("connecting to Azure and GitHub")?;
    operate(&config, connected.ports, connected.scale_set_api, connected.learned, connected.metrics).await
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    telemetry::init(config.log.format);
    exit_on_panic();
    let queue = if args.in_memory_queue { SandboxQueue::InMemory } else { SandboxQueue::Configured };
    let sandbox = Sandbox::new(&config, queue)?;
    if let Some(delay) = args.delete_scale_set_after {
        sandbox.delete_scale_set_after(delay);
    }
    let scale_set_api: Arc<dyn ScaleSetApi> = sandbox.github.clone();
    // The sandbox keeps a learned model in memory only (Settings::from_config).
    operate(&config, sandbox.ports, scale_set_api, None, Metrics::new()).await
}

/// The operator on `ports`: bind both listeners, then serve, reconcile, (with scale-set
/// demand) listen to the runner scale set on `scale_set_api` and (with `learned`) keep the
/// learned demand state until SIGTERM or a fatal error, counting into `metrics`.
async fn operate(
    config: &config::Config,
    ports: Ports,
    scale_set_api: Arc<dyn ScaleSetApi>,
    learned: Option<LearnedState>,
    metrics: Metrics,
) -> anyhow::Result<()> {
    match raise_open_files_limit() {
        Ok(limit) => tracing::info!(limit, "open-files limit raised to the hard limit"),
        Err(err) => tracing::warn!(error = %err, "raising the open-files limit failed; keeping the current one"),
    }
    let (ports, listener) = operator::listener::wire(config, ports, scale_set_api);
    let settings = Settings::served(config, learned.as_ref());
    let controller = Controller::with_metrics(settings, ports, ScaleSetBudget::azure_vmss(), metrics);
    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))
    };
    let listeners = Listeners {
        api: bind(config.server.listen).await?,
        operations: Some(bind(config.server.operations_listen).await?),
    };
    let token = shutdown::on_signal();
    let run_settings = RunSettings {
        http: HttpLimits::from_config(&config.server),
        debounce: config.reconcile.debounce.get(),
        shutdown_grace: config.server.shutdown_grace.get(),
        listener,
        learned,
    };
    run(controller, listeners, run_settings, token).await?;
    Ok(())
}

/// A panic anywhere — a hook handler, the loop, a background scale-set operation — is a
/// bug, and may leave a lock poisoned: every later hook would fail while `/healthz` still
/// answered. So the process logs the panic and exits at once with code 101 instead of
/// limping on; systemd restarts it and start-up recovery rebuilds the state from the scale
/// set, the busy record and GitHub, as after any crash. (`run` also turns a panic of the
/// loop task into an error, for library callers that install no such hook.)
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "the operator panicked (a bug); exiting so that it is restarted");
        default(info);
        std::process::exit(101);
    }));
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        // The demo's table is the output; keep log lines to warnings.
        std::env::set_var("RUST_LOG", "warn");
    }
    telemetry::init(LogFormat::Pretty);
    let demand = !args.no_scale_set && !args.token_mode;
    let opts = DemoOptions {
        jobs: args.jobs,
        // Without a demand source an empty pool would never learn of the first job.
        min: if demand { args.min } else { args.min.max(1) },
        demand,
        max: args.max,
        free_target_percentage: args.free_target,
        jit: !args.token_mode,
        seed: args.seed,
        ..DemoOptions::default()
    };
    let mut stdout = std::io::stdout();
    let summary = run_demo(opts, &mut stdout).await?;
    if summary.busy_vm_killed > 0 || summary.jobs_assigned_twice > 0 {
        bail!("the demo found violations");
    }
    Ok(())
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    operator::simulate::command::run(args, &mut std::io::stdout().lock(), &mut std::io::stderr())?;
    Ok(())
}

async fn trace_export(args: TraceExportArgs) -> anyhow::Result<()> {
    use operator::{
        config::GithubScope,
        github::{GithubClient, GithubClientSettings},
    };
    if std::env::var_os("RUST_LOG").is_none() {
        // Rate-limit waits are logged as warnings; the progress bar is the rest.
        std::env::set_var("RUST_LOG", "warn");
    }
    telemetry::init(LogFormat::Pretty);
    let day = |s: &str| {
        time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]"))
            .with_context(|| format!("{s:?} is not a date (YYYY-MM-DD)"))
    };
    let since = day(&args.since)?;
    let until = match &args.until {
        Some(u) => day(u)?,
        None => time::OffsetDateTime::now_utc().date(),
    };
    let token =
        std::env::var("GITHUB_TOKEN").context("set GITHUB_TOKEN to a token that may read the repository's Actions")?;
    let mut settings =
        GithubClientSettings::new(&args.api_url, GithubScope::Repository(args.repository.clone()), "github-token");
    settings.max_rate_limit_wait = args.max_rate_limit_wait;
    let secrets = std::sync::Arc::new(operator_sim::memory::InMemorySecretStore::with("github-token", &token));
    let client = GithubClient::new(settings, secrets).await.context("building the GitHub client")?;
    // Drawn on stderr only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs ({elapsed})")
            .expect("the template is valid"),
    );
    let exported = operator::simulate::export::export(&client, &args.repository, since, until, &|done, runs| {
        bar.set_length(runs as u64);
        bar.set_position(done as u64);
    })
    .await
    .context("reading the workflow history")?;
    bar.finish_and_clear();
    std::fs::write(&args.out, exported.workload.to_jsonl())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} jobs of {} runs ({} not finished, left out), {since} to {until}",
        args.out.display(),
        exported.workload.jobs.len(),
        exported.runs,
        exported.unfinished
    );
    Ok(())
}
