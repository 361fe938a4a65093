//! The typed configuration: defaults, then a TOML file, then `CARERECORD_*` environment
//! variables, then command-line flags — each later source wins. An invalid value stops start-up
//! naming its key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything carerecord can be configured with.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server (FHIR API, portal, health) listens.
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served; kept off the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the embedded SQLite database (used when `database_url` is not set).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL, or `sqlite://…`; unset means SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// The public FHIR base URL (`https://record.example/fhir`); unset derives it from `Host`.
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Search page size when `_count` is absent.
    pub default_page_size: u32,
    /// Largest `_count` honoured.
    pub max_page_size: u32,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Failed sign-ins in a row that lock a person's account.
    pub lockout_failures: u32,
    /// How long a locked account stays locked.
    pub lockout_minutes: u64,
    /// A person's session ends this long after sign-in.
    pub session_hours: u64,
    /// … or after this long unused.
    pub session_idle_minutes: u64,
    /// Lifetime of a token issued by client credentials.
    pub system_token_minutes: u64,
    /// Accept registered JWKS URLs on `http://` loopback addresses (127.0.0.1, ::1,
    /// localhost). For tests and local demos only: otherwise a JWKS URL must be https.
    pub jwks_allow_loopback_http: bool,
    /// The audit trail.
    pub audit: AuditConfig,
    /// SMART on FHIR: the key access and id tokens are signed with.
    pub smart: SmartConfig,
    /// The access policy's settings and code lists.
    pub policy: PolicyConfig,
}

/// `[policy]`: the access policy's tunable parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// How many days after a hospital or GP encounter ends its organisation still counts as
    /// caring for the person.
    pub encounter_window_days: u32,
    /// How long an emergency (break-glass) grant lasts, in hours.
    pub break_glass_hours: u32,
    /// SNOMED CT concept ids (the RCGP sensitive categories) whose items only their source
    /// organisation sees.
    pub sensitive_snomed: Vec<String>,
    /// A file of SNOMED CT concept ids, one per line (`#` starts a comment); when set it
    /// replaces `sensitive_snomed`, so a deployment can keep the list its terminology service
    /// exports.
    pub sensitive_snomed_file: Option<PathBuf>,
    /// `meta.security` labels (`system|code`) that make an item visible to its source
    /// organisation only (default: `v3-ActCode` STD/HIV/SEX/PSY/ETH, `v3-Confidentiality` R/V).
    pub sensitive_labels: Vec<String>,
    /// A file of such labels, one `system|code` per line; when set it replaces
    /// `sensitive_labels`.
    pub sensitive_labels_file: Option<PathBuf>,
    /// Codes (`system|code`) that record a person's objection to sharing their record (default:
    /// the GP dissent codes Read v2 9Nd1 and 93C1; the type-1 opt-out and the National Data
    /// Opt-out do not apply to direct care and are left out on purpose).
    pub objection_codes: Vec<String>,
    /// A file of such codes, one `system|code` per line; when set it replaces
    /// `objection_codes`.
    pub objection_codes_file: Option<PathBuf>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let policy = carerecord_access::PolicySettings::default();
        let lists = carerecord_access::CodeLists::default();
        PolicyConfig {
            encounter_window_days: policy.encounter_window_days,
            break_glass_hours: policy.break_glass_hours,
            sensitive_snomed: lists.sensitive_snomed,
            sensitive_snomed_file: None,
            sensitive_labels: lists.sensitive_labels,
            sensitive_labels_file: None,
            objection_codes: lists.objection_codes,
            objection_codes_file: None,
        }
    }
}

/// The longest encounter window accepted: a year.
pub const MAX_ENCOUNTER_WINDOW_DAYS: u32 = 366;
/// The longest break-glass grant accepted: three days covers a weekend.
pub const MAX_BREAK_GLASS_HOURS: u32 = 72;

