//! Thin entry point: parse arguments, set up logging, load config, call the library.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use operator::azure::CredentialSource;
use operator::connect::{connect, ConnectOptions};
use operator::{
    api::{server::raise_open_files_limit, HttpLimits},
    cli::{Cli, Command, ConfigCommand, DemoArgs, SandboxArgs, ServeArgs},
    config::{self, LogFormat},
    controller::{Controller, Settings},
    demo::{run_demo, DemoOptions},
    ports::Ports,
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
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    telemetry::init(config.log.format);
    exit_on_panic();
    let source = if args.azure_cli { CredentialSource::AzureCli } else { CredentialSource::ManagedIdentity };
    let options = ConnectOptions { credential_source: source, azure_client_options: None };
    let ports = connect(&config, options).await.context("connecting to Azure and GitHub")?;
    operate(&config, ports).await
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
    operate(&config, sandbox.ports).await
}

/// The operator on `ports`: bind both listeners, then serve and reconcile until SIGTERM or
/// a fatal error.
async fn operate(config: &config::Config, ports: Ports) -> anyhow::Result<()> {
    match raise_open_files_limit() {
        Ok(limit) => tracing::info!(limit, "open-files limit raised to the hard limit"),
        Err(err) => tracing::warn!(error = %err, "raising the open-files limit failed; keeping the current one"),
    }
    let controller = Controller::new(Settings::from_config(config), ports);
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
    let opts = DemoOptions {
        jobs: args.jobs,
        min: args.min,
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
