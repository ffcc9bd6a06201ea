//! Configuration: defaults < TOML file < `GATEHOUSE_*` environment.
//!
//! The TOML is read into the raw structs of [`raw`] (`deny_unknown_fields`, so a typo is an
//! error naming its line), then one `TryFrom` validates everything into [`Settings`], collecting
//! every problem with its key and line instead of stopping at the first.

mod raw;
mod secret;
mod settings;
mod validate;

use std::path::{Path, PathBuf};

pub use secret::Secret;
pub use settings::*;

/// Everything wrong with a configuration, each naming its key (and line when known).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{} (line {l}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// A TOML document with where it came from, ready to validate.
pub struct Document {
    pub origin: String,
    pub source: String,
    raw: raw::RawConfig,
    /// `GATEHOUSE_*` variables, applied over the file.
    env: Vec<(String, String)>,
}

impl Document {
    pub fn parse(origin: impl Into<String>, source: &str) -> Result<Document, ConfigError> {
        let origin = origin.into();
        let raw: raw::RawConfig = toml::from_str(source).map_err(|e| ConfigError::Parse {
            origin: origin.clone(),
            message: describe_toml_error(source, &e),
        })?;
        Ok(Document {
            origin,
            source: source.to_string(),
            raw,
            env: Vec::new(),
        })
    }

    /// Takes overrides from `GATEHOUSE_*` variables of this process.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars()
            .filter(|(k, _)| k.starts_with("GATEHOUSE_"))
            .collect();
        self
    }

    pub fn with_env(mut self, vars: Vec<(String, String)>) -> Self {
        self.env = vars;
        self
    }
}

fn describe_toml_error(source: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("line {}: {msg}", line_of(source, span.start)),
        None => msg,
    }
}

pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source
        .as_bytes()
        .iter()
        .take(offset.min(source.len()))
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl TryFrom<Document> for Settings {
    type Error = ConfigError;
    fn try_from(doc: Document) -> Result<Self, Self::Error> {
        validate::settings(doc)
    }
}

/// Where the config comes from: an explicit path, else `gatehouse.toml` here if present, else
/// built-in defaults.
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let local = PathBuf::from("gatehouse.toml");
            local.exists().then_some(local)
        }
    }
}

/// Reads, parses and validates the configuration.
pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
    let doc = match resolve_path(explicit) {
        Some(path) => {
            let source = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            Document::parse(path.display().to_string(), &source)?
        }
        None => Document::parse("built-in defaults", "")?,
    };
    Settings::try_from(doc.with_process_env())
}

/// Settings from a TOML string, with no environment overrides; for tests and embedding.
pub fn from_toml(source: &str) -> Result<Settings, ConfigError> {
    Settings::try_from(Document::parse("inline config", source)?)
}
