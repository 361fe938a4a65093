//! `carerecord`: parses the command line, loads configuration, starts logging, and runs.

use std::process::ExitCode;

use clap::Parser;

use carerecord::cli::{Cli, Command, ConfigAction, StoreFlags};
use carerecord::config::{Config, LogFormat, Partial};

fn load(cli_config: Option<&std::path::Path>, flags: StoreFlags) -> anyhow::Result<Config> {
    let file = match cli_config {
        Some(p) => Some((
            p.display().to_string(),
            std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let config = Config::load(
        file.as_ref().map(|(o, t)| (o.as_str(), t.as_str())),
        |k| std::env::var(k).ok(),
        Partial::from(flags),
    )?;
    Ok(config)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARERECORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carerecord: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Config {
            action: ConfigAction::PrintDefault,
        } => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check(flags),
        } => {
            let config = load(cli.config.as_deref(), flags)?;
            println!("configuration is valid: {config:?}");
            Ok(())
        }
        Command::Migrate(flags) => {
            let config = load(cli.config.as_deref(), flags)?;
            init_tracing(config.log_format);
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                println!("the {} database schema is up to date", store.backend());
                Ok(())
            })
        }
        Command::Serve(flags) => {
            let config = load(cli.config.as_deref(), flags)?;
            init_tracing(config.log_format);
            runtime.block_on(carerecord::serve(config))
        }
    }
}