/// Whether `s` looks like a SNOMED CT identifier: 6 to 18 digits, no leading zero.
fn is_sctid(s: &str) -> bool {
    (6..=18).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a coding as the lists hold it: `system|code`, the system a URI (a scheme
/// before a colon), neither part empty nor holding spaces.
fn is_system_code(s: &str) -> bool {
    match s.rsplit_once('|') {
        Some((system, code)) => {
            system.split_once(':').is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
            }) && !code.is_empty()
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// One kind of code list: its key, what each entry must be, and how to check one.
struct ListKind {
    key: &'static str,
    what: &'static str,
    valid: fn(&str) -> bool,
}

const SNOMED_LIST: ListKind = ListKind {
    key: "policy.sensitive_snomed",
    what: "a SNOMED CT concept id",
    valid: is_sctid,
};
const LABEL_LIST: ListKind = ListKind {
    key: "policy.sensitive_labels",
    what: "a security label written system|code",
    valid: is_system_code,
};
const OBJECTION_LIST: ListKind = ListKind {
    key: "policy.objection_codes",
    what: "a code written system|code",
    valid: is_system_code,
};

/// The codes of a code-list file: one per line, `#` comments and blank lines ignored. An
/// error names the file and line.
fn parse_list_file(kind: &ListKind, origin: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        if !(kind.valid)(code) {
            return Err(ConfigError(format!(
                "{}_file: {origin}:{}: '{}' is not {}",
                kind.key,
                n + 1,
                code.chars().take(40).collect::<String>(),
                kind.what
            )));
        }
        out.push(code.to_owned());
    }
    Ok(out)
}

/// The SNOMED CT codes of a code-list file (see [`PolicyConfig::sensitive_snomed_file`]).
pub fn parse_code_file(origin: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    parse_list_file(&SNOMED_LIST, origin, text)
}

/// The list in force: the file's when one is set, else the inline list; every entry checked,
/// and never empty (an empty list would quietly share what it exists to protect).
fn code_list(
    kind: &ListKind,
    inline: &[String],
    file: Option<&PathBuf>,
) -> Result<Vec<String>, ConfigError> {
    let codes = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "{}_file: cannot read {}: {e}",
                    kind.key,
                    path.display()
                ))
            })?;
            parse_list_file(kind, &path.display().to_string(), &text)?
        }
        None => {
            if let Some(bad) = inline.iter().find(|c| !(kind.valid)(c)) {
                return Err(ConfigError(format!(
                    "{}: '{}' is not {}",
                    kind.key,
                    bad.chars().take(40).collect::<String>(),
                    kind.what
                )));
            }
            inline.to_vec()
        }
    };
    if codes.is_empty() {
        return Err(ConfigError(format!(
            "{}: the list is empty; keep at least the defaults",
            kind.key
        )));
    }
    Ok(codes)
}

impl PolicyConfig {
    /// The policy settings the server uses.
    pub fn settings(&self) -> carerecord_access::PolicySettings {
        carerecord_access::PolicySettings {
            encounter_window_days: self.encounter_window_days,
            break_glass_hours: self.break_glass_hours,
        }
    }

    /// The sensitive SNOMED CT codes in force: the file's when one is set, else the inline list.
    pub fn sensitive_codes(&self) -> Result<Vec<String>, ConfigError> {
        code_list(
            &SNOMED_LIST,
            &self.sensitive_snomed,
            self.sensitive_snomed_file.as_ref(),
        )
    }

