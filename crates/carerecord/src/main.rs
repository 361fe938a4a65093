//! `carerecord`: parses the command line, loads configuration, starts logging, and runs.

use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use carerecord::cli::{
    AdminAction, AuditCommand, Cli, ClientAction, Command, ConfigAction, Hl7Action, MatchesAction,
    StoreFlags, SystemsAction, UserAction,
};
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
    // Before anything is classified: the lists are process-wide (see `Classifier::install`).
    carerecord::install_code_lists(&config)?;
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
        Err(e) if e.downcast_ref::<carerecord::AuditTampered>().is_some() => {
            eprintln!("carerecord: {e:#}");
            ExitCode::from(carerecord::AUDIT_TAMPERED_EXIT)
        }
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
        Command::Audit {
            action: AuditCommand::Verify(args),
        } => {
            let anchor = args
                .anchor
                .as_deref()
                .map(carerecord::parse_anchor)
                .transpose()?;
            let config = load(cli.config.as_deref(), args.store)?;
            init_tracing(config.log_format);
            let report = runtime.block_on(carerecord::audit_verify(&config, anchor))?;
            let head = report.head.map_or_else(
                || "none (the trail is empty)".to_owned(),
                |(seq, hash)| {
                    format!(
                        "entry {seq}, hash {} (anchor: {seq}:{})",
                        carerecord_store::audit::hash_hex(&hash),
                        carerecord_store::audit::hash_hex(&hash)
                    )
                },
            );
            match report.problem {
                None => {
                    println!("audit trail intact: {} entries", report.verified);
                    // Removing the newest entries leaves a valid, shorter chain: only a head
                    // recorded elsewhere shows it. Print it so operators can keep it.
                    println!("head: {head}");
                    if let Some((seq, _)) = anchor {
                        println!("matches the anchor at entry {seq}");
                    }
                    Ok(())
                }
                Some(t) => {
                    println!(
                        "audit trail NOT intact: entry {} was {} ({} entries verified before it; last good {head})",
                        t.seq, t.kind, report.verified
                    );
                    Err(carerecord::AuditTampered(t).into())
                }
            }
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
        Command::Generate(args) => {
            let opts = carerecord_synth::Options {
                seed: args.seed,
                patients: args.patients,
                care_homes: args.care_homes,
                as_of: args.as_of,
            };
            let bar = indicatif::ProgressBar::new(u64::from(args.patients));
            let done = carerecord::generate::write(&opts, &args.out, |n| {
                bar.set_position(u64::from(n));
            })?;
            bar.finish_and_clear();
            println!(
                "wrote {} people ({} resources) to {} in {:.1} s ({:.0} resources/s)",
                done.people,
                done.resources,
                args.out.display(),
                done.elapsed.as_secs_f64(),
                done.resources as f64 / done.elapsed.as_secs_f64().max(1e-9)
            );
            Ok(())
        }
        Command::Import(args) => {
            let config = load(cli.config.as_deref(), args.store)?;
            init_tracing(config.log_format);
            let report = runtime.block_on(carerecord::import(
                &config,
                &args.paths,
                args.operator.as_deref(),
            ))?;
            println!(
                "imported {} resources from {} files ({} bundles) in {:.1} s ({:.0} resources/s)",
                report.accepted,
                report.files,
                report.bundles,
                report.elapsed.as_secs_f64(),
                report.rate()
            );
            if report.rejected.is_empty() {
                Ok(())
            } else {
                eprintln!("{} items were refused:", report.rejected.len());
                for r in &report.rejected {
                    eprintln!("  {}:{}: {}", r.file, r.line, r.reason);
                }
                Err(anyhow::anyhow!(
                    "{} items were refused; everything else was imported",
                    report.rejected.len()
                ))
            }
        }
        Command::Admin {
            action: AdminAction::Create(args),
        } => {
            let config = load(cli.config.as_deref(), args.store.clone())?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                carerecord::accounts::admin_create(store, &args).await
            })
        }
        Command::User {
            action: UserAction::Add(args),
        } => {
            let config = load(cli.config.as_deref(), args.store.clone())?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                carerecord::accounts::user_add(store, &args).await
            })
        }
        Command::Client {
            action: ClientAction::Add(args),
        } => {
            let config = load(cli.config.as_deref(), args.store.clone())?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                carerecord::accounts::client_add(store, &args).await
            })
        }
        Command::Client {
            action: ClientAction::AddLaunch(args),
        } => {
            let config = load(cli.config.as_deref(), args.store.clone())?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                carerecord::accounts::client_add_launch(store, &args).await
            })
        }
        Command::Client {
            action: ClientAction::AddSmart(args),
        } => {
            let config = load(cli.config.as_deref(), args.store.clone())?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                carerecord::accounts::client_add_smart(store, &args).await
            })
        }
        Command::LaunchToken(args) => carerecord::accounts::launch_token(&args),
        Command::Demo(args) => {
            let given = args.store.data_dir.is_some();
            let mllp = carerecord::ingest::mllp_settings(
                &args.store,
                Some(carerecord::ingest::DEMO_MLLP),
            )?;
            let config = load(cli.config.as_deref(), args.store)?;
            init_tracing(config.log_format);
            runtime.block_on(carerecord::demo(config, given, args.accounts_file, mllp))
        }
        Command::Serve(flags) => {
            let mllp = carerecord::ingest::mllp_settings(&flags, None)?;
            let config = load(cli.config.as_deref(), flags)?;
            init_tracing(config.log_format);
            runtime.block_on(carerecord::serve(config, mllp))
        }
        Command::Systems { action } => {
            let flags = match &action {
                SystemsAction::Add(a) => a.store.clone(),
                SystemsAction::List(f) => f.clone(),
            };
            let config = load(cli.config.as_deref(), flags)?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                match action {
                    SystemsAction::Add(a) => {
                        carerecord::ingest::systems_add(
                            store.as_ref(),
                            &a.name,
                            &a.organisation,
                            &a.msh_application,
                            &a.msh_facility,
                        )
                        .await
                    }
                    SystemsAction::List(_) => {
                        carerecord::ingest::systems_list(store.as_ref()).await
                    }
                }
            })
        }
        Command::Matches { action } => {
            let flags = match &action {
                MatchesAction::List { store, .. }
                | MatchesAction::Link { store, .. }
                | MatchesAction::Reject { store, .. }
                | MatchesAction::Unmerge { store, .. } => store.clone(),
            };
            let config = load(cli.config.as_deref(), flags)?;
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                let s = store.as_ref();
                match action {
                    MatchesAction::List { all, .. } => {
                        carerecord::ingest::matches_list(s, all).await
                    }
                    MatchesAction::Link { id, .. } => carerecord::ingest::matches_link(s, id).await,
                    MatchesAction::Reject { id, .. } => {
                        carerecord::ingest::matches_reject(s, id).await
                    }
                    MatchesAction::Unmerge { merge_id, .. } => {
                        carerecord::ingest::matches_unmerge(s, merge_id).await
                    }
                }
            })
        }
        Command::Hl7 { action } => {
            let flags = match &action {
                Hl7Action::DeadLetters { store, .. } | Hl7Action::Replay { store, .. } => {
                    store.clone()
                }
            };
            let config = load(cli.config.as_deref(), flags)?;
            init_tracing(config.log_format);
            runtime.block_on(async {
                let store = carerecord::open_store(&config).await?;
                match action {
                    Hl7Action::DeadLetters { all, .. } => {
                        carerecord::ingest::dead_letters(store.as_ref(), all).await
                    }
                    Hl7Action::Replay { id, all, .. } => {
                        carerecord::ingest::replay(store, id, all).await
                    }
                }
            })
        }
    }
}
