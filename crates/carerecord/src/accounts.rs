//! `carerecord admin|user|client …` and the demo's accounts: thin wrappers over
//! `carerecord_identity` that print the one-time secrets.

use std::sync::Arc;

use anyhow::{Context, bail};
use carerecord_access::Role;
use carerecord_identity::{
    CreatedUser, Identity, IdentitySettings, LaunchClaims, NewClient, NewUser, PasswordCost,
};
use carerecord_store::ResourceStore;

use crate::cli::{
    AdminCreateArgs, ClientAddArgs, ClientAddLaunchArgs, ClientAddSmartArgs, LaunchTokenArgs,
    UserAddArgs,
};

fn identity(store: Arc<dyn ResourceStore>) -> Identity {
    Identity::new(store, IdentitySettings::default())
}

fn print_user(u: &CreatedUser) {
    println!("username: {}", u.username);
    println!("password: {}", u.password);
    println!("totp_secret: {}", u.totp_secret);
    println!("totp_uri: {}", u.otpauth_uri);
}

async fn warn_unknown_org(id: &Identity, org: &str) -> anyhow::Result<()> {
    if !id.organisation_exists(org).await? {
        eprintln!(
            "note: Organization/{org} is not in the store yet; the grant names it all the same"
        );
    }
    Ok(())
}

/// `carerecord admin create`.
pub async fn admin_create(
    store: Arc<dyn ResourceStore>,
    args: &AdminCreateArgs,
) -> anyhow::Result<()> {
    let id = identity(store);
    if id.administrator_exists().await? && !args.force {
        bail!("a programme administrator already exists; use --force to create another");
    }
    warn_unknown_org(&id, &args.org).await?;
    let u = id
        .create_user(NewUser {
            username: args.username.clone(),
            display_name: args.name.clone(),
            password: None,
            grants: vec![(Role::ProgrammeAdmin, args.org.clone())],
            training_valid_until: None,
        })
        .await?;
    println!("created programme administrator (shown once; change the password after signing in)");
    print_user(&u);
    Ok(())
}

/// `carerecord user add`.
pub async fn user_add(store: Arc<dyn ResourceStore>, args: &UserAddArgs) -> anyhow::Result<()> {
    let id = identity(store);
    let role: Role = args
        .role
        .parse()
        .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    warn_unknown_org(&id, &args.org).await?;
    if id
        .directory()
        .user_by_username(&args.username)
        .await?
        .is_some()
    {
        id.grant(&args.username, role, &args.org).await?;
        println!("granted {role} at {} to {}", args.org, args.username);
        return Ok(());
    }
    let name = args
        .name
        .clone()
        .context("--name is needed to create a new user")?;
    let u = id
        .create_user(NewUser {
            username: args.username.clone(),
            display_name: name,
            password: None,
            grants: vec![(role, args.org.clone())],
            training_valid_until: None,
        })
        .await?;
    println!(
        "created user with {role} at {} (secrets shown once)",
        args.org
    );
    print_user(&u);
    Ok(())
}

/// `carerecord client add`.
pub async fn client_add(store: Arc<dyn ResourceStore>, args: &ClientAddArgs) -> anyhow::Result<()> {
    let id = identity(store);
    let role: Role = args
        .role
        .parse()
        .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    if let Some(uri) = &args.jwks_uri {
        return client_add_with_jwks_uri(&id, role, args, uri).await;
    }
    let key_file = args.jwk_file.as_ref().or(args.public_key_pem.as_ref());
    let public_key = key_file
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    if !args.secret && public_key.is_none() {
        bail!("give --secret, --jwk-file, --public-key-pem or --jwks-uri");
    }
    // Checked before anything is registered, so a mistyped scope leaves no client behind.
    if let Some(scope) = &args.scope {
        let set = carerecord_access::ScopeSet::parse(scope)
            .map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
        if !set.has_context(carerecord_access::ContextKind::System) {
            bail!("--scope: give at least one system/ scope, such as system/Patient.rs");
        }
    }
    warn_unknown_org(&id, &args.org).await?;
    let c = id
        .create_client(NewClient {
            client_id: args.client_id.clone(),
            role,
            organisation_id: args.org.clone(),
            secret: args.secret,
            public_key,
        })
        .await?;
    println!("registered client ({role} at {})", args.org);
    println!("client_id: {}", c.client_id);
    if let Some(scope) = &args.scope {
        let scope = id.set_client_scope(&c.client_id, scope).await?;
        println!("scope: {scope}");
    }
    if let Some(s) = &c.secret {
        println!("client_secret: {s}");
    }
    Ok(())
}