    /// The classifier's code lists, each from its file or inline list.
    pub fn code_lists(&self) -> Result<carerecord_access::CodeLists, ConfigError> {
        Ok(carerecord_access::CodeLists {
            sensitive_snomed: self.sensitive_codes()?,
            sensitive_labels: code_list(
                &LABEL_LIST,
                &self.sensitive_labels,
                self.sensitive_labels_file.as_ref(),
            )?,
            objection_codes: code_list(
                &OBJECTION_LIST,
                &self.objection_codes,
                self.objection_codes_file.as_ref(),
            )?,
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.encounter_window_days > MAX_ENCOUNTER_WINDOW_DAYS {
            return Err(ConfigError(format!(
                "policy.encounter_window_days: must be at most {MAX_ENCOUNTER_WINDOW_DAYS}"
            )));
        }
        if !(1..=MAX_BREAK_GLASS_HOURS).contains(&self.break_glass_hours) {
            return Err(ConfigError(format!(
                "policy.break_glass_hours: must be between 1 and {MAX_BREAK_GLASS_HOURS}"
            )));
        }
        self.code_lists().map(|_| ())
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The file holding the audit chain's HMAC key (64 hex characters); unset means
    /// `<data_dir>/audit.key`. Created with a random key, readable by its owner only, when
    /// missing. Keep a copy apart from the database: without it the trail cannot be verified.
    pub key_file: Option<PathBuf>,
}

/// `[smart]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// A PEM file holding the EC P-256 private key (PKCS#8) SMART access and id tokens are
    /// signed with, e.g. one a secrets manager mounts; it must exist and is never written.
    /// Unset means `<data_dir>/smart-signing-key.pem`, made on first start. Servers sharing a
    /// database (PostgreSQL) must all use the same key.
    pub signing_key_file: Option<PathBuf>,
}

impl SmartConfig {
    /// Reads and parses the configured key, naming the key and the file when it cannot.
    pub fn signing_key(&self) -> Result<Option<carerecord_identity::SigningKey>, ConfigError> {
        let Some(path) = &self.signing_key_file else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "smart.signing_key_file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        carerecord_identity::SigningKey::from_pem(&pem)
            .map(Some)
            .map_err(|e| {
                ConfigError(format!(
                    "smart.signing_key_file: {} is not an EC P-256 private key in PEM \
                     (PKCS#8, BEGIN PRIVATE KEY): {e}",
                    path.display()
                ))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            data_dir: PathBuf::from("data"),
            database_url: None,
            public_base_url: None,
            max_body_bytes: 16 * 1024 * 1024,
            default_page_size: 50,
            max_page_size: 1_000,
            log_format: LogFormat::Text,
            lockout_failures: 5,
            lockout_minutes: 15,
            session_hours: 8,
            session_idle_minutes: 30,
            system_token_minutes: 60,
            jwks_allow_loopback_http: false,
            audit: AuditConfig::default(),
            smart: SmartConfig::default(),
            policy: PolicyConfig::default(),
        }
    }
}

// The database URL may carry a password: never print it.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|u| redact_url(u)),
            )
            .field("public_base_url", &self.public_base_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("default_page_size", &self.default_page_size)
            .field("max_page_size", &self.max_page_size)
            .field("log_format", &self.log_format)
            .field("lockout_failures", &self.lockout_failures)
            .field("lockout_minutes", &self.lockout_minutes)
            .field("session_hours", &self.session_hours)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("system_token_minutes", &self.system_token_minutes)
            .field("jwks_allow_loopback_http", &self.jwks_allow_loopback_http)
            .field("audit", &self.audit)
            .field("smart", &self.smart)
            .field("policy", &self.policy)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A configuration file or overrides: every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_base_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub default_page_size: Option<u32>,
    pub max_page_size: Option<u32>,
    pub log_format: Option<LogFormat>,
    pub lockout_failures: Option<u32>,
    pub lockout_minutes: Option<u64>,
    pub session_hours: Option<u64>,
    pub session_idle_minutes: Option<u64>,
    pub system_token_minutes: Option<u64>,
    pub jwks_allow_loopback_http: Option<bool>,
    pub audit: Option<PartialAudit>,
    pub smart: Option<PartialSmart>,
    pub policy: Option<PartialPolicy>,
}

/// `[policy]` in a file or overrides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialPolicy {
    pub encounter_window_days: Option<u32>,
    pub break_glass_hours: Option<u32>,
    pub sensitive_snomed: Option<Vec<String>>,
    pub sensitive_snomed_file: Option<PathBuf>,
    pub sensitive_labels: Option<Vec<String>>,
    pub sensitive_labels_file: Option<PathBuf>,
    pub objection_codes: Option<Vec<String>>,
    pub objection_codes_file: Option<PathBuf>,
}

/// `[smart]` in a file or overrides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSmart {
    pub signing_key_file: Option<PathBuf>,
}

/// `[audit]` in a file or overrides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialAudit {
    pub key_file: Option<PathBuf>,
}

