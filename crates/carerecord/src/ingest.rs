//! Gathering, wired: the MLLP listener beside the HTTP server, and the commands for sending
//! systems (`systems`), the identity review queue (`matches`) and dead letters (`hl7`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use carerecord_ingest::mllp::MllpTls;
use carerecord_ingest::pipeline::Pipeline;
use carerecord_ingest::review::Reviewer;
use carerecord_store::ingest::{DeadLetterStatus, ReviewStatus};
use carerecord_store::{AuditAgent, Channel, PrincipalKind, ResourceStore};

/// The default MLLP address of `carerecord demo`.
pub const DEMO_MLLP: &str = "127.0.0.1:2575";

/// `--mllp-listen`: an address, or `off`.
pub fn parse_listen(s: Option<&str>, default: Option<&str>) -> anyhow::Result<Option<SocketAddr>> {
    match s.or(default) {
        None | Some("off") => Ok(None),
        Some(a) => a
            .parse()
            .map(Some)
            .with_context(|| format!("--mllp-listen: {a:?} is not an address (or `off`)")),
    }
}

/// Where MLLP listens, and whether over TLS.
#[derive(Debug, Clone)]
pub struct Mllp {
    pub addr: SocketAddr,
    pub tls: Option<MllpTls>,
}

/// `--mllp-listen` (or `default`) and the `--mllp-tls-*` files. `None`: no MLLP listener.
pub fn mllp_settings(
    flags: &crate::cli::StoreFlags,
    default: Option<&str>,
) -> anyhow::Result<Option<Mllp>> {
    let Some(addr) = parse_listen(flags.mllp_listen.as_deref(), default)? else {
        return Ok(None);
    };
    let tls = match (&flags.mllp_tls_cert, &flags.mllp_tls_key) {
        (Some(cert), Some(key)) => Some(MllpTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: flags.mllp_tls_client_ca.clone(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("--mllp-tls-cert and --mllp-tls-key go together"),
    };
    Ok(Some(Mllp { addr, tls }))
}

/// Starts the HL7 v2 pipeline and its MLLP listener (in the background, until the process
/// ends). Answers the address bound. Unusable TLS files stop it before it listens.
pub async fn start_mllp(store: Arc<dyn ResourceStore>, mllp: &Mllp) -> anyhow::Result<SocketAddr> {
    let tls = match &mllp.tls {
        Some(t) => Some(t.acceptor().context("MLLP over TLS")?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(mllp.addr)
        .await
        .with_context(|| format!("cannot listen for MLLP on {}", mllp.addr))?;
    let bound = listener.local_addr()?;
    let pipeline = Pipeline::start(store);
    let over_tls = tls.is_some();
    let mutual = mllp.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    tokio::spawn(async move {
        if let Err(e) =
            carerecord_ingest::mllp::serve(listener, pipeline, tls, std::future::pending()).await
        {
            tracing::error!(error = %e, "the MLLP listener stopped");
        }
    });
    tracing::info!(addr = %bound, tls = over_tls, mutual_tls = mutual, "HL7 v2 over MLLP listening");
    Ok(bound)
}

/// The command line acting: recorded in the audit trail as the CLI.
fn cli_reviewer() -> Reviewer {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    Reviewer {
        agent: AuditAgent {
            kind: PrincipalKind::User,
            id: format!("cli:{user}"),
            name: None,
            role: None,
            organisation_id: None,
            ods_code: None,
        },
        channel: Channel::Cli,
        client_address: None,
        request_id: None,
    }
}

/// `carerecord systems add`.
pub async fn systems_add(
    store: &dyn ResourceStore,
    name: &str,
    org: &str,
    application: &str,
    facility: &str,
) -> anyhow::Result<()> {
    let s = carerecord_ingest::systems::add(store, name, org, application, facility).await?;
    println!(
        "registered {} ({}): MSH-3 {} / MSH-4 {} sends for Organization/{} (ODS {})",
        s.id, s.name, s.msh_application, s.msh_facility, s.org_id, s.ods
    );
    Ok(())
}

/// `carerecord systems list`.
pub async fn systems_list(store: &dyn ResourceStore) -> anyhow::Result<()> {
    for s in carerecord_ingest::systems::list(store).await? {
        println!(
            "{}\t{}\tMSH-3 {}\tMSH-4 {}\tOrganization/{}\t{}",
            s.id, s.name, s.msh_application, s.msh_facility, s.org_id, s.ods
        );
    }
    Ok(())
}

/// Registers the synthetic hospitals (`PAS`) and laboratory (`LIMS`) of the demo, each with
/// MSH-4 = its ODS code. Answers how many.
pub async fn demo_systems(
    store: &dyn ResourceStore,
    london: &carerecord_synth::London,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for o in london.organisations() {
        if o["resourceType"] != "Organization" {
            continue;
        }
        let app = match o["type"][0]["coding"][0]["code"].as_str() {
            Some("acute-trust") => "PAS",
            Some("pathology-lab") => "LIMS",
            _ => continue,
        };
        let (Some(id), Some(ods)) = (o["id"].as_str(), o["identifier"][0]["value"].as_str()) else {
            continue;
        };
        let name = format!("{ods} {app}");
        match carerecord_ingest::systems::add(store, &name, id, app, ods).await {
            Ok(_) | Err(carerecord_ingest::IngestError::Invalid(_)) => {
                out.push(format!("{app}^{ods}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// `carerecord matches list`.
pub async fn matches_list(store: &dyn ResourceStore, all: bool) -> anyhow::Result<()> {
    let status = if all { None } else { Some(ReviewStatus::Open) };
    let mut after = 0;
    loop {
        let page = carerecord_ingest::review::list(store, status, after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in &page {
            println!(
                "{}\t{}\tnew Patient/{}\tresembles Patient/{}\tscore {}\t({})\tfrom {}",
                r.id,
                r.status.as_str(),
                r.patient_id,
                r.candidate_id,
                r.score,
                r.reasons,
                r.source_ods
            );
        }
    }
    Ok(())
}

/// `carerecord matches link`.
pub async fn matches_link(store: &dyn ResourceStore, id: i64) -> anyhow::Result<()> {
    let m = carerecord_ingest::review::link(store, id, &cli_reviewer()).await?;
    println!(
        "linked: merge {} wrote {} versions (undo with `carerecord matches unmerge {}`)",
        m.merge_id,
        m.written.len(),
        m.merge_id
    );
    Ok(())
}

/// `carerecord matches reject`.
pub async fn matches_reject(store: &dyn ResourceStore, id: i64) -> anyhow::Result<()> {
    carerecord_ingest::review::reject(store, id, &cli_reviewer()).await?;
    println!("rejected: the two records stay separate");
    Ok(())
}

/// `carerecord matches unmerge`.
pub async fn matches_unmerge(store: &dyn ResourceStore, merge_id: i64) -> anyhow::Result<()> {
    let written = carerecord_ingest::review::unmerge(store, merge_id, &cli_reviewer()).await?;
    println!("undone: {} versions written", written.len());
    Ok(())
}

/// `carerecord hl7 dead-letters`.
pub async fn dead_letters(store: &dyn ResourceStore, all: bool) -> anyhow::Result<()> {
    let status = if all {
        None
    } else {
        Some(DeadLetterStatus::Open)
    };
    let mut after = 0;
    loop {
        let page = carerecord_store::ingest::list_dead_letters(store, status, after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for d in &page {
            println!(
                "{}\t{}\t{}\t{}\t{} bytes\t{} attempts\t{}",
                d.id,
                d.status.as_str(),
                d.sender.as_deref().unwrap_or("-"),
                d.control_id.as_deref().unwrap_or("-"),
                d.raw.len(),
                d.attempts,
                d.reason
            );
        }
    }
    Ok(())
}

/// `carerecord hl7 replay --id N | --all`: re-processes open dead letters; errors when any
/// is still refused.
pub async fn replay(
    store: Arc<dyn ResourceStore>,
    id: Option<i64>,
    all: bool,
) -> anyhow::Result<()> {
    let ids: Vec<i64> = match (id, all) {
        (Some(id), _) => vec![id],
        (None, true) => {
            let mut ids = Vec::new();
            let mut after = 0;
            loop {
                let page = carerecord_store::ingest::list_dead_letters(
                    store.as_ref(),
                    Some(DeadLetterStatus::Open),
                    after,
                    500,
                )
                .await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                ids.extend(page.iter().map(|d| d.id));
            }
            ids
        }
        (None, false) => anyhow::bail!("say which dead letters: --id N or --all"),
    };
    let pipeline = Pipeline::start(store);
    let mut refused = 0;
    for id in ids {
        let r = pipeline.replay(id).await?;
        println!("dead letter {id}: {}", r.code.as_str());
        if r.code != carerecord_hl7::AckCode::AA {
            refused += 1;
        }
    }
    if refused > 0 {
        anyhow::bail!("{refused} dead letters were refused again and stay open");
    }
    Ok(())
}