/// `carerecord client add … --jwks-uri`: registered whole (client, scopes, URL) or not at all.
async fn client_add_with_jwks_uri(
    id: &Identity,
    role: Role,
    args: &ClientAddArgs,
    uri: &str,
) -> anyhow::Result<()> {
    if role != Role::System {
        bail!("--jwks-uri: only a system (--role system) registers a JWKS URL");
    }
    let c = id
        .register_system(carerecord_identity::register::NewSystem {
            client_id: args.client_id.clone(),
            organisations: vec![args.org.clone()],
            launch_roles: Vec::new(),
            scope: args.scope.clone(),
            keys: carerecord_identity::register::Keys::Uri(uri.to_owned()),
            secret: args.secret,
        })
        .await?;
    println!("registered client (system at {}, keys at {uri})", args.org);
    println!("client_id: {}", c.client_id);
    if let Some(s) = &c.secret {
        println!("client_secret: {s}");
    }
    Ok(())
}

/// `carerecord client add-smart`.
pub async fn client_add_smart(
    store: Arc<dyn ResourceStore>,
    args: &ClientAddSmartArgs,
) -> anyhow::Result<()> {
    let id = identity(store);
    let key_file = args.jwk_file.as_ref().or(args.public_key_pem.as_ref());
    let public_key = key_file
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let c = id
        .register_smart_app(carerecord_identity::NewSmartApp {
            client_id: args.client_id.clone(),
            name: args.name.clone(),
            redirect_uris: args.redirect_uris.clone(),
            scopes: args.scope.clone(),
            secret: args.secret,
            public_key,
            launch_url: args.launch_url.clone(),
        })
        .await?;
    let kind = if args.secret || key_file.is_some() {
        "confidential"
    } else {
        "public"
    };
    println!("registered SMART app ({kind})");
    println!("client_id: {}", c.client_id);
    if let Some(s) = &c.secret {
        println!("client_secret: {s}");
    }
    Ok(())
}

/// `carerecord client add-launch`.
pub async fn client_add_launch(
    store: Arc<dyn ResourceStore>,
    args: &ClientAddLaunchArgs,
) -> anyhow::Result<()> {
    let id = identity(store);
    let roles = args
        .roles
        .iter()
        .map(|r| r.trim().parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
    id.register_launch(&args.client_id, &args.org, &roles)
        .await?;
    println!(
        "{} may launch {} at Organization/{}",
        args.client_id,
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.org
    );
    Ok(())
}

/// The claims of `carerecord launch-token`, issued now.
pub fn launch_claims(args: &LaunchTokenArgs) -> anyhow::Result<LaunchClaims> {
    if !(1..=carerecord_identity::launch::MAX_LAUNCH_LIFETIME_SECONDS).contains(&args.lifetime) {
        bail!("--lifetime is 1 to 300 seconds");
    }
    let now = carerecord_store::now_micros() / 1_000_000;
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
    Ok(LaunchClaims {
        iss: args.client_id.clone(),
        aud: serde_json::Value::String(args.aud.clone()),
        iat: now,
        exp: now + args.lifetime,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        sub: args.user_id.clone(),
        name: args.name.clone(),
        role: args.role.clone(),
        ods: args.ods.clone(),
        nhs_number: args.nhs_number.clone(),
        birth_date: args.birth_date.clone(),
        training_completed: args.training_completed.clone(),
    })
}

/// `carerecord launch-token`: prints a signed launch token, or a page that posts it.
pub fn launch_token(args: &LaunchTokenArgs) -> anyhow::Result<()> {
    let key = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read {}", args.key.display()))?;
    let claims = launch_claims(args)?;
    let token = carerecord_identity::launch::sign_launch_token(&claims, &key, args.kid.as_deref())?;
    if args.html {
        // The care home system's side of the launch: a form that posts the token. Attribute
        // values are escaped; the token is base64url and dots anyway.
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        println!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Open the shared care record</title></head>\n<body>\n<form method=\"post\" action=\"{}\">\n<input type=\"hidden\" name=\"launch_token\" value=\"{}\">\n<button type=\"submit\">Open the shared care record</button>\n</form>\n<p>The token expires {} seconds after it was made.</p>\n</body></html>",
            esc(&args.aud),
            esc(&token),
            args.lifetime
        );
    } else {
        println!("{token}");
    }
    Ok(())
}