impl Partial {
    pub fn from_toml(text: &str, origin: &str) -> Result<Partial, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {}", e.message())))
    }

    /// Reads `CARERECORD_<KEY>` variables through `get`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Partial, ConfigError> {
        fn parse<T: std::str::FromStr>(
            key: &str,
            v: Option<String>,
        ) -> Result<Option<T>, ConfigError> {
            v.map(|s| {
                s.parse::<T>().map_err(|_| {
                    ConfigError(format!("CARERECORD_{key}: '{s}' is not a valid value"))
                })
            })
            .transpose()
        }
        let log_format = match get("CARERECORD_LOG_FORMAT").as_deref() {
            None => None,
            Some("text") => Some(LogFormat::Text),
            Some("json") => Some(LogFormat::Json),
            Some(other) => {
                return Err(ConfigError(format!(
                    "CARERECORD_LOG_FORMAT: '{other}' must be text or json"
                )));
            }
        };
        Ok(Partial {
            listen: parse("LISTEN", get("CARERECORD_LISTEN"))?,
            metrics_listen: get("CARERECORD_METRICS_LISTEN"),
            data_dir: get("CARERECORD_DATA_DIR").map(PathBuf::from),
            database_url: get("CARERECORD_DATABASE_URL"),
            public_base_url: get("CARERECORD_PUBLIC_BASE_URL"),
            max_body_bytes: parse("MAX_BODY_BYTES", get("CARERECORD_MAX_BODY_BYTES"))?,
            default_page_size: parse("DEFAULT_PAGE_SIZE", get("CARERECORD_DEFAULT_PAGE_SIZE"))?,
            max_page_size: parse("MAX_PAGE_SIZE", get("CARERECORD_MAX_PAGE_SIZE"))?,
            log_format,
            lockout_failures: parse("LOCKOUT_FAILURES", get("CARERECORD_LOCKOUT_FAILURES"))?,
            lockout_minutes: parse("LOCKOUT_MINUTES", get("CARERECORD_LOCKOUT_MINUTES"))?,
            session_hours: parse("SESSION_HOURS", get("CARERECORD_SESSION_HOURS"))?,
            session_idle_minutes: parse(
                "SESSION_IDLE_MINUTES",
                get("CARERECORD_SESSION_IDLE_MINUTES"),
            )?,
            system_token_minutes: parse(
                "SYSTEM_TOKEN_MINUTES",
                get("CARERECORD_SYSTEM_TOKEN_MINUTES"),
            )?,
            jwks_allow_loopback_http: parse(
                "JWKS_ALLOW_LOOPBACK_HTTP",
                get("CARERECORD_JWKS_ALLOW_LOOPBACK_HTTP"),
            )?,
            audit: get("CARERECORD_AUDIT_KEY_FILE").map(|f| PartialAudit {
                key_file: Some(PathBuf::from(f)),
            }),
            smart: get("CARERECORD_SMART_SIGNING_KEY_FILE").map(|f| PartialSmart {
                signing_key_file: Some(PathBuf::from(f)),
            }),
            policy: Some(PartialPolicy {
                encounter_window_days: parse(
                    "POLICY_ENCOUNTER_WINDOW_DAYS",
                    get("CARERECORD_POLICY_ENCOUNTER_WINDOW_DAYS"),
                )?,
                break_glass_hours: parse(
                    "POLICY_BREAK_GLASS_HOURS",
                    get("CARERECORD_POLICY_BREAK_GLASS_HOURS"),
                )?,
                // A list is awkward in one variable: the environment names a file.
                sensitive_snomed: None,
                sensitive_snomed_file: get("CARERECORD_POLICY_SENSITIVE_SNOMED_FILE")
                    .map(PathBuf::from),
                sensitive_labels: None,
                sensitive_labels_file: get("CARERECORD_POLICY_SENSITIVE_LABELS_FILE")
                    .map(PathBuf::from),
                objection_codes: None,
                objection_codes_file: get("CARERECORD_POLICY_OBJECTION_CODES_FILE")
                    .map(PathBuf::from),
            }),
        })
    }

    /// Lays `self` over `c`.
    pub fn apply(self, mut c: Config) -> Result<Config, ConfigError> {
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.metrics_listen {
            c.metrics_listen = match v.as_str() {
                "" | "off" | "none" => None,
                s => Some(s.parse().map_err(|_| {
                    ConfigError(format!(
                        "metrics_listen: '{s}' is not an address (or 'off')"
                    ))
                })?),
            };
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.database_url {
            c.database_url = Some(v);
        }
        if let Some(v) = self.public_base_url {
            c.public_base_url = Some(v);
        }
        if let Some(v) = self.max_body_bytes {
            c.max_body_bytes = v;
        }
        if let Some(v) = self.default_page_size {
            c.default_page_size = v;
        }
        if let Some(v) = self.max_page_size {
            c.max_page_size = v;
        }
        if let Some(v) = self.log_format {
            c.log_format = v;
        }
        if let Some(v) = self.lockout_failures {
            c.lockout_failures = v;
        }
        if let Some(v) = self.lockout_minutes {
            c.lockout_minutes = v;
        }
        if let Some(v) = self.session_hours {
            c.session_hours = v;
        }
        if let Some(v) = self.session_idle_minutes {
            c.session_idle_minutes = v;
        }
        if let Some(v) = self.system_token_minutes {
            c.system_token_minutes = v;
        }
        if let Some(v) = self.jwks_allow_loopback_http {
            c.jwks_allow_loopback_http = v;
        }

        if let Some(v) = self.audit.and_then(|a| a.key_file) {
            c.audit.key_file = Some(v);
        }
        if let Some(v) = self.smart.and_then(|a| a.signing_key_file) {
            c.smart.signing_key_file = Some(v);
        }
        if let Some(p) = self.policy {
            if let Some(v) = p.encounter_window_days {
                c.policy.encounter_window_days = v;
            }
            if let Some(v) = p.break_glass_hours {
                c.policy.break_glass_hours = v;
            }
            if let Some(v) = p.sensitive_snomed {
                c.policy.sensitive_snomed = v;
            }
            if let Some(v) = p.sensitive_snomed_file {
                c.policy.sensitive_snomed_file = Some(v);
            }
            if let Some(v) = p.sensitive_labels {
                c.policy.sensitive_labels = v;
            }
            if let Some(v) = p.sensitive_labels_file {
                c.policy.sensitive_labels_file = Some(v);
            }
            if let Some(v) = p.objection_codes {
                c.policy.objection_codes = v;
            }
            if let Some(v) = p.objection_codes_file {
                c.policy.objection_codes_file = Some(v);
            }
        }
        Ok(c)
    }
}