/// The demo's care home record system: registered for the demo care home with a key pair
/// made now (the private key written beside the database), and a resident of that home to
/// launch into.
pub struct DemoLaunch {
    pub client_id: &'static str,
    pub key_file: std::path::PathBuf,
    pub ods: String,
    pub nhs_number: String,
    pub birth_date: String,
}

pub const DEMO_LAUNCH_CLIENT: &str = "demo-care-system";

/// Registers the demo care home system, unless the data directory has it already.
pub async fn demo_launch(
    store: Arc<dyn ResourceStore>,
    london: &carerecord_synth::London,
    care_home: &str,
    data_dir: &std::path::Path,
    register: bool,
) -> anyhow::Result<Option<DemoLaunch>> {
    let key_file = data_dir.join("demo-care-system-key.pem");
    if register {
        let (private, public) = carerecord_identity::launch::generate_es256_key_pair()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&key_file)
            .with_context(|| format!("cannot write {}", key_file.display()))?;
        std::io::Write::write_all(&mut f, private.as_bytes())?;
        let id = identity(store);
        id.create_client(NewClient {
            client_id: DEMO_LAUNCH_CLIENT.to_owned(),
            role: Role::System,
            organisation_id: care_home.to_owned(),
            secret: false,
            public_key: Some(public),
        })
        .await?;
        id.register_launch(
            DEMO_LAUNCH_CLIENT,
            care_home,
            &[
                Role::CareWorker,
                Role::SeniorCarer,
                Role::RegisteredNurse,
                Role::CareHomeManager,
            ],
        )
        .await?;
    } else if !key_file.exists() {
        return Ok(None);
    }
    let home_ref = format!("Organization/{care_home}");
    let ods = london
        .organisations()
        .into_iter()
        .find(|o| o["resourceType"] == "Organization" && o["id"] == care_home)
        .and_then(|o| {
            o["identifier"].as_array().and_then(|ids| {
                ids.iter()
                    .find(|i| i["system"] == carerecord_identity::ODS_SYSTEM)
                    .and_then(|i| i["value"].as_str().map(str::to_owned))
            })
        })
        .unwrap_or_default();
    // The first generated person living at the home (an active EpisodeOfCare there).
    for i in 0..london.people() {
        let bundle = london.person_bundle(i);
        let resources: Vec<&serde_json::Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .collect();
        let lives_there = resources.iter().any(|r| {
            r["resourceType"] == "EpisodeOfCare"
                && r["status"] == "active"
                && r["managingOrganization"]["reference"] == home_ref.as_str()
        });
        let patient = resources.iter().find(|r| r["resourceType"] == "Patient");
        if let (true, Some(p)) = (lives_there, patient) {
            let nhs = p["identifier"]
                .as_array()
                .and_then(|ids| {
                    ids.iter()
                        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
                        .and_then(|i| i["value"].as_str())
                })
                .unwrap_or_default();
            return Ok(Some(DemoLaunch {
                client_id: DEMO_LAUNCH_CLIENT,
                key_file,
                ods,
                nhs_number: nhs.to_owned(),
                birth_date: p["birthDate"].as_str().unwrap_or_default().to_owned(),
            }));
        }
    }
    Ok(None)
}

/// A demo account to print.
pub struct DemoUser {
    pub role: Role,
    pub organisation: String,
    pub user: CreatedUser,
    pub note: &'static str,
}

/// The organisations the demo's users work at, picked from the generated London: a care
/// home, a GP practice and an acute trust in the same ICS, and that ICS as the programme.
pub struct DemoOrgs {
    pub care_home: String,
    pub practice: String,
    pub trust: String,
    pub programme: String,
}

fn kind(org: &serde_json::Value) -> &str {
    org["type"][0]["coding"][0]["code"].as_str().unwrap_or("")
}

pub fn demo_orgs(london: &carerecord_synth::London) -> DemoOrgs {
    let orgs: Vec<serde_json::Value> = london
        .organisations()
        .into_iter()
        .filter(|o| o["resourceType"] == "Organization")
        .collect();
    let id = |o: &serde_json::Value| o["id"].as_str().unwrap_or_default().to_owned();
    let home = orgs.iter().find(|o| kind(o).starts_with("care-home"));
    let ics = home
        .and_then(|h| h["partOf"]["reference"].as_str())
        .unwrap_or("");
    let in_ics = |k: &str| {
        orgs.iter()
            .find(|o| kind(o) == k && o["partOf"]["reference"] == ics)
            .or_else(|| orgs.iter().find(|o| kind(o) == k))
            .map(id)
            .unwrap_or_default()
    };
    DemoOrgs {
        care_home: home.map(id).unwrap_or_default(),
        practice: in_ics("gp-practice"),
        trust: in_ics("acute-trust"),
        programme: ics
            .strip_prefix("Organization/")
            .map(str::to_owned)
            .unwrap_or_else(|| in_ics("ics")),
    }
}

/// Creates the demo's users (one per role that people hold, one with lapsed training) and a
/// `service` client. Light password hashing: the passwords are printed anyway.
pub async fn demo_accounts(
    store: Arc<dyn ResourceStore>,
    orgs: &DemoOrgs,
) -> anyhow::Result<(Vec<DemoUser>, carerecord_identity::CreatedClient)> {
    let id = Identity::new(
        store,
        IdentitySettings {
            password_cost: PasswordCost::Light,
            ..IdentitySettings::default()
        },
    );
    let people: [(&str, &str, Role, &String, &'static str); 9] = [
        (
            "carer",
            "Demo Care Worker",
            Role::CareWorker,
            &orgs.care_home,
            "",
        ),
        (
            "senior",
            "Demo Senior Carer",
            Role::SeniorCarer,
            &orgs.care_home,
            "",
        ),
        (
            "nurse",
            "Demo Registered Nurse",
            Role::RegisteredNurse,
            &orgs.care_home,
            "",
        ),
        (
            "manager",
            "Demo Care Home Manager",
            Role::CareHomeManager,
            &orgs.care_home,
            "",
        ),
        ("gp", "Demo GP", Role::Gp, &orgs.practice, ""),
        (
            "clinician",
            "Demo Hospital Clinician",
            Role::HospitalClinician,
            &orgs.trust,
            "",
        ),
        (
            "privacy",
            "Demo Privacy Officer",
            Role::PrivacyOfficer,
            // At the care home: a privacy officer reviews their own organisation's share of
            // the audit trail (its staff's accesses, and who looked at its residents).
            &orgs.care_home,
            "",
        ),
        (
            "admin",
            "Demo Programme Administrator",
            Role::ProgrammeAdmin,
            &orgs.programme,
            "",
        ),
        (
            "lapsed",
            "Demo Nurse With Lapsed Training",
            Role::RegisteredNurse,
            &orgs.care_home,
            "training expired: can only record new training (POST /auth/training)",
        ),
    ];
    let year_ago = carerecord_store::now_micros() - 366 * 24 * 3600 * 1_000_000;
    let mut out = Vec::new();
    for (username, name, role, org, note) in people {
        let user = id
            .create_user(NewUser {
                username: username.to_owned(),
                display_name: name.to_owned(),
                password: None,
                grants: vec![(role, org.clone())],
                training_valid_until: (username == "lapsed").then_some(year_ago),
            })
            .await?;
        out.push(DemoUser {
            role,
            organisation: org.clone(),
            user,
            note,
        });
    }
    let client = id
        .create_client(NewClient {
            client_id: "demo-service".to_owned(),
            role: Role::Service,
            organisation_id: orgs.programme.clone(),
            secret: true,
            public_key: None,
        })
        .await?;
    Ok((out, client))
}

/// Writes the demo accounts as JSON (for browser tests that sign in and compute TOTP codes).
/// The file holds passwords: it is created readable by its owner only where that is possible.
pub fn write_demo_accounts(
    path: &std::path::Path,
    users: &[DemoUser],
    client: &carerecord_identity::CreatedClient,
    launch: Option<&DemoLaunch>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let json = serde_json::json!({
        "users": users.iter().map(|u| serde_json::json!({
            "username": u.user.username,
            "password": u.user.password,
            "totp_secret": u.user.totp_secret,
            "role": u.role.as_str(),
            "organisation": u.organisation,
            "note": u.note,
        })).collect::<Vec<_>>(),
        "client": {"client_id": client.client_id, "secret": client.secret},
        "launch": launch.map(|l| serde_json::json!({
            "client_id": l.client_id,
            "key_file": l.key_file,
            "ods": l.ods,
            "nhs_number": l.nhs_number,
            "birth_date": l.birth_date,
        })),
    });
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write the demo accounts to {}", path.display()))?;
    std::io::Write::write_all(&mut f, serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}