impl Config {
    /// Builds the configuration from its sources, later ones winning.
    pub fn load(
        file: Option<(&str, &str)>,
        env: impl Fn(&str) -> Option<String>,
        flags: Partial,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some((origin, text)) = file {
            c = Partial::from_toml(text, origin)?.apply(c)?;
        }
        c = Partial::from_env(env)?.apply(c)?;
        c = flags.apply(c)?;
        c.check()?;
        Ok(c)
    }

    /// Rules that span keys or ranges.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes: must be at least 1024".into()));
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err(ConfigError(
                "default_page_size: must be between 1 and max_page_size".into(),
            ));
        }
        for (key, value) in [
            ("lockout_failures", u64::from(self.lockout_failures)),
            ("lockout_minutes", self.lockout_minutes),
            ("session_hours", self.session_hours),
            ("session_idle_minutes", self.session_idle_minutes),
            ("system_token_minutes", self.system_token_minutes),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{key}: must be at least 1")));
            }
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(ConfigError(
                "database_url: must start with postgres://, postgresql:// or sqlite:".into(),
            ));
        }
        if let Some(b) = &self.public_base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            return Err(ConfigError(
                "public_base_url: must be an http:// or https:// URL".into(),
            ));
        }
        // A managed key that cannot be read or is not a key stops start-up (and `config
        // check`) here, rather than at the first token.
        self.smart.signing_key()?;
        self.policy.check()
    }

    /// Where the audit key is read from (and created when missing).
    pub fn audit_key_file(&self) -> PathBuf {
        self.audit
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }

    /// The default configuration as a commented TOML file.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        format!(
            "# carerecord configuration. Every key may also be set as CARERECORD_<KEY> in the\n\
             # environment, which wins over this file; command-line flags win over both.\n\
             # database_url = \"postgres://user@127.0.0.1:5432/carerecord\"  # unset: SQLite in data_dir\n\
             # public_base_url = \"https://record.example.nhs.uk/fhir\"\n             # [audit] key_file = \"/etc/carerecord/audit.key\"  # unset: data_dir/audit.key\n\
             # [smart] signing_key_file = \"/etc/carerecord/smart-signing-key.pem\"  # unset: data_dir/smart-signing-key.pem; servers sharing a database share it\n\
             # [policy] sensitive_snomed_file = \"/etc/carerecord/sensitive-snomed.txt\"  # one code a line; replaces sensitive_snomed\n\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_then_file_then_env_then_flags_each_win() {
        let file = "listen = \"127.0.0.1:1000\"\nmax_page_size = 500\ndefault_page_size = 20\n";
        let c = Config::load(Some(("f.toml", file)), env(&[]), Partial::default()).unwrap();
        assert_eq!(c.listen.port(), 1000);
        assert_eq!(c.max_page_size, 500);

        let c = Config::load(
            Some(("f.toml", file)),
            env(&[("CARERECORD_LISTEN", "127.0.0.1:2000")]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.max_page_size, 500, "file value kept where env is silent");

        let flags = Partial {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            ..Partial::default()
        };
        let c = Config::load(
            Some(("f.toml", file)),
            env(&[("CARERECORD_LISTEN", "127.0.0.1:2000")]),
            flags,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 3000);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::load(
            Some(("f.toml", "lisen = 1\n")),
            env(&[]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("lisen"), "{}", e.0);
        let e = Config::load(
            None,
            env(&[("CARERECORD_MAX_PAGE_SIZE", "many")]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("CARERECORD_MAX_PAGE_SIZE"), "{}", e.0);
        let e = Config::load(
            None,
            env(&[("CARERECORD_DATABASE_URL", "mysql://x")]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("database_url"), "{}", e.0);
    }

    #[test]
    fn policy_settings_and_an_inline_code_list_load_from_the_file_and_env() {
        let file = "[policy]\nencounter_window_days = 14\nbreak_glass_hours = 8\n\
                    sensitive_snomed = [\"1234567001\", \"86406008\"]\n";
        let c = Config::load(Some(("f.toml", file)), env(&[]), Partial::default()).unwrap();
        assert_eq!(c.policy.encounter_window_days, 14);
        assert_eq!(c.policy.settings().break_glass_hours, 8);
        assert_eq!(
            c.policy.code_lists().unwrap().sensitive_snomed,
            ["1234567001", "86406008"]
        );
        // The other lists keep their defaults.
        assert_eq!(
            c.policy.code_lists().unwrap().sensitive_labels,
            carerecord_access::CodeLists::default().sensitive_labels
        );
        let c = Config::load(
            Some(("f.toml", file)),
            env(&[("CARERECORD_POLICY_BREAK_GLASS_HOURS", "2")]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!(c.policy.break_glass_hours, 2, "env wins over the file");
        assert_eq!(c.policy.encounter_window_days, 14);
    }

    #[test]
    fn a_code_list_file_replaces_the_inline_list_and_its_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("sensitive.txt");
        std::fs::write(
            &list,
            "# RCGP sensitive, local\n1234567001  # a local code\n\n8098009\n",
        )
        .unwrap();
        let file = format!(
            "[policy]\nsensitive_snomed = [\"86406008\"]\nsensitive_snomed_file = {:?}\n",
            list.display().to_string()
        );
        let c = Config::load(Some(("f.toml", &file)), env(&[]), Partial::default()).unwrap();
        assert_eq!(
            c.policy.sensitive_codes().unwrap(),
            ["1234567001", "8098009"]
        );

        std::fs::write(&list, "8098009\nHIV\n").unwrap();
        let e = Config::load(Some(("f.toml", &file)), env(&[]), Partial::default()).unwrap_err();
        assert!(
            e.0.contains("policy.sensitive_snomed_file")
                && e.0.contains(":2:")
                && e.0.contains("HIV"),
            "{}",
            e.0
        );
        let missing = dir.path().join("absent.txt");
        let e = Config::load(
            None,
            env(&[(
                "CARERECORD_POLICY_SENSITIVE_SNOMED_FILE",
                missing.to_str().unwrap(),
            )]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("cannot read"), "{}", e.0);
        std::fs::write(&list, "# nothing\n").unwrap();
        let e = Config::load(Some(("f.toml", &file)), env(&[]), Partial::default()).unwrap_err();
        assert!(e.0.contains("empty"), "{}", e.0);
    }

    #[test]
    fn configured_labels_and_objection_codes_replace_the_defaults_and_take_effect() {
        use carerecord_access::Classifier;
        use carerecord_fhir::ResourceType;
        let dir = tempfile::tempdir().unwrap();
        let objections = dir.path().join("objections.txt");
        std::fs::write(
            &objections,
            "# local dissent codes\nhttp://snomed.info/sct|827161000000101  # a local code\n\n\
             http://read.info/readv2|9Nd1\n",
        )
        .unwrap();
        let file = format!(
            "[policy]\nsensitive_labels = [\"https://fhir.example.org/CodeSystem/local|SECRET\"]\n\
             objection_codes_file = {:?}\n",
            objections.display().to_string()
        );
        let c = Config::load(Some(("f.toml", &file)), env(&[]), Partial::default()).unwrap();
        let lists = c.policy.code_lists().unwrap();
        assert_eq!(
            lists.sensitive_labels,
            ["https://fhir.example.org/CodeSystem/local|SECRET"]
        );
        assert_eq!(
            lists.objection_codes,
            [
                "http://snomed.info/sct|827161000000101",
                "http://read.info/readv2|9Nd1"
            ]
        );
        assert_eq!(
            lists.sensitive_snomed,
            carerecord_access::CodeLists::default().sensitive_snomed,
            "the list not configured keeps its default"
        );

        // The configured codes are what classification uses.
        let classifier = Classifier::new(&lists);
        let labelled = |system: &str, code: &str| {
            serde_json::json!({"resourceType": "Observation", "status": "final",
                "meta": {"security": [{"system": system, "code": code}]},
                "code": {"text": "note"}})
        };
        let sensitive = |body: &serde_json::Value| {
            classifier
                .classify(ResourceType::Observation, body, Some("p-1"))
                .sensitive
        };
        assert!(sensitive(&labelled(
            "https://fhir.example.org/CodeSystem/local",
            "SECRET"
        )));
        assert!(
            !sensitive(&labelled(
                "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                "R"
            )),
            "the configured list replaced the default"
        );
        let dissent = |system: &str, code: &str| {
            let body = serde_json::json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": system, "code": code}]}});
            classifier
                .classify(ResourceType::Observation, &body, Some("p-1"))
                .objection
        };
        assert!(dissent("http://snomed.info/sct", "827161000000101"));
        assert!(dissent("http://read.info/readv2", "9Nd1"));
        assert!(!dissent("http://read.info/readv2", "93C1"));

        // The environment names the files.
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "urn:oid:2.16.840.1.113883.5.25|V\n").unwrap();
        let c = Config::load(
            None,
            env(&[(
                "CARERECORD_POLICY_SENSITIVE_LABELS_FILE",
                labels.to_str().unwrap(),
            )]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!(
            c.policy.code_lists().unwrap().sensitive_labels,
            ["urn:oid:2.16.840.1.113883.5.25|V"]
        );
    }

    #[test]
    fn bad_label_and_objection_lists_are_refused_naming_the_key_file_and_line() {
        for (toml, key) in [
            (
                "[policy]\nsensitive_labels = [\"STD\"]\n",
                "policy.sensitive_labels",
            ),
            (
                "[policy]\nsensitive_labels = [\"v3-ActCode|STD\"]\n",
                "policy.sensitive_labels",
            ),
            (
                "[policy]\nsensitive_labels = []\n",
                "policy.sensitive_labels",
            ),
            (
                "[policy]\nobjection_codes = [\"http://read.info/readv2|\"]\n",
                "policy.objection_codes",
            ),
            (
                "[policy]\nobjection_codes = [\"http://read.info/readv2|9N d1\"]\n",
                "policy.objection_codes",
            ),
            ("[policy]\nobjection_codes = []\n", "policy.objection_codes"),
        ] {
            let e = Config::load(Some(("f.toml", toml)), env(&[]), Partial::default()).unwrap_err();
            assert!(e.0.contains(key), "{toml}: {}", e.0);
        }
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("objections.txt");
        std::fs::write(&list, "http://read.info/readv2|9Nd1\n9Nd1\n").unwrap();
        let file = format!(
            "[policy]\nobjection_codes_file = {:?}\n",
            list.display().to_string()
        );
        let e = Config::load(Some(("f.toml", &file)), env(&[]), Partial::default()).unwrap_err();
        assert!(
            e.0.contains("policy.objection_codes_file") && e.0.contains(":2:"),
            "{}",
            e.0
        );
    }

    #[test]
    fn bad_policy_values_are_refused_naming_the_key() {
        for (toml, key) in [
            (
                "[policy]\nbreak_glass_hours = 0\n",
                "policy.break_glass_hours",
            ),
            (
                "[policy]\nbreak_glass_hours = 100\n",
                "policy.break_glass_hours",
            ),
            (
                "[policy]\nencounter_window_days = 4000\n",
                "policy.encounter_window_days",
            ),
            (
                "[policy]\nsensitive_snomed = [\"8098009\", \"STD\"]\n",
                "policy.sensitive_snomed",
            ),
            (
                "[policy]\nsensitive_snomed = []\n",
                "policy.sensitive_snomed",
            ),
            ("[policy]\nsensitive = 1\n", "sensitive"),
        ] {
            let e = Config::load(Some(("f.toml", toml)), env(&[]), Partial::default()).unwrap_err();
            assert!(e.0.contains(key), "{toml}: {}", e.0);
        }
    }

    #[test]
    fn the_printed_default_shows_the_policy_and_its_code_list() {
        let text = Config::default_toml();
        assert!(text.contains("[policy]"), "{text}");
        assert!(text.contains("break_glass_hours = 4"), "{text}");
        assert!(text.contains("encounter_window_days = 30"), "{text}");
        for code in carerecord_access::CodeLists::default().sensitive_snomed {
            assert!(text.contains(&code), "{code} missing from {text}");
        }
    }

    #[test]
    fn the_printed_default_is_a_valid_configuration() {
        let c = Config::load(
            Some(("default", &Config::default_toml())),
            env(&[]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn identity_policy_keys_load_from_env_and_zero_is_refused() {
        let c = Config::load(
            None,
            env(&[
                ("CARERECORD_LOCKOUT_FAILURES", "3"),
                ("CARERECORD_SESSION_HOURS", "4"),
            ]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!((c.lockout_failures, c.session_hours), (3, 4));
        assert_eq!(c.lockout_minutes, 15);
        let e = Config::load(
            None,
            env(&[("CARERECORD_SESSION_IDLE_MINUTES", "0")]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("session_idle_minutes"), "{}", e.0);
    }

    #[test]
    fn the_audit_key_file_comes_from_file_env_or_flag_and_defaults_to_the_data_dir() {
        let c = Config::load(None, env(&[]), Partial::default()).unwrap();
        assert_eq!(c.audit_key_file(), PathBuf::from("data").join("audit.key"));
        let file = "data_dir = \"/srv/cr\"\n";
        let c = Config::load(Some(("f.toml", file)), env(&[]), Partial::default()).unwrap();
        assert_eq!(c.audit_key_file(), PathBuf::from("/srv/cr/audit.key"));

        let file = "[audit]\nkey_file = \"/etc/cr/from-file.key\"\n";
        let c = Config::load(Some(("f.toml", file)), env(&[]), Partial::default()).unwrap();
        assert_eq!(c.audit_key_file(), PathBuf::from("/etc/cr/from-file.key"));
        let c = Config::load(
            Some(("f.toml", file)),
            env(&[("CARERECORD_AUDIT_KEY_FILE", "/etc/cr/from-env.key")]),
            Partial::default(),
        )
        .unwrap();
        assert_eq!(c.audit_key_file(), PathBuf::from("/etc/cr/from-env.key"));
        let flags = Partial {
            audit: Some(PartialAudit {
                key_file: Some("/etc/cr/from-flag.key".into()),
            }),
            ..Partial::default()
        };
        let c = Config::load(
            Some(("f.toml", file)),
            env(&[("CARERECORD_AUDIT_KEY_FILE", "/etc/cr/from-env.key")]),
            flags,
        )
        .unwrap();
        assert_eq!(c.audit_key_file(), PathBuf::from("/etc/cr/from-flag.key"));
        let e = Config::load(
            Some(("f.toml", "[audit]\nkeyfile = \"x\"\n")),
            env(&[]),
            Partial::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("keyfile"), "{}", e.0);
    }

    #[test]
    fn debug_output_hides_database_passwords() {
        let c = Config {
            database_url: Some("postgres://app:s3cret@db/carerecord".into()),
            ..Config::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && d.contains("app:***@db"), "{d}");
    }
}
